//! `claimex mapper check|test|compile`: a mapper module checked, run on a claim set exactly
//! as the server would, or compiled ahead of time for the server's engine.
//!
//! `check` loads the module as the registry would (a component, the contract, no forbidden
//! import). `test` uses the same runtime, limits and output checks as an exchange: it has the
//! mapper check the configuration (`validate-config`, as when an issuer entry loads), then
//! runs `map`; it prints the decision (with the deny code), the mapper's checks when asked
//! (`--explain`), the claims that would be signed (with the host-owned claims claimex would
//! add), the session-tag check and the call's time.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::exchange::IdSource as _;
use crate::mapper::contract::CONTRACT;
use crate::mapper::wasm::{Limits, MapperRuntime, precompiled_name, read_module};
use crate::mapper::{ClaimsMapper as _, ConfigError, MapDecision, MapRequest, MapperLoader as _};
use crate::mint::{self, DEFAULT_AUDIENCE, OutputPolicy, Stamp};
use crate::subject::SubjectKind;
use crate::system::{RandomIds, unix_now};

/// `claimex mapper check`: validates a module without running it.
pub fn check(mapper: &Path) -> anyhow::Result<ExitCode> {
    let runtime = MapperRuntime::new(Limits::default(), None)?;
    let bytes = read_module(mapper).map_err(|e| anyhow::anyhow!("{}: {e}", mapper.display()))?;
    match runtime.load_bytes(&bytes, None) {
        Ok(loaded) => {
            println!(
                "ok: {} is a valid claimex mapper ({CONTRACT}, sha256 {})",
                mapper.display(),
                loaded.sha256()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("refused: {}: {e}", mapper.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// What to compile, and where to.
pub struct CompileInput<'a> {
    /// The mapper component.
    pub mapper: &'a Path,
    /// A directory (the artifact is named `<sha256>.cwasm` in it) or a file path.
    pub output: &'a Path,
    /// The server's configuration, for its `[mapper]` limits.
    pub config: Option<&'a Path>,
    /// Compile for the baseline CPU of this architecture.
    pub portable: bool,
}

/// `claimex mapper compile`: the precompiled artifact the server's mapper cache can hold.
/// Returns what to print.
pub fn compile(input: &CompileInput<'_>) -> anyhow::Result<String> {
    let limits = match input.config {
        Some(path) => crate::config::Config::load(Some(path))?.mapper.limits(),
        None => Limits::default(),
    };
    let bytes = read_module(input.mapper)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.mapper.display()))?;
    // The module must be a mapper the server would load, not only a component.
    MapperRuntime::new(limits.clone(), None)?
        .load_bytes(&bytes, None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.mapper.display()))?;
    let (sha256, artifact) = MapperRuntime::precompile(&limits, &bytes, input.portable)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.mapper.display()))?;
    let into_dir =
        input.output.is_dir() || input.output.as_os_str().to_string_lossy().ends_with('/');
    let path = if into_dir {
        std::fs::create_dir_all(input.output)
            .with_context(|| format!("cannot create {}", input.output.display()))?;
        input.output.join(precompiled_name(&sha256))
    } else {
        input.output.to_owned()
    };
    std::fs::write(&path, &artifact).with_context(|| format!("cannot write {}", path.display()))?;
    let mut text = format!(
        "wrote {} ({} bytes) from {} (sha256 {sha256}{})\n",
        path.display(),
        artifact.len(),
        input.mapper.display(),
        if input.portable { ", portable" } else { "" },
    );
    if !into_dir {
        let _ = writeln!(
            text,
            "the server uses it when it is named {} in mapper.cache_dir",
            precompiled_name(&sha256)
        );
    }
    Ok(text)
}

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
    /// Ask the mapper for its checks and print them.
    pub explain: bool,
    /// Warm calls to time after the first (their median is printed).
    pub repeat: u32,
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

