//! The audit line: one structured record per exchange decision.
//!
//! Written through `tracing` under the target `claimex::audit`, as JSON when the server logs
//! JSON. It names who asked (issuer id, inbound `iss`/`sub`/`jti`), what ran (the mapper's
//! SHA-256), what was decided and why (with the mapper's deny code), and what was issued
//! (outbound `sub`/`aud`/`jti`, the signing `kid`, the session-tag keys). It never contains a token or a tag value.

use crate::error::{ErrorCode, ExchangeError};
use crate::subject::SubjectKind;

/// What is known of one exchange, filled in as the pipeline advances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// The kind of credential presented.
    pub subject_kind: Option<SubjectKind>,
    /// The issuer id (requested, then resolved).
    pub issuer_id: Option<String>,
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
        let (decision, error, reason) = match outcome {
            Ok(_) => ("allow", None, None),
            Err(e) => (
                if e.code() == ErrorCode::AccessDenied {
                    "deny"
                } else {
                    "refuse"
                },
                Some(e.refusal.as_str()),
                Some(e.description.as_str()),
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
