//! The stock mappers (github, gitlab, rules) never emit output the host refuses, whatever
//! legal values the claims they read hold (issue 14): for arbitrary strings, numbers,
//! booleans and nulls in every claim a mapper reads, its answer is an allow that passes the
//! host's own output checks (`claimex::mint`: the tag rules, `sub`, `aud`, the token size),
//! or a deny with a valid code, never invalid output (a 500 for a job that did nothing wrong).
//!
//! The mappers run natively through `claimex_mapper::run`, exactly what their WebAssembly
//! export does; the host's checks are the ones the exchange applies.

use std::time::Duration;

use claimex::mint::{self, OutputPolicy, Stamp};
use claimex::signer::SigningAlg;
use claimex_mapper::{Decision, MapFn, Request, ValidateFn};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A claim value as a token may carry it: mostly text, including text AWS refuses as is
/// (the reserved prefix `aws:` in any case, disallowed characters, over-long values).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,40}",
        2 => "(?s).{0,300}",
        2 => "[aA][wW][sS]:.{0,20}",
        1 => "[a-z0-9/_.-]{0,12}",
        1 => Just(String::new()),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => text().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => Just(json!({"nested": "object"})),
    ]
}

/// Claims with each of `names` absent or holding an arbitrary value.
fn claims(names: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::vec(proptest::option::weighted(0.85, value()), names.len()).prop_map(
        move |values| {
            names
                .iter()
                .zip(values)
                .filter_map(|(name, v)| v.map(|v| ((*name).to_owned(), v)))
                .collect()
        },
    )
}

/// What the host makes of one mapper call: `Ok(true)` for an allow the host would sign,
/// `Ok(false)` for a valid deny, `Err` for anything the host would answer with a 500.
fn host_outcome<C: DeserializeOwned>(
    map: MapFn<C>,
    validate: ValidateFn<C>,
    claims: &Map<String, Value>,
    config: &Value,
) -> Result<bool, String> {
    let request = Request {
        issuer_id: "ci".into(),
        issuer_url: "https://ci.example".into(),
        claims: Value::Object(claims.clone()).to_string(),
        config: config.to_string(),
        ..Request::default()
    };
    let verdict = claimex_mapper::run(request, map, validate)?;
    let json = match verdict.decision {
        Decision::Deny(deny) => {
            assert!(claimex::mapper::contract::valid_deny_code(deny.code()));
            return Ok(false);
        }
        Decision::Allow(json) => json,
    };
    let policy = OutputPolicy {
        issuer_id: "ci".into(),
        audiences: vec![mint::DEFAULT_AUDIENCE.into()],
        token_lifetime: None,
    };
    let checked = mint::check_output(&json, &policy).map_err(|e| e.description)?;
    // A long issuer URL and a 4096-bit RSA signature: the largest token the host makes.
    let stamp = Stamp::new(
        &format!("https://{}.example.com", "c".repeat(80)),
        1_800_000_000,
        Duration::from_secs(900),
        "AAAAAAAAAAAAAAAAAAAAAA".into(),
    );
    let kid = "k".repeat(43);
    let input = mint::signing_input(SigningAlg::Rs256, &kid, &checked, &stamp)
        .map_err(|e| e.description)?;
    mint::assemble(input, &[0u8; 512]).map_err(|e| e.description)?;
    Ok(true)
}

/// The characters AWS STS accepts in `sub`: 6 to 255.
fn sub_fits(claims: &Map<String, Value>, name: &str) -> bool {
    claims
        .get(name)
        .and_then(Value::as_str)
        .is_some_and(|s| (6..=255).contains(&s.chars().count()))
}

const GITHUB_READS: &[&str] = &[
    "sub",
    "repository_owner",
    "repository_owner_id",
    "repository_id",
    "environment",
    "actor",
    "event_name",
    "ref",
    "repository",
    "run_attempt",
    "run_id",
    "run_number",
    "sha",
    "workflow",
    "job_workflow_ref",
];

const GITLAB_READS: &[&str] = &[
    "sub",
    "namespace_id",
    "project_id",
    "ref_protected",
    "project_path",
    "ref",
    "ref_type",
    "pipeline_source",
    "user_login",
    "environment",
];

