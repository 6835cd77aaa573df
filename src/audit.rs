//! The audit line: one structured record per exchange decision.
//!
//! Written through `tracing` under the target `claimex::audit`, as JSON when the server logs
//! JSON. It names who asked (issuer id, inbound `iss`/`sub`/`jti`), what ran (the mapper's
//! SHA-256), what was decided and why (with the mapper's deny code), and what was issued
//! (outbound `sub`/`aud`/`jti`, the signing `kid`, the session-tag keys). It never contains a token or a tag value.

use crate::error::{ErrorCode, ExchangeError};
use crate::mapper::shadow::{Comparison, Decided};
use crate::subject::SubjectKind;

/// What is known of one exchange, filled in as the pipeline advances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// The kind of credential presented.
    pub subject_kind: Option<SubjectKind>,
    /// The issuer id (requested, then resolved).
    pub issuer_id: Option<String>,
    /// Whether `issuer_id` is the registered entry that handled the exchange (not merely the
    /// id the caller asked for): only then may it become a metric label.
    pub issuer_resolved: bool,
    /// The inbound token's verified `iss`.
    pub inbound_iss: Option<String>,
    /// The inbound token's verified `sub`.
    pub inbound_sub: Option<String>,
    /// The inbound token's verified `jti`.
    pub inbound_jti: Option<String>,
    /// The SHA-256 of the mapper module that ran.
    pub mapper_sha256: Option<String>,
    /// The mapper's deny code, when it denied.
    pub deny_code: Option<String>,
    /// What the mapper wrote to stderr, when anything.
    pub mapper_stderr: Option<String>,
    /// The outbound `sub`.
    pub outbound_sub: Option<String>,
    /// The outbound audiences.
    pub outbound_aud: Vec<String>,
    /// The outbound `jti`.
    pub outbound_jti: Option<String>,
    /// The signing key id.
    pub kid: Option<String>,
    /// The session-tag keys.
    pub tag_keys: Vec<String>,
    /// Operator-only detail of a failure (never sent to the caller).
    pub detail: Option<String>,
}

impl Audit {
    /// Writes the audit line for this outcome.
    pub fn emit(&self, outcome: Result<(), &ExchangeError>) {
        let (decision, error, reason, reason_code) = match outcome {
            Ok(_) => ("allow", None, None, None),
            Err(e) => (
                if e.code() == ErrorCode::AccessDenied {
                    "deny"
                } else {
                    "refuse"
                },
                Some(e.refusal.as_str()),
                Some(e.description.as_str()),
                Some(e.reason_code()),
            ),
        };
        fn opt(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or_default()
        }
        tracing::info!(
            target: "claimex::audit",
            decision,
            subject_kind = self.subject_kind.map(SubjectKind::as_str).unwrap_or_default(),
            error = error.unwrap_or_default(),
            reason = reason.unwrap_or_default(),
            reason_code = reason_code.unwrap_or_default(),
            issuer_id = opt(&self.issuer_id),
            inbound_iss = opt(&self.inbound_iss),
            inbound_sub = opt(&self.inbound_sub),
            inbound_jti = opt(&self.inbound_jti),
            mapper_sha256 = opt(&self.mapper_sha256),
            deny_code = opt(&self.deny_code),
            mapper_stderr = opt(&self.mapper_stderr),
            outbound_sub = opt(&self.outbound_sub),
            outbound_aud = %self.outbound_aud.join(","),
            outbound_jti = opt(&self.outbound_jti),
            kid = opt(&self.kid),
            tag_keys = %self.tag_keys.join(","),
            detail = opt(&self.detail),
            "exchange"
        );
    }
}

/// A shadow mapper decided otherwise than the live one.
#[derive(Debug, Clone, Copy)]
pub struct ShadowDisagreement<'a> {
    /// The issuer entry.
    pub issuer_id: &'a str,
    /// The live mapper's module.
    pub mapper_sha256: &'a str,
    /// The shadow mapper's module.
    pub shadow_sha256: &'a str,
    /// The inbound `iss`, `sub`, `jti`.
    pub inbound: &'a [Option<String>; 3],
    /// What the live mapper decided.
    pub live: &'a Decided,
    /// What the shadow decided.
    pub shadow: &'a Decided,
    /// How they differ.
    pub comparison: &'a Comparison,
}

/// Writes the `shadow_disagreement` audit line: both decisions with their codes and reasons,
/// the fields and the tag keys that differ. Never a tag value, never a token.
pub fn shadow_disagreement(d: &ShadowDisagreement<'_>) {
    let [iss, sub, jti] = d.inbound;
    fn opt(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    tracing::warn!(
        target: "claimex::audit",
        event = "shadow_disagreement",
        issuer_id = d.issuer_id,
        inbound_iss = opt(iss),
        inbound_sub = opt(sub),
        inbound_jti = opt(jti),
        mapper_sha256 = d.mapper_sha256,
        shadow_sha256 = d.shadow_sha256,
        live_decision = d.live.kind(),
        live_code = d.live.code(),
        live_reason = d.live.reason(),
        shadow_decision = d.shadow.kind(),
        shadow_code = d.shadow.code(),
        shadow_reason = d.shadow.reason(),
        differences = %d.comparison.fields.join(","),
        tag_keys = %d.comparison.tag_keys.join(","),
        "shadow_disagreement"
    );
}
