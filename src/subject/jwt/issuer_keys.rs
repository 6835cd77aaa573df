//! Fetching and caching issuers' verification keys: OIDC discovery, then the JWKS.
//!
//! The adapter behind [`super::IssuerKeys`]. For each registered issuer it reads
//! `<issuer>/.well-known/openid-configuration`, requires the document's `issuer` to equal the
//! registered URL exactly, follows `jwks_uri`, and caches the parsed keys in a `moka` cache
//! for as long as the JWKS response's `Cache-Control: max-age` says, clamped to configured
//! bounds. A token naming an unknown `kid` triggers at most one refetch per issuer per
//! refetch interval. When the issuer cannot be reached, the last keys keep being served; a
//! token naming a key they lack is then refused as unavailable (503), not as unverified, with
//! the time until the next fetch may be tried as its `Retry-After`.
//! Responses are size-capped, redirects are not followed, and only registered issuer URLs
//! (never anything taken from a token) are fetched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache;
use reqwest::header::{CACHE_CONTROL, HeaderMap};
use serde::Deserialize;

use super::{IssuerKeys, KeySet, KeysError, OidcPolicy, check_issuer_url};
use crate::metrics::{NoRecorder, Recorder};
use crate::settings::{SettingError, range};

/// Largest discovery or JWKS document accepted, in bytes.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How keys are fetched and cached: the `[jwks]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksSettings {
    /// Cache lifetime when the JWKS response has no `max-age`, seconds.
    pub default_ttl_secs: u64,
    /// Shortest cache lifetime, whatever the issuer says, seconds.
    pub min_ttl_secs: u64,
    /// Longest cache lifetime, whatever the issuer says, seconds.
    pub max_ttl_secs: u64,
    /// Least time between two fetches for one issuer prompted by unknown `kid`s or failures,
    /// seconds.
    pub refetch_interval_secs: u64,
    /// Timeout of one HTTP request, milliseconds.
    pub timeout_ms: u64,
}

impl Default for JwksSettings {
    fn default() -> JwksSettings {
        JwksSettings {
            default_ttl_secs: 300,
            min_ttl_secs: 60,
            max_ttl_secs: 86_400,
            refetch_interval_secs: 30,
            timeout_ms: 5000,
        }
    }
}