const RULES_READS: &[&str] = &[
    "sub",
    "repository",
    "repository_owner",
    "ref",
    "environment",
    "workflow",
    "actor",
    "run_id",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn github_mapper_output_is_always_signable(claims in claims(GITHUB_READS)) {
        use claimex_mapper_github::{TAGGED_CLAIMS, map, validate};
        let owner = claims.get("repository_owner").and_then(Value::as_str).unwrap_or("x");
        let config = json!({
            "allowed_owners": [owner],
            "allowed_refs": ["**"],
            "transitive_tag_keys": TAGGED_CLAIMS,
        });
        let outcome = host_outcome(map, validate, &claims, &config);
        prop_assert!(outcome.is_ok(), "host refuses the output: {outcome:?}\nclaims: {claims:?}");
        // It denies only for the documented reasons: here, a sub AWS would refuse.
        if claims.get("repository_owner").is_some_and(Value::is_string) && sub_fits(&claims, "sub") {
            prop_assert_eq!(outcome, Ok(true), "denied: {:?}", claims);
        }
    }

    #[test]
    fn gitlab_mapper_output_is_always_signable(claims in claims(GITLAB_READS)) {
        use claimex_mapper_gitlab::{TAGGED_CLAIMS, map, validate};
        let project = match claims.get("project_id") {
            Some(Value::String(s)) => s.clone(),
            _ => "22".into(),
        };
        let config = json!({
            "allowed_project_ids": [project],
            "transitive_tag_keys": TAGGED_CLAIMS,
        });
        let outcome = host_outcome(map, validate, &claims, &config);
        prop_assert!(outcome.is_ok(), "host refuses the output: {outcome:?}\nclaims: {claims:?}");
        if claims.get("project_id").is_some_and(Value::is_string) && sub_fits(&claims, "sub") {
            prop_assert_eq!(outcome, Ok(true), "denied: {:?}", claims);
        }
    }

    #[test]
    fn rules_mapper_output_is_always_signable(claims in claims(RULES_READS)) {
        use claimex_mapper_rules::map;
        let validate: ValidateFn<claimex_mapper_rules::Config> = claimex_mapper::no_validation;
        let tags = json!({
            "repository": "repository", "ref": "ref", "environment": "environment",
            "workflow": "workflow", "actor": "actor", "run": "run_id",
            "summary": {"template": "{repository}@{ref} by {actor}: {workflow}"},
            "tier": {"value": "prod"},
        });
        let transitive = json!(["repository", "ref", "environment", "workflow", "actor", "run", "summary"]);
        // The inbound sub, then a sub built from a template.
        let inbound = json!({"rules": [
            {"name": "forks", "when": {"repository_owner": {"glob": "evil*"}}, "deny": "no forks"},
            {"name": "all", "when": {}, "tags": tags, "transitive_tag_keys": transitive},
        ]});
        let outcome = host_outcome(map, validate, &claims, &inbound);
        prop_assert!(outcome.is_ok(), "host refuses the output: {outcome:?}\nclaims: {claims:?}");
        let templated = json!({
            "default_tags": ["repository", "ref"],
            "rules": [{"when": {}, "tags": tags, "transitive_tag_keys": transitive,
                       "sub": {"template": "gha:{repository}:{environment}"}}],
        });
        let outcome = host_outcome(map, validate, &claims, &templated);
        prop_assert!(outcome.is_ok(), "host refuses the output: {outcome:?}\nclaims: {claims:?}");
    }
}

/// The inputs of issue 14, named: each made the host refuse the stock mapper's output.
#[test]
fn workflow_names_with_the_reserved_prefix_are_exchanged() {
    let base: Map<String, Value> =
        serde_json::from_str(claimex_testkit::GITHUB_CLAIMS).expect("sample claims");
    let config = json!({"allowed_owner_ids": ["65"]});
    for workflow in ["aws: deploy", "AWS: Deploy to prod", "Aws:x"] {
        let mut claims = base.clone();
        claims.insert("workflow".into(), json!(workflow));
        claims.insert("actor".into(), json!("aws:bot"));
        let outcome = host_outcome(
            claimex_mapper_github::map,
            claimex_mapper_github::validate,
            &claims,
            &config,
        );
        assert_eq!(outcome, Ok(true), "{workflow:?}");
    }
}

/// AWS identities (issue 11) with the rules mapper as README's "From inside AWS" configures
/// it: assumed roles named `deploy-*` are allowed, with tags from the role and session names.
#[test]
fn the_rules_mapper_maps_aws_identities() {
    let config = json!({"rules": [{
        "name": "deployers",
        "when": {"principal_type": "assumed-role", "role_name": {"glob": "deploy-*"}},
        "tags": {"role": "role_name", "session": "session_name"},
    }]});
    let identity = |arn: &str, kind: &str, role: Value, session: Value| -> Map<String, Value> {
        serde_json::from_value(json!({
            "sub": arn, "arn": arn, "account": "123456789012", "user_id": "AROAEXAMPLE:s",
            "principal_type": kind, "role_name": role, "session_name": session,
            "user_name": null, "region": "us-east-1", "sts_endpoint": "https://sts.amazonaws.com",
        }))
        .unwrap()
    };
    let validate: ValidateFn<claimex_mapper_rules::Config> = claimex_mapper::no_validation;
    let role = identity(
        "arn:aws:sts::123456789012:assumed-role/deploy-prod/ci-42",
        "assumed-role",
        json!("deploy-prod"),
        json!("ci-42"),
    );
    assert_eq!(
        host_outcome(claimex_mapper_rules::map, validate, &role, &config),
        Ok(true)
    );
    let other = identity(
        "arn:aws:sts::123456789012:assumed-role/admin/ci-42",
        "assumed-role",
        json!("admin"),
        json!("ci-42"),
    );
    assert_eq!(
        host_outcome(claimex_mapper_rules::map, validate, &other, &config),
        Ok(false)
    );
    let user = identity(
        "arn:aws:iam::123456789012:user/deploy-bot",
        "user",
        Value::Null,
        Value::Null,
    );
    assert_eq!(
        host_outcome(claimex_mapper_rules::map, validate, &user, &config),
        Ok(false)
    );
    // deploy/lambda/template.yaml's registration: any identity, tags when the ARN has them.
    let any = json!({"rules": [{"name": "any-identity-of-these-accounts", "when": {},
        "tags": {"role": "role_name", "session": "session_name"}}]});
    for identity in [&role, &user] {
        assert_eq!(
            host_outcome(claimex_mapper_rules::map, validate, identity, &any),
            Ok(true),
            "{identity:?}"
        );
    }
}
