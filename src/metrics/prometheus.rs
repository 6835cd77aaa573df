//! The Prometheus adapter: every metric claimex exports, and `/metrics` in the OpenMetrics
//! text format.
//!
//! Built on `prometheus-client`, the Rust client of the Prometheus/OpenMetrics project
//! itself: typed metric families with label structs (a label set is a Rust struct, so a
//! label cannot be misspelled or forgotten), and an OpenMetrics encoder that Prometheus and
//! the reference parsers read. It was preferred to the `metrics` facade with its Prometheus
//! exporter because claimex needs no facade (one exporter, one binary), and because that
//! exporter brings its own HTTP listener and global recorder, while claimex serves `/metrics`
//! from its own listener and passes the recorder explicitly.
//!
//! Counters and histograms are updated by [`Recorder`] calls (a read-locked hash lookup and an
//! atomic add each); gauges of state are read from their sources when `/metrics` is scraped
//! ([`PrometheusMetrics::encode`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry as Metrics, Unit};

use super::{ExchangeRecord, MapperCallRecord, Recorder, ShadowResult};
use crate::error::Reason;
use crate::mapper::MapperError;
use crate::registry::Registry;
use crate::signer::{KeyStore, SignError};
use crate::subject::SubjectKind;

/// Distinct mapper deny codes that become label values; later ones are counted as `other`
/// (deny codes are chosen by mapper authors: a mapper minting a code per repository must not
/// grow the metric without bound).
pub const MAX_DENY_CODES: usize = 100;

/// The label value of an exchange no issuer entry handled.
const NO_ISSUER: &str = "-";

/// Histogram buckets, seconds: 50 µs to 5 s (a local exchange takes ~60 µs, a mapper may take
/// up to its deadline, a KMS signature ~10 ms, an issuer key fetch up to its timeout).
const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

