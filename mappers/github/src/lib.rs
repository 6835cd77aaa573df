//! The stock claimex mapper for GitHub Actions id-tokens.
//!
//! It allows a token only when its repository owner is on the configured allow-list (by the
//! numeric `repository_owner_id`, which survives renames, or by name), optionally only for
//! listed repositories, refs and environments (globs with GitHub's filter-pattern semantics,
//! [`claimex_mapper::PathGlob`]: `*` stays within a path segment, `**` crosses them), and copies the workflow facts into
//! AWS session tags so that a role's trust policy can test them as `aws:RequestTag/...`.
//!
//! Configuration (the issuer entry's `mapper_config`), every member optional but at least one
//! owner list non-empty, and `transitive_tag_keys` naming tags of [`TAGGED_CLAIMS`]; a
//! configuration that breaks this is refused when the entry is loaded ([`validate`]):
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

use claimex_mapper::{Claim, Deny, Input, Outbound, PathGlobs, allowed_by};
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

/// The deny codes of this mapper (besides the SDK's `missing_claim` and `invalid_claim` for
/// a token without a string `sub`, and `invalid_sub` for a `sub` AWS STS would refuse: not
/// 6 to 255 characters, as a long environment name or a custom `sub` template can make it).
pub mod codes {
    /// The repository owner is on neither owner list.
    pub const OWNER_NOT_ALLOWED: &str = "owner_not_allowed";
    /// `allowed_repository_ids` is set and the repository is not on it.
    pub const REPOSITORY_NOT_ALLOWED: &str = "repository_not_allowed";
    /// `allowed_refs` is set and the ref does not match it.
    pub const REF_NOT_ALLOWED: &str = "ref_not_allowed";
    /// `allowed_environments` is set and the job runs in none of them.
    pub const ENVIRONMENT_NOT_ALLOWED: &str = "environment_not_allowed";
}

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
    /// When non-empty, only refs matching these globs (GitHub's filter patterns:
    /// `refs/heads/main`, `refs/tags/v*`, `refs/heads/release/**`, `!` excludes).
    pub allowed_refs: PathGlobs,
    /// When non-empty, only jobs running in an environment matching these globs (a name
    /// without special characters matches itself only).
    pub allowed_environments: PathGlobs,
    /// Tag keys to mark transitive.
    pub transitive_tag_keys: Vec<String>,
    /// The outbound `aud`; the host's default (`sts.amazonaws.com`) when absent.
    pub audience: Option<String>,
}

/// Refuses, when the issuer entry is loaded, a configuration that could allow no token or
/// would make every token's session tags invalid.
pub fn validate(config: &Config) -> Result<(), String> {
    if config.allowed_owner_ids.is_empty() && config.allowed_owners.is_empty() {
        return Err(
            "no owner is allowed: set allowed_owner_ids (preferred) or allowed_owners".into(),
        );
    }
    for (i, key) in config.transitive_tag_keys.iter().enumerate() {
        if !TAGGED_CLAIMS.contains(&key.as_str()) {
            return Err(format!(
                "transitive tag key {key:?} is not one of the tags ({})",
                TAGGED_CLAIMS.join(", ")
            ));
        }
        if config.transitive_tag_keys[..i].contains(key) {
            return Err(format!("transitive tag key {key:?} is listed twice"));
        }
    }
    Ok(())
}

/// Records the check `name` (for `--explain`) and refuses with `code` when it failed.
/// `what` names what was checked, e.g. `ref "refs/heads/dev"`; `allows` what the
/// configuration allows, e.g. `mapper_config.allowed_refs allows "refs/heads/main"`, so the
/// CI user sees the value, the setting and what it holds.
fn allowed_if(
    input: &Input,
    name: &str,
    code: &'static str,
    ok: bool,
    what: impl Fn() -> String,
    allows: impl Fn() -> String,
) -> Result<(), Deny> {
    let detail = || {
        let verdict = if ok { "is allowed" } else { "is not allowed" };
        format!("{} {verdict} ({})", what(), allows())
    };
    if input.check(name, ok, detail) {
        Ok(())
    } else {
        Err(Deny::new(
            code,
            format!("{} is not allowed: {}", what(), allows()),
        ))
    }
}

