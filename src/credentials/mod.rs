//! AWS credentials out: the second output kind, beside [`crate::mint`]. After an exchange,
//! claimex hands the token it just minted to `sts:AssumeRoleWithWebIdentity` and answers with
//! the role session's temporary credentials.
//!
//! Pure logic and a port, no I/O: an issuer entry's [`CredentialsPolicy`] (`allowed_roles`
//! ARN patterns, `default_role_arn`, `max_duration_seconds`), checked at load; the caller's
//! [`CredentialsRequest`] resolved against it into a [`RoleSession`] (the role checked against
//! the patterns before STS is called, the duration bounded, the session name sanitised to
//! STS's charset); the [`RoleAssumer`] port the STS adapter ([`sts`]) implements, its
//! [`StsFailure`]s as typed refusals; and the two answer formats of [`AwsCredentials`]
//! (`credential_process` JSON, shell `export` lines). claimex signs nothing for STS: the call
//! is unsigned, and the role's trust policy decides.

pub mod sts;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{ExchangeError, ReasonCode};
use crate::subject::PolicyError;

/// The shortest session STS grants, seconds (`DurationSeconds` minimum).
pub const MIN_DURATION_SECS: u64 = 900;
/// The longest session STS grants, seconds (`DurationSeconds` maximum; the role's own
/// `MaxSessionDuration` may be lower, and STS refuses above it).
pub const MAX_DURATION_SECS: u64 = 43_200;
/// The session length when the caller names none (STS's own default), capped by the entry.
pub const DEFAULT_DURATION_SECS: u64 = 3_600;
/// `RoleSessionName` length bounds (STS API reference).
const SESSION_NAME_CHARS: std::ops::RangeInclusive<usize> = 2..=64;
/// Longest role ARN STS accepts (`RoleArn`: 20–2048 characters).
const MAX_ROLE_ARN_CHARS: usize = 2048;

/// Which roles an issuer entry's callers may ask credentials for, and for how long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialsPolicy {
    /// Role ARN patterns (`*` any run of characters, `?` one): a role matching none is
    /// refused before STS is called. Empty: the entry hands out no credentials.
    pub allowed_roles: Vec<String>,
    /// The role when the caller names none.
    pub default_role_arn: Option<String>,
    /// The longest session the entry allows, seconds (900–43200; default 43200).
    pub max_duration_secs: u64,
}

