//! Metrics: the port the parts report through ([`Recorder`], every method a no-op by
//! default), the Prometheus adapter behind it ([`prometheus`]), and the timing decorators
//! that wrap the core's ports when metrics are on ([`timed`]).
//!
//! The core does not record: it draws no time. Durations are measured by the adapters and
//! decorators around the core's ports (the HTTP handler around the whole exchange, [`timed`]
//! around the verifier, each mapper and the signer); what only an adapter sees (an issuer key
//! fetch, a shadow comparison) is reported by that adapter. Gauges of state (registry entries,
//! JWKS age, published keys) are read when `/metrics` is scraped, so they cost nothing per
//! exchange. With metrics off ([`NoRecorder`], no `metrics_listen`), no decorator is installed.
//!
//! Every label value is bounded: issuer ids are registered ids (a request's unknown issuer id
//! never becomes one), kinds and outcomes are enums, and mapper deny codes are capped
//! ([`prometheus::MAX_DENY_CODES`]).

pub mod prometheus;
pub mod timed;

use std::time::Duration;

use crate::error::ExchangeError;
use crate::mapper::MapperError;
pub use crate::mapper::MapperRole;
use crate::signer::SignError;
use crate::subject::SubjectKind;

/// One finished `POST /exchange`, as the HTTP face saw it.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRecord<'a> {
    /// The registered issuer entry that handled it; `None` when none was chosen (an unknown
    /// `issuerId`, a malformed request, ...).
    pub issuer_id: Option<&'a str>,
    /// The kind of credential.
    pub kind: SubjectKind,
    /// Ok, or the refusal.
    pub outcome: Result<(), &'a ExchangeError>,
    /// The whole exchange, from the body read to the answer built.
    pub elapsed: Duration,
}

/// One mapper call (`map`).
#[derive(Debug, Clone, Copy)]
pub struct MapperCallRecord<'a> {
    /// The registered issuer id.
    pub issuer_id: &'a str,
    /// Live or shadow.
    pub role: MapperRole,
    /// The call, instantiation to answer.
    pub elapsed: Duration,
    /// Why it produced no decision, when it did not.
    pub failure: Option<&'a MapperError>,
}

/// How a shadow comparison ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShadowResult {
    /// The shadow decided as the live mapper did.
    Agree,
    /// It decided otherwise (an audit line `shadow_disagreement` says how).
    Disagree,
    /// The queue was full: the comparison was dropped.
    Dropped,
}

impl ShadowResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowResult::Agree => "agree",
            ShadowResult::Disagree => "disagree",
            ShadowResult::Dropped => "dropped",
        }
    }
}

/// Where the parts report what happened. Every method does nothing by default.
pub trait Recorder: Send + Sync {
    /// An exchange finished.
    fn exchange(&self, _record: &ExchangeRecord<'_>) {}
    /// A credential was verified (or refused) by the verifier of `kind`.
    fn verify(&self, _kind: SubjectKind, _elapsed: Duration) {}
    /// A mapper answered (or failed).
    fn mapper_call(&self, _record: &MapperCallRecord<'_>) {}
    /// A signature was made (or not) by the `backend` signer (`local`, `kms`).
    fn sign(&self, _backend: &'static str, _elapsed: Duration, _error: Option<&SignError>) {}
    /// An issuer's discovery document and JWKS were fetched (or the fetch failed).
    fn key_fetch(&self, _issuer_id: &str, _elapsed: Duration, _ok: bool) {}
    /// An AWS STS call (`operation`: `GetCallerIdentity`, `AssumeRoleWithWebIdentity`) ended
    /// with `outcome` (`ok`, `refused`, `throttled`, `unavailable`).
    fn sts_call(&self, _operation: &'static str, _outcome: &'static str, _elapsed: Duration) {}
    /// The one-use store of AWS identities (`backend`: `memory`, `dynamodb`) answered with
    /// `outcome` (`first`, `replayed`, `throttled`, `unavailable`).
    fn one_use(&self, _backend: &'static str, _outcome: &'static str, _elapsed: Duration) {}
    /// A KMS call other than `Sign` failed (`operation`: `refresh`, ...).
    fn kms_error(&self, _operation: &'static str) {}
    /// A shadow comparison ended.
    fn shadow(&self, _issuer_id: &str, _result: ShadowResult) {}
    /// A request pipelined behind a response that closed its connection was not served.
    fn pipelined_refused(&self) {}
}

/// Records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRecorder;

impl Recorder for NoRecorder {}
