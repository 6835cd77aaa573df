//! Wiring: builds the pipeline's parts from a [`Config`] and runs the HTTP server.
//!
//! The only place that picks adapters: file or SSM registry, local or KMS signer, the
//! verifier of each subject kind. Start-up fails with a clear error when the first registry
//! load fails or the signing key is unusable; it never starts silently empty.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::credentials::RoleAssumer;
use crate::credentials::sts::StsRoleAssumer;
use crate::exchange::{ExchangeSettings, Exchanger, Ports};
use crate::http::close::{self, Guarded};
use crate::http::{AppState, HttpSettings, routes};
use crate::mapper::MapperLoader;
use crate::mapper::shadow_runner::ShadowRunner;
use crate::mapper::wasm::MapperRuntime;
use crate::metrics::prometheus::{KeyAges, PrometheusMetrics};
use crate::metrics::timed::{
    TimedKeyStore, TimedLoader, TimedOneUseStore, TimedRoleAssumer, TimedStsCaller, TimedVerifier,
};
use crate::metrics::{NoRecorder, Recorder};
use crate::registry::file::FileSource;
use crate::registry::ssm::SsmSource;
use crate::registry::{IssuerRules, IssuerSource, Registry, RegistryBackend};
use crate::signer::envelope::EnvelopeKeyStore;
use crate::signer::kms::KmsKeyStore;
use crate::signer::local::{self, LocalKeyStore};
use crate::signer::{KeyStore, SignerBackend};
use crate::subject::SubjectVerifier;
use crate::subject::aws_iam::{
    AwsIamVerifier, DynamoOneUse, HttpSts, MemoryOneUse, OneUseStore, StsCaller,
};
use crate::subject::jwt::JwtVerifier;
use crate::subject::jwt::issuer_keys::HttpIssuerKeys;
use crate::system::{RandomIds, SystemClock};

