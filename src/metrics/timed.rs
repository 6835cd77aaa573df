//! Timing decorators: the core's ports wrapped so that each call is measured and reported to
//! a [`Recorder`]. Installed by `app` only when metrics are on; each adds one clock read
//! before and after the call it wraps.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{MapperCallRecord, Recorder};
use crate::credentials::{AwsCredentials, RoleAssumer, RoleSession, StsFailure};
use crate::error::ExchangeError;
use crate::mapper::{
    ClaimsMapper, ConfigError, LoadError, MapOutcome, MapRequest, MapperLoader, MapperRole,
};
use crate::signer::{KeyStore, PublicJwk, SignError, SignerHealth, SigningAlg, SigningKey};
use crate::subject::aws_iam::identity::CallerIdentity;
use crate::subject::aws_iam::request::SignedRequest;
use crate::subject::aws_iam::{
    OneUseError, OneUseStore, Redeemed, Redemption, StsCaller, StsError,
};
use crate::subject::{Choose, SubjectKind, SubjectVerifier, Verified};

/// A verifier whose calls are timed.
pub struct TimedVerifier {
    inner: Arc<dyn SubjectVerifier>,
    recorder: Arc<dyn Recorder>,
}

impl TimedVerifier {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SubjectVerifier>, recorder: Arc<dyn Recorder>) -> TimedVerifier {
        TimedVerifier { inner, recorder }
    }
}

#[async_trait]
impl SubjectVerifier for TimedVerifier {
    fn kind(&self) -> SubjectKind {
        self.inner.kind()
    }

    async fn verify(
        &self,
        credential: &str,
        choose: &mut Choose<'_>,
        now: u64,
    ) -> Result<Verified, ExchangeError> {
        let started = Instant::now();
        let result = self.inner.verify(credential, choose, now).await;
        self.recorder.verify(self.inner.kind(), started.elapsed());
        result
    }
}

/// A mapper loader whose mappers' calls are timed and their failures counted, by role.
pub struct TimedLoader {
    inner: Arc<dyn MapperLoader>,
    recorder: Arc<dyn Recorder>,
}

impl TimedLoader {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn MapperLoader>, recorder: Arc<dyn Recorder>) -> TimedLoader {
        TimedLoader { inner, recorder }
    }
}

impl MapperLoader for TimedLoader {
    fn load(&self, path: &Path, sha256: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
        self.load_as(path, sha256, MapperRole::Live)
    }

    fn load_as(
        &self,
        path: &Path,
        sha256: Option<&str>,
        role: MapperRole,
    ) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
        let inner = self.inner.load_as(path, sha256, role)?;
        Ok(Arc::new(TimedMapper {
            inner,
            recorder: self.recorder.clone(),
            role,
        }))
    }
}

/// A mapper whose `map` calls are timed.
struct TimedMapper {
    inner: Arc<dyn ClaimsMapper>,
    recorder: Arc<dyn Recorder>,
    role: MapperRole,
}

#[async_trait]
impl ClaimsMapper for TimedMapper {
    fn sha256(&self) -> &str {
        self.inner.sha256()
    }

    async fn validate_config(&self, config_json: &str) -> Result<(), ConfigError> {
        self.inner.validate_config(config_json).await
    }

    async fn map(&self, request: &MapRequest<'_>) -> MapOutcome {
        let started = Instant::now();
        let outcome = self.inner.map(request).await;
        self.recorder.mapper_call(&MapperCallRecord {
            issuer_id: request.issuer_id,
            role: self.role,
            elapsed: started.elapsed(),
            failure: outcome.result.as_ref().err(),
        });
        outcome
    }
}

/// A key store whose signatures are timed, labelled with its backend.
pub struct TimedKeyStore {
    inner: Arc<dyn KeyStore>,
    recorder: Arc<dyn Recorder>,
    backend: &'static str,
}

impl TimedKeyStore {
    /// Wraps `inner`, the `backend` signer (`local`, `kms`).
    pub fn new(
        inner: Arc<dyn KeyStore>,
        recorder: Arc<dyn Recorder>,
        backend: &'static str,
    ) -> TimedKeyStore {
        TimedKeyStore {
            inner,
            recorder,
            backend,
        }
    }
}

