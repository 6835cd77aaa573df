use super::*;
use claimex_mapper::{Map, TAGS_CLAIM, json, load_config, no_validation};

const GITHUB: &str = include_str!("../../../examples/claims/github.json");
const GITLAB: &str = include_str!("../../../examples/claims/gitlab.json");

fn github() -> Value {
    serde_json::from_str(GITHUB).unwrap()
}

fn gitlab() -> Value {
    serde_json::from_str(GITLAB).unwrap()
}

/// The configuration read as `validate-config` reads it.
fn config(config: Value) -> Config {
    load_config(&config.to_string(), no_validation).unwrap_or_else(|e| panic!("{config}: {e}"))
}

/// Why `validate-config` refuses the configuration.
fn refused(config: Value) -> String {
    match load_config::<Config>(&config.to_string(), no_validation) {
        Ok(_) => panic!("{config} was accepted"),
        Err(e) => e,
    }
}

fn run(claims: Value, config_value: Value) -> Result<Outbound, Deny> {
    map(
        &Input::new("test", "https://issuer.example.com", claims),
        &config(config_value),
    )
}

fn allowed(result: Result<Outbound, Deny>) -> Map<String, Value> {
    match result {
        Ok(out) => out.into_claims(),
        Err(deny) => panic!("denied: {deny}"),
    }
}

fn denied(result: Result<Outbound, Deny>) -> String {
    match result {
        Err(deny) => deny.reason().to_owned(),
        Ok(out) => panic!("allowed: {:?}", out.into_claims()),
    }
}

fn denied_with(code: &str, result: Result<Outbound, Deny>) -> String {
    match result {
        Err(deny) => {
            assert_eq!(deny.code(), code, "{deny}");
            deny.reason().to_owned()
        }
        Ok(out) => panic!("allowed: {:?}", out.into_claims()),
    }
}

/// The rule name of the first rule that matched, taken from a literal `rule` tag.
fn matched_rule(claims: &Map<String, Value>) -> &str {
    claims[TAGS_CLAIM]["principal_tags"]["rule"][0]
        .as_str()
        .unwrap()
}

/// The configuration in the crate documentation.
fn doc_config() -> Value {
    json!({
      "default_tags": ["repository", "ref"],
      "rules": [
        {
          "name": "no-forks",
          "when": {"repository_owner": {"not": "octo-org"}},
          "deny": "only octo-org repositories may deploy"
        },
        {
          "name": "prod-deploys",
          "when": {
            "repository_owner_id": "65",
            "ref": {"glob": ["refs/heads/main", "refs/tags/v*"]},
            "ref_protected": true,
            "environment": {"one_of": ["prod", "production"]}
          },
          "tags": {"env": "environment", "tier": {"value": "prod"}},
          "transitive_tag_keys": ["repository"],
          "sub": {"template": "gha:{repository}:{environment}"},
          "aud": "sts.amazonaws.com"
        },
        {
          "name": "any-octo-org-job",
          "when": {"repository_owner_id": "65"}
        }
      ]
    })
}

#[test]
fn the_documented_example_allows_a_github_prod_deploy() {
    let out = allowed(run(github(), doc_config()));
    assert_eq!(out["sub"], "gha:octo-org/octo-repo:prod");
    assert_eq!(out["aud"], "sts.amazonaws.com");
    assert_eq!(
        out[TAGS_CLAIM],
        json!({
            "principal_tags": {
                "repository": ["octo-org/octo-repo"],
                "ref": ["refs/heads/main"],
                "env": ["prod"],
                "tier": ["prod"],
            },
            "transitive_tag_keys": ["repository"],
        })
    );
    assert!(claimex_mapper::tags::check_claim(&out[TAGS_CLAIM]).is_ok());
    assert_eq!(out.len(), 3);
}

