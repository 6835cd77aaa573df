//! The Lambda entry path: the function's environment as `deploy/lambda/template.yaml` sets it,
//! the `bootstrap` script of the zip, the readiness path the Lambda Web Adapter polls, and an
//! exchange on loopback.
//!
//! The template's AWS-only values (`!Ref`, `!If`, ...) cannot be resolved here: the SSM and KMS
//! backends it selects are exercised against the AWS emulator in `tests/aws.rs`; this test
//! swaps in the local backends and keeps every literal setting (port, readiness path, listen
//! address, mapper directory layout). Every key the template sets is checked to be a real
//! configuration key.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use claimex_testkit::{TestIssuer, client, free_port, jwks, mappers, now, wait_for};

const TEMPLATE: &str = include_str!("../deploy/lambda/template.yaml");
const AUD: &str = "https://claimex.lambda.test";

/// The function's `Environment: Variables:` block, literal values as written and intrinsic
/// functions as `None`.
fn template_environment() -> BTreeMap<String, Option<String>> {
    let mut lines = TEMPLATE.lines().skip_while(|l| l.trim() != "Environment:");
    lines.next();
    let variables = lines.next().expect("no Variables under Environment");
    assert_eq!(variables.trim(), "Variables:");
    let indent = variables.len() - variables.trim_start().len() + 2;
    let mut env = BTreeMap::new();
    for line in lines {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        if depth < indent {
            break;
        }
        if depth > indent {
            continue; // continuation of an intrinsic function
        }
        let (key, value) = trimmed.split_once(':').expect("KEY: value");
        let value = value.split(" #").next().unwrap().trim();
        let literal = !(value.is_empty() || value.starts_with('!'));
        env.insert(
            key.to_owned(),
            literal.then(|| value.trim_matches('"').to_owned()),
        );
    }
    env
}

struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_template_sets_only_real_keys_and_a_consistent_adapter() {
    let env = template_environment();
    let port = env["AWS_LWA_PORT"].clone().unwrap();
    assert_eq!(
        env["CLAIMEX_LISTEN"].as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(
        env["AWS_LWA_READINESS_CHECK_PATH"].as_deref(),
        Some("/healthz")
    );
    assert_eq!(env["CLAIMEX_REGISTRY__BACKEND"].as_deref(), Some("ssm"));
    assert_eq!(env["CLAIMEX_SIGNER__BACKEND"].as_deref(), Some("kms"));
    // The directory package.sh fills with precompiled mappers.
    assert_eq!(
        env["CLAIMEX_MAPPER__CACHE_DIR"].as_deref(),
        Some("/var/task/mapper-cache")
    );
    let package = include_str!("../deploy/lambda/package.sh");
    assert!(package.contains("mapper compile --portable") && package.contains("/mapper-cache/"));
    // Placeholders for the values CloudFormation resolves; the configuration must accept
    // every key (a typo would be an "unknown field" here).
    let vars: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("CLAIMEX_"))
        .map(|(k, v)| {
            let value = match (k.as_str(), v) {
                (_, Some(v)) => v.clone(),
                ("CLAIMEX_PUBLIC_URL", None) => {
                    "https://abc.execute-api.eu-west-1.amazonaws.com".into()
                }
                ("CLAIMEX_REGISTRY__SSM_PREFIX", None) => "/claimex/issuers/".into(),
                ("CLAIMEX_REGISTRY__REFRESH_SECS", None) => "60".into(),
                ("CLAIMEX_LOG", None) => "info".into(),
                // `!Ref ReplayTable`: CloudFormation gives the table's name.
                ("CLAIMEX_AWS_IAM__REPLAY_TABLE", None) => "claimex-replay-ABC123".into(),
                (_, None) => "arn:aws:kms:eu-west-1:123456789012:key/k".into(),
            };
            (k.clone(), value)
        })
        .collect();
    claimex::config::Config::load_with_env(None, &vars)
        .expect("the template's environment is not a valid configuration");
}

