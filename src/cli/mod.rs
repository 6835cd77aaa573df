//! The `claimex` command: what each subcommand does, over the library.
//!
//! - `serve`: build the app from the configuration and run the HTTP server ([`crate::app`]);
//! - `demo`: the whole exchange on loopback ([`demo`]);
//! - `keys`: the published keys and the KMS rotation steps ([`keys`]);
//! - `mapper check|test|new`: a mapper module checked and run as the server would, or a new
//!   mapper crate written ([`mapper`], [`scaffold`]);
//! - `mapper replay`: a mapper (and another to compare) over many claim sets ([`replay`]);
//! - `credentials`: AWS credentials for a CI job from `POST /credentials`, printed for
//!   `credential_process` ([`credentials`]);
//! - `issuers check`: issuer entries checked offline as the registry loads them ([`issuers`]);
//! - `token aws`: a claimex JWT for this AWS identity, over `POST /token` ([`token`]).

pub mod credentials;
pub mod demo;
pub mod issuers;
pub mod keys;
mod log;
mod log_buffer;
pub mod log_format;
pub mod mapper;
pub mod replay;
pub mod scaffold;
pub mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::config::{CONFIG_ENV, Config};

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
        #[arg(long, default_value_os_t = demo::default_mapper_path())]
        mapper: PathBuf,
        /// Where the demo writes its configuration and key.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("claimex-demo"))]
        dir: PathBuf,
    },
    /// Inspect the signing keys, and rotate KMS keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check and try mapper modules.
    Mapper {
        #[command(subcommand)]
        command: MapperCommand,
    },
    /// Get AWS credentials for a CI job from claimex (POST /credentials) and print them as
    /// `credential_process` JSON (for `credential_process = claimex credentials ...` in
    /// ~/.aws/config) or as `export` lines.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["token_file", "token_env", "github_actions", "gitlab_ci"])))]
    Credentials {
        /// claimex's URL (its public_url).
        #[arg(long, env = "CLAIMEX_URL")]
        url: String,
        /// The issuer entry of the job's id-token.
        #[arg(long)]
        issuer_id: String,
        /// The role to assume (default: the entry's default_role_arn).
        #[arg(long)]
        role_arn: Option<String>,
        /// The session length, seconds (900 to the entry's max_duration_seconds).
        #[arg(long)]
        duration_seconds: Option<u64>,
        /// The session name (default: derived from the minted token's sub).
        #[arg(long)]
        role_session_name: Option<String>,
        /// Read the id-token from this file.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Read the id-token from this environment variable.
        #[arg(long)]
        token_env: Option<String>,
        /// Request the id-token from GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN).
        #[arg(long, requires = "audience")]
        github_actions: bool,
        /// Read the id-token GitLab CI put in CLAIMEX_ID_TOKEN (id_tokens: in .gitlab-ci.yml).
        #[arg(long)]
        gitlab_ci: bool,
        /// With --github-actions: the audience to request (one the issuer entry accepts).
        #[arg(long)]
        audience: Option<String>,
        /// `json` (credential_process, default) or `env` (export lines).
        #[arg(long, default_value = "json", value_parser = ["json", "env"])]
        format: String,
    },
    /// Check issuer entries offline.
    Issuers {
        #[command(subcommand)]
        command: IssuersCommand,
    },
    /// Get a claimex token as a client.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Sign sts:GetCallerIdentity with the AWS credential chain and exchange it at --url's
    /// POST /token (the credentials never leave this process); print or write the JWT.
    Aws(token::AwsArgs),
}