/// The claims this mapper reads, read by the SDK's lean path ([`Input::read`]): only these,
/// over the token's text; every other claim is skipped unread.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Claims<'a> {
    #[serde(borrow)]
    sub: Claim<'a>,
    #[serde(borrow)]
    repository_owner: Claim<'a>,
    #[serde(borrow)]
    repository_owner_id: Claim<'a>,
    #[serde(borrow)]
    repository_id: Claim<'a>,
    #[serde(borrow)]
    environment: Claim<'a>,
    #[serde(borrow)]
    actor: Claim<'a>,
    #[serde(borrow)]
    event_name: Claim<'a>,
    #[serde(borrow, rename = "ref")]
    git_ref: Claim<'a>,
    #[serde(borrow)]
    repository: Claim<'a>,
    #[serde(borrow)]
    run_attempt: Claim<'a>,
    #[serde(borrow)]
    run_id: Claim<'a>,
    #[serde(borrow)]
    run_number: Claim<'a>,
    #[serde(borrow)]
    sha: Claim<'a>,
    #[serde(borrow)]
    workflow: Claim<'a>,
    #[serde(borrow)]
    job_workflow_ref: Claim<'a>,
}

impl Claims<'_> {
    /// The claims copied into tags, in [`TAGGED_CLAIMS`]' order.
    fn tagged(&self) -> [(&'static str, &Claim<'_>); 10] {
        [
            ("actor", &self.actor),
            ("event_name", &self.event_name),
            ("ref", &self.git_ref),
            ("repository", &self.repository),
            ("run_attempt", &self.run_attempt),
            ("run_id", &self.run_id),
            ("run_number", &self.run_number),
            ("sha", &self.sha),
            ("workflow", &self.workflow),
            ("job_workflow_ref", &self.job_workflow_ref),
        ]
    }
}

/// Decides on one GitHub Actions token.
pub fn map(input: &Input, config: &Config) -> Result<Outbound, Deny> {
    let claims: Claims = input.read()?;
    let owner_id = claims.repository_owner_id.text();
    let owner = claims.repository_owner.as_str();
    let owner_ok = owner_id
        .as_deref()
        .is_some_and(|id| config.allowed_owner_ids.iter().any(|a| a == id))
        || owner.is_some_and(|o| config.allowed_owners.iter().any(|a| a == o));
    allowed_if(
        input,
        "owner",
        codes::OWNER_NOT_ALLOWED,
        owner_ok,
        || {
            format!(
                "repository owner {} (repository_owner_id {})",
                owner.unwrap_or("<none>"),
                owner_id.as_deref().unwrap_or("<none>")
            )
        },
        || {
            format!(
                "{}; {}",
                allowed_by("allowed_owner_ids", &config.allowed_owner_ids),
                allowed_by("allowed_owners", &config.allowed_owners)
            )
        },
    )?;

    if !config.allowed_repository_ids.is_empty() {
        let id = claims.repository_id.text();
        let ok = id
            .as_deref()
            .is_some_and(|id| config.allowed_repository_ids.iter().any(|a| a == id));
        allowed_if(
            input,
            "repository",
            codes::REPOSITORY_NOT_ALLOWED,
            ok,
            || {
                format!(
                    "repository {} (repository_id {})",
                    claims.repository.as_str().unwrap_or("<none>"),
                    id.as_deref().unwrap_or("<none>")
                )
            },
            || allowed_by("allowed_repository_ids", &config.allowed_repository_ids),
        )?;
    }

    if !config.allowed_refs.is_empty() {
        let git_ref = claims.git_ref.as_str().unwrap_or_default();
        let ok = config.allowed_refs.is_match(git_ref);
        allowed_if(
            input,
            "ref",
            codes::REF_NOT_ALLOWED,
            ok,
            || format!("ref {git_ref:?}"),
            || allowed_by("allowed_refs", config.allowed_refs.patterns()),
        )?;
    }

    if !config.allowed_environments.is_empty() {
        let env = claims.environment.as_str();
        let ok = env.is_some_and(|e| config.allowed_environments.is_match(e));
        allowed_if(
            input,
            "environment",
            codes::ENVIRONMENT_NOT_ALLOWED,
            ok,
            || format!("environment {:?}", env.unwrap_or("<none>")),
            || {
                allowed_by(
                    "allowed_environments",
                    config.allowed_environments.patterns(),
                )
            },
        )?;
    }

    let mut out = Outbound::new().sub(claims.sub.require_sub("sub")?);
    if let Some(aud) = &config.audience {
        out = out.aud(aud.as_str());
    }
    let mut present = Vec::with_capacity(TAGGED_CLAIMS.len());
    for (name, claim) in claims.tagged() {
        if let Some(value) = claim.text() {
            // `tag` makes the value a valid tag value (sanitize_value) when it is not one.
            out = out.tag(name, value);
            present.push(name);
        }
    }
    // A transitive key whose claim is missing from this token is skipped with its tag.
    for key in &config.transitive_tag_keys {
        if present.contains(&key.as_str()) {
            out = out.make_transitive(key.as_str());
        }
    }
    Ok(out)
}

