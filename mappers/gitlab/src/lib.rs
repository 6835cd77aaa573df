//! The stock claimex mapper for GitLab CI id-tokens.
//!
//! It allows a token only when its project is allowed by numeric id: the project's direct
//! namespace (`namespace_id`) is on `allowed_namespace_ids`, and/or the project itself
//! (`project_id`) is on `allowed_project_ids`. Ids survive renames and transfers, which
//! paths do not. Each non-empty list must be satisfied, so listing both narrows to those
//! projects inside those namespaces. A subgroup has its own namespace id: allowing a group
//! does not allow its subgroups. Optionally it requires a protected ref, and restricts refs
//! (globs) and environments. It copies the pipeline facts into AWS session tags so that a
//! role's trust policy can test them as `aws:RequestTag/...`.
//!
//! Configuration (the issuer entry's `mapper_config`), every member optional but at least one
//! id list non-empty:
//!
//! ```json
//! {
//!   "allowed_namespace_ids": ["72"],
//!   "allowed_project_ids": ["22"],
//!   "require_ref_protected": true,
//!   "allowed_refs": ["main", "release/*"],
//!   "allowed_environments": ["production"],
//!   "transitive_tag_keys": ["project_path"],
//!   "audience": "sts.amazonaws.com"
//! }
//! ```
//!
//! `allowed_refs` matches the `ref` claim, which GitLab sends without the `refs/heads/` or
//! `refs/tags/` prefix (`main`, `v1.2.0`); combine it with a `ref_type` test in the role's
//! trust policy (the tag `ref_type`) when branches and tags may share names.

use claimex_mapper::{Decision, Input, Outbound, Value, glob_match, sanitize_value};
use serde::Deserialize;

/// The claims copied into session tags, under their own names. Missing claims are skipped.
pub const TAGGED_CLAIMS: [&str; 6] = [
    "project_path",
    "ref",
    "ref_type",
    "pipeline_source",
    "user_login",
    "environment",
];

/// The mapper configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Numeric namespace ids (`namespace_id`, the project's direct group or user namespace).
    pub allowed_namespace_ids: Vec<String>,
    /// Numeric project ids (`project_id`).
    pub allowed_project_ids: Vec<String>,
    /// Only tokens whose `ref_protected` is true (GitLab sends the string `"true"`).
    pub require_ref_protected: bool,
    /// When non-empty, only refs (the `ref` claim) matching one of these globs.
    pub allowed_refs: Vec<String>,
    /// When non-empty, only jobs running in one of these environments.
    pub allowed_environments: Vec<String>,
    /// Tag keys to mark transitive.
    pub transitive_tag_keys: Vec<String>,
    /// The outbound `aud`; the host's default (`sts.amazonaws.com`) when absent.
    pub audience: Option<String>,
}

/// Checks that the claim `name` is present and on `allowed` (when `allowed` is non-empty).
fn check_id(input: &Input, name: &str, allowed: &[String]) -> Result<(), String> {
    if allowed.is_empty() {
        return Ok(());
    }
    let id = input.text_claim(name);
    if id
        .as_ref()
        .is_some_and(|id| allowed.iter().any(|a| a == id))
    {
        Ok(())
    } else {
        Err(format!(
            "{name} {} is not allowed",
            id.as_deref().unwrap_or("<none>")
        ))
    }
}

