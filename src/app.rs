//! Wiring: builds the pipeline's parts from a [`Config`] and runs the HTTP server.
//!
//! The only place that picks adapters: file or SSM registry, local or KMS signer. Start-up
//! fails with a clear error when the first registry load fails or the signing key is
//! unusable; it never starts silently empty.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Config, RegistryBackend, SignerBackend};
use crate::discovery::HttpIssuerKeys;
use crate::exchange::{ExchangeSettings, Exchanger};
use crate::http::{AppState, routes};
use crate::registry::file::FileSource;
use crate::registry::{IssuerRules, IssuerSource, Registry};
use crate::signer::KeyStore;
use crate::signer::local::{self, LocalKeyStore};
use crate::wasm::MapperRuntime;

/// The assembled service.
pub struct App {
    /// The pipeline.
    pub exchanger: Arc<Exchanger>,
    /// The mapper runtime (shared by `claimex mapper` commands).
    pub runtime: Arc<MapperRuntime>,
}

/// Seeds the crypto library's random number generator on a thread of its own, so that its
/// one-time start-up cost (aws-lc seeds a CPU-jitter entropy source on first use: 20–45 ms
/// measured here) overlaps the rest of start-up where a second CPU is free, instead of
/// delaying the first exchange (its `jti` and signature draw the first random bytes).
pub fn seed_random_early() {
    let spawned = std::thread::Builder::new()
        .name("claimex-seed-rng".into())
        .spawn(|| {
            let mut byte = [0u8; 1];
            if aws_lc_rs::rand::fill(&mut byte).is_err() {
                tracing::error!("the system random number generator failed");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cannot seed the random number generator early; it seeds on first use");
    }
}

/// Builds every part and loads the registry once.
pub async fn build(config: &Config) -> anyhow::Result<App> {
    let runtime = MapperRuntime::new(config.mapper_limits(), config.mapper.cache_dir.clone())?;
    let source: Box<dyn IssuerSource> = match config.registry.backend {
        RegistryBackend::File => Box::new(FileSource::new(config.registry.path.clone())),
        RegistryBackend::Ssm => crate::aws::ssm_source(config).await?,
    };
    let rules = IssuerRules {
        mapper_dir: config.mapper.dir.clone().unwrap_or_default(),
        allow_http_loopback: config.allow_http_loopback,
    };
    let registry = Arc::new(Registry::new(source, rules, runtime.clone()));
    let report = registry.refresh().await.with_context(|| {
        format!(
            "cannot load the issuer registry ({})",
            registry.status().source
        )
    })?;
    if report.loaded == 0 {
        tracing::error!(source = %registry.status().source, skipped = report.skipped.len(), "no valid issuer is registered: every exchange will be refused until one is");
    } else {
        tracing::info!(
            issuers = report.loaded,
            skipped = report.skipped.len(),
            "issuer registry loaded"
        );
    }
    tokio::spawn(
        registry
            .clone()
            .refresh_forever(Duration::from_secs(config.registry.refresh_secs)),
    );
    let signer = key_store(config).await?;
    let keys = Arc::new(HttpIssuerKeys::new(config.jwks_settings())?);
    let settings = ExchangeSettings {
        issuer_url: config.public_url.clone(),
        verify: config.verify_policy(),
        token_lifetime: Duration::from_secs(config.token.lifetime_secs),
        max_token_lifetime: Duration::from_secs(config.token.max_lifetime_secs),
    };
    Ok(App {
        exchanger: Arc::new(Exchanger::new(registry, keys, signer, settings)),
        runtime,
    })
}

/// The key store the configuration names.
pub async fn key_store(config: &Config) -> anyhow::Result<Arc<dyn KeyStore>> {
    Ok(match config.signer.backend {
        SignerBackend::Local => Arc::new(local_store(config)?),
        SignerBackend::Kms => crate::aws::kms_store(config).await?,
    })
}

fn local_store(config: &Config) -> anyhow::Result<LocalKeyStore> {
    let signing = local::load_or_generate(&config.signer.path, config.signer.alg)?;
    let mut extra = Vec::new();
    for path in &config.signer.published_paths {
        let key = local::load_existing(path)?;
        extra.push(key.public_jwk().clone());
    }
    Ok(LocalKeyStore::new(signing, extra))
}

/// Runs the HTTP server until it is stopped (SIGINT/SIGTERM), on an already built app.
pub async fn serve(config: &Config, app: App) -> anyhow::Result<()> {
    let addr: SocketAddr = config.listen.parse().context("listen")?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let server = server(app.exchanger, listener, config.workers)?;
    tracing::info!(%addr, public_url = %config.public_url, "claimex is serving");
    server.await.context("the HTTP server failed")
}

/// The HTTP server for `exchanger` on an already bound listener.
pub fn server(
    exchanger: Arc<Exchanger>,
    listener: std::net::TcpListener,
    workers: usize,
) -> anyhow::Result<actix_web::dev::Server> {
    let state = actix_web::web::Data::new(AppState { exchanger });
    let mut builder = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(routes)
    })
    .client_request_timeout(Duration::from_secs(10))
    .shutdown_timeout(10);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let builder = builder
        .listen(listener)
        .context("cannot serve on the listener")?;
    Ok(builder.run())
}
