//! The shadow runner: the adapter behind [`ShadowSink`]. A bounded queue and one worker task:
//! the exchange offers a job without waiting (a full queue drops it, counted as `dropped`), the
//! worker runs the entry's shadow mapper on the same claims, judges its answer exactly as the
//! exchange judges the live one ([`crate::exchange::decide`]), compares ([`compare`]), counts
//! the result by issuer, and writes a `shadow_disagreement` audit line when they differ.
//!
//! One worker means at most one shadow call at a time: shadows take one mapper instance of the
//! pool, never more, however busy the server is. A shadow's result never reaches the caller.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::MapRequest;
use super::shadow::{Decided, ShadowJob, ShadowSink, compare};
use crate::audit::{self, Audit};
use crate::metrics::{Recorder, ShadowResult};
use crate::settings::{SettingError, range};

/// The `[shadow]` section: how much shadow work may wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowSettings {
    /// Comparisons that may wait for the worker; more are dropped (and counted).
    pub queue_capacity: usize,
}

impl Default for ShadowSettings {
    fn default() -> ShadowSettings {
        ShadowSettings {
            queue_capacity: 1024,
        }
    }
}

impl ShadowSettings {
    /// Checks the range, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("queue_capacity", self.queue_capacity as u64, 1, 1_000_000)
    }
}

/// Queues shadow comparisons and runs them on one worker.
pub struct ShadowRunner {
    queue: mpsc::Sender<ShadowJob>,
    recorder: Arc<dyn Recorder>,
}

impl ShadowRunner {
    /// Starts the worker on the current tokio runtime; it ends when the runner is dropped.
    pub fn start(settings: &ShadowSettings, recorder: Arc<dyn Recorder>) -> Arc<ShadowRunner> {
        let (queue, jobs) = mpsc::channel(settings.queue_capacity.max(1));
        tokio::spawn(work(jobs, recorder.clone()));
        Arc::new(ShadowRunner { queue, recorder })
    }
}

impl ShadowSink for ShadowRunner {
    fn offer(&self, job: ShadowJob) {
        if let Err(e) = self.queue.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    job
                }
            };
            tracing::debug!(issuer_id = %job.issuer.id, "shadow queue full: comparison dropped");
            self.recorder.shadow(&job.issuer.id, ShadowResult::Dropped);
        }
    }
}

async fn work(mut jobs: mpsc::Receiver<ShadowJob>, recorder: Arc<dyn Recorder>) {
    while let Some(job) = jobs.recv().await {
        if let Some(result) = run(&job).await {
            recorder.shadow(&job.issuer.id, result);
        }
    }
}

/// Runs one comparison; `None` when the entry has no shadow (any more).
pub async fn run(job: &ShadowJob) -> Option<ShadowResult> {
    let issuer = &job.issuer;
    let shadow = issuer.shadow.as_ref()?;
    let outcome = shadow
        .mapper
        .map(&MapRequest {
            subject_kind: issuer.kind(),
            issuer_id: &issuer.id,
            issuer_url: issuer.subject.url().unwrap_or_default(),
            claims_json: &job.claims_json,
            config_json: &shadow.config,
            explain: false,
        })
        .await;
    let mut scratch = Audit::default();
    let mapped = crate::exchange::decide(&issuer.id, &issuer.output, outcome.result, &mut scratch);
    let decided = Decided::of(&mapped, scratch.detail.as_deref());
    let comparison = compare(&job.live, &decided);
    if comparison.agrees() {
        return Some(ShadowResult::Agree);
    }
    audit::shadow_disagreement(&audit::ShadowDisagreement {
        issuer_id: &issuer.id,
        mapper_sha256: issuer.mapper.sha256(),
        shadow_sha256: shadow.mapper.sha256(),
        inbound: &job.inbound,
        live: &job.live,
        shadow: &decided,
        comparison: &comparison,
    });
    Some(ShadowResult::Disagree)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::mapper::{ClaimsMapper, ConfigError, MapDecision, MapOutcome};
    use crate::registry::{Shadow, spec};

    /// Allows with a tag whose value must never be logged.
    struct Allows;
    #[async_trait::async_trait]
    impl ClaimsMapper for Allows {
        fn sha256(&self) -> &str {
            "shadow"
        }
        async fn validate_config(&self, _: &str) -> Result<(), ConfigError> {
            Ok(())
        }
        async fn map(&self, _: &MapRequest<'_>) -> MapOutcome {
            Ok(MapDecision::Allow(
                r#"{"sub":"repo:a/b","https://aws.amazon.com/tags":{"principal_tags":{"team":["tag-value-secret"]}}}"#
                    .into(),
            ))
            .into()
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn job(live: Decided) -> ShadowJob {
        let mut issuer = spec::tests::issuer("github", spec::tests::base()).unwrap();
        issuer.shadow = Some(Shadow {
            mapper: Arc::new(Allows),
            config: "null".into(),
            path: "shadow.wasm".into(),
        });
        ShadowJob {
            issuer: Arc::new(issuer),
            claims_json: "{}".into(),
            live,
            inbound: [None, Some("repo:a/b".into()), Some("jti-9".into())],
        }
    }

    fn run_logged(job: &ShadowJob) -> (Option<ShadowResult>, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let result = tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(run(job))
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (result, text)
    }

    #[test]
    fn a_disagreement_is_an_audit_line_with_both_decisions_and_no_tag_values() {
        let live = Decided::Deny {
            code: "owner_not_allowed".into(),
            reason: "no".into(),
        };
        let (result, log) = run_logged(&job(live));
        assert_eq!(result, Some(ShadowResult::Disagree));
        let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        let fields = &line["fields"];
        assert_eq!(fields["event"], "shadow_disagreement", "{log}");
        assert_eq!(fields["issuer_id"], "github");
        assert_eq!(fields["inbound_jti"], "jti-9");
        assert_eq!(fields["live_decision"], "deny");
        assert_eq!(fields["live_code"], "owner_not_allowed");
        assert_eq!(fields["shadow_decision"], "allow");
        assert_eq!(fields["differences"], "decision");
        assert_eq!(line["target"], "claimex::audit");
        assert!(!log.contains("tag-value-secret"), "{log}");
    }

    #[test]
    fn an_agreement_writes_nothing_and_tag_differences_name_keys_only() {
        let same = r#"{"sub":"repo:a/b","https://aws.amazon.com/tags":{"principal_tags":{"team":["tag-value-secret"]}}}"#;
        let (result, log) = run_logged(&job(Decided::Allow(same.into())));
        assert_eq!(result, Some(ShadowResult::Agree));
        assert!(log.is_empty(), "{log}");

        let other = r#"{"sub":"repo:a/b","https://aws.amazon.com/tags":{"principal_tags":{"team":["other-value"]}}}"#;
        let (result, log) = run_logged(&job(Decided::Allow(other.into())));
        assert_eq!(result, Some(ShadowResult::Disagree));
        assert!(log.contains(r#""tag_keys":"team""#), "{log}");
        assert!(
            !log.contains("tag-value-secret") && !log.contains("other-value"),
            "{log}"
        );
    }
}