impl JwksSettings {
    /// Checks the ranges, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("min_ttl_secs", self.min_ttl_secs, 1, 86_400)?;
        range(
            "max_ttl_secs",
            self.max_ttl_secs,
            self.min_ttl_secs,
            7 * 86_400,
        )?;
        range(
            "default_ttl_secs",
            self.default_ttl_secs,
            self.min_ttl_secs,
            self.max_ttl_secs,
        )?;
        range("refetch_interval_secs", self.refetch_interval_secs, 1, 3600)?;
        range("timeout_ms", self.timeout_ms, 100, 60_000)
    }

    fn default_ttl(&self) -> Duration {
        Duration::from_secs(self.default_ttl_secs)
    }
    fn min_ttl(&self) -> Duration {
        Duration::from_secs(self.min_ttl_secs)
    }
    fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl_secs)
    }
    fn refetch_interval(&self) -> Duration {
        Duration::from_secs(self.refetch_interval_secs)
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The discovery members claimex needs, typed with `openidconnect`'s URL types.
///
/// `openidconnect::core::CoreProviderMetadata` is not used because it requires
/// `authorization_endpoint`, which GitHub Actions' discovery document does not have.
#[derive(Deserialize)]
struct Discovery {
    issuer: openidconnect::IssuerUrl,
    jwks_uri: openidconnect::JsonWebKeySetUrl,
}

struct Entry {
    keys: Arc<KeySet>,
    fetched: Instant,
    fresh_until: Instant,
    /// When the last fetch was tried (success or failure), to pace refetches.
    attempted: Instant,
    /// Whether that fetch failed: a `kid` the cached keys lack may then be the issuer's new
    /// key, which cannot be had now (503), rather than a key the issuer does not have (401).
    failed: bool,
}

/// Keys of every registered issuer, fetched over HTTP and cached.
pub struct HttpIssuerKeys {
    http: reqwest::Client,
    settings: JwksSettings,
    allow_http_loopback: bool,
    entries: Cache<String, Arc<Entry>>,
    locks: Cache<String, Arc<tokio::sync::Mutex<()>>>,
    /// Issuers whose keys could not be fetched and are not cached either, with when that was,
    /// until the refetch interval passes: a stream of tokens for a down issuer does not become
    /// a stream of fetches.
    failed: Cache<String, Instant>,
    /// Where fetches are reported.
    recorder: Arc<dyn Recorder>,
}

impl HttpIssuerKeys {
    /// A cache with these settings; `allow_http_loopback` accepts `http://` for loopback
    /// issuers and `jwks_uri`s (tests, demos).
    pub fn new(
        settings: JwksSettings,
        allow_http_loopback: bool,
    ) -> Result<HttpIssuerKeys, reqwest::Error> {
        let refetch_interval = settings.refetch_interval();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("claimex/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpIssuerKeys {
            http,
            settings,
            allow_http_loopback,
            entries: Cache::builder().max_capacity(100_000).build(),
            locks: Cache::builder().max_capacity(100_000).build(),
            failed: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(refetch_interval)
                .build(),
            recorder: Arc::new(NoRecorder),
        })
    }

    /// Reports every fetch (its time, whether it succeeded) to `recorder`.
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder>) -> HttpIssuerKeys {
        self.recorder = recorder;
        self
    }

    /// The age of each cached key set, by issuer URL.
    pub fn ages(&self) -> Vec<(String, Duration)> {
        self.entries
            .iter()
            .map(|(url, entry)| (url.as_ref().clone(), entry.fetched.elapsed()))
            .collect()
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, HeaderMap), String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        let max = MAX_DOCUMENT_BYTES;
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!(
                "GET {url}: the document is larger than {max} bytes"
            ));
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > max {
                return Err(format!(
                    "GET {url}: the document is larger than {max} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, headers))
    }

    async fn fetch(&self, issuer: &OidcPolicy) -> Result<(KeySet, Duration), String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.url.trim_end_matches('/')
        );
        let (body, _) = self.get(&discovery_url).await?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{discovery_url}: not a usable discovery document: {e}"))?;
        if discovery.issuer.as_str() != issuer.url {
            return Err(format!(
                "{discovery_url}: the document names issuer {:?}, not the registered {:?}",
                discovery.issuer.as_str(),
                issuer.url
            ));
        }
        let jwks_url = discovery.jwks_uri.url().as_str().to_owned();
        check_issuer_url(&jwks_url, self.allow_http_loopback)
            .map_err(|e| format!("jwks_uri: {e}"))?;
        let (body, headers) = self.get(&jwks_url).await?;
        let keys = KeySet::from_jwks(&body).map_err(|e| format!("{jwks_url}: {e}"))?;
        Ok((keys, self.ttl(&headers)))
    }

    fn ttl(&self, headers: &HeaderMap) -> Duration {
        let s = &self.settings;
        let directives = headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| d.trim().to_ascii_lowercase());
        let mut ttl = None;
        for directive in directives {
            if directive == "no-store" || directive == "no-cache" {
                return s.min_ttl();
            }
            if let Some(age) = directive.strip_prefix("max-age=")
                && let Ok(age) = age.trim_matches('"').parse::<u64>()
            {
                ttl = Some(Duration::from_secs(age));
            }
        }
        ttl.unwrap_or(s.default_ttl())
            .clamp(s.min_ttl(), s.max_ttl())
    }
}

/// The refusal for an issuer whose keys cannot be had until `next_fetch`.
fn unavailable(issuer: &OidcPolicy, next_fetch: Instant) -> KeysError {
    KeysError::Unavailable {
        reason: format!(
            "the keys of issuer {:?} cannot be fetched right now; try again shortly",
            issuer.id
        ),
        retry_after: next_fetch.saturating_duration_since(Instant::now()),
    }
}

