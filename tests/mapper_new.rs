//! Writing a mapper from outside the repository, as mappers/README.md tells a newcomer to:
//! `claimex mapper new` in a temporary directory outside the workspace, then build, test,
//! `claimex mapper check` and `claimex mapper test` the result.
//!
//! The Rust project depends on the SDK of this checkout by `path` (what `mapper new` writes
//! when claimex runs from its checkout; a git dependency works the same way but needs the
//! repository), and builds with `--offline` after taking this workspace's `Cargo.lock`, so
//! the test needs no network once the workspace has built. Its target directory is
//! `target/mapper-new` of this workspace, so later runs rebuild only the mapper.
//!
//! The JavaScript project builds with its own `build.sh`, which runs `npm ci` (the pinned
//! componentize-qjs, from the npm cache or registry): Node.js 18+ and npm are needed, as
//! for tests/js_mapper.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const CLAIMEX: &str = env!("CARGO_BIN_EXE_claimex");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    command.output().expect("cannot run the command")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        text(&output)
    );
    text(&output)
}

fn claimex(args: &[&str]) -> Output {
    run(Command::new(CLAIMEX).args(args).env("CLAIMEX_LOG", "off"))
}

/// A temporary directory outside the workspace (the system's temporary directory).
fn outside() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        !dir.path().starts_with(root()),
        "the temporary directory {} is inside the workspace",
        dir.path().display()
    );
    dir
}

