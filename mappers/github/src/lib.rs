//! The stock claimex mapper for GitHub Actions id-tokens.
//!
//! It allows a token only when its repository owner is on the configured allow-list (by the
//! numeric `repository_owner_id`, which survives renames, or by name), optionally only for
//! listed repositories, refs (globs) and environments, and copies the workflow facts into
//! AWS session tags so that a role's trust policy can test them as `aws:RequestTag/...`.
//!
//! Configuration (the issuer entry's `mapper_config`), every member optional but at least one
//! owner list non-empty:
//!
//! ```json
//! {
//!   "allowed_owner_ids": ["65"],
//!   "allowed_owners": ["octo-org"],
//!   "allowed_repository_ids": ["74"],
//!   "allowed_refs": ["refs/heads/main", "refs/tags/v*"],
//!   "allowed_environments": ["prod"],
//!   "transitive_tag_keys": ["repository"],
//!   "audience": "sts.amazonaws.com"
//! }
//! ```

use claimex_mapper::{Decision, Input, Outbound, Value, glob_match, sanitize_value};
use serde::Deserialize;

/// The claims copied into session tags, under their own names.
pub const TAGGED_CLAIMS: [&str; 10] = [
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

/// The mapper configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Numeric owner ids (`repository_owner_id`) allowed. Preferred to names.
    pub allowed_owner_ids: Vec<String>,
    /// Owner names (`repository_owner`) allowed.
    pub allowed_owners: Vec<String>,
    /// When non-empty, only these numeric repository ids (`repository_id`).
    pub allowed_repository_ids: Vec<String>,
    /// When non-empty, only refs matching one of these globs.
    pub allowed_refs: Vec<String>,
    /// When non-empty, only jobs running in one of these environments.
    pub allowed_environments: Vec<String>,
    /// Tag keys to mark transitive.
    pub transitive_tag_keys: Vec<String>,
    /// The outbound `aud`; the host's default (`sts.amazonaws.com`) when absent.
    pub audience: Option<String>,
}

/// Decides on one GitHub Actions token.
pub fn map(input: &Input) -> Decision {
    let config = match &input.config {
        Value::Null => Config::default(),
        value => match Config::deserialize(value) {
            Ok(config) => config,
            Err(e) => return Decision::deny(format!("github mapper config is invalid: {e}")),
        },
    };
    if config.allowed_owner_ids.is_empty() && config.allowed_owners.is_empty() {
        return Decision::deny(
            "github mapper config allows no owner: set allowed_owner_ids or allowed_owners",
        );
    }

    let owner_id = input.text_claim("repository_owner_id");
    let owner = input.str_claim("repository_owner");
    let owner_ok = owner_id
        .as_ref()
        .is_some_and(|id| config.allowed_owner_ids.iter().any(|a| a == id))
        || owner.is_some_and(|o| config.allowed_owners.iter().any(|a| a == o));
    if !owner_ok {
        return Decision::deny(format!(
            "repository owner {} (id {}) is not allowed",
            owner.unwrap_or("<none>"),
            owner_id.as_deref().unwrap_or("<none>")
        ));
    }

    if !config.allowed_repository_ids.is_empty() {
        let id = input.text_claim("repository_id");
        if !id
            .as_ref()
            .is_some_and(|id| config.allowed_repository_ids.iter().any(|a| a == id))
        {
            return Decision::deny(format!(
                "repository id {} is not allowed",
                id.as_deref().unwrap_or("<none>")
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
    for name in TAGGED_CLAIMS {
        if let Some(value) = input.text_claim(name) {
            out = out.tag(name, sanitize_value(&value));
        }
    }
    for key in config.transitive_tag_keys {
        out = out.make_transitive(key);
    }
    out.allow()
}

claimex_mapper::export_mapper!(map);

#[cfg(test)]
mod tests {
    use super::*;
    use claimex_mapper::{TAGS_CLAIM, json};

    const CLAIMS: &str = include_str!("../../../examples/claims/github.json");

    fn input(config: Value) -> Input {
        Input::new(
            "github",
            "https://token.actions.githubusercontent.com",
            serde_json::from_str(CLAIMS).unwrap(),
            config,
        )
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
    fn allows_a_listed_owner_and_tags_the_workflow() {
        let claims = allowed(map(&input(
            json!({"allowed_owners": ["octo-org"], "transitive_tag_keys": ["repository"]}),
        )));
        assert_eq!(claims["sub"], "repo:octo-org/octo-repo:environment:prod");
        let tags = &claims[TAGS_CLAIM];
        assert_eq!(
            tags["principal_tags"]["repository"],
            json!(["octo-org/octo-repo"])
        );
        assert_eq!(tags["principal_tags"]["ref"], json!(["refs/heads/main"]));
        assert_eq!(tags["principal_tags"]["run_attempt"], json!(["2"]));
        assert_eq!(tags["principal_tags"].as_object().unwrap().len(), 10);
        assert_eq!(tags["transitive_tag_keys"], json!(["repository"]));
        assert!(claimex_mapper::tags::check_claim(tags).is_ok());
    }

    #[test]
    fn prefers_owner_ids() {
        allowed(map(&input(json!({"allowed_owner_ids": ["65"]}))));
        let reason = denied(map(&input(json!({"allowed_owner_ids": ["66"]}))));
        assert!(reason.contains("octo-org"), "{reason}");
    }

    #[test]
    fn denies_other_owners_and_empty_config() {
        denied(map(&input(json!({"allowed_owners": ["someone-else"]}))));
        let reason = denied(map(&input(Value::Null)));
        assert!(reason.contains("allows no owner"), "{reason}");
        let reason = denied(map(&input(json!({"allowed_owner": ["typo"]}))));
        assert!(reason.contains("config is invalid"), "{reason}");
    }

    #[test]
    fn restricts_repositories_refs_and_environments() {
        let base = json!({"allowed_owners": ["octo-org"]});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        allowed(map(&input(with("allowed_repository_ids", json!(["74"])))));
        denied(map(&input(with("allowed_repository_ids", json!(["75"])))));
        allowed(map(&input(with("allowed_refs", json!(["refs/heads/*"])))));
        denied(map(&input(with(
            "allowed_refs",
            json!(["refs/heads/release/*"]),
        ))));
        allowed(map(&input(with("allowed_environments", json!(["prod"])))));
        denied(map(&input(with(
            "allowed_environments",
            json!(["staging"]),
        ))));
    }

    #[test]
    fn sets_the_configured_audience() {
        let claims = allowed(map(&input(
            json!({"allowed_owners": ["octo-org"], "audience": "sts.amazonaws.com"}),
        )));
        assert_eq!(claims["aud"], "sts.amazonaws.com");
    }
}