/// Decides on one GitLab CI token.
pub fn map(input: &Input) -> Decision {
    let config = match &input.config {
        Value::Null => Config::default(),
        value => match Config::deserialize(value) {
            Ok(config) => config,
            Err(e) => return Decision::deny(format!("gitlab mapper config is invalid: {e}")),
        },
    };
    if let Some(key) = config
        .transitive_tag_keys
        .iter()
        .find(|k| !TAGGED_CLAIMS.contains(&k.as_str()))
    {
        return Decision::deny(format!(
            "gitlab mapper config is invalid: transitive tag key {key:?} is not one of the tags ({})",
            TAGGED_CLAIMS.join(", ")
        ));
    }
    if config.allowed_namespace_ids.is_empty() && config.allowed_project_ids.is_empty() {
        return Decision::deny(
            "gitlab mapper config allows no project: set allowed_namespace_ids or allowed_project_ids",
        );
    }

    if let Err(reason) = check_id(input, "namespace_id", &config.allowed_namespace_ids)
        .and_then(|()| check_id(input, "project_id", &config.allowed_project_ids))
    {
        let path = input.str_claim("project_path").unwrap_or("<none>");
        return Decision::deny(format!("project {path}: {reason}"));
    }

    if config.require_ref_protected {
        let protected = match input.claim("ref_protected") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        if !protected {
            return Decision::deny(format!(
                "ref {:?} is not protected",
                input.str_claim("ref").unwrap_or("<none>")
            ));
        }
    }

    if !config.allowed_refs.is_empty() {
        let git_ref = input.str_claim("ref").unwrap_or_default();
        if !config.allowed_refs.iter().any(|p| glob_match(p, git_ref)) {
            return Decision::deny(format!("ref {git_ref:?} is not allowed"));
        }
    }

    if !config.allowed_environments.is_empty() {
        let env = input.str_claim("environment");
        if !env.is_some_and(|e| config.allowed_environments.iter().any(|a| a == e)) {
            return Decision::deny(format!(
                "environment {:?} is not allowed",
                env.unwrap_or("<none>")
            ));
        }
    }

    let Some(sub) = input.str_claim("sub") else {
        return Decision::deny("the token has no sub claim");
    };
    let mut out = Outbound::new().sub(sub);
    if let Some(aud) = config.audience {
        out = out.aud(aud);
    }
    let mut present = Vec::with_capacity(TAGGED_CLAIMS.len());
    for name in TAGGED_CLAIMS {
        if let Some(value) = input.text_claim(name) {
            out = out.tag(name, sanitize_value(&value));
            present.push(name);
        }
    }
    // A transitive key whose claim is missing from this token is skipped with its tag.
    for key in config.transitive_tag_keys {
        if present.contains(&key.as_str()) {
            out = out.make_transitive(key);
        }
    }
    if let Err(e) = out.validate() {
        return Decision::deny(format!("gitlab mapper produced invalid session tags: {e}"));
    }
    out.allow()
}

claimex_mapper::export_mapper!(map);

#[cfg(test)]
mod tests {
    use super::*;
    use claimex_mapper::{TAGS_CLAIM, json};

    const CLAIMS: &str = include_str!("../../../examples/claims/gitlab.json");

    fn claims() -> Value {
        serde_json::from_str(CLAIMS).unwrap()
    }

    fn input_with(claims: Value, config: Value) -> Input {
        Input::new("gitlab", "https://gitlab.example.com", claims, config)
    }

    fn input(config: Value) -> Input {
        input_with(claims(), config)
    }

    fn allowed(decision: Decision) -> serde_json::Map<String, Value> {
        match decision {
            Decision::Allow(claims) => claims,
            Decision::Deny(reason) => panic!("denied: {reason}"),
        }
    }

    fn denied(decision: Decision) -> String {
        match decision {
            Decision::Deny(reason) => reason,
            Decision::Allow(claims) => panic!("allowed: {claims:?}"),
        }
    }

    #[test]
    fn allows_a_listed_namespace_and_tags_the_pipeline() {
        let claims = allowed(map(&input(
            json!({"allowed_namespace_ids": ["72"], "transitive_tag_keys": ["project_path"]}),
        )));
        assert_eq!(
            claims["sub"],
            "project_path:my-group/my-project:ref_type:branch:ref:main"
        );
        assert!(!claims.contains_key("aud"));
        let tags = &claims[TAGS_CLAIM];
        assert_eq!(
            tags["principal_tags"],
            json!({
                "project_path": ["my-group/my-project"],
                "ref": ["main"],
                "ref_type": ["branch"],
                "pipeline_source": ["push"],
                "user_login": ["sample-user"],
                "environment": ["production"],
            })
        );
        assert_eq!(tags["transitive_tag_keys"], json!(["project_path"]));
        assert!(claimex_mapper::tags::check_claim(tags).is_ok());
    }

    #[test]
    fn allows_a_listed_project() {
        allowed(map(&input(json!({"allowed_project_ids": ["22"]}))));
        allowed(map(&input(
            json!({"allowed_namespace_ids": ["72"], "allowed_project_ids": ["22", "23"]}),
        )));
    }

    #[test]
    fn denies_other_namespaces_and_projects() {
        let reason = denied(map(&input(json!({"allowed_namespace_ids": ["73"]}))));
        assert!(reason.contains("namespace_id 72"), "{reason}");
        assert!(reason.contains("my-group/my-project"), "{reason}");
        let reason = denied(map(&input(json!({"allowed_project_ids": ["21"]}))));
        assert!(reason.contains("project_id 22"), "{reason}");
        // Both lists must hold.
        denied(map(&input(
            json!({"allowed_namespace_ids": ["72"], "allowed_project_ids": ["21"]}),
        )));
        denied(map(&input(
            json!({"allowed_namespace_ids": ["1"], "allowed_project_ids": ["22"]}),
        )));
    }

