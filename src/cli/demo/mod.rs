//! `claimex demo`: the whole exchange on loopback, explained, for a newcomer.
//!
//! Starts a loopback issuer minting a GitHub-shaped token, starts claimex with the stock
//! GitHub mapper and a fresh local key, exchanges the token over HTTP, and verifies the result
//! against the JWKS claimex publishes, printing each step. Then shows one refusal.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

mod issuer;

use crate::config::Config;
use crate::system::unix_now;
use issuer::DemoIssuer;

/// What the demo showed, for tests.
#[derive(Debug)]
pub struct DemoReport {
    /// The printed walkthrough.
    pub text: String,
    /// The verified outbound claims.
    pub claims: Value,
    /// The status and error code of the refused exchange.
    pub refusal: (u16, String),
}

/// Runs the demo with the GitHub mapper at `mapper`, working in `dir`.
pub async fn run(mapper: &Path, dir: &Path) -> anyhow::Result<DemoReport> {
    if !mapper.exists() {
        bail!(
            "the GitHub mapper {} does not exist: build it with `make mappers` (or run `make demo`)",
            mapper.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = String::new();
    let issuer = DemoIssuer::start().context("cannot start the loopback issuer")?;
    let _ = writeln!(
        out,
        "1. A loopback OIDC issuer stands in for GitHub Actions at {}",
        issuer.url()
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let public_url = format!("http://{}", listener.local_addr()?);
    let audience = format!("{public_url}/demo");
    let mapper_path = std::fs::canonicalize(mapper)?;
    std::fs::write(
        dir.join("issuers.toml"),
        format!(
            "[issuers.github]\nissuer = {:?}\naudiences = [{:?}]\nmapper = {:?}\n\
             mapper_config = {{ allowed_owners = [\"octo-org\"], transitive_tag_keys = [\"repository\"] }}\n",
            issuer.url(),
            audience,
            mapper_path.display().to_string()
        ),
    )?;
    let key_path = dir.join("claimex-key.pem");
    let _ = std::fs::remove_file(&key_path);
    std::fs::write(
        dir.join("claimex.toml"),
        format!(
            "public_url = {public_url:?}\nallow_http_loopback = true\nworkers = 1\n\
             [registry]\npath = \"issuers.toml\"\n[signer]\npath = \"claimex-key.pem\"\nalg = \"ES256\"\n"
        ),
    )?;
    let config = Config::load_with_env(Some(&dir.join("claimex.toml")), &[])?;
    let app = crate::app::build(&config).await?;
    let server = crate::app::server(&app, listener, 1)?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let _ = writeln!(
        out,
        "2. claimex serves at {public_url} with issuer `github` -> mapper {} and a new ES256 key",
        mapper_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
    );

    let result = exchange_and_verify(&issuer, &public_url, &audience, &mut out).await;
    handle.stop(true).await;
    let (claims, refusal) = result?;
    Ok(DemoReport {
        text: out,
        claims,
        refusal,
    })
}

async fn exchange_and_verify(
    issuer: &DemoIssuer,
    public_url: &str,
    audience: &str,
    out: &mut String,
) -> anyhow::Result<(Value, (u16, String))> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let claims = issuer.github_claims(audience, unix_now());
    let token = issuer.mint(&claims)?;
    let _ = writeln!(
        out,
        "3. The CI job's id-token ({} bytes): repository={} ref={} actor={}",
        token.len(),
        claims["repository"],
        claims["ref"],
        claims["actor"]
    );
    let response = http
        .post(format!("{public_url}/exchange?issuerId=github"))
        .body(token)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("the exchange failed with HTTP {status}: {body}");
    }
    let _ = writeln!(
        out,
        "4. POST /exchange?issuerId=github -> HTTP {status}, a new JWT of {} bytes",
        body.len()
    );

    let discovery: Value = http
        .get(format!("{public_url}/.well-known/openid-configuration"))
        .send()
        .await?
        .json()
        .await?;
    let jwks_uri = discovery["jwks_uri"].as_str().context("no jwks_uri")?;
    let jwks: JwkSet = http.get(jwks_uri).send().await?.json().await?;
    let header = jsonwebtoken::decode_header(&body)?;
    let kid = header.kid.clone().context("the token has no kid")?;
    let jwk = jwks
        .find(&kid)
        .context("the token's kid is not in claimex's JWKS")?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[public_url]);
    validation.set_audience(&["sts.amazonaws.com"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let verified = jsonwebtoken::decode::<Value>(&body, &DecodingKey::from_jwk(jwk)?, &validation)
        .context("the minted token does not verify against claimex's JWKS")?;
    let _ = writeln!(
        out,
        "5. Verified against {jwks_uri} (alg {:?}, kid {kid}):\n{}",
        header.alg,
        serde_json::to_string_pretty(&verified.claims)?
    );

    let mut foreign = issuer.github_claims(audience, unix_now());
    foreign["repository_owner"] = json!("evil-org");
    foreign["repository_owner_id"] = json!("666");
    let response = http
        .post(format!("{public_url}/exchange?issuerId=github"))
        .body(issuer.mint(&foreign)?)
        .send()
        .await?;
    let refused_status = response.status().as_u16();
    let refused: Value = response.json().await?;
    let _ = writeln!(
        out,
        "6. The same exchange for repository_owner=evil-org is refused: HTTP {refused_status} {}",
        refused
    );
    Ok((
        verified.claims,
        (
            refused_status,
            refused["error"].as_str().unwrap_or_default().to_owned(),
        ),
    ))
}

/// Where `make mappers` puts the stock GitHub mapper, relative to the repository root.
pub fn default_mapper_path() -> PathBuf {
    PathBuf::from("target/mappers/wasm32-wasip2/mapper/claimex_mapper_github.wasm")
}
