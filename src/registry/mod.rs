//! The issuers registered with claimex: the live registry, its sources, and what an entry is.
//!
//! An [`IssuerSource`] (the local [`file`], SSM Parameter Store [`ssm`]) yields raw entries.
//! The [`Registry`] validates each one into an [`Issuer`] ([`spec`]) with its mapper loaded,
//! has the mapper check the entry's `mapper_config` (`validate-config`), skips and logs the
//! invalid ones, and swaps the whole set atomically. Lookups by id and by
//! issuer URL are hash-map reads on an immutable snapshot, flat in the number of issuers. A
//! failed refresh keeps the last good snapshot and is reported by [`Registry::status`].

pub mod file;
pub mod spec;
pub mod ssm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;

pub use spec::{EntryError, IssuerRules, IssuerSpec, valid_issuer_id, valid_sha256_hex};

use crate::credentials::CredentialsPolicy;
use crate::mapper::{ClaimsMapper, MapRequest, MapperLoader};
use crate::mint::OutputPolicy;
use crate::settings::{SettingError, range};
use crate::subject::{SubjectKind, SubjectPolicy};

/// Registry backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryBackend {
    /// A local TOML or JSON file.
    File,
    /// AWS SSM Parameter Store.
    Ssm,
}

/// Where issuers are registered: the `[registry]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// `file` or `ssm`.
    pub backend: RegistryBackend,
    /// The issuers file (file backend).
    pub path: PathBuf,
    /// The parameter path prefix (ssm backend).
    pub ssm_prefix: String,
    /// Seconds between two refreshes.
    pub refresh_secs: u64,
}

impl Default for RegistrySettings {
    fn default() -> RegistrySettings {
        RegistrySettings {
            backend: RegistryBackend::File,
            path: "issuers.toml".into(),
            ssm_prefix: "/claimex/issuers/".into(),
            refresh_secs: 30,
        }
    }
}

impl RegistrySettings {
    /// Checks the ranges and the prefix, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("refresh_secs", self.refresh_secs, 1, 86_400)?;
        if self.backend == RegistryBackend::Ssm && !self.ssm_prefix.starts_with('/') {
            return Err(SettingError::new("ssm_prefix", "must start with /"));
        }
        Ok(())
    }
}

/// A validated issuer entry: plain policy for the subject and the output, and its mapper.
pub struct Issuer {
    /// The registered id.
    pub id: String,
    /// What a subject of this entry must be and prove.
    pub subject: SubjectPolicy,
    /// What the outbound token may be.
    pub output: OutputPolicy,
    /// Which roles `POST /credentials` may assume for this entry's callers.
    pub credentials: CredentialsPolicy,
    /// The loaded mapper.
    pub mapper: Arc<dyn ClaimsMapper>,
    /// The mapper's configuration, serialized once.
    pub mapper_config: String,
    /// The shadow mapper, when the entry names one and it loaded.
    pub shadow: Option<Shadow>,
    /// Why the entry's shadow mapper is not running, when it names one that cannot.
    pub shadow_error: Option<String>,
}

/// An entry's shadow mapper: run on the same claims after each live decision, off the
/// response path, its decision compared with the live one (`mapper/shadow.rs`).
pub struct Shadow {
    /// The loaded mapper.
    pub mapper: Arc<dyn ClaimsMapper>,
    /// Its own configuration, serialized once (`null` when unset).
    pub config: String,
    /// Where its module is, for logs.
    pub path: PathBuf,
}

impl Issuer {
    /// The subject kind this entry accepts.
    pub fn kind(&self) -> SubjectKind {
        self.subject.kind()
    }

    /// What the exchange asks this entry's live mapper about the verified `claims_json`.
    pub fn map_request<'a>(&'a self, claims_json: &'a str) -> MapRequest<'a> {
        MapRequest {
            subject_kind: self.kind(),
            issuer_id: &self.id,
            issuer_url: self.subject.url().unwrap_or_default(),
            claims_json,
            config_json: &self.mapper_config,
            explain: false,
        }
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("mapper_sha256", &self.mapper.sha256())
            .finish_non_exhaustive()
    }
}