/// The refusal for a token naming a key the cached keys lack while the issuer is down.
fn kid_unavailable(issuer: &OidcPolicy, next_fetch: Instant) -> KeysError {
    KeysError::Unavailable {
        reason: format!(
            "the token's kid is not among the cached keys of issuer {:?}, and its keys cannot \
             be fetched right now; try again shortly",
            issuer.id
        ),
        retry_after: next_fetch.saturating_duration_since(Instant::now()),
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[async_trait]
impl IssuerKeys for HttpIssuerKeys {
    async fn keys(
        &self,
        issuer: &OidcPolicy,
        unknown_kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysError> {
        let now = Instant::now();
        let pace = self.settings.refetch_interval();
        let usable = |entry: &Entry, now: Instant| match unknown_kid {
            None => now < entry.fresh_until || now < entry.attempted + pace,
            Some(kid) => entry.keys.has_kid(kid) || now < entry.attempted + pace,
        };
        // A kid the cached keys lack, while the last fetch failed and the next is not due.
        let kid_paced = |entry: &Entry, now: Instant| {
            unknown_kid.is_some_and(|kid| !entry.keys.has_kid(kid))
                && entry.failed
                && now < entry.attempted + pace
        };
        if let Some(entry) = self.entries.get(&issuer.url).await
            && usable(&entry, now)
        {
            if kid_paced(&entry, now) {
                return Err(kid_unavailable(issuer, entry.attempted + pace));
            }
            return Ok(entry.keys.clone());
        }
        if self.entries.get(&issuer.url).await.is_none()
            && let Some(failed_at) = self.failed.get(&issuer.url).await
        {
            return Err(unavailable(issuer, failed_at + pace));
        }
        let lock = self
            .locks
            .get_with(issuer.url.clone(), async {
                Arc::new(tokio::sync::Mutex::new(()))
            })
            .await;
        let _guard = lock.lock().await;
        // Someone else may have fetched while this request waited.
        let cached = self.entries.get(&issuer.url).await;
        if let Some(entry) = &cached
            && usable(entry, Instant::now())
        {
            if kid_paced(entry, Instant::now()) {
                return Err(kid_unavailable(issuer, entry.attempted + pace));
            }
            return Ok(entry.keys.clone());
        }
        let started = Instant::now();
        let fetched = self.fetch(issuer).await;
        self.recorder
            .key_fetch(&issuer.id, started.elapsed(), fetched.is_ok());
        match fetched {
            Ok((keys, ttl)) => {
                let now = Instant::now();
                let keys = Arc::new(keys);
                tracing::info!(issuer_id = %issuer.id, keys = keys.len(), ttl_secs = ttl.as_secs(), "fetched issuer keys");
                self.entries
                    .insert(
                        issuer.url.clone(),
                        Arc::new(Entry {
                            keys: keys.clone(),
                            fetched: now,
                            fresh_until: now + ttl,
                            attempted: now,
                            failed: false,
                        }),
                    )
                    .await;
                Ok(keys)
            }
            Err(reason) => match cached {
                Some(entry) => {
                    tracing::warn!(issuer_id = %issuer.id, %reason, age_secs = entry.fetched.elapsed().as_secs(), "issuer keys could not be refreshed; serving the cached keys");
                    let keys = entry.keys.clone();
                    let attempted = Instant::now();
                    self.entries
                        .insert(
                            issuer.url.clone(),
                            Arc::new(Entry {
                                keys: keys.clone(),
                                fetched: entry.fetched,
                                fresh_until: entry.fresh_until,
                                attempted,
                                failed: true,
                            }),
                        )
                        .await;
                    match unknown_kid {
                        Some(kid) if !keys.has_kid(kid) => {
                            Err(kid_unavailable(issuer, attempted + pace))
                        }
                        _ => Ok(keys),
                    }
                }
                None => {
                    tracing::warn!(issuer_id = %issuer.id, %reason, "issuer keys could not be fetched");
                    let failed_at = Instant::now();
                    self.failed.insert(issuer.url.clone(), failed_at).await;
                    Err(unavailable(issuer, failed_at + pace))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn ttl_honours_cache_control_within_bounds() {
        let keys = HttpIssuerKeys::new(JwksSettings::default(), false).unwrap();
        assert_eq!(keys.ttl(&HeaderMap::new()), Duration::from_secs(300));
        assert_eq!(
            keys.ttl(&headers("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(keys.ttl(&headers("max-age=1")), Duration::from_secs(60));
        assert_eq!(
            keys.ttl(&headers("max-age=99999999")),
            Duration::from_secs(86_400)
        );
        assert_eq!(keys.ttl(&headers("no-store")), Duration::from_secs(60));
        assert_eq!(keys.ttl(&headers("max-age=oops")), Duration::from_secs(300));
    }
}
