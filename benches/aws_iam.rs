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
//! Mapping and minting are the same work for both kinds (the mapper sees ~300 bytes of AWS
//! claims against ~1.5 KB of GitHub claims): see `benches/exchange.rs` `stages`.
//!
//! Run: `cargo bench --bench aws_iam` (needs `make emulator`).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion};
use serde_json::json;

use claimex::signer::local::LocalKey;
use claimex::signer::{SigningAlg, SigningKey as _};
use claimex::subject::aws_iam::request::check;
use claimex::subject::aws_iam::{
    AwsIamPolicy, AwsIamVerifier, CallerIdentity, HttpSts, SignedRequest, StsCaller, StsEndpoints,
    StsError,
};
use claimex::subject::jwt::{self as verify, KeySet, OidcPolicy, VerifyPolicy};
use claimex::subject::{SubjectPolicy, SubjectVerifier};
use claimex_testkit::issuer::sign;
use claimex_testkit::moto::{self, Moto};
use claimex_testkit::sigv4::{self, GET_CALLER_IDENTITY};
use claimex_testkit::{GITHUB_CLAIMS, now};

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