/// The claims `claimex mapper test` would sign, from its report.
fn signed_claims(report: &str) -> Value {
    let json = report
        .split_once("claims that would be signed:\n")
        .unwrap_or_else(|| panic!("no signed claims in:\n{report}"))
        .1;
    let end = json.find("\n}").map_or(json.len(), |at| at + 2);
    serde_json::from_str(&json[..end]).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// Runs `claimex mapper check` and `claimex mapper test` on a built mapper of the template
/// (both templates make the same decisions on the same files) and checks the outcome.
fn check_and_test(wasm: &Path, project: &Path) {
    let wasm = wasm.to_str().unwrap();
    let out = ok("claimex mapper check", claimex(&["mapper", "check", wasm]));
    assert!(out.contains("is a valid claimex mapper"), "{out}");

    let claims = project.join("claims.json");
    let config = project.join("config.json");
    let test = |claims: &Path, config: &Path| {
        claimex(&[
            "mapper",
            "test",
            "--mapper",
            wasm,
            "--claims",
            claims.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--explain",
            "--repeat",
            "2",
        ])
    };
    let report = ok("claimex mapper test", test(&claims, &config));
    assert!(report.contains("config:   accepted"), "{report}");
    assert!(
        report.contains("pass  owner: repository owner octo-org"),
        "{report}"
    );
    assert!(report.contains("decision: allow"), "{report}");
    let signed = signed_claims(&report);
    let tags = &signed["https://aws.amazon.com/tags"];
    assert_eq!(tags["principal_tags"]["team"][0], "platform", "{signed}");
    assert_eq!(tags["transitive_tag_keys"][0], "repository", "{signed}");

    // A claim value AWS would refuse is sanitized as the host's own rules do it.
    let workdir = outside();
    let mut hostile: Value =
        serde_json::from_str(&std::fs::read_to_string(&claims).unwrap()).unwrap();
    let workflow = "Deploy #1 (prod) \u{1F680}\n".repeat(20);
    hostile["workflow"] = Value::String(workflow.clone());
    let hostile_claims = workdir.path().join("claims.json");
    std::fs::write(&hostile_claims, hostile.to_string()).unwrap();
    let report = ok(
        "claimex mapper test (hostile)",
        test(&hostile_claims, &config),
    );
    let tags = &signed_claims(&report)["https://aws.amazon.com/tags"];
    assert_eq!(
        tags["principal_tags"]["workflow"][0],
        claimex_tags::sanitize_value(&workflow),
        "{report}"
    );

    // A denial, and a configuration typo refused as an entry would be at load.
    hostile["ref"] = Value::String("refs/tags/v1/evil".into());
    std::fs::write(&hostile_claims, hostile.to_string()).unwrap();
    let out = test(&hostile_claims, &config);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("code:     ref_not_allowed"),
        "{}",
        text(&out)
    );
    let typo = workdir.path().join("config.json");
    std::fs::write(&typo, r#"{"allowed_owner": ["octo-org"]}"#).unwrap();
    let out = test(&claims, &typo);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("config:   refused") && text(&out).contains("allowed_owner"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_rust_mapper_from_the_template_builds_and_checks_outside_the_workspace() {
    let dir = outside();
    let project = dir.path().join("my-mapper");
    let sdk = root().join("mappers/sdk");
    let out = ok(
        "claimex mapper new",
        claimex(&[
            "mapper",
            "new",
            "my-mapper",
            "--dir",
            project.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ]),
    );
    assert!(
        out.contains("cargo build --target wasm32-wasip2 --release"),
        "{out}"
    );
    for file in [
        "Cargo.toml",
        ".cargo/config.toml",
        "src/lib.rs",
        "claims.json",
        "config.json",
    ] {
        assert!(project.join(file).is_file(), "{file} was not written");
    }
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    for line in [
        "opt-level = \"s\"",
        "lto = true",
        "panic = \"abort\"",
        "strip = true",
        "rust-version = \"1.95\"",
        "serde = ",
        "[workspace]",
    ] {
        assert!(manifest.contains(line), "{line} missing from:\n{manifest}");
    }
    let stack = std::fs::read_to_string(project.join(".cargo/config.toml")).unwrap();
    assert!(stack.contains("link-arg=-zstack-size=65536"), "{stack}");

    // Offline: the versions this workspace already built.
    std::fs::copy(root().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let target = root().join("target/mapper-new");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo_in = |args: &[&str]| {
        let mut command = Command::new(&cargo);
        command
            .args(args)
            .arg("--offline")
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        run(&mut command)
    };
    let tests = ok(
        "cargo test (the template's unit tests)",
        cargo_in(&["test"]),
    );
    assert!(tests.contains("test result: ok. 3 passed"), "{tests}");
    ok(
        "cargo build --target wasm32-wasip2 --release",
        cargo_in(&["build", "--target", "wasm32-wasip2", "--release"]),
    );
    let wasm: PathBuf = target.join("wasm32-wasip2/release/my_mapper.wasm");
    let size = std::fs::metadata(&wasm).unwrap().len();
    // The size profile is in effect (without it: ~2.7 MB).
    assert!(size < 600_000, "{} is {size} bytes", wasm.display());
    check_and_test(&wasm, &project);
}

#[test]
fn a_javascript_mapper_from_the_template_builds_and_checks_outside_the_workspace() {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{tool}` was not found: this test builds a JavaScript mapper with Node.js 18+ and npm"
        );
    }
    let dir = outside();
    let project = dir.path().join("my-js-mapper");
    let out = ok(
        "claimex mapper new --lang js",
        claimex(&[
            "mapper",
            "new",
            "my-js-mapper",
            "--lang",
            "js",
            "--dir",
            project.to_str().unwrap(),
        ]),
    );
    assert!(out.contains("sh build.sh mapper.js mapper.wasm"), "{out}");
    // The logic under Node first, as the project's README says.
    let tests = ok(
        "node --test",
        run(Command::new("node").arg("--test").current_dir(&project)),
    );
    assert!(tests.contains("# pass 3"), "{tests}");
    // Built by the project's own script, into a path of our choosing.
    let wasm = dir.path().join("out/mapper.wasm");
    ok(
        "sh build.sh",
        run(Command::new("sh")
            .arg("build.sh")
            .arg("mapper.js")
            .arg(&wasm)
            .current_dir(&project)),
    );
    check_and_test(&wasm, &project);
}
