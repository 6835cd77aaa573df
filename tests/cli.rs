//! The `claimex` command as a user runs it: `mapper check`, `mapper test`, `demo`, and
//! start-up errors of `serve`.

use std::path::Path;
use std::process::Output;

use claimex_testkit::mappers::path as mapper;
use claimex_testkit::server::Claimex;
use claimex_testkit::{TestIssuer, cli, client, entries, now};

fn claimex(args: &[&str]) -> Output {
    cli::run(args, [("CLAIMEX_LOG", "off")])
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
    assert!(t.contains(", first call "), "{t}");
    assert!(
        t.contains(", warm median ") && t.contains(" ms (20 calls)"),
        "{t}"
    );
    assert!(t.contains("load: compiling the module"), "{t}");
    let out = claimex(&[
        "mapper",
        "test",
        "--mapper",
        path(&mapper("claimex-mapper-github")),
        "--claims",
        GITHUB_CLAIMS,
        "--config",
        &config,
        "--repeat",
        "3",
    ]);
    assert!(text(&out).contains(" ms (3 calls)"), "{}", text(&out));
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
    let out = cli::run(
        &["serve"],
        [
            ("CLAIMEX_PUBLIC_URL", "https://claimex.example.com"),
            ("CLAIMEX_MAPPER__DEADLINE_MS", "0"),
        ],
    );
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
    let issuer = TestIssuer::start().unwrap();
    let server = Claimex::new()
        .issuers(&entries::file(
            "github",
            issuer.url(),
            "claimex",
            "claimex-mapper-github",
            r#"{ allowed_owners = ["someone-else"] }"#,
        ))
        .workers(1)
        .cache_dir(None)
        .spawn()
        .await;
    let token = issuer.mint(&issuer.github_claims("claimex", now()));
    let answer = client::exchange(&server.url, "?issuerId=github", token).await;
    let log = server.stop();
    answer.assert_error(403, "access_denied");
    let line = log
        .lines()
        .find(|l| l.contains("\"target\":\"claimex::audit\""))
        .unwrap_or_else(|| panic!("no audit line:\n{log}"));
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

/// With `CLAIMEX_LOG_FLUSH_MS` the server writes its log in batches (issue 15): a clean shutdown (SIGTERM, as ECS and
/// systemd stop it) still writes every audit line, and the process exits 0.
#[tokio::test]
async fn a_clean_shutdown_writes_every_buffered_audit_line() {
    let issuer = TestIssuer::start().unwrap();
    let server = Claimex::new()
        .issuers(&entries::file(
            "github",
            issuer.url(),
            "claimex",
            "claimex-mapper-github",
            r#"{ allowed_owners = ["octo-org"] }"#,
        ))
        .workers(1)
        .cache_dir(None)
        // Longer than the test: only a full batch or the shutdown writes.
        .env("CLAIMEX_LOG_FLUSH_MS", "60000")
        .spawn()
        .await;
    let token = issuer.mint(&issuer.github_claims("claimex", now()));
    const EXCHANGES: usize = 200;
    for _ in 0..EXCHANGES {
        let answer = client::exchange(&server.url, "?issuerId=github", token.clone()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let (status, log) = server.terminate();
    let status = status.unwrap_or_else(|| panic!("claimex did not stop on SIGTERM:\n{log}"));
    assert!(status.success(), "{status}\n{log}");
    let issued = log
        .lines()
        .filter(|l| {
            l.contains("\"target\":\"claimex::audit\"") && l.contains("\"decision\":\"allow\"")
        })
        .count();
    assert_eq!(issued, EXCHANGES, "audit lines lost:\n{log}");
}

#[test]
fn issuers_check_reads_a_file_as_the_registry_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuers.toml");
    let entry = |id: &str, config: &str| {
        format!(
            "[issuers.{id}]\nissuer = \"https://token.actions.githubusercontent.com\"\n\
             audiences = [\"https://claimex.example.com\"]\n\
             mapper = \"claimex_mapper_github.wasm\"\nmapper_config = {config}\n"
        )
    };
    let mut issuers = entry("github", r#"{ allowed_owner_ids = ["65"] }"#);
    issuers += &entry("typo", r#"{ allowed_owner_id = ["65"] }"#);
    issuers += &entry(
        "badglob",
        r#"{ allowed_owners = ["o"], allowed_refs = ["refs/*/[x"] }"#,
    );
    issuers += "[issuers.fieldtypo]\nissuer = \"https://x.example\"\naudience = [\"a\"]\nmapper = \"m.wasm\"\n";
    std::fs::write(&file, issuers).unwrap();
    let mapper_dir = mapper("claimex-mapper-github").parent().unwrap().to_owned();
    let check = |extra: &[&str]| {
        let mut args = vec![
            "issuers",
            "check",
            path(&file),
            "--mapper-dir",
            path(&mapper_dir),
        ];
        args.extend_from_slice(extra);
        claimex(&args)
    };

    let out = check(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("ok    github: mapper sha256 "), "{t}");
    assert!(
        t.contains("FAIL  typo (")
            && t.contains("the mapper refused mapper_config: unknown field `allowed_owner_id`"),
        "{t}"
    );
    assert!(
        t.contains("glob \"refs/*/[x\": [ without a closing ]"),
        "{t}"
    );
    assert!(t.contains("unknown field `audience`"), "{t}");
    assert!(t.contains("3 of 4 entries would be skipped"), "{t}");

    let out = check(&["--entry", "github"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("every entry would load"));

    let out = check(&["--entry", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("has no entry \"nope\""),
        "{}",
        text(&out)
    );
}

/// The issuer entries in `examples/issuers/` load as the registry loads them (their fields,
/// their stock mapper, its check of their `mapper_config`), and the credentials fields are
/// read: the GitHub and GitLab entries allow the role the CI examples assume.
#[test]
fn the_example_issuer_entries_load_with_their_roles() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/issuers");
    let mut issuers = serde_json::Map::new();
    for file in std::fs::read_dir(&examples).unwrap() {
        let file = file.unwrap().path();
        let id = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let entry: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        issuers.insert(id, entry);
    }
    assert!(issuers.len() >= 3, "{issuers:?}");
    let file = dir.path().join("issuers.json");
    std::fs::write(&file, serde_json::json!({ "issuers": issuers }).to_string()).unwrap();
    // The entries name the mappers as the container image installs them (<name>.wasm).
    let mappers = dir.path().join("mappers");
    std::fs::create_dir(&mappers).unwrap();
    for name in ["github", "gitlab", "rules"] {
        std::fs::copy(
            mapper(&format!("claimex-mapper-{name}")),
            mappers.join(format!("{name}.wasm")),
        )
        .unwrap();
    }
    let out = claimex(&[
        "issuers",
        "check",
        path(&file),
        "--mapper-dir",
        path(&mappers),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("every entry would load"), "{t}");
    let role = "arn:aws:iam::111122223333:role/claimex-ci";
    for id in ["github", "gitlab"] {
        let line = t
            .lines()
            .find(|l| l.starts_with(&format!("ok    {id}:")))
            .unwrap_or_else(|| panic!("no line for {id}: {t}"));
        assert!(
            line.ends_with(&format!(
                "AWS credentials for {role}, default {role}, at most 3600 s"
            )),
            "{line}"
        );
    }
    // The AWS identities entry hands out none (its mapper's tags fit no role of the docs).
    assert!(t.contains("no AWS credentials (no allowed_roles)"), "{t}");
    // The role the CI examples assume is the one the entries allow.
    for example in [
        "examples/github-actions-credentials.yml",
        "examples/gitlab-ci-credentials.yml",
    ] {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(example)).unwrap();
        assert!(
            text.contains(&format!("AWS_ROLE_ARN: {role}")),
            "{example} assumes another role"
        );
    }
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
