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
        text(&ok).contains("claimex:mapper/mapper@0.2.0"),
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
        text(&wrong).contains("does not export claimex:mapper/mapper@0.2.0"),
        "{}",
        text(&wrong)
    );

    // A mapper built for the previous contract: refused, saying how to rebuild it.
    let older = claimex(&[
        "mapper",
        "check",
        path(&mapper("claimex-fixture-wrongversion")),
    ]);
    assert_eq!(older.status.code(), Some(1));
    assert!(
        text(&older).contains(
            "the module was built for contract claimex:mapper/mapper@0.1.0, but this claimex \
             speaks claimex:mapper/mapper@0.2.0: rebuild it against mappers/wit of this release"
        ),
        "{}",
        text(&older)
    );

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
fn mapper_test_explains_the_checks_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        &dir,
        r#"{"allowed_owner_ids": ["65"], "allowed_refs": ["refs/tags/*"]}"#,
    );
    let github = mapper("claimex-mapper-github");
    let run = |explain: bool| {
        let mut args = vec![
            "mapper",
            "test",
            "--mapper",
            path(&github),
            "--claims",
            GITHUB_CLAIMS,
            "--config",
            &config,
        ];
        if explain {
            args.push("--explain");
        }
        claimex(&args)
    };
    let out = run(true);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("checks:   2"), "{t}");
    assert!(
        t.contains("  pass  owner: repository owner octo-org (repository_owner_id 65) is allowed"),
        "{t}"
    );
    assert!(
        t.contains(
            "  FAIL  ref: ref \"refs/heads/main\" is not allowed (mapper_config.allowed_refs allows"
        ),
        "{t}"
    );
    assert!(t.contains("code:     ref_not_allowed"), "{t}");
    // Without --explain, the mapper is not asked and no checks are printed.
    let t = text(&run(false));
    assert!(!t.contains("checks:"), "{t}");
    assert!(!t.contains("FAIL"), "{t}");
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
    assert!(
        text(&out).contains("code:     owner_not_allowed"),
        "{}",
        text(&out)
    );

    // A configuration the mapper refuses never reaches map, as an entry would not load.
    let typo = config_file(&dir, r#"{"allowed_owner": ["octo-org"]}"#);
    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-mapper-github")),
        "--claims",
        GITHUB_CLAIMS,
        "--config",
        &typo,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(
            "config:   refused: the mapper refused mapper_config: unknown field `allowed_owner`"
        ),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("decision: allow"), "{}", text(&out));

    // The mapper's own error.
    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-fixture-error")),
        "--claims",
        GITHUB_CLAIMS,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(
            "decision: ERROR: the mapper reported an error: claimex-fixture-error: deliberate mapper error"
        ),
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