#[test]
fn the_documented_example_falls_through_and_denies_forks() {
    // Not prod: the catch-all rule allows with the default tags and the inbound sub.
    let mut claims = github();
    claims["environment"] = json!("staging");
    let out = allowed(run(claims, doc_config()));
    assert_eq!(out["sub"], "repo:octo-org/octo-repo:environment:prod");
    assert!(!out.contains_key("aud"));
    assert_eq!(
        out[TAGS_CLAIM],
        json!({"principal_tags": {"repository": ["octo-org/octo-repo"], "ref": ["refs/heads/main"]}})
    );

    let mut claims = github();
    claims["repository_owner"] = json!("evil-fork");
    let reason = denied_with("rule_denied", run(claims, doc_config()));
    assert_eq!(
        reason,
        "rule \"no-forks\" denies: only octo-org repositories may deploy"
    );

    // A missing owner satisfies the `not`: the deny rule fails closed.
    let mut claims = github();
    claims.as_object_mut().unwrap().remove("repository_owner");
    assert!(denied(run(claims, doc_config())).contains("no-forks"));
}

#[test]
fn gitlab_booleans_and_ids_sent_as_strings() {
    let config = json!({"rules": [{
        "name": "protected-main",
        "when": {
            "namespace_id": 72,
            "project_id": "22",
            "ref_protected": true,
            "environment_protected": "true",
            "runner_id": "1",
            "ref": "main",
            "ref_type": {"one_of": ["branch"]},
        },
        "tags": ["project_path", "ref", "runner_id"],
    }]});
    let out = allowed(run(gitlab(), config.clone()));
    assert_eq!(
        out["sub"],
        "project_path:my-group/my-project:ref_type:branch:ref:main"
    );
    assert_eq!(
        out[TAGS_CLAIM]["principal_tags"],
        json!({"project_path": ["my-group/my-project"], "ref": ["main"], "runner_id": ["1"]})
    );

    let mut claims = gitlab();
    claims["ref_protected"] = json!("false");
    let reason = denied(run(claims.clone(), config.clone()));
    assert_eq!(
        reason,
        "no rule matched: \"protected-main\": ref_protected is \"false\", wanted true"
    );
    claims["ref_protected"] = json!(true);
    allowed(run(claims.clone(), config.clone()));
    claims["ref_protected"] = json!("True");
    denied(run(claims, config));
}

#[test]
fn scalar_equality() {
    assert!(scalar_eq(&json!(true), &json!(true)));
    assert!(scalar_eq(&json!(true), &json!("true")));
    assert!(scalar_eq(&json!("true"), &json!(true)));
    assert!(!scalar_eq(&json!(true), &json!("TRUE")));
    assert!(!scalar_eq(&json!(false), &json!("true")));
    assert!(scalar_eq(&json!(22), &json!("22")));
    assert!(scalar_eq(&json!("22"), &json!(22)));
    assert!(scalar_eq(&json!(22), &json!(22.0)));
    assert!(!scalar_eq(&json!(22), &json!(23)));
    assert!(!scalar_eq(&json!("main"), &json!("main ")));
    assert!(!scalar_eq(&json!("main"), &json!(["main"])));
    assert!(!scalar_eq(&json!("null"), &Value::Null));
    assert!(!scalar_eq(&json!("{}"), &json!({})));
}

