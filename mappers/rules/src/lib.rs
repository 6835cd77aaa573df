//! The stock claimex mapper driven by configuration instead of code.
//!
//! The issuer entry's `mapper_config` holds an ordered list of rules. Each rule has
//! conditions on the inbound claims; the **first rule whose conditions all hold decides**:
//! it allows the exchange with the session tags, `sub` and `aud` it lists (or, for a `deny`
//! rule, refuses it). When no rule matches, the exchange is refused with a reason that names
//! every rule tried and, for each, one condition that failed. A configuration that is not
//! valid is refused when the issuer entry is loaded (`validate-config`), with a message
//! saying what is wrong and where, so the entry never serves; the mapper never panics on
//! input. With `claimex mapper test --explain`, each rule tried is listed as a check.
//!
//! ```json
//! {
//!   "default_tags": ["repository", "ref"],
//!   "rules": [
//!     {
//!       "name": "no-forks",
//!       "when": {"repository_owner": {"not": "octo-org"}},
//!       "deny": "only octo-org repositories may deploy"
//!     },
//!     {
//!       "name": "prod-deploys",
//!       "when": {
//!         "repository_owner_id": "65",
//!         "ref": {"glob": ["refs/heads/main", "refs/tags/v*"]},
//!         "ref_protected": true,
//!         "environment": {"one_of": ["prod", "production"]}
//!       },
//!       "tags": {"env": "environment", "tier": {"value": "prod"}},
//!       "transitive_tag_keys": ["repository"],
//!       "sub": {"template": "gha:{repository}:{environment}"},
//!       "aud": "sts.amazonaws.com"
//!     },
//!     {
//!       "name": "any-octo-org-job",
//!       "when": {"repository_owner_id": "65"}
//!     }
//!   ]
//! }
//! ```
//!
//! # Top level
//!
//! | member | meaning |
//! |---|---|
//! | `rules` | required, non-empty list of rules, tried in order |
//! | `default_tags` | optional tags (same forms as a rule's `tags`) added by every allowing rule; a rule's own tag with the same key (ignoring case) replaces the default |
//!
//! # A rule
//!
//! | member | meaning |
//! |---|---|
//! | `name` | optional, unique; used in deny reasons (default `rule N`, counting from 1) |
//! | `when` | required object `CLAIM_PATH: CONDITION`; all must hold. `{}` matches every token |
//! | `tags` | session tags: a list of claim paths (the path is the tag key), or an object `TAG_KEY: SOURCE` |
//! | `transitive_tag_keys` | tag keys (of `tags` or `default_tags`) to mark transitive |
//! | `sub` | a SOURCE for the outbound `sub`; default: the inbound `sub` claim |
//! | `aud` | the outbound `aud`: a string or a list of strings; default: the host's (`sts.amazonaws.com`) |
//! | `deny` | a reason: a matching token is refused with it (the rule then takes no `tags`, `transitive_tag_keys`, `sub` or `aud`) |
//! | `code` | with `deny` only: the deny code (1 to 64 characters of `[a-z0-9_]`, default `rule_denied`) |
//!
//! Unknown members are refused (so a typo never silently widens a rule).
//!
//! # Claim paths
//!
//! A claim name (`repository`), or a dotted path into nested objects (`context.repo.id`).
//! A top-level claim whose own name contains dots wins over the nested reading. This covers
//! lambda_token_auth's nested `claim_values` (`{"a": {"b": "c"}}` is written `"a.b": "c"`).
//!
//! # Conditions
//!
//! | condition | holds when the claim |
//! |---|---|
//! | `"text"`, `42`, `true` | equals it (see below) |
//! | `{"glob": "refs/heads/release/*"}` or `{"glob": [..]}` | matches the globs, GitHub's filter patterns ([`claimex_mapper::PathGlob`]): `*` any run of characters but `/`, `**` any run including `/`, `?`/`+` the preceding character optional / repeated, `[a-z0-9]` one of, `\` escapes; in a list, the last matching pattern decides and a leading `!` excludes (`["refs/heads/**", "!refs/heads/dev/**"]`) |
//! | `{"one_of": ["a", "b", 3]}` | equals one of them |
//! | `{"exists": true}` / `{"exists": false}` | is present and not null / is absent or null |
//! | `{"contains": "x"}` | is a list holding an element equal to `"x"`, or is itself equal to `"x"` (for `aud`, which may be either) |
//! | `{"not": CONDITION}` | does not satisfy CONDITION (a missing claim satisfies any `not` of a test that needs it) |
//! | `{"glob": .., "not": ..}` | satisfies every operator in the object |
//!
//! **Equality** compares scalars (strings, numbers, booleans) by their JSON text, because
//! GitHub and GitLab send booleans and most ids as strings: `true` matches the claim `true`
//! and the claim `"true"`; `22` matches `22` and `"22"`; `"22"` matches `22` as well. Strings
//! otherwise match exactly (case-sensitive, no trimming). Objects, arrays and null never equal
//! a scalar; a missing claim fails every condition except `{"exists": false}` and `not`.
//! `null`, bare lists and empty objects are refused as conditions (use `exists`, `one_of`).
//! Within a rule, conditions are checked in the alphabetical order of their claim paths; the
//! deny reason names the first that failed.
//!
//! # Sources (tag values and `sub`)
//!
//! | source | value |
//! |---|---|
//! | `"claim.path"` or `{"claim": "claim.path"}` | the claim as text (numbers and booleans printed) |
//! | `{"value": "text"}` | the literal text |
//! | `{"template": "gha:{repository}:{environment}"}` | the text with each `{claim.path}` replaced; `{{` and `}}` are literal braces |
//!
//! A tag whose claim is missing (or is an object, array or null) is left out, together with
//! its transitive mark. Tag values from claims and templates are made valid for AWS with
//! [`sanitize_value`] (disallowed characters become `_`, cut to 256 characters); literal
//! values and all keys are checked against AWS's rules when the configuration is read. A
//! `sub` that has no value, or is not 6 to 255 characters, refuses the exchange.
//! The finished tags are checked with AWS's rules before the mapper allows.
//!
//! # Deny codes
//!
//! | code | when |
//! |---|---|
//! | `no_rule_matched` | no rule matched; the reason names each rule and its first failed condition |
//! | `rule_denied` (or the rule's `code`) | a `deny` rule matched |
//! | `invalid_sub` | the matching rule's `sub` has no value for this token, or not 6 to 255 characters |
//! | `invalid_session_tags` | the matching rule's tags break AWS's rules for this token |