impl CredentialsPolicy {
    /// Checks an entry's fields: every pattern an ARN pattern, the default role a role ARN
    /// that the patterns allow, the maximum within STS's bounds.
    pub fn from_entry(
        allowed_roles: Option<Vec<String>>,
        default_role_arn: Option<String>,
        max_duration_secs: Option<u64>,
    ) -> Result<CredentialsPolicy, PolicyError> {
        let allowed_roles = allowed_roles.unwrap_or_default();
        for pattern in &allowed_roles {
            // `*` alone: any role (the roles' trust policies decide alone).
            let arn_like = pattern == "*" || pattern.starts_with("arn:");
            if !arn_like || pattern.len() > MAX_ROLE_ARN_CHARS {
                return Err(PolicyError::new(
                    "allowed_roles",
                    format!(
                        "allowed_roles entry {pattern:?} is not a role ARN pattern \
                         (arn:aws:iam::<account>:role/<name>, * and ? as wildcards, or * alone)"
                    ),
                ));
            }
        }
        let max = max_duration_secs.unwrap_or(MAX_DURATION_SECS);
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&max) {
            return Err(PolicyError::new(
                "max_duration_seconds",
                format!(
                    "max_duration_seconds must be {MIN_DURATION_SECS} to {MAX_DURATION_SECS}, not {max}"
                ),
            ));
        }
        let policy = CredentialsPolicy {
            allowed_roles,
            default_role_arn,
            max_duration_secs: max,
        };
        if let Some(role) = &policy.default_role_arn {
            if !valid_role_arn(role) {
                return Err(PolicyError::new(
                    "default_role_arn",
                    format!(
                        "default_role_arn {role:?} is not a role ARN (arn:aws:iam::<account>:role/<name>)"
                    ),
                ));
            }
            if !policy.allows(role) {
                return Err(PolicyError::new(
                    "default_role_arn",
                    format!("default_role_arn {role:?} matches none of allowed_roles"),
                ));
            }
        }
        Ok(policy)
    }

    /// Whether `role_arn` matches one of the patterns.
    pub fn allows(&self, role_arn: &str) -> bool {
        self.allowed_roles.iter().any(|p| glob_match(p, role_arn))
    }

    /// The role session to ask STS for: the caller's choices checked against this entry.
    /// `issuer_id` names the entry in refusals; `outbound_sub`/`outbound_jti` are the minted
    /// token's, for the default session name.
    pub fn resolve(
        &self,
        issuer_id: &str,
        request: &CredentialsRequest,
        outbound_sub: Option<&str>,
        outbound_jti: Option<&str>,
    ) -> Result<RoleSession, ExchangeError> {
        let role_arn = match (&request.role_arn, &self.default_role_arn) {
            (Some(role), _) => role.clone(),
            (None, Some(role)) => role.clone(),
            (None, None) => {
                return Err(ExchangeError::coded(
                    ReasonCode::RoleArnMissing,
                    format!(
                        "name the role with role_arn: issuer entry {issuer_id:?} has no default_role_arn"
                    ),
                ));
            }
        };
        if !valid_role_arn(&role_arn) {
            return Err(ExchangeError::coded(
                ReasonCode::InvalidParameter,
                "role_arn is not a role ARN: arn:aws:iam::<12-digit account>:role/<name>",
            ));
        }
        if !self.allows(&role_arn) {
            let why = if self.allowed_roles.is_empty() {
                "lists no allowed_roles: it hands out no AWS credentials"
            } else {
                "does not list this role in allowed_roles"
            };
            return Err(ExchangeError::coded(
                ReasonCode::RoleNotAllowed,
                format!("issuer entry {issuer_id:?} {why}"),
            ));
        }
        let duration_secs = match request.duration_seconds {
            Some(d) if !(MIN_DURATION_SECS..=self.max_duration_secs).contains(&d) => {
                return Err(ExchangeError::coded(
                    ReasonCode::DurationOutOfRange,
                    format!(
                        "duration_seconds must be {MIN_DURATION_SECS} to {} for issuer entry {issuer_id:?}",
                        self.max_duration_secs
                    ),
                ));
            }
            Some(d) => d,
            None => DEFAULT_DURATION_SECS.min(self.max_duration_secs),
        };
        let session_name = match &request.role_session_name {
            Some(name) if valid_session_name(name) => name.clone(),
            Some(_) => {
                return Err(ExchangeError::coded(
                    ReasonCode::InvalidParameter,
                    "role_session_name must be 2 to 64 of the characters A-Z a-z 0-9 _ + = , . @ -",
                ));
            }
            None => default_session_name(outbound_sub, outbound_jti),
        };
        Ok(RoleSession {
            role_arn,
            session_name,
            duration: Duration::from_secs(duration_secs),
        })
    }
}

/// What the caller asks for besides the exchange itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialsRequest {
    /// The role to assume (else the entry's `default_role_arn`).
    pub role_arn: Option<String>,
    /// The session length, seconds.
    pub duration_seconds: Option<u64>,
    /// The session name (else derived from the minted token).
    pub role_session_name: Option<String>,
}

/// One `AssumeRoleWithWebIdentity` call to make, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds`.
    pub duration: Duration,
}

/// A role session's temporary credentials. `Debug` shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `SessionToken`.
    pub session_token: String,
    /// `Expiration`, RFC 3339 (`2026-12-01T12:00:00Z`).
    pub expiration: String,
    /// The same instant, seconds since the Unix epoch (`POST /token`'s `expires_in`).
    pub expires_at: u64,
    /// The assumed role user's ARN (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`), for
    /// the log.
    pub assumed_role_arn: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialProcess<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: &'a str,
}

impl AwsCredentials {
    /// The `credential_process` answer of the AWS shared config: `{"Version": 1,
    /// "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}`.
    pub fn credential_process_json(&self) -> String {
        // Strings only: serialization cannot fail.
        serde_json::to_string(&CredentialProcess {
            version: 1,
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: &self.session_token,
            expiration: &self.expiration,
        })
        .unwrap_or_default()
    }