#[test]
fn globs_and_one_of() {
    let rule = |when: Value| json!({"rules": [{"name": "r", "when": when}]});
    allowed(run(
        github(),
        rule(json!({"ref": {"glob": "refs/heads/*"}})),
    ));
    allowed(run(
        github(),
        rule(json!({"ref": {"glob": ["refs/tags/*", "**/main"]}})),
    ));
    // `*` stays within a path segment (GitHub's filter patterns); `**` crosses them.
    denied(run(github(), rule(json!({"ref": {"glob": "*/main"}}))));
    denied(run(github(), rule(json!({"ref": {"glob": "refs/*"}}))));
    allowed(run(github(), rule(json!({"ref": {"glob": "refs/**"}}))));
    // In a list, the last matching pattern decides; `!` excludes.
    denied(run(
        github(),
        rule(json!({"ref": {"glob": ["refs/heads/**", "!refs/heads/main"]}})),
    ));
    allowed(run(
        github(),
        rule(json!({"ref": {"glob": ["refs/heads/**", "!refs/heads/m*", "refs/heads/main"]}})),
    ));
    let reason = denied(run(
        github(),
        rule(json!({"ref": {"glob": "refs/heads/release/*"}})),
    ));
    assert_eq!(
        reason,
        "no rule matched: \"r\": ref is \"refs/heads/main\", wanted {\"glob\":\"refs/heads/release/*\"}"
    );
    // Globs read numbers as text.
    allowed(run(
        gitlab(),
        rule(json!({"runner_id": {"glob": "[0-9]+"}})),
    ));
    // A glob never matches a missing claim, even `*`.
    let reason = denied(run(github(), rule(json!({"missing": {"glob": "*"}}))));
    assert!(reason.contains("missing is missing"), "{reason}");

    allowed(run(
        gitlab(),
        rule(json!({"pipeline_source": {"one_of": ["push", "web"]}})),
    ));
    denied(run(
        gitlab(),
        rule(json!({"pipeline_source": {"one_of": ["schedule", "web"]}})),
    ));
    allowed(run(
        gitlab(),
        rule(json!({"job_id": {"one_of": [1212, 1213]}})),
    ));
}

#[test]
fn exists_contains_not_and_combined_operators() {
    let rule = |when: Value| json!({"rules": [{"name": "r", "when": when}]});
    let mut claims = github();
    claims["groups"] = json!(["admins", "devs"]);
    claims["nothing"] = Value::Null;

    allowed(run(
        claims.clone(),
        rule(json!({"environment": {"exists": true}})),
    ));
    allowed(run(
        claims.clone(),
        rule(json!({"missing": {"exists": false}})),
    ));
    allowed(run(
        claims.clone(),
        rule(json!({"nothing": {"exists": false}})),
    ));
    let reason = denied(run(
        claims.clone(),
        rule(json!({"nothing": {"exists": true}})),
    ));
    assert!(reason.contains("nothing is null"), "{reason}");
    denied(run(
        claims.clone(),
        rule(json!({"environment": {"exists": false}})),
    ));

    allowed(run(
        claims.clone(),
        rule(json!({"groups": {"contains": "devs"}})),
    ));
    denied(run(
        claims.clone(),
        rule(json!({"groups": {"contains": "ops"}})),
    ));
    // `aud` may be a string: contains reads it as a list of one.
    allowed(run(
        claims.clone(),
        rule(json!({"aud": {"contains": "sts.amazonaws.com"}})),
    ));
    denied(run(
        claims.clone(),
        rule(json!({"missing": {"contains": "x"}})),
    ));

    allowed(run(
        claims.clone(),
        rule(json!({"event_name": {"not": "pull_request"}})),
    ));
    denied(run(
        claims.clone(),
        rule(json!({"event_name": {"not": {"glob": "workflow_*"}}})),
    ));
    allowed(run(
        claims.clone(),
        rule(json!({"ref": {"glob": "refs/heads/*", "not": "refs/heads/dev"}})),
    ));
    let reason = denied(run(
        claims,
        rule(json!({"ref": {"glob": "refs/heads/*", "not": {"one_of": ["refs/heads/main"]}}})),
    ));
    assert!(reason.contains("ref is \"refs/heads/main\""), "{reason}");
}

#[test]
fn nested_claims_by_dotted_path() {
    // lambda_token_auth's nested claim_values {"context": {"project": {"id": "22"}}}.
    let mut claims = gitlab();
    claims["context"] = json!({"project": {"id": "22", "labels": ["prod"]}, "flag": true});
    let config = json!({"rules": [{
        "when": {
            "context.project.id": "22",
            "context.project.labels": {"contains": "prod"},
            "context.flag": "true",
        },
        "tags": {"project": "context.project.id", "whole": "context.project"},
        "sub": {"template": "project-{context.project.id}"},
    }]});
    let out = allowed(run(claims.clone(), config.clone()));
    assert_eq!(out["sub"], "project-22");
    // Objects are not copied into tags.
    assert_eq!(
        out[TAGS_CLAIM]["principal_tags"],
        json!({"project": ["22"]})
    );
    claims["context"]["project"]["id"] = json!("23");
    let reason = denied(run(claims, config));
    assert_eq!(
        reason,
        "no rule matched: \"rule 1\": context.project.id is \"23\", wanted \"22\""
    );
}

