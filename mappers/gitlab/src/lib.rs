//! The stock claimex mapper for GitLab CI id-tokens.
//!
//! It allows a token only when its project is allowed: by numeric id, the project's direct
//! namespace (`namespace_id`) is on `allowed_namespace_ids`, and/or the project itself
//! (`project_id`) is on `allowed_project_ids`; or by path, the namespace (`namespace_path`)
//! matches `allowed_namespace_paths`. Ids survive renames and transfers, which paths do not.
//! Each non-empty list must be satisfied, so listing several narrows to their intersection.
//! A subgroup has its own namespace id: allowing a group's id does not allow its subgroups;
//! `allowed_namespace_paths: ["my-group", "my-group/**"]` does. Optionally it requires a
//! protected ref, and restricts refs and environments. Globs have GitHub's filter-pattern
//! semantics ([`claimex_mapper::PathGlob`]: `*` stays within a segment, `**` crosses them). It copies the pipeline facts into AWS session tags so that a
//! role's trust policy can test them as `aws:RequestTag/...`.
//!
//! Configuration (the issuer entry's `mapper_config`), every member optional but at least one
//! id list non-empty, and `transitive_tag_keys` naming tags of [`TAGGED_CLAIMS`]; a
//! configuration that breaks this is refused when the entry is loaded ([`validate`]):
//!
//! ```json
//! {
//!   "allowed_namespace_ids": ["72"],
//!   "allowed_namespace_paths": ["my-group", "my-group/**"],
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

use claimex_mapper::{Deny, Input, Outbound, PathGlobs, Value, allowed_by, sanitize_value};
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

/// The deny codes of this mapper (besides the SDK's `missing_claim` and `invalid_claim` for
/// a token without a string `sub`, `invalid_sub` for a `sub` AWS STS would refuse (not 6 to
/// 255 characters), and `invalid_session_tags`).
pub mod codes {
    /// `allowed_namespace_ids` or `allowed_namespace_paths` is set and the project's
    /// namespace is not on it.
    pub const NAMESPACE_NOT_ALLOWED: &str = "namespace_not_allowed";
    /// `allowed_project_ids` is set and the project is not on it.
    pub const PROJECT_NOT_ALLOWED: &str = "project_not_allowed";
    /// `require_ref_protected` is set and the ref is not protected.
    pub const REF_NOT_PROTECTED: &str = "ref_not_protected";
    /// `allowed_refs` is set and the ref matches none of its globs.
    pub const REF_NOT_ALLOWED: &str = "ref_not_allowed";
    /// `allowed_environments` is set and the job runs in none of them.
    pub const ENVIRONMENT_NOT_ALLOWED: &str = "environment_not_allowed";
}

/// The mapper configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Numeric namespace ids (`namespace_id`, the project's direct group or user namespace).
    pub allowed_namespace_ids: Vec<String>,
    /// Namespace paths (`namespace_path`) allowed, as globs: `my-group/**` is every subgroup.
    /// A path can be renamed, and after that taken by someone else: prefer ids where they
    /// suffice.
    pub allowed_namespace_paths: PathGlobs,
    /// Numeric project ids (`project_id`).
    pub allowed_project_ids: Vec<String>,
    /// Only tokens whose `ref_protected` is true (GitLab sends the string `"true"`).
    pub require_ref_protected: bool,
    /// When non-empty, only refs (the `ref` claim) matching these globs.
    pub allowed_refs: PathGlobs,
    /// When non-empty, only jobs running in an environment matching these globs
    /// (`production`, `review/*`).
    pub allowed_environments: PathGlobs,
    /// Tag keys to mark transitive.
    pub transitive_tag_keys: Vec<String>,
    /// The outbound `aud`; the host's default (`sts.amazonaws.com`) when absent.
    pub audience: Option<String>,
}

/// Refuses, when the issuer entry is loaded, a configuration that could allow no project or
/// names a transitive tag this mapper never sets.
pub fn validate(config: &Config) -> Result<(), String> {
    if let Some(key) = config
        .transitive_tag_keys
        .iter()
        .find(|k| !TAGGED_CLAIMS.contains(&k.as_str()))
    {
        return Err(format!(
            "transitive tag key {key:?} is not one of the tags ({})",
            TAGGED_CLAIMS.join(", ")
        ));
    }
    if config.allowed_namespace_ids.is_empty()
        && config.allowed_namespace_paths.is_empty()
        && config.allowed_project_ids.is_empty()
    {
        return Err(
            "no project is allowed: set allowed_namespace_ids, allowed_namespace_paths or allowed_project_ids"
                .into(),
        );
    }
    Ok(())
}

