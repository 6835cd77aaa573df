//! The issuers registered with claimex: their schema, validation, and the live registry.
//!
//! A [`IssuerSource`] (local file, SSM Parameter Store) yields raw entries. The [`Registry`]
//! validates each one into an [`Issuer`] with its mapper loaded, skips and logs the invalid
//! ones, and swaps the whole set atomically. Lookups by id and by issuer URL are hash-map
//! reads on an immutable snapshot, flat in the number of issuers. A failed refresh keeps the
//! last good snapshot and is reported by [`Registry::status`].

pub mod file;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::mapping::{ClaimsMapper, MapperLoader};

/// One issuer entry as written by the operator (file table or SSM parameter JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// The issuer URL; the token's `iss` and the discovery document's `issuer` must equal it.
    pub issuer: String,
    /// Accepted inbound audiences: the token's `aud` must contain one. Required, non-empty.
    pub audiences: Vec<String>,
    /// Accepted inbound signature algorithms (asymmetric only). Default: `["RS256"]`.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// The mapper module (a `.wasm` component), relative to the mapper directory.
    pub mapper: PathBuf,
    /// The SHA-256 (hex) the mapper module must have, when pinned.
    #[serde(default)]
    pub mapper_sha256: Option<String>,
    /// Configuration handed to the mapper as JSON.
    #[serde(default)]
    pub mapper_config: Option<serde_json::Value>,
    /// Audiences the mapper may give the outbound token. Default: `["sts.amazonaws.com"]`.
    #[serde(default)]
    pub output_audiences: Option<Vec<String>>,
    /// Lifetime of tokens minted for this issuer, capped by the server's maximum.
    #[serde(default)]
    pub token_lifetime_secs: Option<u64>,
}

/// How entries are validated.
#[derive(Debug, Clone)]
pub struct IssuerRules {
    /// Where relative mapper paths start.
    pub mapper_dir: PathBuf,
    /// Accept `http://` issuer URLs whose host is a loopback address (tests, demos).
    pub allow_http_loopback: bool,
}

/// A validated issuer with its mapper loaded.
pub struct Issuer {
    /// The registered id.
    pub id: String,
    /// The issuer URL, exactly as registered.
    pub url: String,
    /// Accepted inbound audiences (non-empty).
    pub audiences: Vec<String>,
    /// Accepted inbound algorithms (non-empty, asymmetric).
    pub algorithms: Vec<Algorithm>,
    /// The mapper's configuration, serialized once.
    pub mapper_config: String,
    /// Audiences the outbound token may carry (non-empty).
    pub output_audiences: Vec<String>,
    /// Per-issuer token lifetime, if set.
    pub token_lifetime: Option<Duration>,
    /// The loaded mapper.
    pub mapper: Arc<dyn ClaimsMapper>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("mapper_sha256", &self.mapper.sha256())
            .finish_non_exhaustive()
    }
}

/// Whether `id` is a usable issuer id: 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_issuer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks an issuer URL: `https://` with a host, no query or fragment, no user info;
/// `http://` only for loopback hosts and only when allowed.
pub fn check_issuer_url(raw: &str, allow_http_loopback: bool) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("issuer {raw:?} is not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("issuer {raw:?} must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("issuer {raw:?} must not contain credentials"));
    }
    let host = url
        .host()
        .ok_or_else(|| format!("issuer {raw:?} has no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http_loopback && is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "issuer {raw:?} uses http: issuers must use https (plain http is accepted only for \
             loopback hosts with `jwks.allow_http_loopback = true`)"
        )),
        other => Err(format!("issuer {raw:?} has scheme {other:?}: use https")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" | "HS384" | "HS512" => {
            return Err(format!(
                "algorithm {name} is symmetric: issuers must sign with a public-key algorithm"
            ));
        }
        "none" => return Err("algorithm none is never accepted".into()),
        other => return Err(format!("unknown algorithm {other:?}")),
    };
    Ok(alg)
}