#[test]
fn a_subset_match_like_lambda_token_auth() {
    // claim_values {"namespace_id": "72", "ref": "main"} → role A; a second rule → role B.
    let config = json!({"rules": [
        {"name": "a", "when": {"namespace_id": "4"}, "tags": {"rule": {"value": "a"}}},
        {"name": "b", "when": {"namespace_id": "72", "ref": "main"}, "tags": {"rule": {"value": "b"}}},
        {"name": "c", "when": {}, "tags": {"rule": {"value": "c"}}},
    ]});
    let out = allowed(run(gitlab(), config.clone()));
    assert_eq!(matched_rule(&out), "b");
    let mut claims = gitlab();
    claims["ref"] = json!("dev");
    assert_eq!(matched_rule(&allowed(run(claims, config))), "c");
}

#[test]
fn the_first_matching_rule_wins() {
    let config = json!({"rules": [
        {"name": "first", "when": {"repository_owner": "octo-org"}, "tags": {"rule": {"value": "first"}}},
        {"name": "second", "when": {"repository_owner": "octo-org"}, "tags": {"rule": {"value": "second"}}},
    ]});
    assert_eq!(matched_rule(&allowed(run(github(), config))), "first");
}

#[test]
fn no_match_names_every_rule_and_its_first_failure() {
    let config = json!({"rules": [
        {"name": "release", "when": {"ref": {"glob": "refs/heads/release/*"}}},
        {"when": {"environment": "staging", "repository_owner": "octo-org"}},
        {"name": "nested", "when": {"a.b": {"exists": true}}},
    ]});
    let reason = denied_with("no_rule_matched", run(github(), config));
    assert_eq!(
        reason,
        "no rule matched: \
         \"release\": ref is \"refs/heads/main\", wanted {\"glob\":\"refs/heads/release/*\"}; \
         \"rule 2\": environment is \"prod\", wanted \"staging\"; \
         \"nested\": a.b is missing, wanted {\"exists\":true}"
    );
}

#[test]
fn a_long_reason_is_cut() {
    let rules: Vec<Value> = (0..200)
        .map(|i| json!({"name": format!("rule-{i}"), "when": {"ref": format!("refs/heads/{}", "x".repeat(200))}}))
        .collect();
    let reason = denied(run(github(), json!({"rules": rules})));
    assert!(reason.len() < MAX_REASON + 200, "{}", reason.len());
    assert!(reason.contains("more"), "{reason}");
    assert!(reason.contains("\"rule-0\""), "{reason}");
    // Long conditions and claims are quoted cut.
    assert!(reason.contains("..."), "{reason}");
}

#[test]
fn tags_default_override_skip_and_sanitize() {
    let mut claims = github();
    claims["workflow"] = json!("Deploy #1 (prod)");
    claims["weird"] = json!("aws:evil");
    let config = json!({
        "default_tags": {"Repo": "repository", "actor": "actor", "gone": "no_such_claim"},
        "rules": [{
            "name": "r",
            "when": {},
            "tags": {"repo": "repository_id", "wf": "workflow", "attempt": "run_attempt"},
            "transitive_tag_keys": ["repo", "gone"],
        }],
    });
    let out = allowed(run(claims.clone(), config));
    assert_eq!(
        out[TAGS_CLAIM],
        json!({
            "principal_tags": {
                "actor": ["octocat"],
                "repo": ["74"],
                "wf": ["Deploy _1 _prod_"],
                "attempt": ["2"],
            },
            "transitive_tag_keys": ["repo"],
        })
    );
    // Issue 14: a claim value with AWS's reserved prefix is sanitized like any other.
    let config = json!({"rules": [{"name": "r", "when": {}, "tags": ["weird"]}]});
    let out = allowed(run(claims, config));
    assert_eq!(
        out[TAGS_CLAIM]["principal_tags"]["weird"],
        json!(["aws_evil"])
    );
}