/// Checks that the claim `name` is on `allowed` (when `allowed` is non-empty), recording the
/// check as `name`.
fn check_id(
    input: &Input,
    name: &str,
    code: &'static str,
    key: &str,
    allowed: &[String],
) -> Result<(), Deny> {
    if allowed.is_empty() {
        return Ok(());
    }
    let id = input.text_claim(name);
    let ok = id
        .as_ref()
        .is_some_and(|id| allowed.iter().any(|a| a == id));
    let what = || {
        format!(
            "project {}: {name} {}",
            input.str_claim("project_path").unwrap_or("<none>"),
            id.as_deref().unwrap_or("<none>")
        )
    };
    let verdict = if ok { "is allowed" } else { "is not allowed" };
    if input.check(name, ok, || {
        format!("{} {verdict} ({})", what(), allowed_by(key, allowed))
    }) {
        Ok(())
    } else {
        Err(Deny::new(
            code,
            format!("{} is not allowed: {}", what(), allowed_by(key, allowed)),
        ))
    }
}

/// Decides on one GitLab CI token.
pub fn map(input: &Input, config: &Config) -> Result<Outbound, Deny> {
    check_id(
        input,
        "namespace_id",
        codes::NAMESPACE_NOT_ALLOWED,
        "allowed_namespace_ids",
        &config.allowed_namespace_ids,
    )?;
    if !config.allowed_namespace_paths.is_empty() {
        let path = input.str_claim("namespace_path");
        let ok = path.is_some_and(|p| config.allowed_namespace_paths.is_match(p));
        let what = || {
            format!(
                "project {}: namespace_path {}",
                input.str_claim("project_path").unwrap_or("<none>"),
                path.unwrap_or("<none>")
            )
        };
        let verdict = if ok { "is allowed" } else { "is not allowed" };
        if !input.check("namespace_path", ok, || format!("{} {verdict}", what())) {
            return Err(Deny::new(
                codes::NAMESPACE_NOT_ALLOWED,
                format!("{} is not allowed", what()),
            ));
        }
    }
    check_id(
        input,
        "project_id",
        codes::PROJECT_NOT_ALLOWED,
        "allowed_project_ids",
        &config.allowed_project_ids,
    )?;

    if config.require_ref_protected {
        let protected = match input.claim("ref_protected") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let git_ref = || format!("ref {:?}", input.str_claim("ref").unwrap_or("<none>"));
        let verdict = if protected {
            "is protected"
        } else {
            "is not protected"
        };
        if !input.check("ref_protected", protected, || {
            format!("{} {verdict}", git_ref())
        }) {
            return Err(Deny::new(
                codes::REF_NOT_PROTECTED,
                format!(
                    "{} is not protected (ref_protected is {}): mapper_config.require_ref_protected \
                     is true; protect the ref in GitLab or run from a protected one",
                    git_ref(),
                    match input.claim("ref_protected") {
                        None | Some(Value::Null) => "missing".to_owned(),
                        Some(v) => v.to_string(),
                    }
                ),
            ));
        }
    }

    if !config.allowed_refs.is_empty() {
        let git_ref = input.str_claim("ref").unwrap_or_default();
        let ok = config.allowed_refs.is_match(git_ref);
        let verdict = if ok { "is allowed" } else { "is not allowed" };
        let allows = || allowed_by("allowed_refs", config.allowed_refs.patterns());
        if !input.check("ref", ok, || {
            format!("ref {git_ref:?} {verdict} ({})", allows())
        }) {
            return Err(Deny::new(
                codes::REF_NOT_ALLOWED,
                format!("ref {git_ref:?} is not allowed: {}", allows()),
            ));
        }
    }

    if !config.allowed_environments.is_empty() {
        let env = input.str_claim("environment");
        let ok = env.is_some_and(|e| config.allowed_environments.is_match(e));
        let env = env.unwrap_or("<none>");
        let verdict = if ok { "is allowed" } else { "is not allowed" };
        let allows = || {
            allowed_by(
                "allowed_environments",
                config.allowed_environments.patterns(),
            )
        };
        if !input.check("environment", ok, || {
            format!("environment {env:?} {verdict} ({})", allows())
        }) {
            return Err(Deny::new(
                codes::ENVIRONMENT_NOT_ALLOWED,
                format!("environment {env:?} is not allowed: {}", allows()),
            ));
        }
    }

    let mut out = Outbound::new().sub(input.require_sub("sub")?);
    if let Some(aud) = &config.audience {
        out = out.aud(aud.as_str());
    }
    let mut present = Vec::with_capacity(TAGGED_CLAIMS.len());
    for name in TAGGED_CLAIMS {
        if let Some(value) = input.text_claim(name) {
            out = out.tag(name, sanitize_value(&value));
            present.push(name);
        }
    }
    // A transitive key whose claim is missing from this token is skipped with its tag.
    for key in &config.transitive_tag_keys {
        if present.contains(&key.as_str()) {
            out = out.make_transitive(key.as_str());
        }
    }
    out.validate()?;
    Ok(out)
}