fn non_empty_strings(what: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if let Some(bad) = list.iter().find(|s| s.trim().is_empty() || s.len() > 255) {
        return Err(format!("{what} has an empty or over-long entry {bad:?}"));
    }
    Ok(())
}

/// Whether `pin` is 64 hex digits.
pub fn valid_sha256_hex(pin: &str) -> bool {
    pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit())
}

impl IssuerSpec {
    /// Validates the entry, loads its mapper, and yields the issuer.
    pub fn into_issuer(
        self,
        id: &str,
        rules: &IssuerRules,
        loader: &dyn MapperLoader,
    ) -> Result<Issuer, String> {
        if !valid_issuer_id(id) {
            return Err(format!(
                "issuer id {id:?} must be 1 to 64 of the characters A-Z a-z 0-9 _ . -"
            ));
        }
        check_issuer_url(&self.issuer, rules.allow_http_loopback)?;
        non_empty_strings("audiences", &self.audiences)?;
        let algorithms = match &self.algorithms {
            None => vec![Algorithm::RS256],
            Some(names) if names.is_empty() => return Err("algorithms must not be empty".into()),
            Some(names) => names
                .iter()
                .map(|n| parse_algorithm(n))
                .collect::<Result<_, _>>()?,
        };
        let output_audiences = self
            .output_audiences
            .unwrap_or_else(|| vec![crate::mint::DEFAULT_AUDIENCE.to_owned()]);
        non_empty_strings("output_audiences", &output_audiences)?;
        if let Some(pin) = &self.mapper_sha256
            && !valid_sha256_hex(pin)
        {
            return Err(format!("mapper_sha256 {pin:?} is not 64 hex digits"));
        }
        let token_lifetime = match self.token_lifetime_secs {
            Some(0) => return Err("token_lifetime_secs must be positive".into()),
            Some(s) => Some(Duration::from_secs(s)),
            None => None,
        };
        let path = rules.mapper_dir.join(&self.mapper);
        let mapper = loader
            .load(&path, self.mapper_sha256.as_deref())
            .map_err(|e| format!("mapper {}: {e}", path.display()))?;
        let mapper_config = serde_json::to_string(
            self.mapper_config
                .as_ref()
                .unwrap_or(&serde_json::Value::Null),
        )
        .map_err(|e| format!("mapper_config: {e}"))?;
        Ok(Issuer {
            id: id.to_owned(),
            url: self.issuer,
            audiences: self.audiences,
            algorithms,
            mapper_config,
            output_audiences,
            token_lifetime,
            mapper,
        })
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
    /// The parsed spec, or the parse error.
    pub spec: Result<IssuerSpec, String>,
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
    /// No issuer has this URL.
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
            snapshot
                .by_url
                .entry(issuer.url.clone())
                .or_default()
                .push(issuer.clone());
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
    /// Entries skipped as invalid in the last successful load.
    pub invalid_entries: Vec<String>,
    /// When the last load succeeded (seconds since the Unix epoch).
    pub last_success_unix: Option<u64>,
    /// The last load's error, when the last load failed.
    pub last_error: Option<String>,
    /// Failed loads in a row.
    pub consecutive_failures: u32,
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
    /// Invalid entries skipped, with their origins.
    pub skipped: Vec<String>,
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
        let mut issuers = Vec::with_capacity(raw.len());
        let mut skipped = Vec::new();
        for entry in raw {
            let result = entry
                .spec
                .and_then(|spec| spec.into_issuer(&entry.id, &self.rules, self.loader.as_ref()));
            match result {
                Ok(issuer) => issuers.push(issuer),
                Err(reason) => {
                    tracing::error!(origin = %entry.origin, issuer_id = %entry.id, %reason, "skipping invalid issuer entry");
                    skipped.push(format!("{}: {reason}", entry.origin));
                }
            }
        }
        let snapshot = Snapshot::new(issuers);
        let report = RefreshReport {
            loaded: snapshot.len(),
            skipped: skipped.clone(),
        };
        status.issuers = snapshot.len();
        status.invalid_entries = skipped;
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
    use crate::mapping::{MapDecision, MapOutcome, MapRequest};

    struct Fixed;
    #[async_trait::async_trait]
    impl ClaimsMapper for Fixed {
        fn sha256(&self) -> &str {
            "00"
        }
        async fn map(&self, _: &MapRequest<'_>) -> MapOutcome {
            Ok(MapDecision::Deny("fixed".into())).into()
        }
    }
    struct Loader;
    impl MapperLoader for Loader {
        fn load(&self, path: &Path, _: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, String> {
            if path.ends_with("missing.wasm") {
                Err("no such file".into())
            } else {
                Ok(Arc::new(Fixed))
            }
        }
    }

    fn rules() -> IssuerRules {
        IssuerRules {
            mapper_dir: PathBuf::from("/m"),
            allow_http_loopback: false,
        }
    }

    fn spec(json: serde_json::Value) -> Result<Issuer, String> {
        let spec: IssuerSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        spec.into_issuer("github", &rules(), &Loader)
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://token.actions.githubusercontent.com",
            "audiences": ["https://claimex.example.com"],
            "mapper": "github.wasm"
        })
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut b = base();
        b[key] = value;
        b
    }

