//! Subject kind `aws-iam`: a workload proves its AWS IAM identity with a signed
//! `sts:GetCallerIdentity` request (never its credentials), which claimex replays to STS.
//!
//! - [`policy`]: the entry's fields (accounts, STS allow-list, server id);
//! - [`request`]: the subject token's encoding and every pure check before anything is sent;
//! - [`identity`]: STS's answer (`Arn`, `Account`, `UserId`) read and turned into claims;
//! - [`one_use`]: the one-use port ([`OneUseStore`]), what it stores, the `[aws_iam]`
//!   settings that choose it;
//! - adapters: `sts.rs` sends the checked request to STS ([`StsCaller`]); [`memory`] (the
//!   default, per instance) and [`dynamodb`] (shared by every instance) remember redeemed
//!   signatures.
//!
//! [`AwsIamVerifier`] runs them in order: decode and check (pure), refuse a signature already
//! redeemed (the one-use store; a store that cannot answer refuses the exchange: 503), call
//! STS, accept the account, and hand the claims to the mapper.

pub mod dynamodb;
pub mod identity;
pub mod memory;
pub mod one_use;
pub mod policy;
pub mod request;
mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use dynamodb::DynamoOneUse;
pub use identity::CallerIdentity;
pub use memory::MemoryOneUse;
pub use one_use::{AwsIamSettings, OneUseError, OneUseStore, Redeemed, Redemption};
pub use policy::{AwsIamPolicy, AwsIamSpec, StsEndpoints};
pub use request::{SERVER_ID_HEADER, SignedRequest};
pub use sts::HttpSts;

use crate::error::{ExchangeError, ReasonCode};
use crate::subject::{Choose, Claimed, SubjectKind, SubjectPolicy, SubjectVerifier, Verified};

/// The subject token type of a signed AWS request (RFC 8693 `subject_token_type`, as Google's
/// STS names it).
pub const AWS4_REQUEST_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";

/// What STS answered when it did not confirm the identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// STS refused the request (its error code, e.g. `SignatureDoesNotMatch`).
    #[error("STS refused the signed request: {0}")]
    Refused(String),
    /// STS could not be reached or answered with a server error or garbage.
    #[error("STS is unreachable: {0}")]
    Unavailable(String),
}

/// The port to STS: sends a checked request, returns the identity STS confirms.
#[async_trait]
pub trait StsCaller: Send + Sync {
    /// Sends `request` exactly as signed.
    async fn get_caller_identity(
        &self,
        request: &SignedRequest,
    ) -> Result<CallerIdentity, StsError>;
}

/// Verifies signed GetCallerIdentity requests.
pub struct AwsIamVerifier {
    sts: Arc<dyn StsCaller>,
    default_server_id: String,
    one_use: Arc<dyn OneUseStore>,
}

/// How long a caller is told to wait when the one-use store cannot answer.
const ONE_USE_RETRY: Duration = Duration::from_secs(5);

impl AwsIamVerifier {
    /// A verifier sending through `sts`, remembering redeemed requests in memory; requests
    /// must carry `default_server_id` (claimex's `public_url`) unless the entry sets its own.
    pub fn new(sts: Arc<dyn StsCaller>, default_server_id: &str) -> AwsIamVerifier {
        AwsIamVerifier {
            sts,
            default_server_id: default_server_id.to_owned(),
            one_use: Arc::new(MemoryOneUse::new()),
        }
    }

    /// The same verifier remembering redeemed requests in `store` (by default, in memory).
    pub fn with_one_use(mut self, store: Arc<dyn OneUseStore>) -> AwsIamVerifier {
        self.one_use = store;
        self
    }
}

#[async_trait]
impl SubjectVerifier for AwsIamVerifier {
    fn kind(&self) -> SubjectKind {
        SubjectKind::AwsIam
    }