    /// POSIX shell lines `export AWS_ACCESS_KEY_ID='…'` (and the secret, the session token,
    /// `AWS_CREDENTIAL_EXPIRATION`), each value single-quoted so the shell takes it verbatim.
    pub fn shell_exports(&self) -> String {
        [
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_access_key),
            ("AWS_SESSION_TOKEN", &self.session_token),
            ("AWS_CREDENTIAL_EXPIRATION", &self.expiration),
        ]
        .iter()
        .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
        .collect()
    }
}

/// `value` as one POSIX shell word: inside single quotes nothing is special but the single
/// quote itself, written `'\''` (close, escaped quote, reopen).
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Why STS gave no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsFailure {
    /// `AccessDenied`: the role's trust policy does not let this token in.
    AccessDenied(String),
    /// `InvalidIdentityToken`: STS does not accept claimex's token (the IAM OIDC provider is
    /// missing or does not match claimex's issuer, keys or audience).
    InvalidIdentityToken(String),
    /// `IDPRejectedClaim`.
    IdpRejectedClaim(String),
    /// `ExpiredToken`: the token claimex just minted is expired for STS (clock skew).
    ExpiredToken(String),
    /// `Throttling` (and kin): try again later.
    Throttled(String),
    /// STS cannot be reached, timed out, or failed (5xx, `IDPCommunicationError`).
    Unavailable(String),
    /// Any other refusal (`ValidationError`, `PackedPolicyTooLarge`, `RegionDisabled`...),
    /// with STS's code.
    Refused {
        /// STS's error code.
        code: String,
        /// STS's message.
        message: String,
    },
}

/// How long to tell a caller to wait after STS throttled or could not be reached.
const STS_RETRY_AFTER: Duration = Duration::from_secs(5);

impl From<StsFailure> for ExchangeError {
    fn from(failure: StsFailure) -> ExchangeError {
        match failure {
            StsFailure::AccessDenied(m) => ExchangeError::coded(
                ReasonCode::StsAccessDenied,
                format!(
                    "STS refused the role (AccessDenied): the role's trust policy does not admit this token and its session tags: {m}"
                ),
            ),
            StsFailure::InvalidIdentityToken(m) => ExchangeError::coded(
                ReasonCode::StsInvalidIdentityToken,
                format!(
                    "STS does not accept claimex's token (InvalidIdentityToken): check the account's IAM OIDC provider for claimex's public_url and its client ids: {m}"
                ),
            ),
            StsFailure::IdpRejectedClaim(m) => ExchangeError::coded(
                ReasonCode::StsRejectedClaim,
                format!("STS rejected a claim of the token (IDPRejectedClaim): {m}"),
            ),
            StsFailure::ExpiredToken(m) => ExchangeError::coded(
                ReasonCode::StsExpiredToken,
                format!(
                    "STS found claimex's fresh token expired (ExpiredToken): check claimex's clock: {m}"
                ),
            ),
            StsFailure::Throttled(m) => ExchangeError::coded(
                ReasonCode::StsThrottled,
                format!("STS throttled the call: retry later: {m}"),
            )
            .retry_after(STS_RETRY_AFTER),
            StsFailure::Unavailable(m) => ExchangeError::coded(
                ReasonCode::StsUnavailable,
                format!("STS cannot be reached now: retry later: {m}"),
            )
            .retry_after(STS_RETRY_AFTER),
            StsFailure::Refused { code, message } => ExchangeError::coded(
                ReasonCode::StsRefused,
                format!("STS refused the call ({code}): {message}"),
            ),
        }
    }
}

/// The port: `sts:AssumeRoleWithWebIdentity` with a token claimex minted, unsigned.
#[async_trait]
pub trait RoleAssumer: Send + Sync {
    /// Assumes `session.role_arn` with `web_identity_token`.
    async fn assume(
        &self,
        session: &RoleSession,
        web_identity_token: &str,
    ) -> Result<AwsCredentials, StsFailure>;
}

