//! AWS identities (issue 11): what claimex adds to an exchange beyond the STS call, against
//! the OIDC path, and the STS call itself against the emulator. In one run:
//!
//! - `oidc/verify`: an id-token's inspect + verify (signature, claims), keys in memory;
//! - `aws/check`: the signed request decoded and checked (pure: allow-list, action, headers,
//!   SigV4 header parse, server id, date);
//! - `aws/verify`: the whole `aws-iam` verifier (check, one-use cache insert, claims) with an
//!   STS that answers at once;
//! - `aws/sts_call_moto`: the STS adapter replaying a signed GetCallerIdentity to moto on
//!   loopback with SigV4 checking on (the emulator's cost dominates; real STS is a network
//!   round trip).
//!
//! - `exchange/oidc` and `exchange/aws`: the whole in-process exchange (verify, map, mint:
//!   an RS256 signature with a local key), OIDC with the stock GitHub mapper and keys in
//!   memory, AWS with the stock rules mapper, an STS that answers at once and the in-memory
//!   one-use store: the AWS path's cost beyond the STS call, against the OIDC path.
//!
//! The mapper sees ~300 bytes of AWS claims against ~1.5 KB of GitHub claims.
//!
//! Run: `cargo bench --bench aws_iam` (needs `make emulator`).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion};
use serde_json::json;

use claimex::exchange::{ExchangeRequest, ExchangeSettings, Exchanger, Ports};
use claimex::mapper::wasm::{Limits, MapperRuntime};
use claimex::mint::TokenSettings;
use claimex::registry::file::FileSource;
use claimex::registry::{IssuerRules, Registry};
use claimex::signer::local::{LocalKey, LocalKeyStore};
use claimex::signer::{SigningAlg, SigningKey as _};
use claimex::subject::aws_iam::request::check;
use claimex::subject::aws_iam::{
    AwsIamPolicy, AwsIamVerifier, CallerIdentity, HttpSts, SignedRequest, StsCaller, StsEndpoints,
    StsError,
};
use claimex::subject::jwt::{
    self as verify, IssuerKeys, JwtVerifier, KeySet, KeysError, OidcPolicy, VerifyPolicy,
};
use claimex::subject::{SubjectKind, SubjectPolicy, SubjectVerifier};
use claimex::system::{RandomIds, SystemClock};
use claimex_testkit::issuer::sign;
use claimex_testkit::moto::{self, Moto};
use claimex_testkit::sigv4::{self, GET_CALLER_IDENTITY};
use claimex_testkit::{GITHUB_CLAIMS, mappers, now};

const SERVER_ID: &str = "https://claimex.bench";

struct InstantSts;

#[async_trait]
impl StsCaller for InstantSts {
    async fn get_caller_identity(&self, _: &SignedRequest) -> Result<CallerIdentity, StsError> {
        Ok(CallerIdentity {
            arn: "arn:aws:sts::123456789012:assumed-role/deploy-prod/ci-42".into(),
            account: "123456789012".into(),
            user_id: "AROAEXAMPLE:ci-42".into(),
        })
    }
}

fn policy(endpoints: StsEndpoints) -> AwsIamPolicy {
    AwsIamPolicy {
        id: "aws".into(),
        accounts: vec!["123456789012".into()],
        sts_endpoints: endpoints,
        server_id: None,
    }
}

/// Issuer keys served from memory: the benchmark measures claimex, not the network.
struct StaticKeys(Arc<KeySet>);

#[async_trait]
impl IssuerKeys for StaticKeys {
    async fn keys(&self, _: &OidcPolicy, _: Option<&str>) -> Result<Arc<KeySet>, KeysError> {
        Ok(self.0.clone())
    }
}