    async fn verify(
        &self,
        credential: &str,
        choose: &mut Choose<'_>,
        now: u64,
    ) -> Result<Verified, ExchangeError> {
        let policy = match choose(Claimed::OnlyOfKind)? {
            SubjectPolicy::AwsIam(policy) => policy,
            _ => {
                return Err(ExchangeError::coded(
                    ReasonCode::IssuerKindMismatch,
                    "the issuer entry does not accept AWS identities",
                ));
            }
        };
        let server_id = policy
            .server_id
            .as_deref()
            .unwrap_or(&self.default_server_id);
        let signed = request::check(credential, &policy, server_id, now)?;
        match self.one_use.redeem(&Redemption::of(&signed), now).await {
            Ok(Redeemed::First) => {}
            Ok(Redeemed::Again) => {
                return Err(ExchangeError::coded(
                    ReasonCode::AwsRequestReplayed,
                    "this signed request was already redeemed: sign a new one for each exchange",
                ));
            }
            Err(e) => {
                tracing::warn!(backend = self.one_use.backend(), error = %e, "the one-use store cannot record a signed AWS request: refused (fail closed)");
                return Err(ExchangeError::coded(
                    ReasonCode::ReplayStoreUnavailable,
                    "claimex cannot record this signed request as used now, so it does not accept it; sign a new request and try again shortly",
                )
                .retry_after(ONE_USE_RETRY));
            }
        }
        let identity = self
            .sts
            .get_caller_identity(&signed)
            .await
            .map_err(|e| match e {
                StsError::Refused(code) => ExchangeError::coded(
                    ReasonCode::AwsIdentityRefused,
                    format!("STS refused the signed request: {code}"),
                ),
                StsError::Unavailable(_) => ExchangeError::coded(
                    ReasonCode::AwsStsUnavailable,
                    "STS cannot be reached now; sign a new request and try again shortly",
                )
                .retry_after(Duration::from_secs(5)),
            })?;
        if !policy.accounts.contains(&identity.account) {
            return Err(ExchangeError::coded(
                ReasonCode::AwsAccountNotAllowed,
                format!(
                    "the AWS account {} is not among the accounts issuer {:?} accepts",
                    identity.account, policy.id
                ),
            ));
        }
        let claims = identity.claims(&signed);
        Ok(Verified {
            claims_json: claims.to_string(),
            iss: Some(signed.url.origin().ascii_serialization()),
            sub: Some(identity.arn.clone()),
            jti: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: u64 = 1_764_633_600; // 2025-12-02T00:00:00Z

    struct FakeSts(AtomicUsize, Result<CallerIdentity, StsError>);
    #[async_trait]
    impl StsCaller for FakeSts {
        async fn get_caller_identity(&self, _: &SignedRequest) -> Result<CallerIdentity, StsError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.clone()
        }
    }

    fn token(sig: char) -> String {
        let v = serde_json::json!({
            "url": "https://sts.amazonaws.com/",
            "method": "POST",
            "headers": [
                {"key": "Host", "value": "sts.amazonaws.com"},
                {"key": "X-Amz-Date", "value": "20251202T000000Z"},
                {"key": "X-Claimex-Server-Id", "value": "https://claimex.example.com"},
                {"key": "Authorization", "value": format!("AWS4-HMAC-SHA256 Credential=AKID/20251202/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date;x-claimex-server-id, Signature={}", sig.to_string().repeat(64))},
            ],
            "body": "Action=GetCallerIdentity&Version=2011-06-15",
        });
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn policy() -> SubjectPolicy {
        SubjectPolicy::AwsIam(Arc::new(AwsIamPolicy {
            id: "aws".into(),
            accounts: vec!["123456789012".into()],
            sts_endpoints: StsEndpoints::AwsPartition,
            server_id: None,
        }))
    }

    fn identity(account: &str) -> CallerIdentity {
        CallerIdentity {
            arn: format!("arn:aws:sts::{account}:assumed-role/deploy/run-1"),
            account: account.into(),
            user_id: "AROA:run-1".into(),
        }
    }

    async fn verify(v: &AwsIamVerifier, credential: &str) -> Result<Verified, ExchangeError> {
        v.verify(credential, &mut |_| Ok(policy()), NOW).await
    }

    #[tokio::test]
    async fn verifies_once_then_refuses_the_replay() {
        let sts = Arc::new(FakeSts(AtomicUsize::new(0), Ok(identity("123456789012"))));
        let v = AwsIamVerifier::new(sts.clone(), "https://claimex.example.com");
        let ok = verify(&v, &token('a')).await.unwrap();
        let claims: serde_json::Value = serde_json::from_str(&ok.claims_json).unwrap();
        assert_eq!(claims["role_name"], "deploy");
        assert_eq!(claims["session_name"], "run-1");
        assert_eq!(claims["principal_type"], "assumed-role");
        assert_eq!(claims["account"], "123456789012");
        assert_eq!(claims["region"], "us-east-1");
        assert_eq!(
            ok.sub.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/deploy/run-1")
        );
        let again = verify(&v, &token('a')).await.unwrap_err();
        assert_eq!(again.reason_code(), "aws_request_replayed");
        assert_eq!(
            sts.0.load(Ordering::SeqCst),
            1,
            "a replay must not reach STS"
        );
    }

    /// A store that cannot answer, and remembers what it was asked.
    struct DownStore(std::sync::Mutex<Vec<(Redemption, u64)>>, OneUseError);
    #[async_trait]
    impl OneUseStore for DownStore {
        fn backend(&self) -> &'static str {
            "down"
        }
        async fn redeem(&self, r: &Redemption, now: u64) -> Result<Redeemed, OneUseError> {
            self.0.lock().unwrap().push((r.clone(), now));
            Err(self.1.clone())
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_answer_refuses_before_sts() {
        for error in [
            OneUseError::Unavailable("connection refused".into()),
            OneUseError::Throttled("ProvisionedThroughputExceeded".into()),
        ] {
            let sts = Arc::new(FakeSts(AtomicUsize::new(0), Ok(identity("123456789012"))));
            let store = Arc::new(DownStore(Default::default(), error));
            let v = AwsIamVerifier::new(sts.clone(), "https://claimex.example.com")
                .with_one_use(store.clone());
            let err = verify(&v, &token('f')).await.unwrap_err();
            assert_eq!(err.reason_code(), "replay_store_unavailable");
            assert_eq!(err.code().as_str(), "temporarily_unavailable");
            assert_eq!(err.retry_after, Some(ONE_USE_RETRY));
            assert!(!err.description.contains("connection refused"));
            assert_eq!(
                sts.0.load(Ordering::SeqCst),
                0,
                "fail closed: STS not called"
            );
            let asked = store.0.lock().unwrap().clone();
            assert_eq!(asked.len(), 1);
            // The time passed in, and the end of the request's window (signed at NOW).
            assert_eq!(asked[0].1, NOW);
            assert_eq!(asked[0].0.expires_at, NOW + request::DATE_WINDOW_SECS);
            assert!(!asked[0].0.key.contains("fff"), "the signature is hashed");
        }
    }

    #[tokio::test]
    async fn sts_answers_become_refusals() {
        let other = Arc::new(FakeSts(AtomicUsize::new(0), Ok(identity("999999999999"))));
        let v = AwsIamVerifier::new(other, "https://claimex.example.com");
        assert_eq!(
            verify(&v, &token('b')).await.unwrap_err().reason_code(),
            "aws_account_not_allowed"
        );
        let refused = Arc::new(FakeSts(
            AtomicUsize::new(0),
            Err(StsError::Refused("SignatureDoesNotMatch".into())),
        ));
        let v = AwsIamVerifier::new(refused, "https://claimex.example.com");
        let err = verify(&v, &token('c')).await.unwrap_err();
        assert_eq!(err.reason_code(), "aws_identity_refused");
        assert_eq!(err.code().as_str(), "invalid_grant");
        assert!(err.description.contains("SignatureDoesNotMatch"));
        let down = Arc::new(FakeSts(
            AtomicUsize::new(0),
            Err(StsError::Unavailable("refused".into())),
        ));
        let v = AwsIamVerifier::new(down, "https://claimex.example.com");
        let err = verify(&v, &token('d')).await.unwrap_err();
        assert_eq!(err.reason_code(), "aws_sts_unavailable");
        assert!(err.retry_after.is_some());
        // Bound to another server: refused before STS.
        let sts = Arc::new(FakeSts(AtomicUsize::new(0), Ok(identity("123456789012"))));
        let v = AwsIamVerifier::new(sts.clone(), "https://other.example.com");
        assert_eq!(
            verify(&v, &token('e')).await.unwrap_err().reason_code(),
            "server_id_mismatch"
        );
        assert_eq!(sts.0.load(Ordering::SeqCst), 0);
    }
}