type Text = Cow<'static, str>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(histogram as fn() -> Histogram)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    issuer: Text,
    kind: Text,
    outcome: Text,
    refusal: Text,
    reason: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerOutcome {
    issuer: Text,
    outcome: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerRole {
    issuer: Text,
    role: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapperFailureLabels {
    issuer: Text,
    role: Text,
    failure: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendError {
    backend: Text,
    error: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationOutcome {
    operation: Text,
    outcome: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendOutcome {
    backend: Text,
    outcome: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerResult {
    issuer: Text,
    result: Text,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: Text,
    contract: Text,
}

/// The ages of the cached issuer keys: (issuer id, time since the keys were fetched).
pub type KeyAges = Box<dyn Fn() -> Vec<(String, Duration)> + Send + Sync>;

/// What the scrape-time gauges are read from.
struct Sources {
    registry: Arc<Registry>,
    signer: Arc<dyn KeyStore>,
    key_ages: KeyAges,
}

/// Every metric claimex exports.
pub struct PrometheusMetrics {
    metrics: Metrics,
    exchanges: Family<ExchangeLabels, Counter>,
    exchange_seconds: Histograms<IssuerOutcome>,
    verify_seconds: Histograms<KindLabel>,
    mapper_seconds: Histograms<IssuerRole>,
    mapper_failures: Family<MapperFailureLabels, Counter>,
    sign_seconds: Histograms<BackendLabel>,
    sign_errors: Family<BackendError, Counter>,
    kms_errors: Family<OperationLabel, Counter>,
    pipelined_refused: Counter,
    sts_seconds: Histograms<OperationOutcome>,
    one_use_seconds: Histograms<BackendOutcome>,
    key_fetch_seconds: Histograms<IssuerLabel>,
    key_fetches: Family<IssuerResult, Counter>,
    key_age: Family<IssuerLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    shadow: Family<IssuerResult, Counter>,
    registry_issuers: Gauge,
    registry_invalid: Gauge,
    registry_shadow_errors: Gauge,
    registry_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    registry_failures: Gauge,
    keys_published: Gauge,
    deny_codes: Mutex<HashSet<String>>,
    sources: OnceLock<Sources>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        PrometheusMetrics::new()
    }
}

impl PrometheusMetrics {
    /// Every metric, registered, at zero.
    pub fn new() -> PrometheusMetrics {
        let mut metrics = Metrics::with_prefix("claimex");
        let m = PrometheusMetrics {
            metrics: Metrics::default(),
            exchanges: Family::default(),
            exchange_seconds: histograms(),
            verify_seconds: histograms(),
            mapper_seconds: histograms(),
            mapper_failures: Family::default(),
            sign_seconds: histograms(),
            sign_errors: Family::default(),
            kms_errors: Family::default(),
            pipelined_refused: Counter::default(),
            sts_seconds: histograms(),
            one_use_seconds: histograms(),
            key_fetch_seconds: histograms(),
            key_fetches: Family::default(),
            key_age: Family::default(),
            shadow: Family::default(),
            registry_issuers: Gauge::default(),
            registry_invalid: Gauge::default(),
            registry_shadow_errors: Gauge::default(),
            registry_age: Gauge::default(),
            registry_failures: Gauge::default(),
            keys_published: Gauge::default(),
            deny_codes: Mutex::new(HashSet::new()),
            sources: OnceLock::new(),
        };
        metrics.register(
            "build",
            "claimex's version and the mapper contract it speaks",
            Info::new(BuildLabels {
                version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
                contract: Cow::Borrowed(crate::mapper::contract::CONTRACT),
            }),
        );
        metrics.register(
            "exchanges",
            "Exchanges by issuer entry (\"-\" when none was chosen), subject kind, outcome \
             (allow, deny, refuse), refusal kind and reason code",
            m.exchanges.clone(),
        );
        metrics.register_with_unit(
            "exchange_duration",
            "The whole exchange, body read to answer, by issuer entry and outcome",
            Unit::Seconds,
            m.exchange_seconds.clone(),
        );
        metrics.register_with_unit(
            "verify_duration",
            "Verifying the credential (including any issuer key fetch it waits for)",
            Unit::Seconds,
            m.verify_seconds.clone(),
        );
        metrics.register_with_unit(
            "mapper_call_duration",
            "One mapper call (instantiate, run, drop), by issuer entry and role (live, shadow)",
            Unit::Seconds,
            m.mapper_seconds.clone(),
        );
        metrics.register(
            "mapper_failures",
            "Mapper calls without a decision, by issuer entry, role and failure (trap, \
             deadline, memory, output_too_large, error, invalid_deny_code, runtime)",
            m.mapper_failures.clone(),
        );
        metrics.register_with_unit(
            "sign_duration",
            "Signing one token, by signer backend (local, kms)",
            Unit::Seconds,
            m.sign_seconds.clone(),
        );
        metrics.register(
            "sign_errors",
            "Signatures that failed, by backend and error (unavailable, failed)",
            m.sign_errors.clone(),
        );
        metrics.register(
            "kms_errors",
            "Failed KMS calls, by operation (sign, refresh)",
            m.kms_errors.clone(),
        );
        metrics.register(
            "http_pipelined_refused",
            "Requests pipelined behind a response that closed their connection, not served",
            m.pipelined_refused.clone(),
        );
        metrics.register_with_unit(
            "sts_call_duration",
            "One call to AWS STS, by operation (GetCallerIdentity: an AWS identity's signed \
             request; AssumeRoleWithWebIdentity: POST /credentials) and outcome (ok, refused, \
             throttled, unavailable)",
            Unit::Seconds,
            m.sts_seconds.clone(),
        );
        metrics.register_with_unit(
            "replay_check_duration",
            "One check of the one-use store of AWS identities' signed requests, by backend \
             (memory, dynamodb) and outcome (first, replayed, throttled, unavailable)",
            Unit::Seconds,
            m.one_use_seconds.clone(),
        );
        metrics.register_with_unit(
            "issuer_key_fetch_duration",
            "Fetching an issuer's discovery document and JWKS",
            Unit::Seconds,
            m.key_fetch_seconds.clone(),
        );
        metrics.register(
            "issuer_key_fetches",
            "Issuer key fetches by issuer entry and result (ok, error)",
            m.key_fetches.clone(),
        );
        metrics.register_with_unit(
            "issuer_keys_age",
            "Time since the cached keys of each issuer entry were fetched",
            Unit::Seconds,
            m.key_age.clone(),
        );
        metrics.register(
            "shadow_comparisons",
            "Shadow mapper comparisons by issuer entry and result (agree, disagree, dropped)",
            m.shadow.clone(),
        );
        metrics.register(
            "registry_issuers",
            "Issuer entries loaded",
            m.registry_issuers.clone(),
        );
        metrics.register(
            "registry_invalid_entries",
            "Issuer entries skipped as invalid at the last load",
            m.registry_invalid.clone(),
        );
        metrics.register(
            "registry_shadow_errors",
            "Shadow mappers that could not be loaded at the last load (their entries serve \
             without a shadow)",
            m.registry_shadow_errors.clone(),
        );
        metrics.register_with_unit(
            "registry_since_last_success",
            "Time since the issuer registry last loaded successfully",
            Unit::Seconds,
            m.registry_age.clone(),
        );
        metrics.register(
            "registry_consecutive_failures",
            "Failed registry loads in a row",
            m.registry_failures.clone(),
        );
        metrics.register(
            "signing_keys_published",
            "Keys in the published JWKS",
            m.keys_published.clone(),
        );
        PrometheusMetrics { metrics, ..m }
    }

    /// Gives the scrape-time gauges their sources: the issuer registry, the key store and the
    /// ages of the cached issuer keys. Only the first call counts.
    pub fn attach(&self, registry: Arc<Registry>, signer: Arc<dyn KeyStore>, key_ages: KeyAges) {
        let _ = self.sources.set(Sources {
            registry,
            signer,
            key_ages,
        });
    }

    /// The OpenMetrics text of every metric, the gauges read now.
    pub fn encode(&self) -> String {
        self.read_gauges();
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.metrics);
        out
    }

    fn read_gauges(&self) {
        let Some(sources) = self.sources.get() else {
            return;
        };
        let status = sources.registry.status();
        self.registry_issuers.set(status.issuers as i64);
        self.registry_invalid
            .set(status.invalid_entries.len() as i64);
        self.registry_shadow_errors
            .set(status.shadow_errors.len() as i64);
        self.registry_failures
            .set(i64::from(status.consecutive_failures));
        if let Some(at) = status.last_success_unix {
            let now = crate::system::unix_now();
            self.registry_age.set(now.saturating_sub(at) as f64);
        }
        self.keys_published
            .set(sources.signer.published().len() as i64);
        self.key_age.clear();
        for (issuer, age) in (sources.key_ages)() {
            self.key_age
                .get_or_create(&IssuerLabel {
                    issuer: Cow::Owned(issuer),
                })
                .set(age.as_secs_f64());
        }
    }

    /// The reason label of a refusal: claimex's own code, or a mapper's deny code while fewer
    /// than [`MAX_DENY_CODES`] distinct ones have been seen, else `other`.
    fn reason_label(&self, reason: &Reason) -> Text {
        match reason {
            Reason::Claimex(code) => Cow::Borrowed(code.as_str()),
            Reason::Mapper(code) => {
                let mut seen = self.deny_codes.lock().unwrap_or_else(|p| p.into_inner());
                if seen.contains(code.as_ref()) {
                    Cow::Owned(code.to_string())
                } else if seen.len() < MAX_DENY_CODES {
                    seen.insert(code.to_string());
                    Cow::Owned(code.to_string())
                } else {
                    Cow::Borrowed("other")
                }
            }
        }
    }
}

fn issuer(id: Option<&str>) -> Text {
    Cow::Owned(id.unwrap_or(NO_ISSUER).to_owned())
}

fn failure_label(e: &MapperError) -> &'static str {
    match e {
        MapperError::Deadline(_) => "deadline",
        MapperError::Memory(_) => "memory",
        MapperError::Trap(_) => "trap",
        MapperError::OutputTooLarge(..) => "output_too_large",
        MapperError::Runtime(_) => "runtime",
        MapperError::Failed(_) => "error",
        MapperError::InvalidDenyCode(_) => "invalid_deny_code",
    }
}

impl Recorder for PrometheusMetrics {
    fn exchange(&self, record: &ExchangeRecord<'_>) {
        let (outcome, refusal, reason) = match record.outcome {
            Ok(()) => ("allow", "none", Cow::Borrowed("none")),
            Err(e) => (
                if e.refusal == crate::error::Refusal::Denied {
                    "deny"
                } else {
                    "refuse"
                },
                e.refusal.as_str(),
                self.reason_label(&e.reason),
            ),
        };
        let issuer = issuer(record.issuer_id);
        self.exchange_seconds
            .get_or_create(&IssuerOutcome {
                issuer: issuer.clone(),
                outcome: Cow::Borrowed(outcome),
            })
            .observe(record.elapsed.as_secs_f64());
        self.exchanges
            .get_or_create(&ExchangeLabels {
                issuer,
                kind: Cow::Borrowed(record.kind.as_str()),
                outcome: Cow::Borrowed(outcome),
                refusal: Cow::Borrowed(refusal),
                reason,
            })
            .inc();
    }

    fn verify(&self, kind: SubjectKind, elapsed: Duration) {
        self.verify_seconds
            .get_or_create(&KindLabel {
                kind: Cow::Borrowed(kind.as_str()),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn mapper_call(&self, record: &MapperCallRecord<'_>) {
        let issuer: Text = Cow::Owned(record.issuer_id.to_owned());
        let role = Cow::Borrowed(record.role.as_str());
        self.mapper_seconds
            .get_or_create(&IssuerRole {
                issuer: issuer.clone(),
                role: role.clone(),
            })
            .observe(record.elapsed.as_secs_f64());
        if let Some(failure) = record.failure {
            self.mapper_failures
                .get_or_create(&MapperFailureLabels {
                    issuer,
                    role,
                    failure: Cow::Borrowed(failure_label(failure)),
                })
                .inc();
        }
    }

    fn sign(&self, backend: &'static str, elapsed: Duration, error: Option<&SignError>) {
        self.sign_seconds
            .get_or_create(&BackendLabel {
                backend: Cow::Borrowed(backend),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            let kind = match error {
                SignError::Unavailable(_) => "unavailable",
                SignError::Failed(_) => "failed",
            };
            self.sign_errors
                .get_or_create(&BackendError {
                    backend: Cow::Borrowed(backend),
                    error: Cow::Borrowed(kind),
                })
                .inc();
            if backend == "kms" {
                self.kms_error("sign");
            }
        }
    }

    fn key_fetch(&self, issuer_id: &str, elapsed: Duration, ok: bool) {
        let issuer: Text = Cow::Owned(issuer_id.to_owned());
        self.key_fetch_seconds
            .get_or_create(&IssuerLabel {
                issuer: issuer.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.key_fetches
            .get_or_create(&IssuerResult {
                issuer,
                result: Cow::Borrowed(if ok { "ok" } else { "error" }),
            })
            .inc();
    }

    fn sts_call(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        self.sts_seconds
            .get_or_create(&OperationOutcome {
                operation: Cow::Borrowed(operation),
                outcome: Cow::Borrowed(outcome),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn one_use(&self, backend: &'static str, outcome: &'static str, elapsed: Duration) {
        self.one_use_seconds
            .get_or_create(&BackendOutcome {
                backend: Cow::Borrowed(backend),
                outcome: Cow::Borrowed(outcome),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn kms_error(&self, operation: &'static str) {
        self.kms_errors
            .get_or_create(&OperationLabel {
                operation: Cow::Borrowed(operation),
            })
            .inc();
    }

    fn pipelined_refused(&self) {
        self.pipelined_refused.inc();
    }

    fn shadow(&self, issuer_id: &str, result: ShadowResult) {
        self.shadow
            .get_or_create(&IssuerResult {
                issuer: Cow::Owned(issuer_id.to_owned()),
                result: Cow::Borrowed(result.as_str()),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExchangeError, ReasonCode};

    #[test]
    fn counts_exchanges_with_bounded_labels() {
        let m = PrometheusMetrics::new();
        let denied = ExchangeError::denied("owner_not_allowed", "no");
        let expired = ExchangeError::coded(ReasonCode::TokenExpired, "old");
        for outcome in [Ok(()), Err(&denied), Err(&expired), Ok(())] {
            m.exchange(&ExchangeRecord {
                issuer_id: Some("github"),
                kind: SubjectKind::Oidc,
                outcome,
                elapsed: Duration::from_micros(70),
            });
        }
        for i in 0..MAX_DENY_CODES + 5 {
            let e = ExchangeError::denied(format!("code_{i}"), "no");
            m.exchange(&ExchangeRecord {
                issuer_id: None,
                kind: SubjectKind::Oidc,
                outcome: Err(&e),
                elapsed: Duration::from_micros(70),
            });
        }
        let text = m.encode();
        assert!(text.contains(r#"claimex_exchanges_total{issuer="github",kind="oidc",outcome="allow",refusal="none",reason="none"} 2"#), "{text}");
        assert!(text.contains(r#"reason="owner_not_allowed"} 1"#), "{text}");
        assert!(text.contains(r#"reason="token_expired"} 1"#), "{text}");
        // One code was used before the cap (owner_not_allowed): six land in `other`.
        assert!(
            text.contains(
                r#"issuer="-",kind="oidc",outcome="deny",refusal="denied",reason="other"} 6"#
            ),
            "{text}"
        );
        assert!(text.contains("claimex_build_info{"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
