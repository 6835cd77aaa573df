//! A real OIDC issuer on loopback, for tests and benches.
//!
//! [`TestIssuer`] serves `/.well-known/openid-configuration` and `/jwks` over HTTP on
//! `127.0.0.1`, on its own thread, and mints RS256 tokens shaped like GitHub Actions' and
//! GitLab CI's. It can rotate keys, stage a key before publishing it, go down, and name
//! another issuer in its discovery document. Tokens claimex must refuse are minted by
//! [`crate::hostile`].

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use claimex::signer::jwk::PublicJwk;
use claimex::signer::local::LocalKey;
use claimex::signer::{SigningAlg, SigningKey as _};

/// GitHub Actions id-token claims (realistic sample).
pub const GITHUB_CLAIMS: &str = include_str!("../../../examples/claims/github.json");
/// GitLab CI id-token claims (realistic sample).
pub const GITLAB_CLAIMS: &str = include_str!("../../../examples/claims/gitlab.json");

struct State {
    url: String,
    /// Published keys; the first signs.
    published: Vec<Arc<LocalKey>>,
    /// A key that signs tokens but is not published yet.
    staged: Option<Arc<LocalKey>>,
    up: bool,
    /// An `issuer` the discovery document claims instead of the real URL.
    discovery_issuer: Option<String>,
    discovery_requests: u64,
    jwks_fetches: u64,
    cache_control: String,
}

/// A loopback OIDC issuer. Stops when dropped.
pub struct TestIssuer {
    url: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

fn new_key() -> Arc<LocalKey> {
    Arc::new(
        LocalKey::generate(SigningAlg::Rs256)
            .expect("RSA key generation failed")
            .0,
    )
}

impl TestIssuer {
    /// Starts an issuer on `127.0.0.1` with one RSA key.
    pub fn start() -> std::io::Result<TestIssuer> {
        TestIssuer::start_at("")
    }