/// One raw entry from a source: its id, where it came from, and its spec or why it could
/// not be read.
#[derive(Debug)]
pub struct RawEntry {
    /// The issuer id.
    pub id: String,
    /// Where the entry lives (file and table, SSM parameter name), for logs.
    pub origin: String,
    /// The parsed spec, or why it does not parse.
    pub spec: Result<IssuerSpec, EntryError>,
}

/// Why a source could not be read at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where issuer entries come from. Implementations are cheap to call repeatedly: the
/// registry calls [`IssuerSource::load`] on every refresh.
#[async_trait]
pub trait IssuerSource: Send + Sync {
    /// Describes the source for logs and `/healthz` (e.g. `file issuers.toml`).
    fn describe(&self) -> String;
    /// Reads every entry. An unreadable source is an error; an unreadable entry is not.
    async fn load(&self) -> Result<Vec<RawEntry>, SourceError>;
}

/// An immutable set of valid issuers.
#[derive(Default)]
pub struct Snapshot {
    by_id: HashMap<String, Arc<Issuer>>,
    by_url: HashMap<String, Vec<Arc<Issuer>>>,
}

/// Why no issuer could be chosen for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No issuer has this id.
    NoSuchId,
    /// No issuer has this URL (or, chosen by kind, no issuer is of the kind).
    NoSuchUrl,
    /// Several issuers share this URL; the caller must name one with `issuerId`.
    Ambiguous(Vec<String>),
}

impl Snapshot {
    /// Builds a snapshot from valid issuers.
    pub fn new(issuers: impl IntoIterator<Item = Issuer>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for issuer in issuers {
            let issuer = Arc::new(issuer);
            if let Some(url) = issuer.subject.url() {
                snapshot
                    .by_url
                    .entry(url.to_owned())
                    .or_default()
                    .push(issuer.clone());
            }
            snapshot.by_id.insert(issuer.id.clone(), issuer);
        }
        for list in snapshot.by_url.values_mut() {
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        snapshot
    }

    /// The issuer registered under `id`.
    pub fn by_id(&self, id: &str) -> Result<Arc<Issuer>, Lookup> {
        self.by_id.get(id).cloned().ok_or(Lookup::NoSuchId)
    }

    /// The one issuer of kind `kind`, when exactly one is registered.
    pub fn only_of_kind(&self, kind: SubjectKind) -> Result<Arc<Issuer>, Lookup> {
        let mut of_kind = self.by_id.values().filter(|i| i.kind() == kind);
        match (of_kind.next(), of_kind.next()) {
            (Some(one), None) => Ok(one.clone()),
            (None, _) => Err(Lookup::NoSuchUrl),
            (Some(_), Some(_)) => {
                let mut ids: Vec<String> = self
                    .by_id
                    .values()
                    .filter(|i| i.kind() == kind)
                    .map(|i| i.id.clone())
                    .collect();
                ids.sort();
                Err(Lookup::Ambiguous(ids))
            }
        }
    }

    /// The one issuer registered with URL `iss`.
    pub fn by_url(&self, iss: &str) -> Result<Arc<Issuer>, Lookup> {
        match self.by_url.get(iss).map(Vec::as_slice) {
            None | Some([]) => Err(Lookup::NoSuchUrl),
            Some([one]) => Ok(one.clone()),
            Some(many) => Err(Lookup::Ambiguous(
                many.iter().map(|i| i.id.clone()).collect(),
            )),
        }
    }

    /// How many issuers there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.by_id.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// What the last refreshes did, for `/healthz`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegistryStatus {
    /// The source's description.
    pub source: String,
    /// Issuers in the current snapshot.
    pub issuers: usize,
    /// The ids of the entries skipped as invalid in the last successful load, sorted (each
    /// id cut to 64 characters). Why each was skipped is in the log, not here: `/healthz`
    /// is unauthenticated.
    pub invalid_entries: Vec<String>,
    /// The ids of the entries whose shadow mapper could not be loaded in the last successful
    /// load, sorted (they serve without a shadow; why is in the log).
    pub shadow_errors: Vec<String>,
    /// When the last load succeeded (seconds since the Unix epoch).
    pub last_success_unix: Option<u64>,
    /// The last load's error, when the last load failed.
    pub last_error: Option<String>,
    /// Failed loads in a row.
    pub consecutive_failures: u32,
}

impl RegistryStatus {
    /// Whether the registry serves less than it was given: the last load failed (the last
    /// good snapshot is served), or entries were skipped as invalid.
    pub fn is_degraded(&self) -> bool {
        self.last_error.is_some() || !self.invalid_entries.is_empty()
    }
}

/// An entry id as `/healthz` shows it: at most 64 characters.
fn shown_id(id: &str) -> String {
    const MAX: usize = 64;
    match id.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &id[..at]),
        None => id.to_owned(),
    }
}

