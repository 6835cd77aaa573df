//! `claimex issuers check`: issuer entries checked offline, exactly as the registry loads
//! them: the same reading of the file (or of SSM, with `--config`), the same validation of
//! each entry, each mapper loaded and asked to check its `mapper_config` (`validate-config`).
//! It prints, per entry, `ok` or why a server would skip it, so a typo is found before a
//! deployment rather than by `/healthz` or a CI job's 403.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::credentials::CredentialsPolicy;
use crate::mapper::wasm::{CacheDir, Limits, MapperRuntime};
use crate::registry::file::FileSource;
use crate::registry::{IssuerRules, IssuerSource, load_entry};

/// What to check.
pub struct CheckInput<'a> {
    /// The issuers file (TOML or JSON); with `config` and without it, the configured source.
    pub file: Option<&'a Path>,
    /// The server's configuration: mapper directory, limits, registry backend.
    pub config: Option<&'a Path>,
    /// Where relative mapper paths start (default: the configuration's `mapper.dir`, else
    /// the issuers file's directory).
    pub mapper_dir: Option<&'a Path>,
    /// Only these entries (all when empty).
    pub ids: &'a [String],
}

/// The report and the exit code: 0 when every entry would load, 1 when one would not (or
/// there is none), 2 when the source cannot be read.
pub struct CheckOutcome {
    /// The process exit code.
    pub code: ExitCode,
    /// What to print.
    pub text: String,
}

/// `claimex issuers check`.
pub async fn check(input: &CheckInput<'_>) -> anyhow::Result<CheckOutcome> {
    let (source, mut rules, limits, cache_dir): (Box<dyn IssuerSource>, IssuerRules, Limits, _) =
        match input.config {
            Some(path) => {
                let config = Config::load(Some(path))?;
                let source = match input.file {
                    Some(file) => {
                        Box::new(FileSource::new(file.to_owned())) as Box<dyn IssuerSource>
                    }
                    None => crate::app::issuer_source(&config).await,
                };
                (
                    source,
                    crate::app::issuer_rules(&config),
                    config.mapper.limits(),
                    config.mapper.cache(),
                )
            }
            None => {
                let file = input.file.ok_or_else(|| {
                    anyhow::anyhow!("name the issuers file (claimex issuers check issuers.toml), or give --config")
                })?;
                let dir = file
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                let rules = IssuerRules {
                    mapper_dir: dir,
                    allow_http_loopback: false,
                };
                (
                    Box::new(FileSource::new(file.to_owned())) as Box<dyn IssuerSource>,
                    rules,
                    Limits::default(),
                    CacheDir::Off,
                )
            }
        };
    if let Some(dir) = input.mapper_dir {
        rules.mapper_dir = dir.to_owned();
    }
    let runtime = MapperRuntime::with_cache(limits, cache_dir)?;
    let mut text = String::new();
    let mut entries = match source.load().await {
        Ok(entries) => entries,
        Err(e) => {
            let _ = writeln!(text, "cannot read {}: {e}", source.describe());
            return Ok(CheckOutcome {
                code: ExitCode::from(2),
                text,
            });
        }
    };
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    if !input.ids.is_empty() {
        if let Some(missing) = input
            .ids
            .iter()
            .find(|id| !entries.iter().any(|e| &e.id == *id))
        {
            let known: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            let _ = writeln!(
                text,
                "{} has no entry {missing:?} (it has: {})",
                source.describe(),
                known.join(", ")
            );
            return Ok(CheckOutcome {
                code: ExitCode::from(2),
                text,
            });
        }
        entries.retain(|e| input.ids.contains(&e.id));
    }
    let _ = writeln!(
        text,
        "{}: {} entr{} (mappers relative to {})",
        source.describe(),
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        shown_dir(&rules.mapper_dir)
    );
    let total = entries.len();
    let mut failed = 0;
    for entry in entries {
        let (id, origin) = (entry.id.clone(), entry.origin.clone());
        match load_entry(entry, &rules, runtime.as_ref(), None).await {
            Ok(issuer) => {
                let _ = writeln!(
                    text,
                    "ok    {id}: mapper sha256 {}, mapper_config accepted; {}",
                    issuer.mapper.sha256(),
                    credentials_summary(&issuer.credentials)
                );
            }
            Err(reason) => {
                failed += 1;
                let _ = writeln!(text, "FAIL  {id} ({origin}): {reason}");
            }
        }
    }
    let code = if total == 0 {
        let _ = writeln!(
            text,
            "no issuer entry: a server would refuse every exchange"
        );
        ExitCode::from(1)
    } else if failed > 0 {
        let _ = writeln!(
            text,
            "{failed} of {total} entries would be skipped (a server logs each, and /healthz reports degraded)"
        );
        ExitCode::from(1)
    } else {
        let _ = writeln!(text, "every entry would load");
        ExitCode::SUCCESS
    };
    Ok(CheckOutcome { code, text })
}

/// What an entry hands out on `POST /credentials` (and `/token`), for the report.
fn credentials_summary(policy: &CredentialsPolicy) -> String {
    if policy.allowed_roles.is_empty() {
        return "no AWS credentials (no allowed_roles)".to_owned();
    }
    let default = policy
        .default_role_arn
        .as_deref()
        .map_or_else(String::new, |role| format!(", default {role}"));
    format!(
        "AWS credentials for {}{default}, at most {} s",
        policy.allowed_roles.join(" "),
        policy.max_duration_secs
    )
}

fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}