    /// Starts an issuer whose URL has the path `path` (e.g. `/tenant`).
    pub fn start_at(path: &str) -> std::io::Result<TestIssuer> {
        let state = Arc::new(Mutex::new(State {
            url: String::new(),
            published: vec![new_key()],
            staged: None,
            up: true,
            discovery_issuer: None,
            discovery_requests: 0,
            jwks_fetches: 0,
            cache_control: "max-age=300".into(),
        }));
        let (tx, rx) = mpsc::channel();
        let shared = state.clone();
        let prefix = path.trim_end_matches('/').to_owned();
        let thread = std::thread::Builder::new()
            .name("test-issuer".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let data = web::Data::new(shared);
                    let p = prefix.clone();
                    let bound = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .route(
                                &format!("{p}/.well-known/openid-configuration"),
                                web::get().to(discovery),
                            )
                            .route(&format!("{p}/jwks"), web::get().to(jwks))
                    })
                    .workers(1)
                    .disable_signals()
                    .bind(("127.0.0.1", 0));
                    let server = match bound {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = server.addrs()[0];
                    let server = server.run();
                    let _ = tx.send(Ok((addr, server.handle())));
                    let _ = server.await;
                });
            })?;
        let (addr, handle) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the test issuer thread died"))??;
        let url = format!("http://{addr}{}", path.trim_end_matches('/'));
        lock(&state).url = url.clone();
        Ok(TestIssuer {
            url,
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// The issuer URL (`http://127.0.0.1:PORT[/path]`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Mints an RS256 token with the signing key and its `kid`.
    pub fn mint(&self, claims: &Value) -> String {
        let key = lock(&self.state).published[0].clone();
        sign(
            &key,
            json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()}),
            claims,
        )
    }

    /// Mints a token with the signing key and an arbitrary header.
    pub fn mint_with_header(&self, header: Value, claims: &Value) -> String {
        let key = lock(&self.state).published[0].clone();
        sign(&key, header, claims)
    }

    /// The current signing key's id.
    pub fn kid(&self) -> String {
        lock(&self.state).published[0].kid().to_owned()
    }

    /// Makes a new key that signs with [`TestIssuer::mint_staged`] but is not published.
    pub fn stage_key(&self) -> String {
        let key = new_key();
        let kid = key.kid().to_owned();
        lock(&self.state).staged = Some(key);
        kid
    }

    /// Mints with the staged key.
    pub fn mint_staged(&self, claims: &Value) -> Option<String> {
        let key = lock(&self.state).staged.clone()?;
        Some(sign(
            &key,
            json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()}),
            claims,
        ))
    }

    /// Publishes the staged key and makes it the signing key (the old one stays published).
    pub fn rotate_to_staged(&self) {
        let mut state = lock(&self.state);
        if let Some(key) = state.staged.take() {
            state.published.insert(0, key);
        }
    }

    /// Takes the issuer down (every request answers 503) or brings it back.
    pub fn set_up(&self, up: bool) {
        lock(&self.state).up = up;
    }

    /// Makes the discovery document name another `issuer` (a misconfigured or impersonating
    /// issuer), or the real one again with `None`.
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        lock(&self.state).discovery_issuer = issuer.map(str::to_owned);
    }

    /// Sets the JWKS response's `Cache-Control`.
    pub fn set_cache_control(&self, value: &str) {
        lock(&self.state).cache_control = value.to_owned();
    }

    /// How many discovery requests arrived, served or not.
    pub fn discovery_requests(&self) -> u64 {
        lock(&self.state).discovery_requests
    }

    /// How many times the JWKS was served.
    pub fn jwks_fetches(&self) -> u64 {
        lock(&self.state).jwks_fetches
    }

    /// The signing key's public JWK (what the JWKS publishes for it).
    pub fn public_jwk(&self) -> PublicJwk {
        lock(&self.state).published[0].public_jwk().clone()
    }

    /// GitHub-shaped claims from this issuer for audience `aud`, issued `now`.
    pub fn github_claims(&self, aud: &str, now: u64) -> Value {
        self.claims(GITHUB_CLAIMS, aud, now)
    }

    /// GitLab-shaped claims from this issuer for audience `aud`, issued `now`.
    pub fn gitlab_claims(&self, aud: &str, now: u64) -> Value {
        self.claims(GITLAB_CLAIMS, aud, now)
    }

    fn claims(&self, template: &str, aud: &str, now: u64) -> Value {
        let mut claims: Value = serde_json::from_str(template).unwrap_or_else(|_| json!({}));
        claims["iss"] = json!(self.url);
        claims["aud"] = json!(aud);
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now.saturating_sub(5));
        claims["exp"] = json!(now + 300);
        claims
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs the server's own runtime; a detached thread drives the future.
        let stopper = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        });
        let _ = stopper.join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Pads `claims` with an `x_filler` claim to about `bytes` of JSON (no-op when already that
/// large): the realistic ~1.5 KB GitHub token of the benches, or larger tokens.
pub fn pad_claims(claims: &mut Value, bytes: usize) {
    let size = claims.to_string().len();
    if bytes > size + 20 {
        claims["x_filler"] = json!("f".repeat(bytes - size - 20));
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A compact JWS of `claims` with `header`, signed by `key` (whatever `alg` the header names).
pub fn sign(key: &LocalKey, header: Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign_now(input.as_bytes()).expect("signing failed");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

async fn discovery(state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let mut state = lock(&state);
    state.discovery_requests += 1;
    if !state.up {
        return HttpResponse::ServiceUnavailable().finish();
    }
    HttpResponse::Ok().json(json!({
        "issuer": state.discovery_issuer.as_deref().unwrap_or(&state.url),
        "jwks_uri": format!("{}/jwks", state.url),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    }))
}

async fn jwks(state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let mut state = lock(&state);
    if !state.up {
        return HttpResponse::ServiceUnavailable().finish();
    }
    state.jwks_fetches += 1;
    let keys: Vec<_> = state
        .published
        .iter()
        .map(|k| k.public_jwk().clone())
        .collect();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", state.cache_control.clone()))
        .json(json!({ "keys": keys }))
}