/// The assembled service.
pub struct App {
    /// The pipeline.
    pub exchanger: Arc<Exchanger>,
    /// The metrics, when `metrics_listen` is set.
    pub metrics: Option<Arc<PrometheusMetrics>>,
    /// Where the parts report (the metrics, or nothing).
    pub recorder: Arc<dyn Recorder>,
    /// The mapper runtime (shared by `claimex mapper` commands).
    pub runtime: Arc<MapperRuntime>,
    /// Largest inbound token, bytes.
    pub max_token_bytes: usize,
    /// How the HTTP server treats clients.
    pub http: HttpSettings,
    /// `sts:AssumeRoleWithWebIdentity` for `POST /credentials` (unsigned; its client is built
    /// at the first call).
    pub assumer: Arc<dyn RoleAssumer>,
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

/// The issuer source the configuration names: the file, or SSM Parameter Store.
pub async fn issuer_source(config: &Config) -> Box<dyn IssuerSource> {
    match config.registry.backend {
        RegistryBackend::File => Box::new(FileSource::new(config.registry.path.clone())),
        RegistryBackend::Ssm => {
            let shared = crate::aws::sdk_config(&config.aws).await;
            let client = crate::aws::ssm_client_from(&shared, &config.aws);
            Box::new(SsmSource::new(client, &config.registry.ssm_prefix))
        }
    }
}

/// How the configuration has issuer entries validated.
pub fn issuer_rules(config: &Config) -> IssuerRules {
    IssuerRules {
        mapper_dir: config.mapper.dir.clone().unwrap_or_default(),
        allow_http_loopback: config.allow_http_loopback,
    }
}

/// Builds every part and loads the registry once.
pub async fn build(config: &Config) -> anyhow::Result<App> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let metrics = config
        .metrics_listen
        .is_some()
        .then(|| Arc::new(PrometheusMetrics::new()));
    let recorder: Arc<dyn Recorder> = match &metrics {
        Some(m) => m.clone(),
        None => Arc::new(NoRecorder),
    };
    let runtime = MapperRuntime::with_cache(config.mapper.limits(), config.mapper.cache())?;
    let loader: Arc<dyn MapperLoader> = match &metrics {
        Some(_) => Arc::new(TimedLoader::new(runtime.clone(), recorder.clone())),
        None => runtime.clone(),
    };
    let source = issuer_source(config).await;
    let rules = issuer_rules(config);
    let registry = Arc::new(Registry::new(source, rules, loader));
    let report = registry.refresh().await.with_context(|| {
        format!(
            "cannot load the issuer registry ({})",
            registry.status().source
        )
    })?;
    if !report.invalid_ids.is_empty() {
        tracing::error!(
            invalid_entries = ?report.invalid_ids,
            "issuer entries skipped as invalid (each is logged above with why; \
             `claimex issuers check` explains them offline): /healthz reports degraded"
        );
    }
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
    let mut signer = key_store(config).await?;
    let keys = Arc::new(
        HttpIssuerKeys::new(config.jwks.clone(), config.allow_http_loopback)
            .context("cannot build the HTTP client for issuer keys")?
            .with_recorder(recorder.clone()),
    );
    let mut oidc: Arc<dyn SubjectVerifier> =
        Arc::new(JwtVerifier::new(keys.clone(), config.verify.clone()));
    if let Some(metrics) = &metrics {
        let backend = match config.signer.backend {
            SignerBackend::Local => "local",
            SignerBackend::Kms => "kms",
            SignerBackend::KmsEnvelope => "kms-envelope",
        };
        signer = Arc::new(TimedKeyStore::new(signer, recorder.clone(), backend));
        oidc = Arc::new(TimedVerifier::new(oidc, recorder.clone()));
        metrics.attach(
            registry.clone(),
            signer.clone(),
            key_ages(keys, registry.clone()),
        );
    }
    let mut sts: Arc<dyn StsCaller> =
        Arc::new(HttpSts::new().context("cannot build the HTTP client for STS")?);
    let mut assumer: Arc<dyn RoleAssumer> = Arc::new(StsRoleAssumer::new(config.aws.clone()));
    if metrics.is_some() {
        sts = Arc::new(TimedStsCaller::new(sts, recorder.clone()));
        assumer = Arc::new(TimedRoleAssumer::new(assumer, recorder.clone()));
    }
    let mut one_use = one_use_store(config).await;
    if metrics.is_some() {
        one_use = Arc::new(TimedOneUseStore::new(one_use, recorder.clone()));
    }
    let mut aws_iam: Arc<dyn SubjectVerifier> =
        Arc::new(AwsIamVerifier::new(sts, &config.public_url).with_one_use(one_use));
    if metrics.is_some() {
        aws_iam = Arc::new(TimedVerifier::new(aws_iam, recorder.clone()));
    }
    let ports = Ports {
        registry,
        subjects: vec![oidc, aws_iam],
        signer,
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
    };
    let settings = ExchangeSettings {
        issuer_url: config.public_url.clone(),
        token: config.token.clone(),
    };
    let shadow = ShadowRunner::start(&config.shadow, recorder.clone());
    Ok(App {
        exchanger: Arc::new(Exchanger::new(ports, settings).with_shadow(shadow)),
        metrics,
        recorder,
        runtime,
        max_token_bytes: config.verify.max_token_bytes,
        http: config.http.clone(),
        assumer,
    })
}

/// Where redeemed signed AWS requests are remembered: the DynamoDB table of `[aws_iam]
/// replay_table`, shared by every instance, else memory (this instance only). No call is made
/// here: the table is first written by the first exchange (claimex needs `dynamodb:PutItem`
/// on it, nothing else).
pub async fn one_use_store(config: &Config) -> Arc<dyn OneUseStore> {
    match &config.aws_iam.replay_table {
        Some(table) => {
            let shared = crate::aws::sdk_config(&config.aws).await;
            let client = crate::aws::dynamodb_client_from(&shared, &config.aws);
            tracing::info!(table = %table, "signed AWS requests are remembered in DynamoDB (shared by every instance)");
            Arc::new(DynamoOneUse::new(client, table))
        }
        None => Arc::new(MemoryOneUse::new()),
    }
}

