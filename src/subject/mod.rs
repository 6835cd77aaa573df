//! Subject kinds: the credentials a caller presents to prove who it is, one folder per kind.
//!
//! - [`jwt`]: kind `oidc`, an OIDC id-token from a CI system (GitHub Actions, GitLab CI);
//! - [`aws_iam`]: kind `aws-iam`, an AWS IAM identity proven by a signed GetCallerIdentity.
//!
//! Each kind implements [`SubjectVerifier`]: it reads the credential without trusting it,
//! says which registered issuer the credential claims to come from ([`Claimed`]), receives
//! that issuer's [`SubjectPolicy`] from the caller (the exchange chooses it from the
//! registry), and verifies the credential against it through its own ports. What comes out is
//! a [`Verified`] subject: the claims the mapper sees, whatever the kind.
//!
//! Adding a kind: a folder here with its policy, its spec (the fields of its issuer entries)
//! and its verifier; a variant in [`SubjectKind`] and [`SubjectPolicy`]; its verifier built
//! in `app`.

pub mod aws_iam;
pub mod jwt;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::ExchangeError;

/// The kinds of credential claimex accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// An OIDC id-token (a JWT) from a registered issuer.
    Oidc,
    /// An AWS IAM identity: a signed `sts:GetCallerIdentity` request, replayed to STS.
    AwsIam,
}

impl SubjectKind {
    /// The name used in issuer entries (`kind = "oidc"`), audit lines and mappers.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Oidc => "oidc",
            SubjectKind::AwsIam => "aws-iam",
        }
    }

    /// The kind named `name` in an issuer entry.
    pub fn parse(name: &str) -> Option<SubjectKind> {
        match name {
            "oidc" => Some(SubjectKind::Oidc),
            "aws-iam" => Some(SubjectKind::AwsIam),
            _ => None,
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The subject part of an issuer entry: plain data, one variant per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPolicy {
    /// An OIDC issuer.
    Oidc(Arc<jwt::OidcPolicy>),
    /// AWS identities.
    AwsIam(Arc<aws_iam::AwsIamPolicy>),
}

impl SubjectPolicy {
    /// The kind of subject this entry accepts.
    pub fn kind(&self) -> SubjectKind {
        match self {
            SubjectPolicy::Oidc(_) => SubjectKind::Oidc,
            SubjectPolicy::AwsIam(_) => SubjectKind::AwsIam,
        }
    }

    /// The URL a credential names to select this entry without an issuer id, if any.
    pub fn url(&self) -> Option<&str> {
        match self {
            SubjectPolicy::Oidc(p) => Some(&p.url),
            SubjectPolicy::AwsIam(_) => None,
        }
    }

    /// The OIDC policy, for an entry of kind `oidc`.
    pub fn oidc(&self) -> Option<&jwt::OidcPolicy> {
        match self {
            SubjectPolicy::Oidc(p) => Some(p),
            SubjectPolicy::AwsIam(_) => None,
        }
    }
}

/// A field of an issuer entry that does not hold, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PolicyError {
    /// The field.
    pub field: &'static str,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl PolicyError {
    /// An error in `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> PolicyError {
        PolicyError {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks a list of names in an issuer entry: non-empty, each 1–255 characters, not blank.
pub fn check_names(field: &'static str, list: &[String]) -> Result<(), PolicyError> {
    if list.is_empty() {
        return Err(PolicyError::new(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if let Some(bad) = list.iter().find(|s| s.trim().is_empty() || s.len() > 255) {
        return Err(PolicyError::new(
            field,
            format!("{field} has an empty or over-long entry {bad:?}"),
        ));
    }
    Ok(())
}

/// What a credential says of its issuer before it is verified: only to choose the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed<'a> {
    /// It names an issuer URL (an id-token's `iss`).
    Issuer(&'a str),
    /// It names none; the text says what is missing.
    Unnamed(&'static str),
    /// It names none and cannot (a signed AWS request): without an issuer id, the one entry
    /// of the credential's kind is used, when exactly one is registered.
    OnlyOfKind,
}

/// How a verifier asks for the entry that verifies a credential: given what the credential
/// claims, the caller answers with the chosen entry's subject policy (or the refusal).
pub type Choose<'a> = dyn FnMut(Claimed<'_>) -> Result<SubjectPolicy, ExchangeError> + Send + 'a;

/// A credential that passed every check of its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The claims the mapper sees, as one JSON object (for an id-token, its payload exactly
    /// as signed).
    pub claims_json: String,
    /// Who issued the credential (an id-token's `iss`), for the audit line.
    pub iss: Option<String>,
    /// Whom it names (an id-token's `sub`), for the audit line.
    pub sub: Option<String>,
    /// Its id (an id-token's `jti`), for the audit line.
    pub jti: Option<String>,
}

/// Verifies credentials of one kind.
#[async_trait]
pub trait SubjectVerifier: Send + Sync {
    /// The kind this verifier reads.
    fn kind(&self) -> SubjectKind;

    /// Verifies `credential` at `now` (seconds since the Unix epoch) against the entry
    /// `choose` picks for what the credential claims.
    async fn verify(
        &self,
        credential: &str,
        choose: &mut Choose<'_>,
        now: u64,
    ) -> Result<Verified, ExchangeError>;
}