claimex_mapper::export_mapper!(map, validate = validate);

#[cfg(test)]
mod tests {
    use super::*;
    use claimex_mapper::{Map, TAGS_CLAIM, json, load_config};

    const CLAIMS: &str = include_str!("../../../examples/claims/gitlab.json");

    fn claims() -> Value {
        serde_json::from_str(CLAIMS).unwrap()
    }

    /// Runs the mapper on `claims` with `config`, checked as the host checks it at load.
    fn input_with(claims: Value, config: Value) -> Result<Outbound, Deny> {
        let config: Config = load_config(&config.to_string(), validate).unwrap();
        map(
            &Input::new("gitlab", "https://gitlab.example.com", claims),
            &config,
        )
    }

    fn input(config: Value) -> Result<Outbound, Deny> {
        input_with(claims(), config)
    }

    fn refused(config: Value) -> String {
        load_config::<Config>(&config.to_string(), validate).unwrap_err()
    }

    fn allowed(result: Result<Outbound, Deny>) -> Map<String, Value> {
        match result {
            Ok(out) => out.into_claims(),
            Err(deny) => panic!("denied: {deny}"),
        }
    }

    /// The reason of a denial, after checking its code.
    fn denied_with(code: &str, result: Result<Outbound, Deny>) -> String {
        match result {
            Err(deny) => {
                assert_eq!(deny.code(), code, "{deny}");
                deny.reason().to_owned()
            }
            Ok(out) => panic!("allowed: {:?}", out.into_claims()),
        }
    }

    #[test]
    fn allows_a_listed_namespace_and_tags_the_pipeline() {
        let claims = allowed(input(
            json!({"allowed_namespace_ids": ["72"], "transitive_tag_keys": ["project_path"]}),
        ));
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
        allowed(input(json!({"allowed_project_ids": ["22"]})));
        allowed(input(
            json!({"allowed_namespace_ids": ["72"], "allowed_project_ids": ["22", "23"]}),
        ));
    }

    #[test]
    fn denies_other_namespaces_and_projects() {
        let reason = denied_with(
            codes::NAMESPACE_NOT_ALLOWED,
            input(json!({"allowed_namespace_ids": ["73"]})),
        );
        assert_eq!(
            reason,
            "project my-group/my-project: namespace_id 72 is not allowed: \
             mapper_config.allowed_namespace_ids allows \"73\""
        );
        let reason = denied_with(
            codes::PROJECT_NOT_ALLOWED,
            input(json!({"allowed_project_ids": ["21"]})),
        );
        assert!(reason.contains("project_id 22"), "{reason}");
        // Both lists must hold.
        denied_with(
            "project_not_allowed",
            input(json!({"allowed_namespace_ids": ["72"], "allowed_project_ids": ["21"]})),
        );
        denied_with(
            "namespace_not_allowed",
            input(json!({"allowed_namespace_ids": ["1"], "allowed_project_ids": ["22"]})),
        );
    }

