//! Shared harness for the integration tests: real mappers built from `mappers/`, a real
//! claimex server on loopback, and an HTTP client. Everything stops by itself.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use claimex::config::Config;
use serde_json::Value;

/// Every mapper and fixture crate the tests load.
pub const MAPPER_CRATES: &[&str] = &[
    "claimex-mapper-github",
    "claimex-mapper-gitlab",
    "claimex-mapper-rules",
    "claimex-fixture-trap",
    "claimex-fixture-spin",
    "claimex-fixture-membomb",
    "claimex-fixture-bigoutput",
    "claimex-fixture-notobject",
    "claimex-fixture-reserved",
    "claimex-fixture-badtags",
    "claimex-fixture-echo",
    "claimex-fixture-wrongexport",
    "claimex-fixture-wrongversion",
    "claimex-fixture-error",
];

/// Builds every mapper component once per test binary (a no-op when they are up to date)
/// and returns the directory holding the `.wasm` files.
pub fn mappers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let built = claimex_testkit::build_mapper_components(root, MAPPER_CRATES)
            .unwrap_or_else(|e| panic!("{e}"));
        built[0].parent().unwrap().to_path_buf()
    })
}

/// The path of the built component of crate `name` (e.g. `claimex-mapper-github`).
pub fn mapper(name: &str) -> PathBuf {
    mappers().join(format!("{}.wasm", name.replace('-', "_")))
}

/// A claimex server on loopback, in its own thread and runtime.
pub struct Claimex {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The metrics listener, `http://127.0.0.1:PORT`, when started with metrics.
    pub metrics_url: Option<String>,
    /// The working directory (config, issuers file, key).
    pub dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
    metrics_handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

/// Settings that make the tests fast: short key-cache bounds and refetch interval.
pub const FAST: &str = "[jwks]\nmin_ttl_secs = 1\ndefault_ttl_secs = 1\nrefetch_interval_secs = 1\n[registry]\nrefresh_secs = 1\n";

impl Claimex {
    /// Starts claimex with this issuers file (TOML) and extra config (TOML, appended).
    pub fn start(issuers: &str, extra: &str) -> Claimex {
        Claimex::try_start(issuers, extra).expect("claimex did not start")
    }

    /// Like [`Claimex::start`], with `GET /metrics` on a listener of its own.
    pub fn start_with_metrics(issuers: &str, extra: &str) -> Claimex {
        Claimex::try_start_with(issuers, extra, true).expect("claimex did not start")
    }

    /// Like [`Claimex::start`], returning the start-up error.
    pub fn try_start(issuers: &str, extra: &str) -> anyhow::Result<Claimex> {
        Claimex::try_start_with(issuers, extra, false)
    }

    fn try_start_with(issuers: &str, extra: &str, metrics: bool) -> anyhow::Result<Claimex> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("issuers.toml"), issuers)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut text = format!(
            "public_url = {url:?}\nallow_http_loopback = true\nworkers = 2\n[mapper]\ndir = {:?}\ncache_dir = {:?}\n",
            mappers().display().to_string(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/mapper-cache")
                .display()
                .to_string()
        );
        let metrics_listener = if metrics {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            // A top-level key: before the first section.
            text.insert_str(
                0,
                &format!(
                    "metrics_listen = {:?}\n",
                    listener.local_addr()?.to_string()
                ),
            );
            Some(listener)
        } else {
            None
        };
        let metrics_url = match &metrics_listener {
            Some(l) => Some(format!("http://{}", l.local_addr()?)),
            None => None,
        };
        // Sections in `extra` may repeat [mapper]; TOML forbids that, so merge by hand.
        text = merge_toml(&text, extra);
        std::fs::write(dir.path().join("claimex.toml"), text)?;
        let config = Config::load_with_env(Some(&dir.path().join("claimex.toml")), &[])?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = match claimex::app::build(&config).await {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let server = match claimex::app::server(&app, listener, 2) {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let metrics = match metrics_listener
                    .map(|l| claimex::app::metrics_server(&app, l))
                    .transpose()
                {
                    Ok(server) => server.flatten(),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok((server.handle(), metrics.as_ref().map(|m| m.handle()))));
                match metrics {
                    Some(metrics) => {
                        let _ = futures_util::future::join(server, metrics).await;
                    }
                    None => {
                        let _ = server.await;
                    }
                }
            });
        });
        let (handle, metrics_handle) = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow::anyhow!("claimex did not start within 60 s"))??;
        Ok(Claimex {
            url,
            metrics_url,
            metrics_handle,
            dir,
            handle,
            thread: Some(thread),
        })
    }

    /// Rewrites the issuers file (picked up at the next registry refresh).
    pub fn write_issuers(&self, issuers: &str) {
        std::fs::write(self.dir.path().join("issuers.toml"), issuers).unwrap();
    }
}

impl Drop for Claimex {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let metrics = self.metrics_handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                if let Some(metrics) = metrics {
                    metrics.stop(false).await;
                }
                handle.stop(false).await;
            });
        })
        .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn merge_toml(base: &str, extra: &str) -> String {
    let mut base: toml::Table = toml::from_str(base).unwrap();
    let extra: toml::Table = toml::from_str(extra).expect("extra config is not TOML");
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(into)), toml::Value::Table(from)) => into.extend(from),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
    toml::to_string(&base).unwrap()
}

/// An HTTP client with a timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    claimex::system::unix_now()
}

/// The answer to one exchange: status, and the body as text.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body as JSON (errors are JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// Asserts an RFC 6749 error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        let json = self.json();
        assert_eq!(json["error"], code, "{}", self.body);
        let description = json["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!description.is_empty());
        description
    }
}

/// POSTs `body` to `/exchange` with the query `query` (e.g. `?issuerId=github`).
pub async fn exchange(base: &str, query: &str, body: impl Into<reqwest::Body>) -> Answer {
    let response = http()
        .post(format!("{base}/exchange{query}"))
        .body(body)
        .send()
        .await
        .expect("the exchange request failed");
    Answer {
        status: response.status().as_u16(),
        body: response.text().await.unwrap(),
    }
}

/// Verifies a claimex token against the JWKS claimex serves and returns its claims.
pub async fn verify_with_jwks(base: &str, token: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid not in JWKS");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[base]);
    validation.set_audience(&["sts.amazonaws.com"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("the token does not verify against claimex's JWKS")
    .claims
}

/// An issuers-file table.
pub fn issuer_entry(
    id: &str,
    url: &str,
    audience: &str,
    mapper_crate: &str,
    config: &str,
) -> String {
    format!(
        "[issuers.{id}]\nissuer = {url:?}\naudiences = [{audience:?}]\nmapper = {:?}\nmapper_config = {config}\n",
        format!("{}.wasm", mapper_crate.replace('-', "_"))
    )
}