    #[test]
    fn defaults() {
        let issuer = spec(base()).unwrap();
        assert_eq!(issuer.algorithms, vec![Algorithm::RS256]);
        assert_eq!(issuer.output_audiences, vec!["sts.amazonaws.com"]);
        assert_eq!(issuer.mapper_config, "null");
    }

    #[test]
    fn refuses_bad_entries_with_reasons() {
        let cases = [
            (
                with("audiences", serde_json::json!([])),
                "audiences must not be empty",
            ),
            (
                with("issuer", serde_json::json!("http://example.com")),
                "uses http",
            ),
            (
                with("issuer", serde_json::json!("https://x.com/?a=b")),
                "query",
            ),
            (with("issuer", serde_json::json!("not a url")), "not a URL"),
            (
                with("algorithms", serde_json::json!(["HS256"])),
                "symmetric",
            ),
            (
                with("algorithms", serde_json::json!(["none"])),
                "never accepted",
            ),
            (
                with("algorithms", serde_json::json!([])),
                "must not be empty",
            ),
            (with("mapper_sha256", serde_json::json!("abc")), "64 hex"),
            (
                with("mapper", serde_json::json!("missing.wasm")),
                "no such file",
            ),
            (with("surprise", serde_json::json!(1)), "unknown field"),
        ];
        for (json, needle) in cases {
            let err = spec(json.clone()).err().unwrap_or_default();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn http_only_for_allowed_loopback() {
        assert!(check_issuer_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_issuer_url("http://localhost:9", true).is_ok());
        assert!(check_issuer_url("http://[::1]:9", true).is_ok());
        assert!(check_issuer_url("http://127.0.0.1:9", false).is_err());
        assert!(check_issuer_url("http://10.0.0.1", true).is_err());
        assert!(check_issuer_url("https://u:p@x.com", false).is_err());
    }

    #[test]
    fn issuer_ids() {
        assert!(valid_issuer_id("github"));
        assert!(valid_issuer_id("gitlab.com-self_hosted"));
        assert!(!valid_issuer_id(""));
        assert!(!valid_issuer_id("a/b"));
        assert!(!valid_issuer_id(&"a".repeat(65)));
    }

    #[test]
    fn lookup_by_url_is_exact_and_detects_ambiguity() {
        let make = |id: &str, url: &str| {
            let mut json = base();
            json["issuer"] = url.into();
            let spec: IssuerSpec = serde_json::from_value(json).unwrap();
            spec.into_issuer(id, &rules(), &Loader).unwrap()
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
    }
}