/// Validates one raw entry into an [`Issuer`] exactly as a refresh does: its spec, its
/// mapper loaded (`loader`), then the mapper's check of its `mapper_config`
/// (`validate-config`). `current`, when given, is the snapshot being replaced: an entry it
/// already holds with the same module and configuration is not checked again.
pub async fn load_entry(
    entry: RawEntry,
    rules: &IssuerRules,
    loader: &dyn MapperLoader,
    current: Option<&Snapshot>,
) -> Result<Issuer, EntryError> {
    let issuer = entry
        .spec
        .and_then(|spec| spec.into_issuer(&entry.id, rules, loader))?;
    check_mapper_config(issuer, current).await
}

/// Has the entry's mapper check its configuration, unless the current snapshot already
/// holds this entry with the same module and configuration (the check is deterministic: a
/// mapper has no clock, randomness or state), so a refresh costs no call per unchanged entry.
async fn check_mapper_config(
    mut issuer: Issuer,
    current: Option<&Snapshot>,
) -> Result<Issuer, EntryError> {
    let old = current.and_then(|current| current.by_id(&issuer.id).ok());
    let known = old.as_ref().is_some_and(|old| {
        old.mapper.sha256() == issuer.mapper.sha256() && old.mapper_config == issuer.mapper_config
    });
    if !known {
        issuer
            .mapper
            .validate_config(&issuer.mapper_config)
            .await
            .map_err(EntryError::MapperConfig)?;
    }
    // The shadow's configuration is checked the same way, but a refusal only drops the shadow.
    let shadow_known = |shadow: &Shadow| {
        old.as_ref()
            .and_then(|old| old.shadow.as_ref())
            .is_some_and(|o| {
                o.mapper.sha256() == shadow.mapper.sha256() && o.config == shadow.config
            })
    };
    if let Some(shadow) = &issuer.shadow
        && !shadow_known(shadow)
        && let Err(e) = shadow.mapper.validate_config(&shadow.config).await
    {
        issuer.shadow_error = Some(format!("shadow_mapper_config: {e}"));
        issuer.shadow = None;
    }
    Ok(issuer)
}

/// The live registry: the current snapshot, and how to refresh it.
pub struct Registry {
    source: Box<dyn IssuerSource>,
    rules: IssuerRules,
    loader: Arc<dyn MapperLoader>,
    current: RwLock<Arc<Snapshot>>,
    status: Mutex<RegistryStatus>,
}