/// An exchanger with a GitHub entry (`github`, its stock mapper) and an AWS entry (`aws`,
/// the stock rules mapper), both minting RS256 with one local key.
fn exchanger(rt: &tokio::runtime::Runtime, keys: Arc<KeySet>, iss: &str) -> Exchanger {
    let dir = std::env::temp_dir().join(format!("claimex-bench-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = json!({"rules": [{
        "name": "deployers",
        "when": {"principal_type": "assumed-role", "account": "123456789012", "role_name": {"glob": "deploy-*"}},
        "tags": {"role": "role_name", "session": "session_name"},
    }]});
    let rules: toml::Value = serde_json::from_value(rules).unwrap();
    let text = format!(
        "[issuers.github]\nissuer = {iss:?}\naudiences = [{SERVER_ID:?}]\nmapper = {:?}\nmapper_config = {{ allowed_owner_ids = [\"65\"] }}\n\
         [issuers.aws]\nkind = \"aws-iam\"\naccounts = [\"123456789012\"]\nmapper = {:?}\nmapper_config = {rules}\n",
        mappers::github().display().to_string(),
        mappers::path("claimex-mapper-rules").display().to_string(),
    );
    let path = dir.join("issuers.toml");
    std::fs::write(&path, text).unwrap();
    let runtime = MapperRuntime::new(Limits::default(), None).unwrap();
    let registry = Arc::new(Registry::new(
        Box::new(FileSource::new(path)),
        IssuerRules {
            mapper_dir: std::path::PathBuf::new(),
            allow_http_loopback: false,
        },
        runtime,
    ));
    let report = rt.block_on(registry.refresh()).unwrap();
    assert_eq!(report.loaded, 2, "{:?}", report.skipped);
    let _ = std::fs::remove_dir_all(&dir);
    let (signing, _) = LocalKey::generate(SigningAlg::Rs256).unwrap();
    Exchanger::new(
        Ports {
            registry,
            subjects: vec![
                Arc::new(JwtVerifier::new(
                    Arc::new(StaticKeys(keys)),
                    VerifyPolicy::default(),
                )),
                Arc::new(AwsIamVerifier::new(Arc::new(InstantSts), SERVER_ID)),
            ],
            signer: Arc::new(LocalKeyStore::new(signing, vec![])),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
        },
        ExchangeSettings {
            issuer_url: "https://claimex.example.com".into(),
            token: TokenSettings::default(),
        },
    )
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A fresh signed GetCallerIdentity for `url` (a new nonce each time).
fn signed(url: &str, key: (&str, &str)) -> sigv4::Signed {
    let nonce = NONCE.fetch_add(1, Ordering::Relaxed).to_string();
    sigv4::sign_post(
        url,
        "sts",
        moto::REGION,
        key.0,
        key.1,
        GET_CALLER_IDENTITY,
        &[
            ("x-claimex-server-id", SERVER_ID),
            ("x-claimex-nonce", &nonce),
        ],
        SystemTime::now(),
    )
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // OIDC: inspect + verify of a GitHub-shaped token.
    let (key, _) = LocalKey::generate(SigningAlg::Rs256).unwrap();
    let keys =
        KeySet::from_jwks(json!({"keys": [key.public_jwk()]}).to_string().as_bytes()).unwrap();
    let mut claims: serde_json::Value = serde_json::from_str(GITHUB_CLAIMS).unwrap();
    let t = now();
    claims["aud"] = json!(SERVER_ID);
    claims["iat"] = json!(t);
    claims["nbf"] = json!(t);
    claims["exp"] = json!(t + 3000);
    let token = sign(
        &key,
        json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()}),
        &claims,
    );
    let oidc = OidcPolicy {
        id: "github".into(),
        url: claims["iss"].as_str().unwrap().to_owned(),
        audiences: vec![SERVER_ID.into()],
        algorithms: vec![jsonwebtoken::Algorithm::RS256],
    };
    let vp = VerifyPolicy::default();
    c.bench_function("oidc/verify", |b| {
        b.iter(|| {
            let seen = verify::inspect(black_box(&token), &vp).unwrap();
            let found = match keys.find(seen.header.kid.as_deref(), seen.header.alg) {
                verify::KeyMatch::Found(k) => k,
                _ => unreachable!(),
            };
            verify::verify(seen, &oidc, found, &vp, now()).unwrap()
        })
    });

    // AWS: the pure checks, then the verifier with an instant STS.
    let aws = policy(StsEndpoints::AwsPartition);
    let fake_key = ("AKIDEXAMPLE", "secret");
    let one = signed("https://sts.amazonaws.com/", fake_key).token();
    c.bench_function("aws/check", |b| {
        b.iter(|| check(black_box(&one), &aws, SERVER_ID, now()).unwrap())
    });
    let verifier = AwsIamVerifier::new(Arc::new(InstantSts), SERVER_ID);
    let entry = SubjectPolicy::AwsIam(Arc::new(aws.clone()));
    c.bench_function("aws/verify", |b| {
        b.to_async(&rt).iter_batched(
            || signed("https://sts.amazonaws.com/", fake_key).token(),
            |token| {
                let entry = entry.clone();
                let verifier = &verifier;
                async move {
                    verifier
                        .verify(&token, &mut |_| Ok(entry.clone()), now())
                        .await
                        .unwrap()
                }
            },
            BatchSize::SmallInput,
        )
    });

    // The whole exchange, both kinds, through the same exchanger.
    let keys = Arc::new(keys);
    let whole = exchanger(&rt, keys, claims["iss"].as_str().unwrap());
    c.bench_function("exchange/oidc", |b| {
        b.to_async(&rt).iter(|| async {
            let (result, _audit) = whole
                .exchange(&ExchangeRequest {
                    kind: SubjectKind::Oidc,
                    credential: black_box(&token),
                    issuer_id: Some("github"),
                    audience: None,
                })
                .await;
            result.unwrap()
        })
    });
    c.bench_function("exchange/aws", |b| {
        b.to_async(&rt).iter_batched(
            || signed("https://sts.amazonaws.com/", fake_key).token(),
            |token| {
                let whole = &whole;
                async move {
                    let (result, _audit) = whole
                        .exchange(&ExchangeRequest {
                            kind: SubjectKind::AwsIam,
                            credential: &token,
                            issuer_id: Some("aws"),
                            audience: None,
                        })
                        .await;
                    result.unwrap()
                }
            },
            BatchSize::SmallInput,
        )
    });

    // The STS call itself, against the emulator with SigV4 checking on.
    let emulator = Moto::start_authenticated(3);
    let key = rt.block_on(moto::create_user_with_key(&emulator.url(), "bench"));
    let sts = HttpSts::new().unwrap();
    let url = format!("{}/", emulator.url());
    let allowed = policy(StsEndpoints::Listed(vec![url::Url::parse(&url).unwrap()]));
    c.bench_function("aws/sts_call_moto", |b| {
        b.to_async(&rt).iter_batched(
            || {
                check(
                    &signed(&url, (&key.0, &key.1)).token(),
                    &allowed,
                    SERVER_ID,
                    now(),
                )
                .unwrap()
            },
            |request| {
                let sts = &sts;
                async move { sts.get_caller_identity(&request).await.unwrap() }
            },
            BatchSize::SmallInput,
        )
    });
    c.final_summary();
}
