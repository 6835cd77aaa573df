//! The `claimex` command: serve, demo, keys, mapper.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use claimex::config::{CONFIG_ENV, Config};

#[derive(Parser)]
#[command(
    name = "claimex",
    version,
    about = "Exchanges CI OIDC id-tokens for claimex-signed JWTs with AWS session tags"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// The configuration file (TOML); CLAIMEX_* variables override it.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// Run the whole exchange on loopback and explain each step.
    Demo {
        /// The GitHub mapper component.
        #[arg(long, default_value_os_t = claimex::demo::default_mapper_path())]
        mapper: PathBuf,
        /// Where the demo writes its configuration and key.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("claimex-demo"))]
        dir: PathBuf,
    },
    /// Inspect the signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check and try mapper modules.
    Mapper {
        #[command(subcommand)]
        command: MapperCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the JWKS claimex publishes with this configuration.
    Jwks {
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MapperCommand {
    /// Validate a module without running it: a component, the right contract, no forbidden imports.
    Check {
        /// The mapper component (.wasm).
        mapper: PathBuf,
    },
    /// Run a mapper on a claim set exactly as the server would, and print what would be signed.
    Test {
        /// The mapper component (.wasm).
        #[arg(long)]
        mapper: PathBuf,
        /// The inbound claims (a JSON object).
        #[arg(long)]
        claims: PathBuf,
        /// The mapper configuration (JSON).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The issuer id handed to the mapper.
        #[arg(long, default_value = "test")]
        issuer_id: String,
        /// Audiences the output may carry (default: sts.amazonaws.com).
        #[arg(long)]
        output_audience: Vec<String>,
    },
}

fn init_logging(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAIMEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.compact().init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { .. } => init_logging(true, "info"),
        _ => init_logging(false, "warn"),
    }
    let result = actix_web::rt::System::new().block_on(run(cli.command));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("claimex: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            let app = claimex::app::build(&config).await?;
            claimex::app::serve(&config, app).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { mapper, dir } => {
            let report = claimex::demo::run(&mapper, &dir).await?;
            println!("{}", report.text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Jwks { config },
        } => {
            let config = Config::load(config.as_deref())?;
            let store = claimex::app::key_store(&config).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"keys": store.published()}))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Mapper {
            command: MapperCommand::Check { mapper },
        } => {
            let runtime =
                claimex::wasm::MapperRuntime::new(claimex::wasm::Limits::default(), None)?;
            let bytes = claimex::wasm::read_module(&mapper)
                .map_err(|e| anyhow::anyhow!("{}: {e}", mapper.display()))?;
            match runtime.load_bytes(&bytes, None) {
                Ok(loaded) => {
                    use claimex::mapping::ClaimsMapper as _;
                    println!(
                        "ok: {} is a valid claimex mapper ({}, sha256 {})",
                        mapper.display(),
                        claimex::wasm::CONTRACT,
                        loaded.sha256()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("refused: {}: {e}", mapper.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Mapper {
            command:
                MapperCommand::Test {
                    mapper,
                    claims,
                    config,
                    issuer_id,
                    output_audience,
                },
        } => {
            let started = Instant::now();
            let outcome = claimex::mapper_test::run(&claimex::mapper_test::TestInput {
                mapper: &mapper,
                claims: &claims,
                config: config.as_deref(),
                issuer_id: &issuer_id,
                output_audiences: output_audience,
            })
            .await?;
            println!("{}", outcome.text);
            eprintln!("(total {:.1} ms)", started.elapsed().as_secs_f64() * 1000.0);
            Ok(if outcome.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