/// `claimex serve` as operators run it: a denial's code reaches the JSON audit line on stderr.
#[tokio::test]
async fn serve_writes_the_deny_code_in_the_audit_line() {
    use std::io::Read as _;
    use std::process::Stdio;

    let issuer = claimex_testkit::TestIssuer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("issuers.toml"),
        format!(
            "[issuers.github]\nissuer = {:?}\naudiences = [\"claimex\"]\nmapper = \"claimex_mapper_github.wasm\"\nmapper_config = {{ allowed_owners = [\"someone-else\"] }}\n",
            issuer.url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("claimex.toml"),
        format!(
            "public_url = {url:?}\nlisten = \"127.0.0.1:{port}\"\nallow_http_loopback = true\nworkers = 1\n[mapper]\ndir = {:?}\n",
            common::mappers().display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimex"))
        .args(["serve", "--config"])
        .arg(dir.path().join("claimex.toml"))
        .env_remove("CLAIMEX_CONFIG")
        .env("CLAIMEX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(r) = common::http().get(format!("{url}/healthz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let answer = if ready {
        let token = issuer.mint(&issuer.github_claims("claimex", common::now()));
        Some(common::exchange(&url, "?issuerId=github", token).await)
    } else {
        None
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let answer = answer.unwrap_or_else(|| panic!("claimex serve did not start:\n{stderr}"));
    answer.assert_error(403, "access_denied");
    let line = stderr
        .lines()
        .find(|l| l.contains("\"target\":\"claimex::audit\""))
        .unwrap_or_else(|| panic!("no audit line:\n{stderr}"));
    let audit: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(audit["decision"], "deny", "{line}");
    assert_eq!(audit["deny_code"], "owner_not_allowed", "{line}");
    assert_eq!(audit["error"], "denied", "{line}");
    assert!(
        audit["reason"]
            .as_str()
            .unwrap()
            .contains("repository owner octo-org (repository_owner_id 65) is not allowed"),
        "{line}"
    );
}

/// Claim sets for replay: a directory with a JSON-lines file of three GitHub claim sets (the
/// second on `refs/heads/dev`, the third of another owner) and a single `.json` file.
fn replay_claims(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(GITHUB_CLAIMS).unwrap()).unwrap();
    let mut dev = base.clone();
    dev["ref"] = "refs/heads/dev".into();
    let mut other = base.clone();
    other["repository_owner_id"] = "666".into();
    let claims = dir.path().join("claims");
    std::fs::create_dir(&claims).unwrap();
    std::fs::write(
        claims.join("a.jsonl"),
        format!("{base}\n{dev}\n\n{other}\n"),
    )
    .unwrap();
    std::fs::write(claims.join("b.json"), base.to_string()).unwrap();
    std::fs::write(claims.join("notes.txt"), "not a claim set").unwrap();
    claims
}

#[test]
fn mapper_replay_compares_two_mappers_over_claim_sets() {
    let dir = tempfile::tempdir().unwrap();
    let claims = replay_claims(&dir);
    let github = mapper("claimex-mapper-github");
    let live = config_file(&dir, r#"{"allowed_owner_ids": ["65"]}"#);
    let strict = dir.path().join("strict.json");
    std::fs::write(
        &strict,
        r#"{"allowed_owner_ids": ["65"], "allowed_refs": ["refs/heads/main"]}"#,
    )
    .unwrap();
    let out = claimex(&[
        "mapper",
        "replay",
        "--mapper",
        path(&github),
        "--config",
        &live,
        "--against",
        path(&github),
        "--against-config",
        path(&strict),
        path(&claims),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("claim sets: 4 in"), "{t}");
    // mapper: 3 allowed, 1 denied; against: 2 allowed, 2 denied.
    assert!(t.contains("mapper           3       1       0"), "{t}");
    assert!(t.contains("against          2       2       0"), "{t}");
    assert!(t.contains("disagreements: 1"), "{t}");
    assert!(
        t.contains("a.jsonl:2: allow -> deny; differs: decision"),
        "{t}"
    );
    assert!(
        t.contains("against: deny ref_not_allowed:") && t.contains("\"refs/heads/dev\""),
        "{t}"
    );

    // The same mapper and configuration on both sides: no disagreement, exit 0.
    let same = claimex(&[
        "mapper",
        "replay",
        "--mapper",
        path(&github),
        "--config",
        &live,
        "--against",
        path(&github),
        path(&claims),
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("disagreements: 0"), "{}", text(&same));
}

#[test]
fn mapper_replay_takes_an_issuer_entry_and_its_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let claims = replay_claims(&dir);
    let github = mapper("claimex-mapper-github");
    let issuers = dir.path().join("issuers.toml");
    std::fs::write(
        &issuers,
        format!(
            "[issuers.github]\nissuer = \"https://token.actions.githubusercontent.com\"\n\
             audiences = [\"https://claimex.example.com\"]\nmapper = {p:?}\n\
             mapper_config = {{ allowed_owner_ids = [\"65\"] }}\nshadow_mapper = {p:?}\n\
             shadow_mapper_config = {{ allowed_owner_ids = [\"65\", \"666\"] }}\n",
            p = path(&github)
        ),
    )
    .unwrap();
    let out = claimex(&[
        "mapper",
        "replay",
        "--issuers",
        path(&issuers),
        "--issuer",
        "github",
        path(&claims),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("disagreements: 1"), "{t}");
    assert!(
        t.contains("a.jsonl:4: deny -> allow; differs: decision"),
        "{t}"
    );
    assert!(t.contains("mapper : deny owner_not_allowed:"), "{t}");

    // Only the live mapper: its denials are listed, exit 0.
    let live_only = claimex(&[
        "mapper",
        "replay",
        "--mapper",
        path(&github),
        "--config",
        &config_file(&dir, r#"{"allowed_owner_ids": ["65"]}"#),
        path(&claims),
    ]);
    let t = text(&live_only);
    assert_eq!(live_only.status.code(), Some(0), "{t}");
    assert!(t.contains("not allowed: 1"), "{t}");
    assert!(t.contains("a.jsonl:4: deny owner_not_allowed:"), "{t}");
}
