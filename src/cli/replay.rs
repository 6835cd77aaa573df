//! `claimex mapper replay`: a mapper (and optionally a second one, `--against`) run over many
//! recorded claim sets, with an issuer entry's configuration, to see what it would decide
//! before it decides anything in production.
//!
//! Claim sets come from files and directories: a `.json` file holds one claim set (a JSON
//! object), a `.jsonl`/`.ndjson` file one per line; a directory is read in name order (not
//! recursively). Each mapper is loaded and compiled once and reused for every claim set, and
//! each answer is judged exactly as an exchange judges it (`exchange::decide`: the deny code,
//! the host's output checks), then compared with [`compare`] as a shadow mapper is. The report
//! counts each mapper's allows, denials and refusals, and lists every disagreement with the
//! claim set's file and line, both decisions with their codes and reasons, and the fields and
//! tag keys that differ (never tag values). With `--against`, any disagreement exits 1.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::Value;

use crate::audit::Audit;
use crate::mapper::shadow::{Decided, compare};
use crate::mapper::wasm::{Limits, MapperRuntime};
use crate::mapper::{ClaimsMapper, MapRequest, MapperLoader as _};
use crate::mint::{DEFAULT_AUDIENCE, OutputPolicy};
use crate::registry::file::FileSource;
use crate::subject::SubjectKind;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayInput {
    /// The mapper (default: the entry's `mapper`).
    pub mapper: Option<PathBuf>,
    /// Its configuration, a JSON file (default: the entry's `mapper_config`).
    pub config: Option<PathBuf>,
    /// The mapper to compare with (default: the entry's `shadow_mapper`, if any).
    pub against: Option<PathBuf>,
    /// Its configuration (default: the entry's `shadow_mapper_config`, else `--config`'s).
    pub against_config: Option<PathBuf>,
    /// An issuers file (TOML or JSON, as the file registry reads it) and the entry to take
    /// mappers, configurations, audiences and the issuer URL from.
    pub issuers: Option<PathBuf>,
    /// The entry's id in `issuers`; also the issuer id handed to the mappers.
    pub issuer: Option<String>,
    /// Where the entry's relative mapper paths start (default: the issuers file's directory).
    pub mapper_dir: Option<PathBuf>,
    /// Allowed output audiences (default: the entry's, else `sts.amazonaws.com`).
    pub output_audiences: Vec<String>,
    /// Claim set files and directories.
    pub claims: Vec<PathBuf>,
}

/// The report and whether it found disagreements.
pub struct ReplayOutcome {
    /// The report.
    pub text: String,
    /// Claim sets on which the two mappers disagreed (0 without `--against`).
    pub disagreements: usize,
    /// Claim sets replayed.
    pub claim_sets: usize,
}

/// One claim set and where it came from (`file` or `file:line`).
struct ClaimSet {
    origin: String,
    json: String,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Reads every claim set under `paths`.
fn claim_sets(paths: &[PathBuf]) -> anyhow::Result<Vec<ClaimSet>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|e| e == "json" || e == "jsonl" || e == "ndjson")
                })
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    let mut sets = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let lines = file
            .extension()
            .is_some_and(|e| e == "jsonl" || e == "ndjson");
        let items: Vec<(String, &str)> = if lines {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| (format!("{}:{}", file.display(), i + 1), l))
                .collect()
        } else {
            vec![(file.display().to_string(), text.as_str())]
        };
        for (origin, item) in items {
            let value: Value =
                serde_json::from_str(item).with_context(|| format!("{origin}: not valid JSON"))?;
            anyhow::ensure!(
                value.is_object(),
                "{origin}: a claim set must be a JSON object"
            );
            sets.push(ClaimSet {
                origin,
                json: value.to_string(),
            });
        }
    }
    anyhow::ensure!(!sets.is_empty(), "no claim sets found");
    Ok(sets)
}