#[test]
fn no_tags_no_tags_claim() {
    let out = allowed(run(github(), json!({"rules": [{"when": {}}]})));
    assert_eq!(out.len(), 1);
    assert_eq!(out["sub"], "repo:octo-org/octo-repo:environment:prod");
}

#[test]
fn sub_sources() {
    let with_sub = |sub: Value| json!({"rules": [{"name": "r", "when": {}, "sub": sub}]});
    assert_eq!(
        allowed(run(gitlab(), with_sub(json!("namespace_path"))))["sub"],
        "my-group"
    );
    assert_eq!(
        allowed(run(gitlab(), with_sub(json!({"claim": "user_login"}))))["sub"],
        "sample-user"
    );
    assert_eq!(
        allowed(run(gitlab(), with_sub(json!({"value": "fixed-subject"}))))["sub"],
        "fixed-subject"
    );
    assert_eq!(
        allowed(run(
            gitlab(),
            with_sub(json!({"template": "gl:{project_id}:{{{ref}}}"}))
        ))["sub"],
        "gl:22:{main}"
    );
    let reason = denied_with(
        "invalid_sub",
        run(gitlab(), with_sub(json!({"template": "gl:{nope}"}))),
    );
    assert_eq!(
        reason,
        "rule \"r\" matched, but its sub (template \"gl:{nope}\") has no value in this token"
    );
    let reason = denied_with("invalid_sub", run(gitlab(), with_sub(json!({"value": ""}))));
    assert!(reason.contains("0 characters"), "{reason}");
    // Issue 14: AWS STS takes a sub of 6 to 255 characters.
    let reason = denied_with("invalid_sub", run(gitlab(), with_sub(json!("project_id"))));
    assert!(
        reason.contains("has 2 characters: AWS accepts 6 to 255"),
        "{reason}"
    );
    let mut claims = gitlab();
    claims["long"] = json!("x".repeat(256));
    let reason = denied(run(claims, with_sub(json!("long"))));
    assert!(reason.contains("256 characters"), "{reason}");
    let mut claims = gitlab();
    claims.as_object_mut().unwrap().remove("sub");
    let reason = denied(run(claims, json!({"rules": [{"name": "r", "when": {}}]})));
    assert!(reason.contains("claim \"sub\""), "{reason}");
}

#[test]
fn aud_string_or_list() {
    let out = allowed(run(
        gitlab(),
        json!({"rules": [{"when": {}, "aud": ["sts.amazonaws.com", "other"]}]}),
    ));
    assert_eq!(out["aud"], json!(["sts.amazonaws.com", "other"]));
    let out = allowed(run(gitlab(), json!({"rules": [{"when": {}, "aud": "x"}]})));
    assert_eq!(out["aud"], "x");
}

