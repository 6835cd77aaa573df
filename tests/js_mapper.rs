//! The JavaScript GitHub mapper (`mappers/js/github`, QuickJS through componentize-qjs)
//! under the real host, against the Rust stock mapper: the same configurations refused by
//! `validate-config` with the same messages, same decisions, same deny codes and reasons,
//! same checks when asked to explain, same errors, same outbound claims byte for byte, on the
//! GitHub claim set and variations of it. One difference, on claim sets serde_json cannot read
//! in full: the Rust mapper reads only the claims it names (the SDK's lean path), so a claim it
//! does not read cannot fail its call, while the JavaScript mapper fails
//! (`reads_exactly_what_serde_json_reads`).
//!
//! The component is built by `mappers/js/build.sh` when it is missing or older than
//! its sources (Node.js 18+ and npm needed); the Rust mapper by cargo, as the other
//! integration tests build it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use claimex::mapper::wasm::{Limits, MapperRuntime, WasmMapper};
use claimex::mapper::{Check, ClaimsMapper, ConfigError, MapDecision, MapRequest, MapperError};
use claimex::subject::SubjectKind;
use claimex_testkit::GITHUB_CLAIMS;
use claimex_testkit::mappers as components;
use serde_json::{Value, json};

const ISSUER_URL: &str = "https://token.actions.githubusercontent.com";

struct Mappers {
    js: Arc<WasmMapper>,
    rust: Arc<WasmMapper>,
}

/// Both mappers, compiled once for all tests of this binary.
fn mappers() -> &'static Mappers {
    static MAPPERS: OnceLock<Mappers> = OnceLock::new();
    MAPPERS.get_or_init(|| {
        // This file compares answers, not speed: a deadline a loaded 2-core CI host cannot
        // miss (the JS engine's first calls run its interpreter cold).
        let limits = Limits {
            deadline: std::time::Duration::from_secs(5),
            ..Limits::default()
        };
        let runtime = MapperRuntime::new(limits, None).unwrap();
        let load = |path: &Path| {
            let bytes = std::fs::read(path).unwrap();
            runtime
                .load_bytes(&bytes, None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        Mappers {
            js: load(components::js_github()),
            rust: load(components::github()),
        }
    })
}

/// What one mapper made of one request: its configuration check, then (when it accepted
/// the configuration) its decision or error, and its checks.
#[derive(Debug, PartialEq)]
enum Outcome {
    ConfigRefused(String),
    Decided(MapDecision, Vec<Check>),
    Failed(String),
}

async fn run(mapper: &WasmMapper, claims: &str, config: &str, explain: bool) -> Outcome {
    match mapper.validate_config(config).await {
        Ok(()) => {}
        Err(ConfigError::Rejected(message)) => return Outcome::ConfigRefused(message),
        Err(e) => panic!("validate-config failed: {e}"),
    }
    let outcome = mapper
        .map(&MapRequest {
            subject_kind: SubjectKind::Oidc,
            issuer_id: "github",
            issuer_url: ISSUER_URL,
            claims_json: claims,
            config_json: config,
            explain,
        })
        .await;
    assert_eq!(outcome.stderr, "", "the mapper wrote to stderr");
    match outcome.result {
        Ok(decision) => Outcome::Decided(decision, outcome.checks),
        Err(MapperError::Failed(message)) => Outcome::Failed(message),
        Err(e) => panic!("the mapper failed: {e}"),
    }
}

/// Runs both mappers, without and with checks, and requires the same outcome, byte for byte.
async fn both(claims: &str, config: &Value) -> Outcome {
    let config = config.to_string();
    let m = mappers();
    let js = run(&m.js, claims, &config, false).await;
    let rust = run(&m.rust, claims, &config, false).await;
    assert_eq!(
        js, rust,
        "JavaScript and Rust differ on config {config}, claims {claims}"
    );
    if let Outcome::Decided(_, checks) = &js {
        assert!(checks.is_empty(), "checks without explain: {checks:?}");
    }
    let js_explained = run(&m.js, claims, &config, true).await;
    let rust_explained = run(&m.rust, claims, &config, true).await;
    assert_eq!(
        js_explained, rust_explained,
        "JavaScript and Rust explain differently on config {config}, claims {claims}"
    );
    js
}

fn allowed(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Decided(MapDecision::Allow(json), _) => serde_json::from_str(&json).unwrap(),
        other => panic!("not allowed: {other:?}"),
    }
}