/// `claimex mapper test`: runs the mapper once and reports.
pub async fn test(input: &TestInput<'_>) -> anyhow::Result<TestOutcome> {
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
    let issuer_url = claims["iss"]
        .as_str()
        .unwrap_or("https://issuer.example")
        .to_owned();
    let output = OutputPolicy {
        issuer_id: input.issuer_id.to_owned(),
        audiences: if input.output_audiences.is_empty() {
            vec![DEFAULT_AUDIENCE.to_owned()]
        } else {
            input.output_audiences.clone()
        },
        token_lifetime: None,
    };
    let config_json = serde_json::to_string(&config)?;
    let claims_json = serde_json::to_string(&claims)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "mapper:   {} (sha256 {})",
        input.mapper.display(),
        mapper.sha256()
    );
    // As when an issuer entry loads: a configuration the mapper refuses never serves.
    match mapper.validate_config(&config_json).await {
        Ok(()) => {
            let _ = writeln!(text, "config:   accepted");
        }
        Err(e) => {
            let what = match &e {
                ConfigError::Rejected(_) => "refused",
                ConfigError::Failed(_) => "ERROR",
            };
            let _ = writeln!(text, "config:   {what}: {e}");
            let _ = writeln!(
                text,
                "decision: none: an issuer entry with this configuration would not load"
            );
            return Ok(TestOutcome {
                allowed: false,
                text,
            });
        }
    }
    let calling = Instant::now();
    let outcome = mapper
        .map(&MapRequest {
            subject_kind: SubjectKind::Oidc,
            issuer_id: input.issuer_id,
            issuer_url: &issuer_url,
            claims_json: &claims_json,
            config_json: &config_json,
            explain: input.explain,
        })
        .await;
    let call_time = calling.elapsed();
    // Warm calls: each a fresh instance, as an exchange runs it, after the first has paid
    // for the memory the instances reuse.
    let mut warm = Vec::with_capacity(input.repeat as usize);
    for _ in 0..input.repeat {
        let calling = Instant::now();
        let _ = mapper
            .map(&MapRequest {
                subject_kind: SubjectKind::Oidc,
                issuer_id: input.issuer_id,
                issuer_url: &issuer_url,
                claims_json: &claims_json,
                config_json: &config_json,
                explain: false,
            })
            .await;
        warm.push(calling.elapsed());
    }
    warm.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let warm_text = match warm.get(warm.len() / 2) {
        Some(median) => format!(", warm median {:.3} ms ({} calls)", ms(*median), warm.len()),
        None => String::new(),
    };
    let _ = writeln!(
        text,
        "timing:   load {:.1} ms, first call {:.3} ms{warm_text} (limits: {} ms, {} MiB)",
        ms(load_time),
        ms(call_time),
        Limits::default().deadline.as_millis(),
        Limits::default().memory_bytes >> 20
    );
    let _ = writeln!(
        text,
        "          load: compiling the module, once per module (a server does it when the \
         entry loads; mapper.cache_dir keeps it across restarts); first call: the first \
         instance, with cold memory; warm: what each exchange pays on this machine (a fresh \
         instance per call, the figure BENCHMARKS.md reports)"
    );
    if !outcome.stderr.is_empty() {
        let _ = writeln!(text, "stderr:   {}", outcome.stderr);
    }
    if input.explain {
        let _ = writeln!(text, "checks:   {}", outcome.checks.len());
        for check in &outcome.checks {
            let mark = if check.passed { "pass" } else { "FAIL" };
            let _ = writeln!(text, "  {mark}  {}: {}", check.name, check.detail);
        }
    }
    let allowed = match outcome.result {
        Err(e) => {
            let _ = writeln!(text, "decision: ERROR: {e}");
            false
        }
        Ok(MapDecision::Deny { code, reason }) => {
            let _ = writeln!(text, "decision: deny: {reason}");
            let _ = writeln!(text, "code:     {code}");
            false
        }
        Ok(MapDecision::Allow(json)) => match mint::check_output(&json, &output) {
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
                    unix_now(),
                    Duration::from_secs(900),
                    RandomIds.token_id(),
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
