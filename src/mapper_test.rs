//! `claimex mapper test`: run a mapper on a claim set exactly as the server would.
//!
//! Same runtime, same limits, same output checks as an exchange; prints the decision, the
//! claims that would be signed (with the host-owned claims claimex would add), the session-tag
//! check and the call's time.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::exchange::system_now;
use crate::mapping::{MapDecision, MapRequest, MapperLoader as _};
use crate::mint::{self, DEFAULT_AUDIENCE, Stamp};
use crate::registry::Issuer;
use crate::wasm::{Limits, MapperRuntime};

/// What to run.
pub struct TestInput<'a> {
    /// The mapper component.
    pub mapper: &'a Path,
    /// A JSON file with the inbound claims.
    pub claims: &'a Path,
    /// A JSON file with the mapper configuration.
    pub config: Option<&'a Path>,
    /// The issuer id handed to the mapper.
    pub issuer_id: &'a str,
    /// Allowed output audiences (empty: `sts.amazonaws.com`).
    pub output_audiences: Vec<String>,
}

/// What happened.
pub struct TestOutcome {
    /// Whether the exchange would succeed.
    pub allowed: bool,
    /// The report.
    pub text: String,
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Runs the mapper once and reports.
pub async fn run(input: &TestInput<'_>) -> anyhow::Result<TestOutcome> {
    let claims = read_json(input.claims)?;
    anyhow::ensure!(
        claims.is_object(),
        "{} must hold a JSON object",
        input.claims.display()
    );
    let config = match input.config {
        Some(path) => read_json(path)?,
        None => serde_json::Value::Null,
    };
    let runtime = MapperRuntime::new(Limits::default(), None)?;
    let loading = Instant::now();
    let mapper = runtime
        .load(input.mapper, None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.mapper.display()))?;
    let load_time = loading.elapsed();
    let issuer = Issuer {
        id: input.issuer_id.to_owned(),
        url: claims["iss"]
            .as_str()
            .unwrap_or("https://issuer.example")
            .to_owned(),
        audiences: vec![],
        algorithms: vec![],
        mapper_config: serde_json::to_string(&config)?,
        output_audiences: if input.output_audiences.is_empty() {
            vec![DEFAULT_AUDIENCE.to_owned()]
        } else {
            input.output_audiences.clone()
        },
        token_lifetime: None,
        mapper: mapper.clone(),
    };
    let claims_json = serde_json::to_string(&claims)?;
    let calling = Instant::now();
    let outcome = mapper
        .map(&MapRequest {
            issuer_id: &issuer.id,
            issuer_url: &issuer.url,
            claims_json: &claims_json,
            config_json: &issuer.mapper_config,
        })
        .await;
    let call_time = calling.elapsed();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "mapper:   {} (sha256 {})",
        input.mapper.display(),
        mapper.sha256()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let _ = writeln!(
        text,
        "timing:   load {:.2} ms, call {:.3} ms (limits: {} ms, {} MiB)",
        ms(load_time),
        ms(call_time),
        Limits::default().deadline.as_millis(),
        Limits::default().memory_bytes >> 20
    );
    if !outcome.stderr.is_empty() {
        let _ = writeln!(text, "stderr:   {}", outcome.stderr);
    }
    let allowed = match outcome.result {
        Err(e) => {
            let _ = writeln!(text, "decision: ERROR: {e}");
            false
        }
        Ok(MapDecision::Deny(reason)) => {
            let _ = writeln!(text, "decision: deny: {reason}");
            false
        }
        Ok(MapDecision::Allow(json)) => match mint::check_output(&json, &issuer) {
            Err(e) => {
                let _ = writeln!(
                    text,
                    "decision: allow, but the output would be refused: {}",
                    e.description
                );
                false
            }
            Ok(checked) => {
                let stamp = Stamp::new(
                    "<claimex public_url>",
                    system_now(),
                    Duration::from_secs(900),
                );
                let signed: serde_json::Value =
                    serde_json::from_str(&checked.payload_json(&stamp))?;
                let _ = writeln!(text, "decision: allow");
                let _ = writeln!(
                    text,
                    "tags:     {}",
                    match &checked.tags {
                        Some(t) => format!(
                            "valid ({} tags: {}; transitive: {})",
                            t.keys.len(),
                            t.keys.join(", "),
                            t.transitive.join(", ")
                        ),
                        None => "none".to_owned(),
                    }
                );
                let _ = writeln!(
                    text,
                    "claims that would be signed:\n{}",
                    serde_json::to_string_pretty(&signed)?
                );
                true
            }
        },
    };
    Ok(TestOutcome { allowed, text })
}