impl KeyStore for TimedKeyStore {
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>, SignError> {
        let inner = self.inner.signing_key()?;
        Ok(Arc::new(TimedKey {
            inner,
            recorder: self.recorder.clone(),
            backend: self.backend,
        }))
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.inner.published()
    }

    fn health(&self) -> SignerHealth {
        self.inner.health()
    }
}

struct TimedKey {
    inner: Arc<dyn SigningKey>,
    recorder: Arc<dyn Recorder>,
    backend: &'static str,
}

#[async_trait]
impl SigningKey for TimedKey {
    fn alg(&self) -> SigningAlg {
        self.inner.alg()
    }

    fn kid(&self) -> &str {
        self.inner.kid()
    }

    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let started = Instant::now();
        let result = self.inner.sign(signing_input).await;
        self.recorder
            .sign(self.backend, started.elapsed(), result.as_ref().err());
        result
    }
}

/// The STS port of AWS identities (`GetCallerIdentity`), timed by outcome.
pub struct TimedStsCaller {
    inner: Arc<dyn StsCaller>,
    recorder: Arc<dyn Recorder>,
}

impl TimedStsCaller {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn StsCaller>, recorder: Arc<dyn Recorder>) -> TimedStsCaller {
        TimedStsCaller { inner, recorder }
    }
}

#[async_trait]
impl StsCaller for TimedStsCaller {
    async fn get_caller_identity(
        &self,
        request: &SignedRequest,
    ) -> Result<CallerIdentity, StsError> {
        let started = Instant::now();
        let result = self.inner.get_caller_identity(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StsError::Refused(_)) => "refused",
            Err(StsError::Unavailable(_)) => "unavailable",
        };
        self.recorder
            .sts_call("GetCallerIdentity", outcome, started.elapsed());
        result
    }
}

/// The one-use store of AWS identities, timed by outcome.
pub struct TimedOneUseStore {
    inner: Arc<dyn OneUseStore>,
    recorder: Arc<dyn Recorder>,
}

impl TimedOneUseStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn OneUseStore>, recorder: Arc<dyn Recorder>) -> TimedOneUseStore {
        TimedOneUseStore { inner, recorder }
    }
}

#[async_trait]
impl OneUseStore for TimedOneUseStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn redeem(&self, redemption: &Redemption, now: u64) -> Result<Redeemed, OneUseError> {
        let started = Instant::now();
        let result = self.inner.redeem(redemption, now).await;
        let outcome = match &result {
            Ok(Redeemed::First) => "first",
            Ok(Redeemed::Again) => "replayed",
            Err(OneUseError::Throttled(_)) => "throttled",
            Err(OneUseError::Unavailable(_)) => "unavailable",
        };
        self.recorder
            .one_use(self.inner.backend(), outcome, started.elapsed());
        result
    }
}

/// The STS port of `POST /credentials` (`AssumeRoleWithWebIdentity`), timed by outcome.
pub struct TimedRoleAssumer {
    inner: Arc<dyn RoleAssumer>,
    recorder: Arc<dyn Recorder>,
}

impl TimedRoleAssumer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn RoleAssumer>, recorder: Arc<dyn Recorder>) -> TimedRoleAssumer {
        TimedRoleAssumer { inner, recorder }
    }
}

#[async_trait]
impl RoleAssumer for TimedRoleAssumer {
    async fn assume(
        &self,
        session: &RoleSession,
        web_identity_token: &str,
    ) -> Result<AwsCredentials, StsFailure> {
        let started = Instant::now();
        let result = self.inner.assume(session, web_identity_token).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StsFailure::Throttled(_)) => "throttled",
            Err(StsFailure::Unavailable(_)) => "unavailable",
            Err(_) => "refused",
        };
        self.recorder
            .sts_call("AssumeRoleWithWebIdentity", outcome, started.elapsed());
        result
    }
}