use claimex_mapper::{Deny, Input, Outbound, Value, sanitize_value};

mod config;
pub use config::{Check, Condition, Config, Piece, Rule, Source, TagSpec};

/// Longest deny reason listing the rules tried, in bytes (before the `... N more` tail).
const MAX_REASON: usize = 1024;
/// Longest claim or condition quoted in a deny reason, in characters.
const MAX_QUOTE: usize = 80;

/// The deny codes of this mapper.
pub mod codes {
    /// No rule matched the token.
    pub const NO_RULE_MATCHED: &str = "no_rule_matched";
    /// A `deny` rule matched and sets no `code` of its own.
    pub const RULE_DENIED: &str = "rule_denied";
    /// The matching rule's `sub` has no value for this token, or not 6 to 255 characters.
    pub const INVALID_SUB: &str = claimex_mapper::codes::INVALID_SUB;
    /// The matching rule's session tags break AWS's rules for this token.
    pub const INVALID_SESSION_TAGS: &str = claimex_mapper::codes::INVALID_SESSION_TAGS;
}

/// Decides on one token with the rules in its configuration.
pub fn map(input: &Input, config: &Config) -> Result<Outbound, Deny> {
    config.decide(input)
}

claimex_mapper::export_mapper!(map);

impl Config {
    /// Applies the first matching rule, or refuses with the rules tried.
    pub fn decide(&self, input: &Input) -> Result<Outbound, Deny> {
        let mut misses = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let failure = rule.first_failure(input);
            let matched = failure.is_none();
            input.check(&rule.name, matched, || {
                failure.clone().unwrap_or_else(|| "matched".to_owned())
            });
            match failure {
                None => return rule.apply(input),
                Some(why) => misses.push(format!("{:?}: {why}", rule.name)),
            }
        }
        let mut reason = String::from("no rule matched: ");
        for (i, miss) in misses.iter().enumerate() {
            if i > 0 && reason.len() + miss.len() > MAX_REASON {
                reason.push_str(&format!("; ... and {} more", misses.len() - i));
                break;
            }
            if i > 0 {
                reason.push_str("; ");
            }
            reason.push_str(miss);
        }
        Err(Deny::new(codes::NO_RULE_MATCHED, reason))
    }
}

