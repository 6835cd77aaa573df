//! The docs' commands run as written (issue 14, defect 10): the paths they name exist, the
//! README's client command keeps the token out of the process list and shows refusals, and
//! both service templates alarm on every mapper failure kind.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap()
}

/// The lines of the first ```sh block of `text` that contains `needle`, joined at `\`.
fn command_with(text: &str, needle: &str) -> String {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no command with {needle:?}"))
        .to_owned()
}

#[test]
fn deploy_readme_mapper_test_runs_as_written() {
    let readme = read("deploy/README.md");
    let command = command_with(&readme, "claimex mapper test");
    let words: Vec<&str> = command.split_whitespace().collect();
    let arg = |flag: &str| {
        let i = words.iter().position(|w| *w == flag).unwrap();
        words[i + 1]
    };
    let mapper = arg("--mapper");
    let claims = arg("--claims");
    assert!(
        Path::new(ROOT).join(claims).is_file(),
        "{claims} is not in the repository"
    );
    // The mapper path is what `make mappers` (and the tests) build.
    let built = claimex_testkit::mappers::path("claimex-mapper-github");
    assert!(
        built.ends_with(mapper),
        "{mapper} is not where `make mappers` puts it ({})",
        built.display()
    );
    // `--config <(jq .mapper_config examples/issuers/github.json)`, without jq.
    assert!(command.contains("jq .mapper_config examples/issuers/github.json"));
    let entry: serde_json::Value =
        serde_json::from_str(&read("examples/issuers/github.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, entry["mapper_config"].to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_claimex"))
        .current_dir(ROOT)
        .args(["mapper", "test", "--mapper"])
        .arg(&built)
        .args(["--claims", claims, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_readme_client_command_hides_the_token_and_shows_refusals() {
    let readme = read("README.md");
    let command = command_with(&readme, "/exchange?issuerId=github");
    assert!(!command.contains("\"$ID_TOKEN\" -o"), "{command}");
    assert!(
        !readme.contains("--data-binary \"$ID_TOKEN\""),
        "the token is an argument (process list)"
    );
    assert!(command.contains("--data-binary @-"), "{command}");
    assert!(command.contains("--fail-with-body"), "{command}");
    assert!(!command.contains("curl -sf "), "{command}");
}

#[test]
fn both_templates_alarm_on_invalid_output() {
    for template in ["deploy/lambda/template.yaml", "deploy/container/ecs.yaml"] {
        let text = read(template);
        for error in ["mapper_failed", "invalid_output"] {
            assert!(
                text.contains(&format!("- {{ Name: Error, Value: {error} }}")),
                "{template} has no alarm on {error}"
            );
        }
    }
}