claimex_mapper::export_mapper!(map, validate = validate);

#[cfg(test)]
mod tests {
    use super::*;
    use claimex_mapper::{Map, TAGS_CLAIM, Value, json, load_config};

    const CLAIMS: &str = include_str!("../../../examples/claims/github.json");

    fn input() -> Input {
        Input::new(
            "github",
            "https://token.actions.githubusercontent.com",
            serde_json::from_str(CLAIMS).unwrap(),
        )
    }

    /// The configuration as the host would hand it over, checked as at load time.
    fn config(value: Value) -> Config {
        load_config(&value.to_string(), validate).unwrap()
    }

    fn refused(value: Value) -> String {
        load_config::<Config>(&value.to_string(), validate).unwrap_err()
    }

    fn allowed(result: Result<Outbound, Deny>) -> Map<String, Value> {
        match result {
            Ok(out) => out.into_claims(),
            Err(deny) => panic!("denied: {deny}"),
        }
    }

    fn denied(result: Result<Outbound, Deny>) -> Deny {
        match result {
            Err(deny) => deny,
            Ok(out) => panic!("allowed: {:?}", out.into_claims()),
        }
    }

    fn run(value: Value) -> Result<Outbound, Deny> {
        map(&input(), &config(value))
    }

    /// The lean path reads the token's text: a claim it reads given twice is denied (the
    /// map-based reader would silently take the last one), never a failed call.
    #[test]
    fn a_claim_given_twice_is_denied() {
        let text = CLAIMS.replacen(
            "\"repository_owner\": \"octo-org\",",
            "\"repository_owner\": \"octo-org\", \"repository_owner\": \"evil\",",
            1,
        );
        assert_ne!(text, CLAIMS);
        let request = claimex_mapper::Request {
            issuer_id: "github".into(),
            issuer_url: "https://token.actions.githubusercontent.com".into(),
            claims: text,
            config: json!({"allowed_owners": ["octo-org"]}).to_string(),
            ..Default::default()
        };
        let verdict = claimex_mapper::run(request, map, validate).unwrap();
        match verdict.decision {
            claimex_mapper::Decision::Deny(deny) => {
                assert_eq!(deny.code(), "invalid_claim");
                assert!(deny.reason().contains("repository_owner"), "{deny}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn allows_a_listed_owner_and_tags_the_workflow() {
        let claims = allowed(run(
            json!({"allowed_owners": ["octo-org"], "transitive_tag_keys": ["repository"]}),
        ));
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
        allowed(run(json!({"allowed_owner_ids": ["65"]})));
        let deny = denied(run(json!({"allowed_owner_ids": ["66"]})));
        assert_eq!(deny.code(), codes::OWNER_NOT_ALLOWED);
        assert_eq!(
            deny.reason(),
            "repository owner octo-org (repository_owner_id 65) is not allowed: \
             mapper_config.allowed_owner_ids allows \"66\"; mapper_config.allowed_owners is empty"
        );
    }

    #[test]
    fn denies_other_owners() {
        let deny = denied(run(json!({"allowed_owners": ["someone-else"]})));
        assert_eq!(deny.code(), "owner_not_allowed");
    }

    #[test]
    fn refuses_unusable_configs_at_load() {
        assert!(refused(Value::Null).contains("no owner is allowed"));
        assert!(refused(json!({"allowed_owners": []})).contains("no owner is allowed"));
        let reason = refused(json!({"allowed_owner": ["typo"]}));
        assert!(
            reason.starts_with("unknown field `allowed_owner`, expected one of"),
            "{reason}"
        );
        let reason = refused(json!({"allowed_owners": [65]}));
        assert_eq!(reason, "invalid type: integer `65`, expected a string");
        let reason = refused(json!({"allowed_owners": ["o"], "transitive_tag_keys": ["nope"]}));
        assert!(
            reason.contains("\"nope\" is not one of the tags"),
            "{reason}"
        );
        let reason =
            refused(json!({"allowed_owners": ["o"], "transitive_tag_keys": ["ref", "ref"]}));
        assert!(reason.contains("listed twice"), "{reason}");
    }

    #[test]
    fn restricts_repositories_refs_and_environments() {
        let base = json!({"allowed_owners": ["octo-org"]});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        allowed(run(with("allowed_repository_ids", json!(["74"]))));
        let deny = denied(run(with("allowed_repository_ids", json!(["75"]))));
        assert_eq!(deny.code(), codes::REPOSITORY_NOT_ALLOWED);
        allowed(run(with("allowed_refs", json!(["refs/heads/*"]))));
        let deny = denied(run(with("allowed_refs", json!(["refs/heads/release/*"]))));
        assert_eq!(deny.code(), codes::REF_NOT_ALLOWED);
        assert_eq!(
            deny.reason(),
            r#"ref "refs/heads/main" is not allowed: mapper_config.allowed_refs allows "refs/heads/release/*""#
        );
        allowed(run(with("allowed_environments", json!(["prod"]))));
        let deny = denied(run(with("allowed_environments", json!(["staging"]))));
        assert_eq!(deny.code(), codes::ENVIRONMENT_NOT_ALLOWED);
        allowed(run(with("allowed_environments", json!(["pr*"]))));
    }

    /// Refs are matched with GitHub's filter patterns: `*` stays within a segment.
    #[test]
    fn ref_globs_do_not_cross_segments() {
        let refs =
            |refs: Value| config(json!({"allowed_owners": ["octo-org"], "allowed_refs": refs}));
        let with_ref = |r: &str| {
            let mut claims: Value = serde_json::from_str(CLAIMS).unwrap();
            claims["ref"] = json!(r);
            Input::new(
                "github",
                "https://token.actions.githubusercontent.com",
                claims,
            )
        };
        let tags = refs(json!(["refs/tags/v*"]));
        assert!(map(&with_ref("refs/tags/v1.2.0"), &tags).is_ok());
        let deny = map(&with_ref("refs/tags/v1/anything"), &tags).unwrap_err();
        assert_eq!(deny.code(), codes::REF_NOT_ALLOWED);
        let release = refs(json!([
            "refs/heads/release/**",
            "!refs/heads/release/**-rc"
        ]));
        assert!(map(&with_ref("refs/heads/release/1.0/fix"), &release).is_ok());
        assert!(map(&with_ref("refs/heads/release/2.0-rc"), &release).is_err());
        let semver = refs(json!(["refs/tags/v[0-9]+.[0-9]+.[0-9]+"]));
        assert!(map(&with_ref("refs/tags/v1.10.2"), &semver).is_ok());
        assert!(map(&with_ref("refs/tags/v1.10.2-evil"), &semver).is_err());
        let reason = refused(json!({"allowed_owners": ["o"], "allowed_refs": ["refs/tags/v[0-9"]}));
        assert_eq!(
            reason,
            "glob \"refs/tags/v[0-9\": [ without a closing ] (write \\[ for a literal [)"
        );
    }

    #[test]
    fn a_token_without_sub_is_denied() {
        let mut claims: Value = serde_json::from_str(CLAIMS).unwrap();
        claims.as_object_mut().unwrap().remove("sub");
        let input = Input::new("github", "https://x", claims);
        let deny = denied(map(
            &input,
            &config(json!({"allowed_owners": ["octo-org"]})),
        ));
        assert_eq!(deny.code(), "missing_claim");
        assert_eq!(deny.reason(), "the credential has no sub claim");
    }

    /// Issue 14: a transitive key whose claim this token lacks is skipped with its tag, as
    /// the gitlab and rules mappers do (it made the host refuse the output: a 500).
    #[test]
    fn skips_a_transitive_key_whose_claim_is_missing() {
        let mut claims: Value = serde_json::from_str(CLAIMS).unwrap();
        claims.as_object_mut().unwrap().remove("workflow");
        let input = Input::new("github", "https://x", claims);
        let config = config(json!({"allowed_owners": ["octo-org"],
                                   "transitive_tag_keys": ["workflow", "repository"]}));
        let out = allowed(map(&input, &config));
        let tags = &out[TAGS_CLAIM];
        assert_eq!(tags["transitive_tag_keys"], json!(["repository"]));
        assert!(claimex_mapper::tags::check_claim(tags).is_ok());
    }

    /// Issue 14: a `sub` AWS STS would refuse (it takes 6 to 255 characters) is a deny that
    /// says so, not output the host refuses.
    #[test]
    fn denies_a_sub_aws_would_refuse() {
        let config = config(json!({"allowed_owners": ["octo-org"]}));
        let long = format!("repo:octo-org/octo-repo:environment:{}", "e".repeat(255));
        for sub in [long.as_str(), "", "repo"] {
            let mut claims: Value = serde_json::from_str(CLAIMS).unwrap();
            claims["sub"] = json!(sub);
            let deny = denied(map(&Input::new("github", "https://x", claims), &config));
            assert_eq!(deny.code(), "invalid_sub", "{sub:?}");
            assert!(deny.reason().contains("6 to 255"), "{}", deny.reason());
        }
    }

    #[test]
    fn sets_the_configured_audience() {
        let claims = allowed(run(
            json!({"allowed_owners": ["octo-org"], "audience": "sts.amazonaws.com"}),
        ));
        assert_eq!(claims["aud"], "sts.amazonaws.com");
    }

    #[test]
    fn explains_its_checks() {
        let config = config(
            json!({"allowed_owner_ids": ["65"], "allowed_refs": ["refs/tags/*"],
                                   "allowed_environments": ["prod"]}),
        );
        let input = input();
        denied(map(&input, &config));
        assert!(input.checks().is_empty(), "no checks unless asked");

        let input = input.explaining();
        denied(map(&input, &config));
        let checks: Vec<(String, bool)> = input
            .checks()
            .into_iter()
            .map(|c| (c.name, c.passed))
            .collect();
        assert_eq!(
            checks,
            [("owner".to_owned(), true), ("ref".to_owned(), false)]
        );
        assert_eq!(
            input.checks()[1].detail,
            r#"ref "refs/heads/main" is not allowed (mapper_config.allowed_refs allows "refs/tags/*")"#
        );
    }
}
