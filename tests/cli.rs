//! The `claimex` command as a user runs it: `mapper check`, `mapper test`, `demo`, and
//! start-up errors of `serve`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::mapper;

fn claimex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claimex"))
        .args(args)
        .env_remove("CLAIMEX_CONFIG")
        .env("CLAIMEX_LOG", "off")
        .output()
        .expect("cannot run claimex")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const GITHUB_CLAIMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/claims/github.json");

fn config_file(dir: &tempfile::TempDir, json: &str) -> String {
    let file = dir.path().join("config.json");
    std::fs::write(&file, json).unwrap();
    file.to_str().unwrap().to_owned()
}

#[test]
fn mapper_check_accepts_a_mapper_and_explains_refusals() {
    let ok = claimex(&["mapper", "check", path(&mapper("claimex-mapper-github"))]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("claimex:mapper/mapper@0.1.0"),
        "{}",
        text(&ok)
    );

    let wrong = claimex(&[
        "mapper",
        "check",
        path(&mapper("claimex-fixture-wrongexport")),
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong).contains("does not export claimex:mapper/mapper@0.1.0"),
        "{}",
        text(&wrong)
    );

    let newer = claimex(&[
        "mapper",
        "check",
        path(&mapper("claimex-fixture-wrongversion")),
    ]);
    assert_eq!(newer.status.code(), Some(1));
    assert!(text(&newer).contains("@0.2.0"), "{}", text(&newer));

    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = claimex(&["mapper", "check", path(&core)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("core WebAssembly module, not a component"),
        "{}",
        text(&out)
    );

    let out = claimex(&["mapper", "check", "/nonexistent.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("/nonexistent.wasm"), "{}", text(&out));
}

#[test]
fn mapper_test_prints_what_would_be_signed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        &dir,
        r#"{"allowed_owners": ["octo-org"], "transitive_tag_keys": ["repository"]}"#,
    );
    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-mapper-github")),
        "--claims",
        GITHUB_CLAIMS,
        "--config",
        &config,
        "--issuer-id",
        "github",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("decision: allow"), "{t}");
    assert!(t.contains("tags:     valid (10 tags"), "{t}");
    assert!(t.contains("\"repository\""), "{t}");
    assert!(t.contains("\"jti\""), "{t}");
    assert!(t.contains("call "), "{t}");
}

#[test]
fn mapper_test_exits_non_zero_on_deny_and_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, r#"{"allowed_owners": ["someone-else"]}"#);
    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-mapper-github")),
        "--claims",
        GITHUB_CLAIMS,
        "--config",
        &config,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("decision: deny: repository owner octo-org"),
        "{}",
        text(&out)
    );

    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-fixture-badtags")),
        "--claims",
        GITHUB_CLAIMS,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("would be refused") && text(&out).contains('#'),
        "{}",
        text(&out)
    );

    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-fixture-spin")),
        "--claims",
        GITHUB_CLAIMS,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("deadline"), "{}", text(&out));

    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-fixture-trap")),
        "--claims",
        GITHUB_CLAIMS,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("trapped"), "{}", text(&out));
    assert!(
        text(&out).contains("stderr:"),
        "the guest's panic message is shown: {}",
        text(&out)
    );

    let bad = config_file(&dir, "{not json");
    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-mapper-github")),
        "--claims",
        GITHUB_CLAIMS,
        "--config",
        &bad,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is not valid JSON"), "{}", text(&out));
}

#[test]
fn serve_refuses_a_bad_configuration_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_claimex"))
        .args(["serve"])
        .env_remove("CLAIMEX_CONFIG")
        .env("CLAIMEX_PUBLIC_URL", "https://claimex.example.com")
        .env("CLAIMEX_MAPPER__DEADLINE_MS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("mapper.deadline_ms"), "{}", text(&out));
}

#[actix_web::test]
async fn the_demo_exchanges_verifies_and_shows_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let report = claimex::cli::demo::run(&mapper("claimex-mapper-github"), dir.path())
        .await
        .unwrap();
    assert_eq!(
        report.claims["https://aws.amazon.com/tags"]["principal_tags"]["repository"][0],
        "octo-org/octo-repo"
    );
    assert_eq!(report.refusal, (403, "access_denied".to_owned()));
    for step in ["1.", "2.", "3.", "4.", "5.", "6."] {
        assert!(report.text.contains(step), "{}", report.text);
    }
}