#[test]
fn bootstrap_starts_the_server_the_adapter_can_reach() {
    let env = template_environment();
    let issuer = TestIssuer::start().unwrap();
    // The zip's layout: /var/task/{bootstrap, claimex, mappers/github.wasm, mapper-cache/}.
    let task_root = tempfile::tempdir().unwrap();
    let root = task_root.path();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/lambda/bootstrap"),
        root.join("bootstrap"),
    )
    .unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_claimex"), root.join("claimex")).unwrap();
    std::fs::create_dir(root.join("mappers")).unwrap();
    std::fs::copy(
        mappers::path("claimex-mapper-github"),
        root.join("mappers/github.wasm"),
    )
    .unwrap();
    std::fs::write(
        root.join("issuers.toml"),
        format!(
            "[issuers.github]\nissuer = {:?}\naudiences = [{AUD:?}]\nmapper = \"github.wasm\"\nmapper_config = {{ allowed_owners = [\"octo-org\"] }}\n",
            issuer.url()
        ),
    )
    .unwrap();

    // The precompiled mappers package.sh puts in the zip.
    let precompiled = std::process::Command::new(env!("CARGO_BIN_EXE_claimex"))
        .args(["mapper", "compile", "--portable"])
        .arg(root.join("mappers/github.wasm"))
        .arg("-o")
        .arg(format!("{}/", root.join("mapper-cache").display()))
        .status()
        .unwrap();
    assert!(precompiled.success());
    let cache_files = || {
        std::fs::read_dir(root.join("mapper-cache"))
            .unwrap()
            .count()
    };
    assert_eq!(cache_files(), 1);

    // The adapter's port, moved to a free one so parallel runs cannot collide.
    let port = free_port();
    let mut command = Command::new("sh");
    command
        .arg(root.join("bootstrap"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("LAMBDA_TASK_ROOT", root);
    for (key, value) in &env {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let public_url = format!("http://127.0.0.1:{port}");
    command
        .env("AWS_LWA_PORT", port.to_string())
        .env("CLAIMEX_LISTEN", format!("127.0.0.1:{port}"))
        .env("CLAIMEX_PUBLIC_URL", &public_url)
        .env("CLAIMEX_ALLOW_HTTP_LOOPBACK", "true")
        .env("CLAIMEX_MAPPER__DIR", root.join("mappers"))
        .env("CLAIMEX_MAPPER__CACHE_DIR", root.join("mapper-cache"))
        // Local stand-ins for the template's SSM registry and KMS key (see tests/aws.rs).
        .env("CLAIMEX_REGISTRY__BACKEND", "file")
        .env("CLAIMEX_REGISTRY__PATH", root.join("issuers.toml"))
        .env("CLAIMEX_SIGNER__BACKEND", "local")
        .env("CLAIMEX_SIGNER__PATH", root.join("key.pem"))
        .env("CLAIMEX_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _function = Function(command.spawn().expect("cannot run the bootstrap"));

    let readiness = env["AWS_LWA_READINESS_CHECK_PATH"].clone().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        wait_for(
            "the readiness check to pass",
            Duration::from_secs(30),
            || async {
                let ready = client::get(&public_url, &readiness).await;
                ready.is_ok_and(|r| r.status == 200).then_some(())
            },
        )
        .await;
        let token = issuer.mint(&issuer.github_claims(AUD, now()));
        let answer = client::exchange(&public_url, "?issuerId=github", token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let claims = jwks::verify_at(&public_url, &answer.body).await;
        assert_eq!(
            claims["https://aws.amazon.com/tags"]["principal_tags"]["repository"][0],
            "octo-org/octo-repo"
        );
    });
    assert!(Path::new(&root.join("key.pem")).exists());
    // The precompiled mapper was used: a refused one would have been compiled and the result
    // written beside it.
    assert_eq!(cache_files(), 1);
}