#[derive(Subcommand)]
enum IssuersCommand {
    /// Load every entry as a server would (its fields, its mapper, the mapper's check of
    /// mapper_config) and say which would load and why the others would be skipped.
    Check {
        /// The issuers file (TOML or JSON, read as the registry reads it). Without it, the
        /// registry of --config (its file, or SSM).
        file: Option<PathBuf>,
        /// Only these entries (issuer ids).
        #[arg(long = "entry", value_name = "ID")]
        ids: Vec<String>,
        /// The server's configuration: its mapper directory, limits and registry.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
        /// Where relative mapper paths start (default: the configuration's mapper.dir, or
        /// the issuers file's directory).
        #[arg(long)]
        mapper_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print the JWKS claimex publishes with this configuration.
    Jwks {
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// kms-envelope: have KMS generate a signing key pair (GenerateDataKeyPairWithoutPlaintext)
    /// and store it, private half encrypted, in a new SSM parameter; then stage or promote it.
    CreateEnvelope {
        /// The new SSM parameter (e.g. /claimex/keys/2026-12).
        parameter: String,
        /// The symmetric KMS key to encrypt under (default: signer.kms_key_id).
        #[arg(long)]
        kms_key_id: Option<String>,
        /// ES256 or RS256 (default: signer.alg).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<crate::signer::SigningAlg>,
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// Print the KMS rotation state (signer.kms_keys_parameter): current and published keys.
    Show {
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// Publish a KMS key as the pending key: in the JWKS, not signing yet.
    Stage {
        /// The KMS key (id, ARN, alias name or alias ARN); stored as its ARN.
        key: String,
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// Make a staged KMS key the current (signing) key; the old current key stays published.
    Promote {
        /// The KMS key (id, ARN, alias name or alias ARN).
        key: String,
        /// Promote even if the key was not staged (published) first.
        #[arg(long)]
        force: bool,
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// Stop publishing a KMS key (never the current one).
    Retire {
        /// The KMS key as listed by `claimex keys show`, or any id, ARN or alias of it.
        key: String,
        /// The configuration file.
        #[arg(long, env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
}

fn parse_alg(text: &str) -> Result<crate::signer::SigningAlg, String> {
    match text.to_ascii_uppercase().as_str() {
        "ES256" => Ok(crate::signer::SigningAlg::Es256),
        "RS256" => Ok(crate::signer::SigningAlg::Rs256),
        _ => Err(format!("{text:?}: ES256 or RS256")),
    }
}

#[derive(Subcommand)]
enum MapperCommand {
    /// Write a new mapper project (Rust crate or JavaScript) ready to build, test and check.
    New {
        /// The project name (a crate / package name: a-z 0-9 - _).
        name: String,
        /// Where to write it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
        /// Rust: depend on the SDK at this path (mappers/sdk of a claimex checkout). Default:
        /// the checkout this claimex was built from, when it is still there.
        #[arg(long, conflicts_with = "sdk_git")]
        sdk_path: Option<PathBuf>,
        /// Rust: depend on the SDK from this git repository of claimex.
        #[arg(long)]
        sdk_git: Option<String>,
        /// With --sdk-git: the release tag to pin.
        #[arg(long, requires = "sdk_git", conflicts_with = "sdk_rev")]
        sdk_tag: Option<String>,
        /// With --sdk-git: the commit to pin.
        #[arg(long, requires = "sdk_git")]
        sdk_rev: Option<String>,
    },
    /// Validate a module without running it: a component, the right contract, no forbidden imports.
    Check {
        /// The mapper component (.wasm).
        mapper: PathBuf,
    },
    /// Compile a mapper ahead of time for the server's engine: a server whose
    /// mapper.cache_dir holds the artifact loads it without compiling (a cold start).
    Compile {
        /// The mapper component (.wasm).
        mapper: PathBuf,
        /// Where to write the artifact: a directory (it is named <sha256>.cwasm there, the
        /// name the server looks for in mapper.cache_dir) or a file path.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// The server's configuration, for its [mapper] limits (the artifact must be built
        /// with the same engine settings; default: the default settings).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Compile for the baseline CPU of this architecture instead of this machine's CPU
        /// features (an artifact built here and run on another host, such as a Lambda package).
        #[arg(long)]
        portable: bool,
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
        /// Ask the mapper for its checks and print them (passed or failed, name, detail).
        #[arg(long)]
        explain: bool,
        /// Warm calls to time after the first one; their median is printed (0: none).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100_000))]
        repeat: u32,
    },
    /// Run a mapper (and optionally a second one to compare) over recorded claim sets: counts,
    /// and each disagreement with its file and line. Exits 1 on any disagreement.
    Replay {
        /// Claim sets: .json files (one object), .jsonl/.ndjson files (one per line), or
        /// directories of them.
        #[arg(required = true)]
        claims: Vec<PathBuf>,
        /// The mapper component (default: the entry's mapper, with --issuers).
        #[arg(long)]
        mapper: Option<PathBuf>,
        /// Its configuration, a JSON file (default: the entry's mapper_config).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A second mapper to compare with (default: the entry's shadow_mapper, if any).
        #[arg(long)]
        against: Option<PathBuf>,
        /// Its configuration (default: the entry's shadow_mapper_config, else --config's).
        #[arg(long)]
        against_config: Option<PathBuf>,
        /// An issuers file (TOML or JSON) to take the entry from.
        #[arg(long, requires = "issuer")]
        issuers: Option<PathBuf>,
        /// The issuer id: the entry in --issuers, and the id handed to the mappers.
        #[arg(long)]
        issuer: Option<String>,
        /// Where the entry's relative mapper paths start (default: the issuers file's directory).
        #[arg(long)]
        mapper_dir: Option<PathBuf>,
        /// Audiences the output may carry (default: the entry's output_audiences).
        #[arg(long)]
        output_audience: Vec<String>,
    },
}

/// Starts logging to stderr. The server (`json`) logs through [`log_buffer`]: batched, and
/// flushed in full when the returned guard drops; the other commands write each line at once.
fn init_logging(
    json: bool,
    default_filter: &str,
) -> Option<log_buffer::FlushGuard<std::io::Stderr>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAIMEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let mut warning = None;
    let (fmt, guard) = if json {
        let (interval, unusable) = log_buffer::interval_from_env();
        let (writer, guard) = log_buffer::LogBuffer::new(
            std::io::stderr(),
            interval.is_none(),
            interval.unwrap_or(log_buffer::INTERVAL),
        );
        warning = unusable;
        let fmt = log_format::json_layer(writer).boxed();
        (fmt, Some(guard))
    } else {
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .compact()
            .boxed();
        (fmt, None)
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !log::is_client_error(meta)
            })),
        )
        .with(log::ClientErrors::default())
        .init();
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    guard
}

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_guard = match cli.command {
        Command::Serve { .. } => init_logging(true, "info"),
        _ => init_logging(false, "warn"),
    };
    let result = actix_web::rt::System::new().block_on(run(cli.command));
    // Every line logged before this point is written now (the server has stopped).
    drop(log_guard);
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
            crate::app::seed_random_early();
            let config = Config::load(config.as_deref())?;
            let app = crate::app::build(&config).await?;
            crate::app::serve(&config, app).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { mapper, dir } => {
            let report = demo::run(&mapper, &dir).await?;
            println!("{}", report.text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys::run(command).await,
        Command::Credentials {
            url,
            issuer_id,
            role_arn,
            duration_seconds,
            role_session_name,
            token_file,
            token_env,
            github_actions,
            gitlab_ci: _,
            audience,
            format,
        } => {
            let source = match (token_file, token_env, github_actions) {
                (Some(path), _, _) => credentials::TokenSource::File(path),
                (None, Some(name), _) => credentials::TokenSource::Env(name),
                (None, None, true) => credentials::TokenSource::GithubActions {
                    audience: audience.unwrap_or_default(),
                },
                (None, None, false) => credentials::TokenSource::GitlabCi,
            };
            let out = credentials::run(&credentials::CredentialsInput {
                url,
                issuer_id,
                role_arn,
                duration_seconds,
                role_session_name,
                source,
                env_format: format == "env",
            })
            .await?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::Aws(args),
        } => token::aws(args).await,
        Command::Issuers {
            command:
                IssuersCommand::Check {
                    file,
                    ids,
                    config,
                    mapper_dir,
                },
        } => {
            let outcome = issuers::check(&issuers::CheckInput {
                file: file.as_deref(),
                config: config.as_deref(),
                mapper_dir: mapper_dir.as_deref(),
                ids: &ids,
            })
            .await?;
            print!("{}", outcome.text);
            Ok(outcome.code)
        }
        Command::Mapper {
            command: MapperCommand::Check { mapper },
        } => mapper::check(&mapper),
        Command::Mapper {
            command:
                MapperCommand::Compile {
                    mapper,
                    output,
                    config,
                    portable,
                },
        } => {
            let written = mapper::compile(&mapper::CompileInput {
                mapper: &mapper,
                output: &output,
                config: config.as_deref(),
                portable,
            })?;
            print!("{written}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Mapper {
            command:
                MapperCommand::New {
                    name,
                    dir,
                    lang,
                    sdk_path,
                    sdk_git,
                    sdk_tag,
                    sdk_rev,
                },
        } => {
            let sdk = match (sdk_path, sdk_git) {
                (Some(path), _) => Some(scaffold::Sdk::Path(path)),
                (None, Some(url)) => Some(scaffold::Sdk::Git {
                    url,
                    pin: sdk_tag
                        .map(|t| ("tag".to_owned(), t))
                        .or(sdk_rev.map(|r| ("rev".to_owned(), r))),
                }),
                (None, None) => None,
            };
            let next = scaffold::new(&scaffold::NewInput {
                name: &name,
                dir: dir.as_deref(),
                lang,
                sdk,
            })?;
            print!("{next}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Mapper {
            command:
                MapperCommand::Replay {
                    claims,
                    mapper,
                    config,
                    against,
                    against_config,
                    issuers,
                    issuer,
                    mapper_dir,
                    output_audience,
                },
        } => {
            let comparing = against.is_some();
            let outcome = replay::replay(&replay::ReplayInput {
                mapper,
                config,
                against,
                against_config,
                issuers,
                issuer,
                mapper_dir,
                output_audiences: output_audience,
                claims,
            })
            .await?;
            print!("{}", outcome.text);
            Ok(
                if outcome.disagreements > 0 || (comparing && outcome.claim_sets == 0) {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Mapper {
            command:
                MapperCommand::Test {
                    mapper,
                    claims,
                    config,
                    issuer_id,
                    output_audience,
                    explain,
                    repeat,
                },
        } => {
            let started = Instant::now();
            let outcome = mapper::test(&mapper::TestInput {
                mapper: &mapper,
                claims: &claims,
                config: config.as_deref(),
                issuer_id: &issuer_id,
                output_audiences: output_audience,
                explain,
                repeat,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `claimex credentials ...` commands written in `text`: each occurrence followed by
    /// flags (not in a `#` comment or after a backtick: prose), continuation lines (`\` newline) joined, cut at the end of its shell word list
    /// (a newline, `)`, `'` or a printf `\n`), quotes dropped, and every shell variable or
    /// printf `%s` replaced by a value. The words after `claimex`.
    fn credentials_commands(text: &str) -> Vec<Vec<String>> {
        let joined = text.replace("\\\n", " ");
        let mut commands = Vec::new();
        let mut rest = joined.as_str();
        while let Some(at) = rest.find("claimex credentials --") {
            let line_start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
            let comment = rest[line_start..at].trim_start().starts_with('#');
            let quoted = rest[..at].ends_with('`');
            let tail = &rest[at + "claimex ".len()..];
            if comment || quoted {
                // Prose about the command, not a command.
                rest = tail;
                continue;
            }
            let end = tail
                .find(['\n', ')', '\''])
                .into_iter()
                .chain(tail.find("\\n"))
                .min()
                .unwrap_or(tail.len());
            let words = tail[..end]
                .split_whitespace()
                .map(|w| w.trim_matches('"'))
                .map(|w| {
                    if w.starts_with('$') || w == "%s" {
                        "https://claimex.example.com".to_owned()
                    } else {
                        w.to_owned()
                    }
                })
                .collect();
            commands.push(words);
            rest = &tail[end..];
        }
        commands
    }

    /// Every `claimex credentials` command the CI examples and the README write is one this
    /// parser takes: a flag renamed or removed fails here, not in a user's pipeline.
    #[test]
    fn the_documented_credentials_commands_parse() {
        for (name, text, at_least) in [
            (
                "examples/github-actions-credentials.yml",
                include_str!("../../examples/github-actions-credentials.yml"),
                2,
            ),
            (
                "examples/gitlab-ci-credentials.yml",
                include_str!("../../examples/gitlab-ci-credentials.yml"),
                1,
            ),
            ("README.md", include_str!("../../README.md"), 1),
        ] {
            let commands = credentials_commands(text);
            assert!(commands.len() >= at_least, "{name}: {commands:?}");
            for words in commands {
                let parsed =
                    Cli::try_parse_from(std::iter::once("claimex".to_owned()).chain(words.clone()));
                match parsed {
                    Ok(Cli {
                        command: Command::Credentials { url, .. },
                    }) => assert!(url.starts_with("https://"), "{name}: {words:?}"),
                    Ok(_) => panic!("{name}: not `claimex credentials`: {words:?}"),
                    Err(e) => panic!("{name}: `claimex {}` does not parse: {e}", words.join(" ")),
                }
            }
        }
        // The extraction itself: a flag the parser does not know is refused.
        let bad = credentials_commands(
            "x claimex credentials --url u --issuer-id g --gitlab-ci --role x\n",
        );
        assert_eq!(bad.len(), 1);
        assert!(
            Cli::try_parse_from(std::iter::once("claimex".to_owned()).chain(bad[0].clone()))
                .is_err()
        );
    }
}