/// What one successful refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    /// Valid issuers loaded.
    pub loaded: usize,
    /// Invalid entries skipped: each one's origin and why (for logs and the command line).
    pub skipped: Vec<String>,
    /// Their ids, sorted (as `/healthz` shows them).
    pub invalid_ids: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    /// A registry over `source`, empty until the first [`Registry::refresh`].
    pub fn new(
        source: Box<dyn IssuerSource>,
        rules: IssuerRules,
        loader: Arc<dyn MapperLoader>,
    ) -> Registry {
        let status = RegistryStatus {
            source: source.describe(),
            ..RegistryStatus::default()
        };
        Registry {
            source,
            rules,
            loader,
            current: RwLock::new(Arc::new(Snapshot::default())),
            status: Mutex::new(status),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The refresh status.
    pub fn status(&self) -> RegistryStatus {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Loads the source again and swaps in the new set of valid issuers. Invalid entries
    /// are logged with their origin and skipped; when the source cannot be read at all the
    /// current snapshot stays and the error is returned.
    pub async fn refresh(&self) -> Result<RefreshReport, SourceError> {
        let loaded = self.source.load().await;
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let raw = match loaded {
            Ok(raw) => raw,
            Err(e) => {
                status.last_error = Some(e.0.clone());
                status.consecutive_failures += 1;
                *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
                return Err(e);
            }
        };
        let current = self.snapshot();
        let mut issuers = Vec::with_capacity(raw.len());
        let mut skipped = Vec::new();
        let mut invalid_ids = Vec::new();
        let mut shadow_errors = Vec::new();
        for entry in raw {
            let (id, origin) = (entry.id.clone(), entry.origin.clone());
            match load_entry(entry, &self.rules, self.loader.as_ref(), Some(&current)).await {
                Ok(issuer) => {
                    if let Some(reason) = &issuer.shadow_error {
                        tracing::error!(%origin, issuer_id = %id, %reason, "the entry's shadow mapper cannot run; the entry serves without it");
                        shadow_errors.push(shown_id(&id));
                    }
                    issuers.push(issuer)
                }
                Err(reason) => {
                    tracing::error!(%origin, issuer_id = %id, %reason, "skipping invalid issuer entry");
                    skipped.push(format!("{origin}: {reason}"));
                    invalid_ids.push(shown_id(&id));
                }
            }
        }
        invalid_ids.sort();
        let snapshot = Snapshot::new(issuers);
        let report = RefreshReport {
            loaded: snapshot.len(),
            skipped,
            invalid_ids: invalid_ids.clone(),
        };
        status.issuers = snapshot.len();
        status.invalid_entries = invalid_ids;
        shadow_errors.sort();
        status.shadow_errors = shadow_errors;
        status.last_success_unix = Some(unix_now());
        status.last_error = None;
        status.consecutive_failures = 0;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
        Ok(report)
    }

    /// Refreshes every `interval` for as long as the registry lives, backing off after
    /// failures ([`crate::refresh::every`]).
    pub async fn refresh_forever(self: Arc<Self>, interval: Duration) {
        crate::refresh::every(
            self,
            interval,
            "issuer registry refresh failed; keeping the last good registry",
            |registry| async move {
                let report = registry.refresh().await.map_err(|e| e.to_string())?;
                tracing::debug!(
                    issuers = report.loaded,
                    skipped = report.skipped.len(),
                    "issuer registry refreshed"
                );
                Ok(())
            },
        )
        .await
    }

    /// Where relative mapper paths start.
    pub fn mapper_dir(&self) -> &Path {
        &self.rules.mapper_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapper::{ConfigError, LoadError, MapOutcome, MapRequest, MapperError};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Refuses a configuration with a member `bad`, fails to check one with `trap`, and
    /// counts the checks.
    #[derive(Default)]
    struct Picky {
        checks: AtomicUsize,
    }

    #[async_trait]
    impl ClaimsMapper for Picky {
        fn sha256(&self) -> &str {
            "picky"
        }
        async fn validate_config(&self, config_json: &str) -> Result<(), ConfigError> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            if config_json.contains("\"bad\"") {
                Err(ConfigError::Rejected("unknown field `bad`".into()))
            } else if config_json.contains("\"trap\"") {
                Err(ConfigError::Failed(MapperError::Trap("unreachable".into())))
            } else {
                Ok(())
            }
        }
        async fn map(&self, _: &MapRequest<'_>) -> MapOutcome {
            Err(MapperError::Runtime("not called".into())).into()
        }
    }

    struct PickyLoader(Arc<Picky>);
    impl MapperLoader for PickyLoader {
        fn load(&self, _: &Path, _: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
            Ok(self.0.clone())
        }
    }

    /// Entries whose `mapper_config` can be changed between refreshes.
    struct Configs(Mutex<Vec<(&'static str, serde_json::Value)>>);
    #[async_trait]
    impl IssuerSource for Arc<Configs> {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn load(&self) -> Result<Vec<RawEntry>, SourceError> {
            let configs = self.0.lock().unwrap();
            Ok(configs
                .iter()
                .map(|(id, config)| {
                    let mut json = spec::tests::base();
                    json["mapper_config"] = config.clone();
                    RawEntry {
                        id: (*id).into(),
                        origin: format!("entry {id}"),
                        spec: IssuerSpec::from_value(json),
                    }
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_config_the_mapper_refuses_skips_the_entry_and_is_checked_once() {
        let mapper = Arc::new(Picky::default());
        let configs = Arc::new(Configs(Mutex::new(vec![
            ("good", serde_json::json!({"ok": 1})),
            ("typo", serde_json::json!({"bad": 1})),
            ("broken", serde_json::json!({"trap": 1})),
        ])));
        let registry = Registry::new(
            Box::new(configs.clone()),
            spec::tests::rules(),
            Arc::new(PickyLoader(mapper.clone())),
        );
        let report = registry.refresh().await.unwrap();
        assert_eq!(report.loaded, 1);
        assert_eq!(registry.snapshot().ids(), ["good"]);
        assert_eq!(
            report.skipped,
            [
                "entry typo: the mapper refused mapper_config: unknown field `bad`",
                "entry broken: the mapper could not check mapper_config: the mapper trapped: unreachable",
            ]
        );
        assert_eq!(report.invalid_ids, ["broken", "typo"]);
        assert_eq!(registry.status().invalid_entries, report.invalid_ids);
        assert!(registry.status().is_degraded());
        assert_eq!(mapper.checks.load(Ordering::SeqCst), 3);

        // An unchanged entry of the current snapshot is not checked again; a changed one is.
        registry.refresh().await.unwrap();
        assert_eq!(
            mapper.checks.load(Ordering::SeqCst),
            5,
            "good is not checked again"
        );
        configs.0.lock().unwrap()[0].1 = serde_json::json!({"bad": 2});
        let report = registry.refresh().await.unwrap();
        assert_eq!(report.loaded, 0);
        assert_eq!(mapper.checks.load(Ordering::SeqCst), 8);
    }

    #[test]
    fn lookup_by_url_is_exact_and_detects_ambiguity() {
        let make = |id: &str, url: &str| {
            let mut json = spec::tests::base();
            json["issuer"] = url.into();
            spec::tests::issuer(id, json).unwrap()
        };
        let snapshot = Snapshot::new([
            make("a", "https://one.example"),
            make("b", "https://two.example"),
            make("c", "https://two.example"),
        ]);
        assert_eq!(snapshot.by_url("https://one.example").unwrap().id, "a");
        assert_eq!(
            snapshot.by_url("https://one.example/").err(),
            Some(Lookup::NoSuchUrl)
        );
        assert_eq!(
            snapshot.by_url("https://two.example").err(),
            Some(Lookup::Ambiguous(vec!["b".into(), "c".into()]))
        );
        assert_eq!(snapshot.by_id("zzz").err(), Some(Lookup::NoSuchId));
        assert_eq!(
            snapshot.only_of_kind(SubjectKind::Oidc).err(),
            Some(Lookup::Ambiguous(vec!["a".into(), "b".into(), "c".into()]))
        );
        let one = Snapshot::new([make("a", "https://one.example")]);
        assert_eq!(one.only_of_kind(SubjectKind::Oidc).unwrap().id, "a");
    }
}