/// The entry's fields that replay uses.
#[derive(Default)]
struct Entry {
    mapper: Option<(PathBuf, Option<String>)>,
    config: Option<Value>,
    shadow: Option<(PathBuf, Option<String>, Option<Value>)>,
    audiences: Option<Vec<String>>,
    url: Option<String>,
}

fn entry(input: &ReplayInput) -> anyhow::Result<Entry> {
    let Some(file) = &input.issuers else {
        anyhow::ensure!(
            input.mapper.is_some(),
            "name the mapper (--mapper), or an issuer entry (--issuers FILE --issuer ID)"
        );
        return Ok(Entry::default());
    };
    let id = input
        .issuer
        .as_deref()
        .context("--issuers needs --issuer ID: the entry to replay")?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let raw = FileSource::new(file.clone())
        .parse(&text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let found = raw
        .into_iter()
        .find(|e| e.id == id)
        .with_context(|| format!("{} has no entry [issuers.{id}]", file.display()))?;
    let spec = found
        .spec
        .map_err(|e| anyhow::anyhow!("{}: {e}", found.origin))?;
    let dir = input.mapper_dir.clone().unwrap_or_else(|| {
        file.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let (mapper, pin) = spec.mapper();
    Ok(Entry {
        mapper: Some((dir.join(mapper), pin.map(str::to_owned))),
        config: spec.mapper_config().cloned(),
        shadow: spec
            .shadow_mapper()
            .map(|(path, pin, config)| (dir.join(path), pin.map(str::to_owned), config.cloned())),
        audiences: Some(spec.output_audiences()),
        url: spec.issuer_url().map(str::to_owned),
    })
}

/// A mapper to run: its module, its configuration.
struct Side {
    mapper: Arc<dyn ClaimsMapper>,
    path: PathBuf,
    config: String,
}

async fn side(
    runtime: &MapperRuntime,
    path: PathBuf,
    pin: Option<&str>,
    config: Value,
) -> anyhow::Result<Side> {
    let mapper = runtime
        .load(&path, pin)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let config = config.to_string();
    mapper
        .validate_config(&config)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Side {
        mapper,
        path,
        config,
    })
}

/// Runs the replay.
pub async fn replay(input: &ReplayInput) -> anyhow::Result<ReplayOutcome> {
    let entry = entry(input)?;
    let sets = claim_sets(&input.claims)?;
    let runtime = MapperRuntime::new(Limits::default(), None)?;
    let config = match &input.config {
        Some(path) => read_json(path)?,
        None => entry.config.clone().unwrap_or(Value::Null),
    };
    let (path, pin) = match (&input.mapper, &entry.mapper) {
        (Some(path), _) => (path.clone(), None),
        (None, Some((path, pin))) => (path.clone(), pin.clone()),
        (None, None) => anyhow::bail!("no mapper to replay"),
    };
    let live = side(&runtime, path, pin.as_deref(), config.clone()).await?;
    let against = match (&input.against, &entry.shadow) {
        (Some(path), _) => {
            let config = match &input.against_config {
                Some(p) => read_json(p)?,
                None => entry
                    .shadow
                    .as_ref()
                    .and_then(|(_, _, c)| c.clone())
                    .unwrap_or_else(|| config.clone()),
            };
            Some(side(&runtime, path.clone(), None, config).await?)
        }
        (None, Some((path, pin, shadow_config))) => {
            let config = match &input.against_config {
                Some(p) => read_json(p)?,
                None => shadow_config.clone().unwrap_or(Value::Null),
            };
            Some(side(&runtime, path.clone(), pin.as_deref(), config).await?)
        }
        (None, None) => None,
    };
    let issuer_id = input.issuer.clone().unwrap_or_else(|| "test".to_owned());
    let output = OutputPolicy {
        issuer_id: issuer_id.clone(),
        audiences: if !input.output_audiences.is_empty() {
            input.output_audiences.clone()
        } else {
            entry
                .audiences
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()])
        },
        token_lifetime: None,
    };

    let started = Instant::now();
    let mut counts = [[0usize; 3]; 2];
    let mut lines = Vec::new();
    let mut disagreements = 0;
    for set in &sets {
        let url = entry.url.clone().unwrap_or_else(|| {
            serde_json::from_str::<Value>(&set.json)
                .ok()
                .and_then(|v| v["iss"].as_str().map(str::to_owned))
                .unwrap_or_default()
        });
        let a = run(&live, &set.json, &issuer_id, &url, &output).await;
        counts[0][kind_index(&a)] += 1;
        match &against {
            None => {
                if !matches!(a, Decided::Allow(_)) {
                    lines.push(format!(
                        "  {}: {} {}: {}",
                        set.origin,
                        a.kind(),
                        a.code(),
                        a.reason()
                    ));
                }
            }
            Some(b_side) => {
                let b = run(b_side, &set.json, &issuer_id, &url, &output).await;
                counts[1][kind_index(&b)] += 1;
                let comparison = compare(&a, &b);
                if !comparison.agrees() {
                    disagreements += 1;
                    let mut line = format!("  {}: {} -> {}", set.origin, a.kind(), b.kind());
                    if !comparison.fields.is_empty() {
                        let _ = write!(line, "; differs: {}", comparison.fields.join(", "));
                    }
                    if !comparison.tag_keys.is_empty() {
                        let _ = write!(line, "; tag keys: {}", comparison.tag_keys.join(", "));
                    }
                    for (who, d) in [("mapper ", &a), ("against", &b)] {
                        if !matches!(d, Decided::Allow(_)) {
                            let _ = write!(
                                line,
                                "\n      {who}: {} {}: {}",
                                d.kind(),
                                d.code(),
                                d.reason()
                            );
                        }
                    }
                    lines.push(line);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "mapper:   {} (sha256 {})",
        live.path.display(),
        live.mapper.sha256()
    );
    if let Some(b) = &against {
        let _ = writeln!(
            text,
            "against:  {} (sha256 {})",
            b.path.display(),
            b.mapper.sha256()
        );
    }
    let per_sec = sets.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        text,
        "claim sets: {} in {:.1} ms ({per_sec:.0}/s)",
        sets.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    let _ = writeln!(
        text,
        "\n{:<10}{:>8}{:>8}{:>8}",
        "", "allow", "deny", "refuse"
    );
    let _ = writeln!(
        text,
        "{:<10}{:>8}{:>8}{:>8}",
        "mapper", counts[0][0], counts[0][1], counts[0][2]
    );
    if against.is_some() {
        let _ = writeln!(
            text,
            "{:<10}{:>8}{:>8}{:>8}",
            "against", counts[1][0], counts[1][1], counts[1][2]
        );
        let _ = writeln!(text, "\ndisagreements: {disagreements}");
    } else {
        let _ = writeln!(text, "\nnot allowed: {}", lines.len());
    }
    for line in &lines {
        let _ = writeln!(text, "{line}");
    }
    Ok(ReplayOutcome {
        text,
        disagreements,
        claim_sets: sets.len(),
    })
}

/// Runs one mapper on one claim set and judges its answer as an exchange would.
async fn run(
    side: &Side,
    claims_json: &str,
    issuer_id: &str,
    issuer_url: &str,
    output: &OutputPolicy,
) -> Decided {
    let outcome = side
        .mapper
        .map(&MapRequest {
            subject_kind: SubjectKind::Oidc,
            issuer_id,
            issuer_url,
            claims_json,
            config_json: &side.config,
            explain: false,
        })
        .await;
    let mut audit = Audit::default();
    let mapped = crate::exchange::decide(issuer_id, output, outcome.result, &mut audit);
    Decided::of(&mapped, audit.detail.as_deref())
}

fn kind_index(d: &Decided) -> usize {
    match d {
        Decided::Allow(_) => 0,
        Decided::Deny { .. } => 1,
        Decided::Refuse { .. } => 2,
    }
}
