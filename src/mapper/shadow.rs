//! Shadow mappers, the pure part: what a decision is once it is reduced to what the caller
//! would get ([`Decided`]), how two decisions are compared ([`compare`]: agreement, or the
//! fields and tag keys that differ, never tag values), and the port through which the
//! exchange hands a comparison to be made off the response path ([`ShadowSink`]).
//!
//! The exchange offers a [`ShadowJob`] after the live decision when the issuer entry names a
//! `shadow_mapper`; the adapter behind [`ShadowSink`] (`shadow_runner.rs`) queues it (bounded:
//! a full queue drops it, counted), runs the shadow, compares, counts, and writes a
//! `shadow_disagreement` audit line when the two differ. `claimex mapper replay` uses the same
//! [`compare`] on recorded claim sets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{ExchangeError, Refusal};
use crate::mint::{CheckedClaims, DEFAULT_AUDIENCE};
use crate::registry::Issuer;

/// What a mapper's decision amounts to for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// A token would be signed with this output (the mapper's JSON, checked).
    Allow(String),
    /// The mapper denied: 403 with this code and reason.
    Deny {
        /// The deny code.
        code: String,
        /// The reason.
        reason: String,
    },
    /// No token and no denial: the mapper failed or its output cannot be signed.
    Refuse {
        /// claimex's reason code (`mapper_failed`, `invalid_mapper_output`).
        code: String,
        /// What went wrong (for the operator).
        detail: String,
    },
}

impl Decided {
    /// The decision an exchange's mapping step reached: allowed with the output as written,
    /// or refused. `detail` is the operator-only detail of a failure, if any.
    pub fn of(
        mapped: &Result<(String, CheckedClaims), ExchangeError>,
        detail: Option<&str>,
    ) -> Decided {
        match mapped {
            Ok((output, _)) => Decided::Allow(output.clone()),
            Err(e) if e.refusal == Refusal::Denied => Decided::Deny {
                code: e.reason_code().to_owned(),
                reason: e.description.clone(),
            },
            Err(e) => Decided::Refuse {
                code: e.reason_code().to_owned(),
                detail: detail.unwrap_or(&e.description).to_owned(),
            },
        }
    }

    /// `allow`, `deny` or `refuse`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decided::Allow(_) => "allow",
            Decided::Deny { .. } => "deny",
            Decided::Refuse { .. } => "refuse",
        }
    }

    /// The deny or reason code; empty for an allow.
    pub fn code(&self) -> &str {
        match self {
            Decided::Allow(_) => "",
            Decided::Deny { code, .. } | Decided::Refuse { code, .. } => code,
        }
    }

    /// The reason or detail; empty for an allow.
    pub fn reason(&self) -> &str {
        match self {
            Decided::Allow(_) => "",
            Decided::Deny { reason, .. } => reason,
            Decided::Refuse { detail, .. } => detail,
        }
    }
}

/// How two decisions compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// What differs besides tags: `decision`, `deny_code`, `refusal`, `sub`, `aud`,
    /// `transitive_tag_keys`, or `claim:NAME` for another claim. Empty when they agree.
    pub fields: Vec<String>,
    /// The session-tag keys whose values differ or that only one side sets (never the values).
    pub tag_keys: Vec<String>,
}

impl Comparison {
    /// Whether the two decisions agree.
    pub fn agrees(&self) -> bool {
        self.fields.is_empty() && self.tag_keys.is_empty()
    }
}

/// Compares two decisions. Two allows agree when their outbound claims are equal (the
/// default audience filled in, tags compared as sets of keys with their values, transitive
/// keys as a set); two denials when their codes are equal (reasons may be reworded); two
/// refusals when their codes are equal.
pub fn compare(a: &Decided, b: &Decided) -> Comparison {
    let mut out = Comparison::default();
    match (a, b) {
        (Decided::Allow(x), Decided::Allow(y)) => compare_outputs(x, y, &mut out),
        (Decided::Deny { code: x, .. }, Decided::Deny { code: y, .. }) => {
            if x != y {
                out.fields.push("deny_code".into());
            }
        }
        (Decided::Refuse { code: x, .. }, Decided::Refuse { code: y, .. }) => {
            if x != y {
                out.fields.push("refusal".into());
            }
        }
        _ => out.fields.push("decision".into()),
    }
    out
}