/// The ages of the cached issuer keys by issuer id, read from the key cache (by URL) and the
/// registry's current entries.
fn key_ages(keys: Arc<HttpIssuerKeys>, registry: Arc<Registry>) -> KeyAges {
    Box::new(move || {
        let ages: std::collections::HashMap<String, Duration> = keys.ages().into_iter().collect();
        let snapshot = registry.snapshot();
        snapshot
            .ids()
            .into_iter()
            .filter_map(|id| {
                let issuer = snapshot.by_id(&id).ok()?;
                let age = ages.get(issuer.subject.url()?)?;
                Some((id, *age))
            })
            .collect()
    })
}

/// The key store the configuration names.
pub async fn key_store(config: &Config) -> anyhow::Result<Arc<dyn KeyStore>> {
    Ok(match config.signer.backend {
        SignerBackend::Local => Arc::new(local_store(config)?),
        SignerBackend::Kms => kms_store(config).await?,
        SignerBackend::KmsEnvelope => envelope_store(config).await?,
    })
}

/// The envelope key store for `config`: decrypts the current key named by
/// `signer.kms_keys_parameter` and re-reads that parameter every `registry.refresh_secs`.
/// Fails when the key cannot be decrypted: claimex does not start without a signing key.
async fn envelope_store(config: &Config) -> anyhow::Result<Arc<dyn KeyStore>> {
    let shared = crate::aws::sdk_config(&config.aws).await;
    let kms = crate::aws::kms_client_from(&shared, &config.aws);
    let ssm = crate::aws::ssm_client_from(&shared, &config.aws);
    let store = Arc::new(EnvelopeKeyStore::load(kms, ssm, &config.signer).await?);
    tokio::spawn(
        store
            .clone()
            .refresh_forever(Duration::from_secs(config.registry.refresh_secs)),
    );
    Ok(store)
}

/// The KMS key store for `config`: loads the key set (the `signer.kms_keys_parameter` SSM
/// parameter when set and present, else `signer.kms_key_id` and
/// `signer.kms_published_key_ids`), fetches every public key, and, with a parameter, starts
/// re-reading it every `registry.refresh_secs`. Fails when a key is unusable or KMS cannot
/// be reached: claimex does not start without a working signing key.
async fn kms_store(config: &Config) -> anyhow::Result<Arc<dyn KeyStore>> {
    let shared = crate::aws::sdk_config(&config.aws).await;
    let kms = crate::aws::kms_client_from(&shared, &config.aws);
    let ssm = crate::aws::ssm_client_from(&shared, &config.aws);
    let store = Arc::new(KmsKeyStore::load(kms, ssm, &config.signer).await?);
    if store.watches_parameter() {
        tokio::spawn(
            store
                .clone()
                .refresh_forever(Duration::from_secs(config.registry.refresh_secs)),
        );
    }
    Ok(store)
}

fn local_store(config: &Config) -> anyhow::Result<LocalKeyStore> {
    let signing = local::load_or_generate(&config.signer.path, config.signer.alg)?;
    let mut extra = Vec::new();
    for path in &config.signer.published_paths {
        extra.push(local::load_published(path)?);
    }
    Ok(LocalKeyStore::new(signing, extra))
}