/// The reason of a denial, after checking its code.
fn denied_with(code: &str, outcome: Outcome) -> String {
    match outcome {
        Outcome::Decided(MapDecision::Deny { code: got, reason }, _) => {
            assert_eq!(got, code, "{reason}");
            reason
        }
        other => panic!("not denied: {other:?}"),
    }
}

fn denied(outcome: Outcome) -> String {
    match outcome {
        Outcome::Decided(MapDecision::Deny { reason, .. }, _) => reason,
        other => panic!("not denied: {other:?}"),
    }
}

fn config_refused(outcome: Outcome) -> String {
    match outcome {
        Outcome::ConfigRefused(message) => message,
        other => panic!("the configuration was accepted: {other:?}"),
    }
}

/// The GitHub claim set with `name` set to the raw JSON `value` (or removed when `None`).
fn claims_with(name: &str, value: Option<&str>) -> String {
    let mut claims: serde_json::Map<String, Value> = serde_json::from_str(GITHUB_CLAIMS).unwrap();
    claims.remove(name);
    let rest = Value::Object(claims).to_string();
    match value {
        Some(raw) => format!("{{{}:{raw},{}", Value::from(name), &rest[1..]),
        None => rest,
    }
}

#[test]
fn the_component_imports_nothing() {
    let bytes = std::fs::read(components::js_github()).unwrap();
    assert_eq!(&bytes[..8], b"\0asm\x0d\0\x01\0", "not a component");
    // Top-level sections of the component binary: id 10 is the import section.
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let b = bytes[at];
            at += 1;
            size |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        assert_ne!(id, 10, "the JavaScript mapper imports something");
        at += size;
    }
    assert_eq!(at, bytes.len());
}