fn object(json: &str) -> Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn audiences(claims: &Map<String, Value>) -> BTreeSet<String> {
    match claims.get("aud") {
        None => [DEFAULT_AUDIENCE.to_owned()].into(),
        Some(Value::String(a)) => [a.clone()].into(),
        Some(Value::Array(list)) => list.iter().map(|v| v.to_string()).collect(),
        Some(other) => [other.to_string()].into(),
    }
}

fn tags(claims: &Map<String, Value>) -> (BTreeMap<String, Value>, BTreeSet<String>) {
    let tags = claims.get(claimex_tags::TAGS_CLAIM);
    let principal = tags
        .and_then(|t| t.get("principal_tags"))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let transitive = tags
        .and_then(|t| t.get("transitive_tag_keys"))
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (principal, transitive)
}

fn compare_outputs(x: &str, y: &str, out: &mut Comparison) {
    let (x, y) = (object(x), object(y));
    if x.get("sub") != y.get("sub") {
        out.fields.push("sub".into());
    }
    if audiences(&x) != audiences(&y) {
        out.fields.push("aud".into());
    }
    let ((xt, xk), (yt, yk)) = (tags(&x), tags(&y));
    if xk != yk {
        out.fields.push("transitive_tag_keys".into());
    }
    let keys: BTreeSet<&String> = xt.keys().chain(yt.keys()).collect();
    out.tag_keys = keys
        .into_iter()
        .filter(|k| xt.get(*k) != yt.get(*k))
        .cloned()
        .collect();
    let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    for name in names {
        if matches!(name.as_str(), "sub" | "aud") || name == claimex_tags::TAGS_CLAIM {
            continue;
        }
        if x.get(name) != y.get(name) {
            out.fields.push(format!("claim:{name}"));
        }
    }
}

/// One comparison to make: the entry (with its shadow), the verified claims, the live
/// decision, and who asked (for the audit line).
pub struct ShadowJob {
    /// The issuer entry; its `shadow` is the mapper to run.
    pub issuer: Arc<Issuer>,
    /// The verified claims, as the live mapper saw them.
    pub claims_json: String,
    /// The live decision.
    pub live: Decided,
    /// The inbound `iss`, `sub` and `jti`, for the audit line.
    pub inbound: [Option<String>; 3],
}

/// Where the exchange hands comparisons to be made. `offer` must return at once, whatever
/// happens to the job: the answer to the caller never waits for a shadow.
pub trait ShadowSink: Send + Sync {
    /// Takes the job, or drops it (counted) when the queue is full.
    fn offer(&self, job: ShadowJob);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allow(v: Value) -> Decided {
        Decided::Allow(v.to_string())
    }

    fn deny(code: &str) -> Decided {
        Decided::Deny {
            code: code.into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn equal_outputs_agree_whatever_their_order_and_default_aud() {
        let a = allow(json!({"sub": "s", "aud": "sts.amazonaws.com", "x": 1,
            "https://aws.amazon.com/tags": {"principal_tags": {"a": ["1"], "b": ["2"]}, "transitive_tag_keys": ["a"]}}));
        let b = allow(json!({"x": 1, "sub": "s",
            "https://aws.amazon.com/tags": {"transitive_tag_keys": ["a"], "principal_tags": {"b": ["2"], "a": ["1"]}}}));
        assert!(compare(&a, &b).agrees());
        assert!(compare(&deny("c"), &deny("c")).agrees());
    }

    #[test]
    fn differences_name_fields_and_tag_keys_never_values() {
        let a = allow(json!({"sub": "s", "y": 2,
            "https://aws.amazon.com/tags": {"principal_tags": {"a": ["1"], "b": ["2"], "c": ["3"]}}}));
        let b = allow(json!({"sub": "t", "aud": "other",
            "https://aws.amazon.com/tags": {"principal_tags": {"a": ["1"], "b": ["9"], "d": ["3"]}, "transitive_tag_keys": ["a"]}}));
        let c = compare(&a, &b);
        assert_eq!(c.fields, ["sub", "aud", "transitive_tag_keys", "claim:y"]);
        assert_eq!(c.tag_keys, ["b", "c", "d"]);
        assert_eq!(compare(&a, &deny("x")).fields, ["decision"]);
        assert_eq!(compare(&deny("x"), &deny("y")).fields, ["deny_code"]);
    }
}