/// Runs the HTTP server until it is stopped (SIGINT/SIGTERM), on an already built app.
pub async fn serve(config: &Config, app: App) -> anyhow::Result<()> {
    let addr: SocketAddr = config.listen.parse().context("listen")?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    // Both addresses are bound before either server starts: a taken metrics port stops
    // start-up instead of leaving a server without its metrics.
    let metrics_listener = match &config.metrics_listen {
        Some(metrics_addr) => {
            let metrics_addr: SocketAddr = metrics_addr.parse().context("metrics_listen")?;
            let listener = std::net::TcpListener::bind(metrics_addr)
                .with_context(|| format!("cannot listen on {metrics_addr} (metrics_listen)"))?;
            Some((metrics_addr, listener))
        }
        None => None,
    };
    let server = server(&app, listener, config.workers)?;
    tracing::info!(%addr, public_url = %config.public_url, "claimex is serving");
    match metrics_listener {
        Some((metrics_addr, listener)) => {
            let metrics = metrics_server(&app, listener)?
                .context("metrics_listen is set but metrics were not built")?;
            tracing::info!(addr = %metrics_addr, "claimex serves GET /metrics");
            let (public, metrics) = futures_util::future::join(server, metrics).await;
            public.context("the HTTP server failed")?;
            metrics.context("the metrics server failed")
        }
        None => server.await.context("the HTTP server failed"),
    }
}

/// The metrics server (`GET /metrics`) for `app` on an already bound listener: one worker,
/// apart from the public server. `None` when the app keeps no metrics.
pub fn metrics_server(
    app: &App,
    listener: std::net::TcpListener,
) -> anyhow::Result<Option<actix_web::dev::Server>> {
    let Some(metrics) = app.metrics.clone() else {
        return Ok(None);
    };
    let state = actix_web::web::Data::new(metrics);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(crate::http::metrics::routes)
    })
    .workers(1)
    .client_request_timeout(Duration::from_secs(10))
    .shutdown_timeout(5)
    .listen(listener)
    .context("cannot serve metrics on the listener")?
    .run();
    Ok(Some(server))
}

/// The HTTP server for `app` on an already bound listener: HTTP/1.1, each connection's
/// socket wrapped so that no request runs behind a response that closed the connection
/// ([`crate::http::close`]). Otherwise what `actix_web::HttpServer` assembles: the same
/// dispatcher settings (its default keep-alive and disconnect timeout, the header timeout
/// from `[http]`), draining connections on a graceful stop, 10 s to stop.
pub fn server(
    app: &App,
    listener: std::net::TcpListener,
    workers: usize,
) -> anyhow::Result<actix_web::dev::Server> {
    use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _, fn_service, map_config};
    use actix_web::dev::AppConfig;
    use tokio::net::TcpStream;

    let state = actix_web::web::Data::new(AppState {
        exchanger: app.exchanger.clone(),
        max_token_bytes: app.max_token_bytes,
        recorder: app.recorder.clone(),
        body_timeout: Duration::from_secs(app.http.body_timeout_secs),
        counters: Default::default(),
        assumer: app.assumer.clone(),
    });
    // The path of `public_url` (`/tenant`), under which the routes are served too.
    let path_prefix = url::Url::parse(&app.exchanger.settings().issuer_url)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let routes = routes(&path_prefix);
    let header_timeout = Duration::from_secs(app.http.header_timeout_secs);
    let addr = listener.local_addr().context("the listener's address")?;
    let mut builder = actix_server::Server::build().shutdown_timeout(10);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let stopping = builder.graceful_shutdown_signal();
    let builder = builder
        .listen("claimex", listener, move || {
            let application = actix_web::App::new()
                .app_data(state.clone())
                .wrap_fn(close::honour_close)
                .configure(routes.clone());
            let stopping = stopping.clone();
            let http = actix_http::HttpService::build()
                .expect(close::expect_continue(state.clone()))
                .keep_alive(actix_http::KeepAlive::default())
                .client_request_timeout(header_timeout)
                .client_disconnect_timeout(close::LINGER)
                .local_addr(addr)
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .on_connect_ext(|io: &Guarded<TcpStream>, data| {
                    data.insert(io.latch());
                })
                .h1(map_config(
                    application
                        .into_factory()
                        .map_err(|e: actix_web::Error| e.error_response()),
                    |()| AppConfig::default(),
                ));
            fn_service(|io: TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((Guarded::new(io), peer))
            })
            .and_then(http)
        })
        .context("cannot serve on the listener")?;
    Ok(builder.run())
}