    #[test]
    fn allows_namespaces_by_path_glob() {
        let with_path = |path: &str| {
            let mut claims = claims();
            claims["namespace_path"] = json!(path);
            claims
        };
        let config = json!({"allowed_namespace_paths": ["my-group", "my-group/**"]});
        allowed(input(config.clone()));
        allowed(input_with(with_path("my-group/sub/deeper"), config.clone()));
        for other in ["my-group-2", "other/my-group", "my-groupx/sub"] {
            let reason = denied_with(
                codes::NAMESPACE_NOT_ALLOWED,
                input_with(with_path(other), config.clone()),
            );
            assert_eq!(
                reason,
                format!("project my-group/my-project: namespace_path {other} is not allowed")
            );
        }
        // `*` stays within one segment: a subgroup of a subgroup is not admitted.
        let one_level = json!({"allowed_namespace_paths": ["my-group/*"]});
        allowed(input_with(with_path("my-group/sub"), one_level.clone()));
        denied_with(
            "namespace_not_allowed",
            input_with(with_path("my-group/sub/internal"), one_level),
        );
        // Exclusions, and a missing claim.
        let but_not = json!({"allowed_namespace_paths": ["my-group/**", "!my-group/secret/**"]});
        allowed(input_with(with_path("my-group/a"), but_not.clone()));
        denied_with(
            "namespace_not_allowed",
            input_with(with_path("my-group/secret/x"), but_not.clone()),
        );
        let mut no_path = claims();
        no_path.as_object_mut().unwrap().remove("namespace_path");
        let reason = denied_with("namespace_not_allowed", input_with(no_path, but_not));
        assert!(
            reason.ends_with("namespace_path <none> is not allowed"),
            "{reason}"
        );
        // With ids too, both must hold.
        denied_with(
            "namespace_not_allowed",
            input(json!({"allowed_namespace_ids": ["72"], "allowed_namespace_paths": ["x/**"]})),
        );
        // An invalid glob refuses the configuration at load.
        let reason = refused(json!({"allowed_namespace_paths": ["my-group/[x"]}));
        assert_eq!(
            reason,
            "glob \"my-group/[x\": [ without a closing ] (write \\[ for a literal [)"
        );
        let reason = refused(json!({"allowed_project_ids": ["22"], "allowed_refs": ["!main"]}));
        assert!(
            reason.contains("cannot start with an exclusion"),
            "{reason}"
        );
    }

    #[test]
    fn refuses_empty_and_invalid_configs_at_load() {
        let reason = refused(Value::Null);
        assert!(reason.starts_with("no project is allowed"), "{reason}");
        let reason = refused(json!({"allowed_namespace_ids": []}));
        assert!(reason.starts_with("no project is allowed"), "{reason}");
        let reason = refused(json!({"allowed_namespaces": ["my-group"]}));
        assert!(
            reason.starts_with("unknown field `allowed_namespaces`"),
            "{reason}"
        );
        let reason = refused(json!({"allowed_project_ids": [22]}));
        assert_eq!(reason, "invalid type: integer `22`, expected a string");
        let reason = refused(json!(["22"]));
        assert!(reason.starts_with("invalid type"), "{reason}");
        let reason =
            refused(json!({"allowed_project_ids": ["22"], "transitive_tag_keys": ["nope"]}));
        assert!(
            reason.contains("\"nope\" is not one of the tags"),
            "{reason}"
        );
    }

    #[test]
    fn requires_a_protected_ref() {
        let config = json!({"allowed_project_ids": ["22"], "require_ref_protected": true});
        allowed(input(config.clone()));
        let mut unprotected = claims();
        unprotected["ref_protected"] = json!("false");
        let reason = denied_with(
            codes::REF_NOT_PROTECTED,
            input_with(unprotected.clone(), config.clone()),
        );
        assert!(
            reason.starts_with("ref \"main\" is not protected (ref_protected is \"false\")"),
            "{reason}"
        );
        assert!(
            reason.contains("mapper_config.require_ref_protected"),
            "{reason}"
        );
        unprotected["ref_protected"] = json!(true);
        allowed(input_with(unprotected.clone(), config.clone()));
        unprotected.as_object_mut().unwrap().remove("ref_protected");
        denied_with("ref_not_protected", input_with(unprotected.clone(), config));
        // Not required: an unprotected ref is fine.
        allowed(input_with(
            unprotected,
            json!({"allowed_project_ids": ["22"]}),
        ));
    }