#[test]
fn invalid_configs_are_refused_with_a_clear_reason() {
    let cases: Vec<(Value, &str)> = vec![
        (Value::Null, "rules is missing: the rules mapper needs"),
        (json!([]), "must be a JSON object"),
        (json!("rules"), "must be a JSON object"),
        (json!({}), "rules is missing"),
        (json!({"rules": []}), "rules is empty"),
        (json!({"rules": {}}), "rules must be a list"),
        (
            json!({"rules": [{"when": {}}], "rule": []}),
            "unknown member \"rule\"",
        ),
        (
            json!({"rules": ["x"]}),
            "rules[0]: a rule must be a JSON object",
        ),
        (json!({"rules": [{}]}), "rules[0]: when is missing"),
        (
            json!({"rules": [{"name": "", "when": {}}]}),
            "name must be a non-empty string",
        ),
        (
            json!({"rules": [{"name": "a", "when": []}]}),
            "rules[0] (\"a\"): when must be an object",
        ),
        (
            json!({"rules": [{"when": {}, "tag": []}]}),
            "rules[0]: unknown member \"tag\"",
        ),
        (
            json!({"rules": [{"when": {}}, {"name": "a", "when": {"ref": {"gob": "x"}}}]}),
            "rules[1] (\"a\"): when.ref: unknown operator \"gob\"",
        ),
        (
            json!({"rules": [{"when": {"ref": null}}]}),
            "when.ref: null is not a condition",
        ),
        (
            json!({"rules": [{"when": {"ref": ["a"]}}]}),
            "when.ref: a list is not a condition",
        ),
        (
            json!({"rules": [{"when": {"ref": {}}}]}),
            "an empty object is not a condition",
        ),
        (
            json!({"rules": [{"when": {"": "x"}}]}),
            "is not a claim path",
        ),
        (
            json!({"rules": [{"when": {"a..b": "x"}}]}),
            "is not a claim path",
        ),
        (
            json!({"rules": [{"when": {"ref": {"glob": 1}}}]}),
            "glob takes",
        ),
        (
            json!({"rules": [{"when": {"ref": {"glob": []}}}]}),
            "glob takes",
        ),
        (
            json!({"rules": [{"when": {"ref": {"glob": "refs/[heads"}}}]}),
            "glob \"refs/[heads\": [ without a closing ]",
        ),
        (
            json!({"rules": [{"when": {"ref": {"glob": ["!refs/heads/dev"]}}}]}),
            "cannot start with an exclusion",
        ),
        (
            json!({"rules": [{"when": {"ref": {"one_of": []}}}]}),
            "one_of takes",
        ),
        (
            json!({"rules": [{"when": {"ref": {"one_of": [{}]}}}]}),
            "one_of takes",
        ),
        (
            json!({"rules": [{"when": {"ref": {"exists": "yes"}}}]}),
            "exists takes",
        ),
        (
            json!({"rules": [{"when": {"ref": {"contains": []}}}]}),
            "contains takes",
        ),
        (
            json!({"rules": [{"when": {"ref": {"not": null}}}]}),
            "not: null is not a condition",
        ),
        (
            json!({"rules": [{"when": {}, "tags": "ref"}]}),
            "tags must be",
        ),
        (
            json!({"rules": [{"when": {}, "tags": [1]}]}),
            "a tags list holds claim paths",
        ),
        (
            json!({"rules": [{"when": {}, "tags": {"bad#key": "ref"}}]}),
            "bad#key",
        ),
        (
            json!({"rules": [{"when": {}, "tags": {"aws:x": "ref"}}]}),
            "reserved prefix",
        ),
        (
            json!({"rules": [{"when": {}, "tags": {"k": {"value": "a#b"}}}]}),
            "the value of tag \"k\"",
        ),
        (
            json!({"rules": [{"when": {}, "tags": {"k": {"what": "x"}}}]}),
            "k: expected a claim path",
        ),
        (
            json!({"rules": [{"when": {}, "tags": {"k": ""}}]}),
            "k: expected a claim path",
        ),
        (
            json!({"rules": [{"when": {}, "tags": {"K": "a", "k": "b"}}]}),
            "equal ignoring case",
        ),
        (
            json!({"default_tags": 3, "rules": [{"when": {}}]}),
            "default_tags: tags must be",
        ),
        (
            json!({"rules": [{"when": {}, "tags": ["ref"], "transitive_tag_keys": ["sha"]}]}),
            "\"sha\" is not one of",
        ),
        (
            json!({"rules": [{"when": {}, "tags": ["ref"], "transitive_tag_keys": ["ref", "ref"]}]}),
            "listed twice",
        ),
        (
            json!({"rules": [{"when": {}, "transitive_tag_keys": "ref"}]}),
            "must be a list of tag keys",
        ),
        (json!({"rules": [{"when": {}, "sub": 3}]}), "sub: expected"),
        (
            json!({"rules": [{"when": {}, "sub": {"template": "a{b"}}]}),
            "unclosed {",
        ),
        (
            json!({"rules": [{"when": {}, "sub": {"template": "a}b"}}]}),
            "lone }",
        ),
        (
            json!({"rules": [{"when": {}, "sub": {"template": "a{}b"}}]}),
            "empty {}",
        ),
        (json!({"rules": [{"when": {}, "aud": ""}]}), "aud must be"),
        (json!({"rules": [{"when": {}, "aud": []}]}), "aud must be"),
        (
            json!({"rules": [{"when": {}, "aud": ["a", 1]}]}),
            "aud must be",
        ),
        (json!({"rules": [{"when": {}, "deny": ""}]}), "deny must be"),
        (
            json!({"rules": [{"when": {}, "code": "x"}]}),
            "code is only for a deny rule",
        ),
        (
            json!({"rules": [{"when": {}, "deny": "no", "code": "Not-Valid"}]}),
            "code must be 1 to 64 characters",
        ),
        (
            json!({"rules": [{"when": {}, "deny": "no", "sub": "x"}]}),
            "a deny rule takes no sub",
        ),
        (
            json!({"rules": [{"name": "x", "when": {}}, {"name": "x", "when": {}}]}),
            "rules[1]: the name \"x\" is used by an earlier rule",
        ),
    ];
    for (config, want) in cases {
        let reason = refused(config.clone());
        assert!(reason.contains(want), "{config}: {reason:?} lacks {want:?}");
    }
}

