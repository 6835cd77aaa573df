//! The demo's stand-in for GitHub Actions: a loopback OIDC issuer serving its discovery
//! document and JWKS, minting GitHub-shaped id-tokens with one RSA key. Nothing else: the
//! test suite's issuer (with rotation, outages and hostile tokens) lives in the dev-only
//! test support crate.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::signer::local::LocalKey;
use crate::signer::{SigningAlg, SigningKey as _};

/// Realistic GitHub Actions id-token claims (the repository's `examples/claims/github.json`).
const GITHUB_CLAIMS: &str = include_str!("../../../examples/claims/github.json");

struct Shared {
    url: String,
    key: LocalKey,
}

/// A loopback OIDC issuer on its own thread. Stops when dropped.
pub struct DemoIssuer {
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl DemoIssuer {
    /// Starts the issuer on `127.0.0.1` with a new RSA key.
    pub fn start() -> anyhow::Result<DemoIssuer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (key, _) = LocalKey::generate(SigningAlg::Rs256)?;
        let shared = Arc::new(Shared { url, key });
        let data = web::Data::from(shared.clone());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("demo-issuer".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .route(
                                "/.well-known/openid-configuration",
                                web::get().to(discovery),
                            )
                            .route("/jwks", web::get().to(jwks))
                    })
                    .workers(1)
                    .disable_signals()
                    .listen(listener)
                    .map(|s| s.run());
                    match server {
                        Ok(server) => {
                            let _ = tx.send(Ok(server.handle()));
                            let _ = server.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let handle = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the demo issuer thread died"))??;
        Ok(DemoIssuer {
            shared,
            handle,
            thread: Some(thread),
        })
    }

    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// GitHub-shaped claims from this issuer for audience `aud`, issued `now`.
    pub fn github_claims(&self, aud: &str, now: u64) -> Value {
        let mut claims: Value = serde_json::from_str(GITHUB_CLAIMS).unwrap_or_else(|_| json!({}));
        claims["iss"] = json!(self.shared.url);
        claims["aud"] = json!(aud);
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now.saturating_sub(5));
        claims["exp"] = json!(now + 300);
        claims
    }

    /// Mints an RS256 id-token with these claims.
    pub fn mint(&self, claims: &Value) -> anyhow::Result<String> {
        let key = &self.shared.key;
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign_now(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl Drop for DemoIssuer {
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

async fn discovery(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "issuer": shared.url,
        "jwks_uri": format!("{}/jwks", shared.url),
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [shared.key.public_jwk()] }))
}