impl Rule {
    /// The first condition of this rule that the token fails, described; `None` on a match.
    pub fn first_failure(&self, input: &Input) -> Option<String> {
        self.when.iter().find_map(|check| {
            let claim = input.claim(&check.path);
            if check.condition.holds(claim) {
                return None;
            }
            let found = match claim {
                None => "is missing".to_owned(),
                Some(Value::Null) => "is null".to_owned(),
                Some(value) => format!("is {}", quote(&value.to_string())),
            };
            Some(format!(
                "{} {found}, wanted {}",
                check.path,
                quote(&check.written)
            ))
        })
    }

    /// The decision of this rule for a token that matched it.
    pub fn apply(&self, input: &Input) -> Result<Outbound, Deny> {
        if let Some(reason) = &self.deny {
            return Err(Deny::new(
                self.code.clone(),
                format!("rule {:?} denies: {reason}", self.name),
            ));
        }
        let Some(sub) = self.sub.resolve(input) else {
            return Err(Deny::new(
                codes::INVALID_SUB,
                format!(
                    "rule {:?} matched, but its sub ({}) has no value in this token",
                    self.name,
                    self.sub.describe()
                ),
            ));
        };
        if let Err(reason) = claimex_mapper::check_sub(&sub) {
            return Err(Deny::new(
                codes::INVALID_SUB,
                format!(
                    "rule {:?} matched, but its sub ({}) {reason}",
                    self.name,
                    self.sub.describe()
                ),
            ));
        }
        let mut out = Outbound::new().sub(sub);
        if let Some(aud) = &self.aud {
            out = out.claim("aud", aud.clone());
        }
        let mut present: Vec<&str> = Vec::with_capacity(self.tags.len());
        for tag in &self.tags {
            let value = match &tag.source {
                Source::Literal(text) => Some(text.clone()),
                source => source.resolve(input).map(|v| sanitize_value(&v)),
            };
            if let Some(value) = value {
                out = out.tag(tag.key.as_str(), value);
                present.push(&tag.key);
            }
        }
        for key in &self.transitive_tag_keys {
            if present.contains(&key.as_str()) {
                out = out.make_transitive(key.as_str());
            }
        }
        if let Err(e) = out.validate() {
            return Err(Deny::new(
                codes::INVALID_SESSION_TAGS,
                format!(
                    "rule {:?} matched, but its session tags are invalid: {e}",
                    self.name
                ),
            ));
        }
        Ok(out)
    }
}

impl Condition {
    /// Whether `claim` (`None` when missing) satisfies this condition.
    pub fn holds(&self, claim: Option<&Value>) -> bool {
        let present = claim.filter(|v| !v.is_null());
        match self {
            Condition::Equals(want) => present.is_some_and(|c| scalar_eq(want, c)),
            Condition::Glob(globs) => present
                .and_then(scalar_text)
                .is_some_and(|text| globs.is_match(&text)),
            Condition::OneOf(list) => present.is_some_and(|c| list.iter().any(|w| scalar_eq(w, c))),
            Condition::Exists(want) => present.is_some() == *want,
            Condition::Contains(want) => match present {
                Some(Value::Array(items)) => items.iter().any(|item| scalar_eq(want, item)),
                Some(c) => scalar_eq(want, c),
                None => false,
            },
            Condition::Not(inner) => !inner.holds(claim),
            Condition::All(all) => all.iter().all(|c| c.holds(claim)),
        }
    }
}

impl Source {
    /// The value of this source for `input`, `None` when a claim it needs is missing or not
    /// a scalar.
    pub fn resolve(&self, input: &Input) -> Option<String> {
        match self {
            Source::Claim(path) => input.text_claim(path),
            Source::Literal(text) => Some(text.clone()),
            Source::Template(_, pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Claim(path) => out.push_str(&input.text_claim(path)?),
                    }
                }
                Some(out)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Claim(path) => format!("claim {path:?}"),
            Source::Literal(text) => format!("value {text:?}"),
            Source::Template(template, _) => format!("template {template:?}"),
        }
    }
}

/// A scalar's text: strings as they are, numbers and booleans as JSON prints them.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether two scalars are equal for a condition: numbers by value, anything else by text,
/// so `true` equals `"true"` and `22` equals `"22"`. Non-scalars are never equal.
pub fn scalar_eq(want: &Value, claim: &Value) -> bool {
    if let (Value::Number(a), Value::Number(b)) = (want, claim) {
        return a == b || a.as_f64().is_some_and(|a| b.as_f64() == Some(a));
    }
    match (scalar_text(want), scalar_text(claim)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `text`, cut to [`MAX_QUOTE`] characters with `...` when longer.
fn quote(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTE {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX_QUOTE).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests;