#[test]
fn too_many_tags_are_refused_in_the_config() {
    let tags: Map<String, Value> = (0..51)
        .map(|i| (format!("k{i}"), json!({"value": "v"})))
        .collect();
    let reason = refused(json!({"rules": [{"when": {}, "tags": tags}]}));
    assert!(reason.contains("51 tags"), "{reason}");
    let defaults: Map<String, Value> = (0..30)
        .map(|i| (format!("d{i}"), json!({"value": "v"})))
        .collect();
    let own: Map<String, Value> = (0..30)
        .map(|i| (format!("o{i}"), json!({"value": "v"})))
        .collect();
    let reason = refused(json!({"default_tags": defaults, "rules": [{"when": {}, "tags": own}]}));
    assert!(reason.contains("60 tags with default_tags"), "{reason}");
}

#[test]
fn odd_claims_never_panic() {
    let config = json!({"rules": [{
        "when": {"a": {"glob": "*"}, "b.c": {"contains": 1}, "d": {"not": {"exists": true}}},
        "tags": ["a", "b.c", "e"],
        "sub": {"template": "{a}"},
    }]});
    for claims in [
        json!({}),
        json!({"a": null, "b": []}),
        json!({"a": [1], "b": {"c": [1, [2], {"x": 1}]}}),
        json!({"a": 1.5e300, "b": {"c": 1}, "d": null, "e": {"x": 1}}),
        json!({"a": "\u{0}\u{fffd}", "b": {"c": "1"}, "sub": ""}),
    ] {
        let _ = run(claims, config.clone());
    }
    let out = allowed(run(
        json!({"a": 1.5e300, "b": {"c": 1}, "d": null, "e": {"x": 1}}),
        config,
    ));
    assert_eq!(out["sub"], "1.5e+300");
    assert_eq!(
        out[TAGS_CLAIM]["principal_tags"],
        json!({"a": ["1.5e+300"], "b.c": ["1"]})
    );
}

#[test]
fn a_deny_rule_may_set_its_code() {
    let config = json!({"rules": [
        {"name": "forks", "when": {"repository_owner": {"not": "x"}}, "deny": "no forks", "code": "fork_denied"},
    ]});
    let reason = denied_with("fork_denied", run(github(), config));
    assert_eq!(reason, "rule \"forks\" denies: no forks");
}

#[test]
fn explains_each_rule_tried() {
    let config = config(json!({"rules": [
        {"name": "release", "when": {"ref": {"glob": "refs/heads/release/*"}}},
        {"name": "main", "when": {"ref": "refs/heads/main"}},
        {"name": "never-tried", "when": {}},
    ]}));
    let input = Input::new("test", "https://issuer.example.com", github()).explaining();
    allowed(map(&input, &config));
    let checks = input.checks();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].name, "release");
    assert!(!checks[0].passed);
    assert_eq!(
        checks[0].detail,
        "ref is \"refs/heads/main\", wanted {\"glob\":\"refs/heads/release/*\"}"
    );
    assert_eq!(checks[1].name, "main");
    assert!(checks[1].passed);
    assert_eq!(checks[1].detail, "matched");
}