/// Whether `pattern` matches all of `text`: `*` any run of characters (empty included), `?`
/// exactly one, everything else itself (case-sensitive, as IAM compares ARNs).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at: backtrack there on mismatch.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `arn` is an IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`,
/// 20–2048 characters, no wildcards.
pub fn valid_role_arn(arn: &str) -> bool {
    if !(20..=MAX_ROLE_ARN_CHARS).contains(&arn.len()) || arn.contains(['*', '?']) {
        return false;
    }
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name = resource.strip_prefix("role/").unwrap_or_default();
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.ends_with('/')
        && name.bytes().all(|b| b.is_ascii_graphic())
}

fn session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Whether `name` is a `RoleSessionName` STS takes: 2–64 of `[\w+=,.@-]`.
pub fn valid_session_name(name: &str) -> bool {
    SESSION_NAME_CHARS.contains(&name.len()) && name.chars().all(session_char)
}

/// The session name when the caller names none: the minted token's `sub` with every
/// character outside `[\w+=,.@-]` turned into `-` (at most 48 characters kept), then `.` and
/// the start of its `jti` (so two sessions of one subject differ in CloudTrail); `claimex`
/// when neither is there. Always 2–64 characters of STS's charset.
pub fn default_session_name(sub: Option<&str>, jti: Option<&str>) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| if session_char(c) { c } else { '-' })
            .take(max)
            .collect()
    };
    let sub = sub.map(|s| clean(s, 48)).unwrap_or_default();
    let jti = jti.map(|s| clean(s, 15)).unwrap_or_default();
    let name = match (sub.is_empty(), jti.is_empty()) {
        (false, false) => format!("{sub}.{jti}"),
        (false, true) => sub,
        (true, false) => jti,
        (true, true) => String::new(),
    };
    if valid_session_name(&name) {
        name
    } else {
        "claimex".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Refusal;

    const ROLE: &str = "arn:aws:iam::123456789012:role/ci/deploy";

    fn policy(patterns: &[&str]) -> CredentialsPolicy {
        CredentialsPolicy::from_entry(
            Some(patterns.iter().map(|s| s.to_string()).collect()),
            None,
            Some(7200),
        )
        .unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob_match("arn:aws:iam::123456789012:role/ci/*", ROLE));
        assert!(glob_match("arn:aws:iam::*:role/ci/deploy", ROLE));
        assert!(glob_match("*", ROLE));
        assert!(glob_match(ROLE, ROLE));
        assert!(glob_match("arn:aws:iam::12345678901?:role/*y", ROLE));
        assert!(!glob_match("arn:aws:iam::123456789012:role/ci/dep", ROLE));
        assert!(!glob_match("arn:aws:iam::123456789012:role/CI/*", ROLE));
        assert!(!glob_match("arn:aws:iam::999999999999:role/*", ROLE));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("", ""));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn role_arns() {
        assert!(valid_role_arn(ROLE));
        assert!(valid_role_arn("arn:aws-us-gov:iam::123456789012:role/x"));
        for bad in [
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/*",
            "role/x",
        ] {
            assert!(!valid_role_arn(bad), "{bad}");
        }
    }

    #[test]
    fn resolve_checks_the_role_before_anything_else_leaves() {
        let p = policy(&["arn:aws:iam::123456789012:role/ci/*"]);
        let ask = |role: &str| CredentialsRequest {
            role_arn: Some(role.into()),
            ..Default::default()
        };
        let s = p
            .resolve(
                "gh",
                &ask(ROLE),
                Some("repo:o/r:ref:refs/heads/main"),
                Some("AbC_d-ef"),
            )
            .unwrap();
        assert_eq!(s.duration, Duration::from_secs(3600));
        assert_eq!(s.session_name, "repo-o-r-ref-refs-heads-main.AbC_d-ef");
        let e = p
            .resolve(
                "gh",
                &ask("arn:aws:iam::123456789012:role/admin"),
                None,
                None,
            )
            .unwrap_err();
        assert_eq!(e.reason_code(), "role_not_allowed");
        assert_eq!(e.refusal, Refusal::Denied);
        let e = p
            .resolve("gh", &CredentialsRequest::default(), None, None)
            .unwrap_err();
        assert_eq!(e.reason_code(), "role_arn_missing");
        let e = p
            .resolve("gh", &ask("arn:aws:iam::1:role/x"), None, None)
            .unwrap_err();
        assert_eq!(e.reason_code(), "invalid_parameter");
        let none = CredentialsPolicy::default();
        let e = none.resolve("gh", &ask(ROLE), None, None).unwrap_err();
        assert!(e.description.contains("no allowed_roles"), "{e}");
    }

    #[test]
    fn durations_are_bounded_by_sts_and_the_entry() {
        let p = policy(&["*"]);
        for (asked, ok) in [
            (899, false),
            (900, true),
            (7200, true),
            (7201, false),
            (43_200, false),
        ] {
            let r = p.resolve(
                "gh",
                &CredentialsRequest {
                    role_arn: Some(ROLE.into()),
                    duration_seconds: Some(asked),
                    ..Default::default()
                },
                None,
                None,
            );
            assert_eq!(r.is_ok(), ok, "{asked}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.reason_code(), "duration_out_of_range");
            }
        }
        let short =
            CredentialsPolicy::from_entry(Some(vec!["*".into()]), None, Some(1200)).unwrap();
        let s = short
            .resolve(
                "gh",
                &CredentialsRequest {
                    role_arn: Some(ROLE.into()),
                    ..Default::default()
                },
                None,
                None,
            )
            .unwrap();
        assert_eq!(s.duration, Duration::from_secs(1200));
    }

    #[test]
    fn entries_are_checked_at_load() {
        let err = |a: Option<Vec<String>>, d: Option<&str>, m: Option<u64>| {
            CredentialsPolicy::from_entry(a, d.map(str::to_owned), m)
                .unwrap_err()
                .to_string()
        };
        assert!(err(Some(vec!["role/*".into()]), None, None).contains("allowed_roles"));
        assert!(err(None, None, Some(899)).contains("max_duration_seconds"));
        assert!(err(None, None, Some(43_201)).contains("max_duration_seconds"));
        assert!(err(None, Some(ROLE), None).contains("matches none"));
        assert!(
            err(Some(vec!["*".into()]), Some("arn:aws:iam::1:role/x"), None)
                .contains("not a role ARN")
        );
        let ok =
            CredentialsPolicy::from_entry(Some(vec!["*".into()]), Some(ROLE.into()), None).unwrap();
        let s = ok
            .resolve("gh", &CredentialsRequest::default(), None, None)
            .unwrap();
        assert_eq!(s.role_arn, ROLE);
        assert_eq!(s.session_name, "claimex");
    }

    #[test]
    fn session_names() {
        assert!(valid_session_name("ab"));
        assert!(!valid_session_name("a"));
        assert!(!valid_session_name(&"a".repeat(65)));
        assert!(!valid_session_name("a b"));
        assert!(!valid_session_name("é1"));
        let long = "x".repeat(300);
        let name = default_session_name(Some(&long), Some(&long));
        assert!(valid_session_name(&name), "{name}");
        assert_eq!(name.len(), 64);
        assert!(valid_session_name(&default_session_name(
            Some("ü:/ \n\"'"),
            None
        )));
        assert_eq!(default_session_name(Some("a"), None), "claimex");
        assert_eq!(default_session_name(None, Some("jti1")), "jti1");
    }

    #[test]
    fn formats_quote_and_redact() {
        let c = AwsCredentials {
            access_key_id: "ASIAXXX".into(),
            secret_access_key: "se'cr$et`x".into(),
            session_token: "tok\"en\n".into(),
            expiration: "2026-12-01T12:00:00Z".into(),
            expires_at: 1_796_126_400,
            assumed_role_arn: None,
        };
        let json: serde_json::Value = serde_json::from_str(&c.credential_process_json()).unwrap();
        assert_eq!(json["Version"], 1);
        assert_eq!(json["SecretAccessKey"], "se'cr$et`x");
        assert_eq!(json["SessionToken"], "tok\"en\n");
        assert_eq!(json["Expiration"], "2026-12-01T12:00:00Z");
        let env = c.shell_exports();
        assert!(
            env.contains(r"export AWS_SECRET_ACCESS_KEY='se'\''cr$et`x'"),
            "{env}"
        );
        assert!(
            env.starts_with("export AWS_ACCESS_KEY_ID='ASIAXXX'\n"),
            "{env}"
        );
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("cr$et") && !debug.contains("tok"),
            "{debug}"
        );
    }
}