#[tokio::test]
async fn allows_and_denies_like_the_rust_mapper() {
    let claims = GITHUB_CLAIMS;

    let out = allowed(both(claims, &json!({"allowed_owners": ["octo-org"]})).await);
    assert_eq!(out["sub"], "repo:octo-org/octo-repo:environment:prod");
    let tags = &out["https://aws.amazon.com/tags"]["principal_tags"];
    assert_eq!(tags.as_object().unwrap().len(), 10);
    assert_eq!(tags["run_attempt"], json!(["2"]));
    assert_eq!(out.get("aud"), None);

    let out = allowed(
        both(
            claims,
            &json!({"allowed_owner_ids": ["65"], "allowed_refs": ["refs/heads/main"],
                    "transitive_tag_keys": ["repository"]}),
        )
        .await,
    );
    assert_eq!(
        out["https://aws.amazon.com/tags"]["transitive_tag_keys"],
        json!(["repository"])
    );

    let out = allowed(
        both(
            claims,
            &json!({"allowed_owners": ["octo-org"], "allowed_repository_ids": ["74"],
                    "allowed_environments": ["prod", "staging"], "audience": "sts.amazonaws.com",
                    "allowed_refs": ["refs/tags/v*", "refs/heads/*"]}),
        )
        .await,
    );
    assert_eq!(out["aud"], "sts.amazonaws.com");

    let reason = denied_with(
        "owner_not_allowed",
        both(claims, &json!({"allowed_owners": ["someone-else"]})).await,
    );
    assert_eq!(
        reason,
        "repository owner octo-org (repository_owner_id 65) is not allowed: \
         mapper_config.allowed_owner_ids is empty; mapper_config.allowed_owners allows \"someone-else\""
    );
    let message = config_refused(both(claims, &Value::Null).await);
    assert!(message.starts_with("no owner is allowed"), "{message}");
    let message = config_refused(both(claims, &json!({"allowed_owner": ["typo"]})).await);
    assert!(
        message.starts_with("unknown field `allowed_owner`, expected one of"),
        "{message}"
    );
    let reason = denied_with(
        "ref_not_allowed",
        both(
            claims,
            &json!({"allowed_owners": ["octo-org"], "allowed_refs": ["refs/heads/release/*"]}),
        )
        .await,
    );
    assert_eq!(
        reason,
        r#"ref "refs/heads/main" is not allowed: mapper_config.allowed_refs allows "refs/heads/release/*""#
    );
    // The checks, when asked, are the same too.
    let m = mappers();
    let config = json!({"allowed_owner_ids": ["65"], "allowed_environments": ["prod"],
                        "allowed_refs": ["refs/heads/*"]})
    .to_string();
    match run(&m.js, claims, &config, true).await {
        Outcome::Decided(MapDecision::Allow(_), checks) => {
            let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["owner", "ref", "environment"]);
            assert!(checks.iter().all(|c| c.passed));
            assert_eq!(
                checks[2].detail,
                r#"environment "prod" is allowed (mapper_config.allowed_environments allows "prod")"#
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_check_and_config_error_reads_the_same() {
    let owner = |extra: Value| {
        let mut config = json!({"allowed_owners": ["octo-org"]});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    let configs = [
        json!({}),
        json!({"allowed_owner_ids": ["66"]}),
        json!({"allowed_owner_ids": ["65"], "allowed_owners": ["x"]}),
        owner(json!({"allowed_repository_ids": ["75"]})),
        owner(json!({"allowed_environments": ["staging"]})),
        owner(json!({"allowed_refs": ["refs/heads/ma?n"]})),
        owner(json!({"allowed_refs": ["refs/*/main"]})),
        owner(json!({"allowed_refs": ["*"]})),
        owner(json!({"allowed_refs": [r"refs/heads/\*", "refs/heads/mai"]})),
        owner(json!({"allowed_refs": ["refs/heads/main?"]})),
        // Globs: GitHub's filter patterns, and every way a pattern is refused.
        owner(json!({"allowed_refs": ["refs/**"]})),
        owner(json!({"allowed_refs": ["**/main"]})),
        owner(json!({"allowed_refs": ["refs/heads/[a-m]+ain"]})),
        owner(json!({"allowed_refs": ["refs/heads/ma+x?in"]})),
        owner(json!({"allowed_refs": ["refs/heads/**", "!refs/heads/m*"]})),
        owner(json!({"allowed_refs": ["refs/heads/**", "!**/main", "refs/*/main"]})),
        owner(json!({"allowed_environments": ["pr*"]})),
        owner(json!({"allowed_environments": ["prod", "!prod"]})),
        owner(json!({"allowed_refs": ["refs/[heads"]})),
        owner(json!({"allowed_refs": ["refs/heads]"]})),
        owner(json!({"allowed_refs": ["[]"]})),
        owner(json!({"allowed_refs": ["[a-]"]})),
        owner(json!({"allowed_refs": ["[z-a]"]})),
        owner(json!({"allowed_refs": ["[é]"]})),
        owner(json!({"allowed_refs": ["?"]})),
        owner(json!({"allowed_refs": ["**+"]})),
        owner(json!({"allowed_refs": ["a+?"]})),
        owner(json!({"allowed_refs": ["***"]})),
        owner(json!({"allowed_refs": ["x\\"]})),
        owner(json!({"allowed_refs": ["!main"]})),
        owner(json!({"allowed_refs": ["**", "!!main", "![\u{301}\n"]})),
        owner(json!({"allowed_environments": ["\"é\u{200b}[".repeat(40)]})),
        owner(json!({"allowed_environments": ["a".repeat(513)]})),
        owner(json!({"transitive_tag_keys": ["repository", "not-a-tag", "repository"]})),
        owner(json!({"audience": null})),
        // serde's errors, in serde's order (keys sorted, first failure wins).
        json!({"allowed_owners": "octo-org"}),
        json!({"allowed_owners": [65]}),
        json!({"allowed_owners": ["octo-org"], "audience": 5}),
        json!({"allowed_owners": ["octo-org"], "audience": 1.5}),
        json!({"allowed_owners": ["octo-org"], "audience": -1e300}),
        json!({"allowed_owners": ["octo-org"], "audience": ["a"]}),
        json!({"allowed_owners": ["octo-org"], "audience": {"a": 1}}),
        json!({"allowed_owners": [true]}),
        json!({"allowed_owners": [null]}),
        json!({"allowed_owners": ["octo-org"], "zzz": 1, "allowed_refs": 3}),
        json!({"allowed_owners": ["octo-org"], "Audience": "x"}),
        json!({"allowed_owners": ["octo-org"], "allowed_refs": ["\"quoted\"\n\t\u{301}é\u{200b}"]}),
        json!("octo-org"),
        json!(true),
        json!(42),
        json!([["65"]]),
        json!([[], ["octo-org"], null, null, null, ["ref"], "aud"]),
        json!([[], [], [], [], [], [], null, 1]),
        json!([[], "x"]),
    ];
    for config in &configs {
        both(GITHUB_CLAIMS, config).await;
    }
}

#[tokio::test]
async fn claim_values_are_read_and_sanitized_the_same() {
    let owner = json!({"allowed_owners": ["octo-org"]});
    let long = format!("\"{}\"", "é🚀#".repeat(120));
    let cases: &[(&str, Option<&str>)] = &[
        ("run_id", Some("42")),
        ("run_id", Some("-7")),
        ("run_id", Some("18446744073709551615")),
        ("run_id", Some("18446744073709551616")),
        ("run_id", Some("-9223372036854775808")),
        ("run_id", Some("-9223372036854775809")),
        ("run_id", Some("-0")),
        ("run_id", Some("2.50")),
        ("run_id", Some("1e21")),
        ("run_id", Some("1E-7")),
        ("run_id", Some("123456789012345678.5")),
        ("run_id", Some("0.000123")),
        ("run_attempt", Some("true")),
        ("run_attempt", Some("null")),
        ("run_attempt", Some("{\"a\":1}")),
        ("run_attempt", Some("[\"2\"]")),
        ("run_attempt", None),
        (
            "workflow",
            Some("\"Deploy 🚀 (prod) — ünïcödé\\t#1 \\u2028 ٣ Ⅻ ½ x\\u0301\""),
        ),
        ("workflow", Some(&long)),
        ("workflow", Some("\"aws:prefixed\"")),
        ("actor", Some("\"\"")),
        ("sub", Some("\"repo:x\\u0001\\u007f\\u2028\\\"\\\\/<>&'\"")),
        ("sub", Some("5")),
        ("sub", None),
        ("ref", None),
        (
            "ref",
            Some("\"refs/heads/\\\"x\\\"\\n\\u0301é\\u00ad\\ue000\\u200b\\u2028 🚀\""),
        ),
        ("repository_owner_id", Some("65")),
        ("repository_owner_id", Some("65.0")),
    ];
    for (name, value) in cases {
        let claims = claims_with(name, *value);
        both(&claims, &owner).await;
        both(
            &claims,
            &json!({"allowed_owner_ids": ["65"], "allowed_refs": ["refs/heads/*"]}),
        )
        .await;
    }
    // Denials that name the claims.
    for (name, config) in [
        ("repository_owner", json!({"allowed_owner_ids": ["1"]})),
        ("repository_owner_id", json!({"allowed_owners": ["x"]})),
        (
            "repository_id",
            json!({"allowed_owners": ["octo-org"], "allowed_repository_ids": ["74"]}),
        ),
        (
            "environment",
            json!({"allowed_owners": ["octo-org"], "allowed_environments": ["prod"]}),
        ),
        (
            "ref",
            json!({"allowed_owners": ["octo-org"], "allowed_refs": ["refs/*"]}),
        ),
    ] {
        let reason = denied(both(&claims_with(name, None), &config).await);
        assert!(
            reason.contains("<none>") || reason.contains("\"\""),
            "{reason}"
        );
    }
    let reason = denied_with(
        "missing_claim",
        both(&claims_with("sub", None), &owner).await,
    );
    assert_eq!(reason, "the credential has no sub claim");
    let reason = denied_with(
        "invalid_claim",
        both(&claims_with("sub", Some("5")), &owner).await,
    );
    assert_eq!(reason, "the credential's sub claim is not a string");
}

/// A claim set serde_json cannot read in full. The JavaScript mapper reads all of it and
/// fails (`err`: 500, not a denial) for serde_json's reason (its position, "at line 1 column
/// 9", is not reproduced). The Rust mapper reads only the claims it names (the SDK's lean
/// path, `Input::read`): an unreadable claim it does not name fails nothing, and it decides
/// as it would without it.
async fn js_refuses_rust_skips(claims: &str, reason: &str) {
    let config = json!({"allowed_owners": ["octo-org"]}).to_string();
    let m = mappers();
    match run(&m.js, claims, &config, false).await {
        Outcome::Failed(message) => assert!(
            message.starts_with(reason),
            "js: {message:?} does not start with {reason:?}"
        ),
        other => panic!("js: {other:?}"),
    }
    match run(&m.rust, claims, &config, false).await {
        Outcome::Decided(MapDecision::Allow(_), _) => {}
        other => panic!("rust: {other:?}"),
    }
}

#[tokio::test]
async fn reads_exactly_what_serde_json_reads() {
    let owner = json!({"allowed_owners": ["octo-org"]});
    // Escaped characters, a surrogate pair among them: the exact reader, same result.
    both(
        &claims_with("workflow", Some(r#""\ud83d\ude80 \u00e9\u0000""#)),
        &owner,
    )
    .await;
    // 127 levels of nesting are read, 128 are not.
    let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    allowed(both(&claims_with("deep", Some(&nested(126))), &owner).await);
    js_refuses_rust_skips(
        &claims_with("deep", Some(&nested(127))),
        "mapper could not read the claims: recursion limit exceeded",
    )
    .await;
    js_refuses_rust_skips(
        &claims_with("unused", Some("1e400")),
        "mapper could not read the claims: number out of range",
    )
    .await;
    js_refuses_rust_skips(
        &claims_with("unused", Some(r#""\udc00""#)),
        "mapper could not read the claims: lone leading surrogate in hex escape",
    )
    .await;
    // A claim the Rust mapper reads, unreadable: a denial naming why (403), not a failure.
    let config = json!({"allowed_owners": ["octo-org"]}).to_string();
    let m = mappers();
    for claims in [
        claims_with("workflow", Some(r#""\udc00""#)),
        "[1]".to_owned(),
    ] {
        match run(&m.js, &claims, &config, false).await {
            Outcome::Failed(message) => {
                assert!(
                    message.starts_with("mapper could not read the claims"),
                    "{message}"
                )
            }
            other => panic!("js: {other:?}"),
        }
        match run(&m.rust, &claims, &config, false).await {
            Outcome::Decided(MapDecision::Deny { code, reason }, _) => {
                assert_eq!(code, "invalid_claim");
                assert!(
                    reason.starts_with("the credential's claims could not be read"),
                    "{reason}"
                );
            }
            other => panic!("rust: {other:?}"),
        }
    }
}