    #[test]
    fn restricts_refs_and_environments() {
        let base = json!({"allowed_namespace_ids": ["72"]});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        allowed(input(with("allowed_refs", json!(["main"]))));
        allowed(input(with("allowed_refs", json!(["release/*", "m*n"]))));
        // `*` stays within a segment; `**` crosses them.
        let mut nested = claims();
        nested["ref"] = json!("release/1.0/hotfix");
        denied_with(
            codes::REF_NOT_ALLOWED,
            input_with(nested.clone(), with("allowed_refs", json!(["release/*"]))),
        );
        allowed(input_with(
            nested,
            with("allowed_refs", json!(["release/**"])),
        ));
        let reason = denied_with(
            codes::REF_NOT_ALLOWED,
            input(with("allowed_refs", json!(["release/*"]))),
        );
        assert!(reason.contains("\"main\""), "{reason}");
        allowed(input(with("allowed_environments", json!(["production"]))));
        let reason = denied_with(
            codes::ENVIRONMENT_NOT_ALLOWED,
            input(with("allowed_environments", json!(["staging"]))),
        );
        assert!(reason.contains("production"), "{reason}");
        allowed(input(with("allowed_environments", json!(["prod*"]))));
        let mut review = claims();
        review["environment"] = json!("review/feature-x");
        allowed(input_with(
            review.clone(),
            with("allowed_environments", json!(["review/*"])),
        ));
        denied_with(
            codes::ENVIRONMENT_NOT_ALLOWED,
            input_with(review, with("allowed_environments", json!(["review"]))),
        );
        let mut no_env = claims();
        no_env.as_object_mut().unwrap().remove("environment");
        let reason = denied_with(
            "environment_not_allowed",
            input_with(no_env, with("allowed_environments", json!(["production"]))),
        );
        assert_eq!(
            reason,
            "environment \"<none>\" is not allowed: mapper_config.allowed_environments allows \"production\""
        );
    }

    #[test]
    fn skips_missing_claims_and_sanitizes_values() {
        let mut claims = claims();
        let obj = claims.as_object_mut().unwrap();
        obj.remove("environment");
        obj.remove("user_login");
        obj.insert("pipeline_source".into(), json!("merge_request_event#1"));
        let out = allowed(input_with(claims, json!({"allowed_project_ids": ["22"]})));
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
        let out = allowed(input_with(claims, config));
        assert_eq!(
            out[TAGS_CLAIM]["transitive_tag_keys"],
            json!(["project_path"])
        );
        assert!(claimex_mapper::tags::check_claim(&out[TAGS_CLAIM]).is_ok());
    }

    #[test]
    fn denies_a_missing_sub() {
        let mut no_sub = claims();
        no_sub.as_object_mut().unwrap().remove("sub");
        denied_with(
            "missing_claim",
            input_with(no_sub, json!({"allowed_project_ids": ["22"]})),
        );
    }

    /// Issue 14: a `sub` AWS STS would refuse is a deny that says so.
    #[test]
    fn denies_a_sub_aws_would_refuse() {
        for sub in ["x".repeat(256), String::new()] {
            let mut claims = claims();
            claims["sub"] = json!(sub);
            let reason = denied_with(
                "invalid_sub",
                input_with(claims, json!({"allowed_project_ids": ["22"]})),
            );
            assert!(reason.contains("6 to 255"), "{reason}");
        }
    }

    /// Issue 14: a claim value starting with `aws:` is made a valid tag value.
    #[test]
    fn a_value_with_the_reserved_prefix_is_sanitized() {
        let mut claims = claims();
        claims["project_path"] = json!("AWS:group/project");
        let out = allowed(input_with(claims, json!({"allowed_project_ids": ["22"]})));
        assert_eq!(
            out[TAGS_CLAIM]["principal_tags"]["project_path"],
            json!(["AWS_group/project"])
        );
    }

    #[test]
    fn explains_its_checks() {
        let config: Config = load_config(
            &json!({"allowed_namespace_ids": ["72"], "require_ref_protected": true,
                    "allowed_environments": ["staging"]})
            .to_string(),
            validate,
        )
        .unwrap();
        let input = Input::new("gitlab", "https://gitlab.example.com", claims()).explaining();
        denied_with("environment_not_allowed", map(&input, &config));
        let checks: Vec<(String, bool)> = input
            .checks()
            .into_iter()
            .map(|c| (c.name, c.passed))
            .collect();
        assert_eq!(
            checks,
            [
                ("namespace_id".to_owned(), true),
                ("ref_protected".to_owned(), true),
                ("environment".to_owned(), false),
            ]
        );
    }

    #[test]
    fn sets_the_configured_audience() {
        let claims = allowed(input(
            json!({"allowed_project_ids": ["22"], "audience": "sts.amazonaws.com"}),
        ));
        assert_eq!(claims["aud"], "sts.amazonaws.com");
    }
}