    #[test]
    fn denies_empty_and_invalid_config() {
        let reason = denied(map(&input(Value::Null)));
        assert!(reason.contains("allows no project"), "{reason}");
        let reason = denied(map(&input(json!({"allowed_namespace_ids": []}))));
        assert!(reason.contains("allows no project"), "{reason}");
        let reason = denied(map(&input(json!({"allowed_namespaces": ["my-group"]}))));
        assert!(reason.contains("config is invalid"), "{reason}");
        let reason = denied(map(&input(json!({"allowed_project_ids": [22]}))));
        assert!(reason.contains("config is invalid"), "{reason}");
        let reason = denied(map(&input(json!(["22"]))));
        assert!(reason.contains("config is invalid"), "{reason}");
    }

    #[test]
    fn requires_a_protected_ref() {
        let config = json!({"allowed_project_ids": ["22"], "require_ref_protected": true});
        allowed(map(&input(config.clone())));
        let mut unprotected = claims();
        unprotected["ref_protected"] = json!("false");
        let reason = denied(map(&input_with(unprotected.clone(), config.clone())));
        assert!(reason.contains("not protected"), "{reason}");
        unprotected["ref_protected"] = json!(true);
        allowed(map(&input_with(unprotected.clone(), config.clone())));
        unprotected.as_object_mut().unwrap().remove("ref_protected");
        denied(map(&input_with(unprotected.clone(), config)));
        // Not required: an unprotected ref is fine.
        allowed(map(&input_with(
            unprotected,
            json!({"allowed_project_ids": ["22"]}),
        )));
    }

    #[test]
    fn restricts_refs_and_environments() {
        let base = json!({"allowed_namespace_ids": ["72"]});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        allowed(map(&input(with("allowed_refs", json!(["main"])))));
        allowed(map(&input(with(
            "allowed_refs",
            json!(["release/*", "m*n"]),
        ))));
        let reason = denied(map(&input(with("allowed_refs", json!(["release/*"])))));
        assert!(reason.contains("\"main\""), "{reason}");
        allowed(map(&input(with(
            "allowed_environments",
            json!(["production"]),
        ))));
        let reason = denied(map(&input(with(
            "allowed_environments",
            json!(["staging"]),
        ))));
        assert!(reason.contains("production"), "{reason}");
        let mut no_env = claims();
        no_env.as_object_mut().unwrap().remove("environment");
        denied(map(&input_with(
            no_env,
            with("allowed_environments", json!(["production"])),
        )));
    }

    #[test]
    fn skips_missing_claims_and_sanitizes_values() {
        let mut claims = claims();
        let obj = claims.as_object_mut().unwrap();
        obj.remove("environment");
        obj.remove("user_login");
        obj.insert("pipeline_source".into(), json!("merge_request_event#1"));
        let out = allowed(map(&input_with(
            claims,
            json!({"allowed_project_ids": ["22"]}),
        )));
        let tags = out[TAGS_CLAIM]["principal_tags"].as_object().unwrap();
        assert_eq!(tags.len(), 4);
        assert!(!tags.contains_key("environment"));
        assert_eq!(tags["pipeline_source"], json!(["merge_request_event_1"]));
    }

    #[test]
    fn skips_a_transitive_key_whose_claim_is_missing() {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("environment");
        let config = json!({
            "allowed_project_ids": ["22"],
            "transitive_tag_keys": ["environment", "project_path"],
        });
        let out = allowed(map(&input_with(claims, config)));
        assert_eq!(
            out[TAGS_CLAIM]["transitive_tag_keys"],
            json!(["project_path"])
        );
        assert!(claimex_mapper::tags::check_claim(&out[TAGS_CLAIM]).is_ok());
    }

    #[test]
    fn denies_an_unknown_transitive_key_and_a_missing_sub() {
        let reason = denied(map(&input(
            json!({"allowed_project_ids": ["22"], "transitive_tag_keys": ["nope"]}),
        )));
        assert!(reason.contains("config is invalid"), "{reason}");
        assert!(reason.contains("nope"), "{reason}");
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("sub");
        denied(map(&input_with(
            claims,
            json!({"allowed_project_ids": ["22"]}),
        )));
    }

    #[test]
    fn sets_the_configured_audience() {
        let claims = allowed(map(&input(
            json!({"allowed_project_ids": ["22"], "audience": "sts.amazonaws.com"}),
        )));
        assert_eq!(claims["aud"], "sts.amazonaws.com");
    }
}
