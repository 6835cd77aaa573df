//! The AWS backends end to end: the real `claimex serve` binary with the SSM issuer registry
//! and the KMS signer, against a real AWS API emulator (`moto_server`) through the real
//! `aws-sdk-ssm`/`aws-sdk-kms` clients, with a loopback OIDC issuer minting the inbound
//! tokens. Every token claimex issues is checked against claimex's own JWKS with
//! jsonwebtoken (never with the emulator's `Verify`).
//!
//! Needs `moto[server]` (`pip install "moto[server]"`); a test fails, saying so, when the
//! emulator cannot start. Outages: "SSM goes away" kills the SSM emulator process (a fresh
//! one on the same port brings SSM back, with the parameters put again); "KMS goes away"
//! cuts a loopback TCP proxy in front of the KMS emulator and restores it, because a
//! restarted moto would have lost its keys.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_ssm::types::ParameterType;
use base64::Engine as _;
use claimex_testkit::entries::ssm as issuer_entry;
use claimex_testkit::jwks::{STS, header, verify};
use claimex_testkit::moto::{
    Link, Moto, PREFIX, Proxy, create_key, delete_parameter, kms, put_issuer, put_parameter, ssm,
    ssm_kms,
};
use claimex_testkit::{TestIssuer, free_port, now, wait_for};
use serde_json::{Value, json};

/// The inbound audience the issuers' tokens carry.
const AUD: &str = "https://claimex.test";
/// The rotation parameter.
const KEYS_PARAMETER: &str = "/claimex/signing-keys";
/// Hard cap on any one test.
const TEST_LIMIT: Duration = Duration::from_secs(300);
/// How long a change in SSM may take to show (refresh every second, plus backoff).
const PROPAGATION: Duration = Duration::from_secs(30);

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

fn token_for(issuer: &TestIssuer, aud: &str) -> String {
    issuer.mint(&issuer.github_claims(aud, now()))
}

/// Checks the JWS signature of `token` with the SPKI public key KMS gives for `key`:
/// independent of claimex's JWK conversion.
async fn signed_by_kms_key(kms: &aws_sdk_kms::Client, key: &str, token: &str) -> bool {
    let out = kms.get_public_key().key_id(key).send().await.unwrap();
    let algorithm: &'static dyn VerificationAlgorithm = match out.key_spec().unwrap() {
        KeySpec::EccNistP256 => &ECDSA_P256_SHA256_FIXED,
        _ => &RSA_PKCS1_2048_8192_SHA256,
    };
    let spki = out.public_key().unwrap().as_ref();
    let verifier = ParsedPublicKey::new(algorithm, spki).unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    verifier.verify_sig(input.as_bytes(), &signature).is_ok()
}

/// What IAM would answer `AssumeRoleWithWebIdentity` with this token, for a role trusting
/// claimex at `base` with client id `sts.amazonaws.com` and the session tag
/// `repository = octo-org/octo-repo` (the test kit's IAM acceptance checker).
async fn iam_verdict(base: &str, token: &str) -> Result<(), String> {
    use claimex_testkit::iam::{Operator, Provider, Trust, condition};
    let provider = Provider::discover(base, &[STS])
        .await
        .map_err(|e| e.code().to_owned())?;
    let host = provider.host().to_owned();
    let trust = Trust::with(vec![
        condition(Operator::StringEquals, &format!("{host}:aud"), &[STS]),
        condition(
            Operator::StringEquals,
            "aws:RequestTag/repository",
            &["octo-org/octo-repo"],
        ),
    ]);
    provider
        .assume(token, &trust, now())
        .map(drop)
        .map_err(|e| format!("{}: {e:?}", e.code()))
}

async fn end_to_end(spec: KeySpec, alg: &str) {
    let moto = Moto::start();
    let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
    let key = create_key(&kms, spec).await;
    let plain = TestIssuer::start().unwrap();
    let secret = TestIssuer::start().unwrap();
    put_issuer(
        &ssm,
        "plain",
        &issuer_entry(plain.url(), AUD),
        ParameterType::String,
    )
    .await;
    put_issuer(
        &ssm,
        "secret",
        &issuer_entry(secret.url(), AUD),
        ParameterType::SecureString,
    )
    .await;
    let server = ssm_kms(&moto.url(), &key).spawn().await;

    let health = server.healthz().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["registry"]["issuers"], 2, "{health}");
    assert!(health["registry"].get("source").is_none(), "{health}");

    let jwks = server.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["alg"], alg);
    let discovery = server
        .fetch("/.well-known/openid-configuration")
        .await
        .json();
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!([alg])
    );

    for (issuer, id) in [(&plain, "plain"), (&secret, "secret")] {
        let token = server.exchange_ok(&token_for(issuer, AUD), None).await;
        let header = header(&token);
        assert_eq!(header["alg"], alg, "{id}");
        assert_eq!(header["kid"], jwks["keys"][0]["kid"], "{id}");
        let claims = verify(&token, &jwks, &server.url, STS)
            .unwrap_or_else(|e| panic!("{id}: the token does not verify against the JWKS: {e}"));
        assert_eq!(claims["iss"], server.url.as_str());
        assert!(
            claims["https://aws.amazon.com/tags"]["principal_tags"].is_object(),
            "{id}: {claims}"
        );
        assert!(
            signed_by_kms_key(&kms, &key, &token).await,
            "{id}: not signed by the KMS key"
        );
        iam_verdict(&server.url, &token)
            .await
            .unwrap_or_else(|e| panic!("{id}: IAM would refuse the KMS-signed token: {e}"));
        // By id too.
        server.exchange_ok(&token_for(issuer, AUD), Some(id)).await;
    }

    // The operator's view of the same key set.
    let (ok, out, err) = server.cli(&["keys", "jwks"]);
    assert!(ok, "claimex keys jwks failed: {err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed, jwks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_rsa_2048_with_string_and_secure_string_issuers() {
    bounded(end_to_end(KeySpec::Rsa2048, "RS256")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_ecc_nist_p256_with_string_and_secure_string_issuers() {
    bounded(end_to_end(KeySpec::EccNistP256, "ES256")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_follows_ssm_changes_without_restart() {
    bounded(async {
        let moto = Moto::start();
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let key = create_key(&kms, KeySpec::Rsa2048).await;
        let alpha = TestIssuer::start().unwrap();
        let beta = TestIssuer::start().unwrap();
        put_issuer(
            &ssm,
            "alpha",
            &issuer_entry(alpha.url(), AUD),
            ParameterType::String,
        )
        .await;
        let server = ssm_kms(&moto.url(), &key).spawn().await;
        server.exchange_ok(&token_for(&alpha, AUD), None).await;
        let refused = server.exchange(&token_for(&beta, AUD), None).await;
        assert_eq!(refused.status, 401, "{refused:?}");

        // Added while running.
        put_issuer(
            &ssm,
            "beta",
            &issuer_entry(beta.url(), AUD),
            ParameterType::SecureString,
        )
        .await;
        let started = Instant::now();
        wait_for("the new issuer to be accepted", PROPAGATION, || async {
            (server.exchange(&token_for(&beta, AUD), None).await.status == 200).then_some(())
        })
        .await;
        eprintln!("added issuer live after {:?}", started.elapsed());
        assert_eq!(server.healthz().await["registry"]["issuers"], 2);

        // Audience changed while running.
        let other = "https://claimex.other";
        put_issuer(
            &ssm,
            "alpha",
            &issuer_entry(alpha.url(), other),
            ParameterType::String,
        )
        .await;
        wait_for(
            "the changed audience to take effect",
            PROPAGATION,
            || async {
                (server
                    .exchange(&token_for(&alpha, other), None)
                    .await
                    .status
                    == 200)
                    .then_some(())
            },
        )
        .await;
        let old = server.exchange(&token_for(&alpha, AUD), None).await;
        assert_eq!(
            old.status, 401,
            "the old audience is still accepted: {old:?}"
        );
        assert_eq!(old.json()["error"], "invalid_grant");

        // Deleted while running.
        delete_parameter(&ssm, &format!("{PREFIX}beta")).await;
        wait_for("the deleted issuer to be refused", PROPAGATION, || async {
            (server.exchange(&token_for(&beta, AUD), None).await.status == 401).then_some(())
        })
        .await;
        let health = server.healthz().await;
        assert_eq!(health["registry"]["issuers"], 1, "{health}");
        assert_eq!(health["status"], "ok", "{health}");
        server
            .exchange_ok(&token_for(&alpha, other), Some("alpha"))
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_skipped_and_named() {
    bounded(async {
        let moto = Moto::start();
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let key = create_key(&kms, KeySpec::Rsa2048).await;
        let good = TestIssuer::start().unwrap();
        let entry = issuer_entry(good.url(), AUD);
        put_issuer(&ssm, "good", &entry, ParameterType::String).await;

        let mut unknown = entry.clone();
        unknown["colour"] = json!("blue");
        let mut no_audience = entry.clone();
        no_audience.as_object_mut().unwrap().remove("audiences");
        let mut empty_audience = entry.clone();
        empty_audience["audiences"] = json!([]);
        let mut plain_http = entry.clone();
        plain_http["issuer"] = json!("http://issuer.example.com");
        let bad: Vec<(String, String, ParameterType, &str)> = vec![
            (
                format!("{PREFIX}badjson"),
                "{not json".into(),
                ParameterType::SecureString,
                "not a valid issuer entry",
            ),
            (
                format!("{PREFIX}unknown"),
                unknown.to_string(),
                ParameterType::String,
                "unknown field `colour`",
            ),
            (
                format!("{PREFIX}noaudience"),
                no_audience.to_string(),
                ParameterType::String,
                "missing field `audiences`",
            ),
            (
                format!("{PREFIX}emptyaudience"),
                empty_audience.to_string(),
                ParameterType::String,
                "audiences must not be empty",
            ),
            (
                format!("{PREFIX}plainhttp"),
                plain_http.to_string(),
                ParameterType::String,
                "uses http",
            ),
            (
                format!("{PREFIX}team/nested"),
                entry.to_string(),
                ParameterType::String,
                "nested parameter",
            ),
            (
                format!("{PREFIX}list"),
                "a,b".into(),
                ParameterType::StringList,
                "StringList is not supported",
            ),
        ];
        for (name, value, kind, _) in &bad {
            put_parameter(&ssm, name, value, kind.clone()).await;
        }
        let server = ssm_kms(&moto.url(), &key).spawn().await;
        let health = server.healthz().await;
        // Skipped entries: degraded, named by id only (why is in the log).
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["registry"]["issuers"], 1, "{health}");
        // /healthz names them by id; the log says why (issue 14: /healthz is unauthenticated).
        let ids = health["registry"]["invalid_entries"].as_array().unwrap();
        assert_eq!(ids.len(), bad.len(), "{health}");
        let log = server
            .log_until(Duration::from_secs(5), |log| {
                log.matches("skipping invalid issuer entry").count() >= bad.len()
            })
            .await;
        let invalid: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("skipping invalid issuer entry"))
            .collect();
        for (name, _, _, reason) in &bad {
            let id = name.strip_prefix(PREFIX).unwrap();
            assert!(ids.iter().any(|i| i == id), "{id} is not named: {health}");
            let line = invalid
                .iter()
                .find(|l| l.contains(&format!("\"origin\":\"ssm parameter {name}\"")))
                .unwrap_or_else(|| panic!("{name} is not reported: {invalid:#?}"));
            assert!(line.contains(reason), "{name}: {line}");
        }
        let text = health.to_string();
        assert!(!text.contains("ssm parameter"), "{text}");
        assert!(
            !log.contains("{not json"),
            "a parameter value reached the log"
        );
        server.exchange_ok(&token_for(&good, AUD), None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_outage_keeps_serving_and_is_reported() {
    bounded(async {
        // SSM and KMS in separate emulators, so SSM can be stopped while KMS stays. The
        // endpoints come from the standard per-service variables of the AWS SDK.
        let mut moto_ssm = Moto::start();
        let moto_kms = Moto::start();
        let (ssm_client, kms) = (ssm(&moto_ssm.url()), kms(&moto_kms.url()));
        let key = create_key(&kms, KeySpec::EccNistP256).await;
        let issuer = TestIssuer::start().unwrap();
        let entry = issuer_entry(issuer.url(), AUD);
        put_issuer(&ssm_client, "github", &entry, ParameterType::SecureString).await;
        let server = ssm_kms("unused", &key)
            .env_remove("CLAIMEX_AWS__ENDPOINT_URL")
            .env("AWS_ENDPOINT_URL_SSM", moto_ssm.url())
            .env("AWS_ENDPOINT_URL_KMS", moto_kms.url())
            .spawn()
            .await;
        server.exchange_ok(&token_for(&issuer, AUD), None).await;

        moto_ssm.stop();
        let health = wait_for("/healthz to report the SSM outage", PROPAGATION, || async {
            let health = server.healthz().await;
            (health["status"] == "degraded").then_some(health)
        })
        .await;
        assert_eq!(health["registry"]["last_load_failed"], true, "{health}");
        let refresh_failed = |log: &str| {
            log.lines().any(|l| {
                l.contains("issuer registry refresh failed") && l.contains("GetParametersByPath")
            })
        };
        assert!(
            refresh_failed(
                &server
                    .log_until(Duration::from_secs(5), refresh_failed)
                    .await
            ),
            "the failure is not logged"
        );
        assert_eq!(health["registry"]["issuers"], 1, "{health}");
        let answer = server.fetch("/healthz").await;
        assert_eq!(answer.status, 200, "degraded is still ready: {answer:?}");

        // The last good registry keeps serving, and the signer does not need SSM.
        let jwks = server.jwks().await;
        for _ in 0..3 {
            let token = server.exchange_ok(&token_for(&issuer, AUD), None).await;
            verify(&token, &jwks, &server.url, STS).unwrap();
        }
        // It retries (with backoff) rather than giving up.
        wait_for("a second failed refresh", PROPAGATION, || async {
            let health = server.healthz().await;
            (health["registry"]["consecutive_failures"].as_u64() >= Some(2)).then_some(())
        })
        .await;

        // SSM comes back (a fresh emulator on the same port, parameters put again).
        let moto_ssm = Moto::start_on(moto_ssm.port()).expect("restarting moto");
        put_issuer(
            &ssm(&moto_ssm.url()),
            "github",
            &entry,
            ParameterType::SecureString,
        )
        .await;
        // (A refresh may land between the restart and the put and see an empty prefix: wait
        // for the issuer, not only for a successful refresh.)
        let health = wait_for("/healthz to recover", PROPAGATION, || async {
            let health = server.healthz().await;
            (health["status"] == "ok" && health["registry"]["issuers"] == 1).then_some(health)
        })
        .await;
        assert_eq!(health["registry"]["consecutive_failures"], 0, "{health}");
        server.exchange_ok(&token_for(&issuer, AUD), None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_outage_answers_503_and_recovers() {
    bounded(async {
        let moto = Moto::start();
        let proxy = Proxy::start(moto.addr()).await;
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let key = create_key(&kms, KeySpec::Rsa2048).await;
        let issuer = TestIssuer::start().unwrap();
        put_issuer(
            &ssm,
            "github",
            &issuer_entry(issuer.url(), AUD),
            ParameterType::String,
        )
        .await;
        // SSM direct, KMS through the cuttable proxy.
        let mut server = ssm_kms("unused", &key)
            .env_remove("CLAIMEX_AWS__ENDPOINT_URL")
            .env("AWS_ENDPOINT_URL_SSM", moto.url())
            .env("AWS_ENDPOINT_URL_KMS", proxy.url())
            .spawn()
            .await;
        server.exchange_ok(&token_for(&issuer, AUD), None).await;

        // Refused connections fail fast; a silent network only times out (the KMS client's
        // attempt and operation timeouts bound it).
        for (link, limit) in [
            (Link::Cut, Duration::from_secs(5)),
            (Link::Blackhole, Duration::from_secs(15)),
        ] {
            proxy.set(link);
            let started = Instant::now();
            let answer = server.exchange(&token_for(&issuer, AUD), None).await;
            let took = started.elapsed();
            eprintln!(
                "exchange with KMS {link:?} answered {} in {took:?}",
                answer.status
            );
            assert_eq!(answer.status, 503, "{link:?}: {answer:?}");
            assert_eq!(
                answer.json()["error"],
                "temporarily_unavailable",
                "{answer:?}"
            );
            assert!(answer.retry_after.is_some(), "no Retry-After: {answer:?}");
            assert!(!answer.body.contains("eyJ"), "a token leaked: {answer:?}");
            assert!(took < limit, "{link:?}: the 503 took {took:?}");
            assert!(server.running(), "claimex died during the KMS outage");
            // Still ready (other requests may succeed), but degraded, with no error text.
            let health = server.fetch("/healthz").await;
            assert_eq!(health.status, 200, "{health:?}");
            let shown = health.json();
            assert_eq!(shown["status"], "degraded", "{shown}");
            assert_eq!(shown["signer"]["failing"], true, "{shown}");
            assert!(shown["signer"]["last_error_unix"].is_u64(), "{shown}");
            assert!(
                !health.body.contains("KMS"),
                "an error text is shown: {shown}"
            );

            proxy.set(Link::Up);
            let started = Instant::now();
            let token = wait_for("exchanges to work again", PROPAGATION, || async {
                let answer = server.exchange(&token_for(&issuer, AUD), None).await;
                (answer.status == 200).then_some(answer.body)
            })
            .await;
            eprintln!("recovered from {link:?} in {:?}", started.elapsed());
            verify(&token, &server.jwks().await, &server.url, STS).unwrap();
            let shown = server.fetch("/healthz").await.json();
            assert_eq!(shown["status"], "ok", "{shown}");
            assert_eq!(shown["signer"]["failing"], false, "{shown}");
        }
        let log = server
            .log_until(Duration::from_secs(5), |log| {
                log.contains("KMS Sign failed")
            })
            .await;
        assert!(log.contains("KMS Sign failed"));
        let token = server.exchange_ok(&token_for(&issuer, AUD), None).await;
        verify(&token, &server.jwks().await, &server.url, STS).unwrap();
        assert!(signed_by_kms_key(&kms, &key, &token).await);
    })
    .await;
}

fn report(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not a JSON report ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_overlap_through_the_keys_parameter() {
    bounded(async {
        let moto = Moto::start();
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let old = create_key(&kms, KeySpec::Rsa2048).await;
        let new = create_key(&kms, KeySpec::EccNistP256).await;
        let issuer = TestIssuer::start().unwrap();
        put_issuer(
            &ssm,
            "github",
            &issuer_entry(issuer.url(), AUD),
            ParameterType::String,
        )
        .await;
        // Starts from the configuration: the parameter does not exist yet.
        let server = ssm_kms(&moto.url(), &old)
            .env("CLAIMEX_SIGNER__KMS_KEYS_PARAMETER", KEYS_PARAMETER)
            .spawn()
            .await;

        let (ok, out, err) = server.cli(&["keys", "show"]);
        assert!(ok, "{err}");
        let state = report(&out);
        assert_eq!(state["current"]["key"], old.as_str(), "{state}");
        assert_eq!(state["current"]["alg"], "RS256");
        let old_kid = state["current"]["kid"].as_str().unwrap().to_owned();
        assert_eq!(server.kids().await, vec![old_kid.clone()]);
        let before = server.exchange_ok(&token_for(&issuer, AUD), None).await;
        assert_eq!(header(&before)["kid"], old_kid.as_str());

        // Stage: the pending key is published before it signs.
        let (ok, out, err) = server.cli(&["keys", "stage", &new]);
        assert!(ok, "{err}");
        let state = report(&out);
        assert_eq!(state["current"]["key"], old.as_str(), "{state}");
        assert_eq!(state["published"][0]["key"], new.as_str(), "{state}");
        assert_eq!(state["published"][0]["alg"], "ES256", "{state}");
        let new_kid = state["published"][0]["kid"].as_str().unwrap().to_owned();
        wait_for("the pending key in the JWKS", PROPAGATION, || async {
            server.kids().await.contains(&new_kid).then_some(())
        })
        .await;
        let pending = server.exchange_ok(&token_for(&issuer, AUD), None).await;
        assert_eq!(
            header(&pending)["kid"],
            old_kid.as_str(),
            "the pending key signed"
        );
        let discovery = server
            .fetch("/.well-known/openid-configuration")
            .await
            .json();
        assert_eq!(
            discovery["id_token_signing_alg_values_supported"],
            json!(["ES256", "RS256"])
        );

        // The current key cannot be retired; an unstaged key cannot be promoted.
        let (ok, _, err) = server.cli(&["keys", "retire", &old]);
        assert!(!ok && err.contains("current key"), "{err}");
        let stray = create_key(&kms, KeySpec::Rsa2048).await;
        let (ok, _, err) = server.cli(&["keys", "promote", &stray]);
        assert!(!ok && err.contains("not published yet"), "{err}");

        // Promote: the new key signs, the old one stays published.
        let (ok, out, err) = server.cli(&["keys", "promote", &new]);
        assert!(ok, "{err}");
        let state = report(&out);
        assert_eq!(state["current"]["key"], new.as_str(), "{state}");
        assert_eq!(state["published"][0]["key"], old.as_str(), "{state}");
        let after = wait_for("the promoted key to sign", PROPAGATION, || async {
            let token = server.exchange_ok(&token_for(&issuer, AUD), None).await;
            (header(&token)["kid"] == new_kid.as_str()).then_some(token)
        })
        .await;
        assert_eq!(header(&after)["alg"], "ES256");
        let jwks = server.jwks().await;
        verify(&after, &jwks, &server.url, STS).expect("new token against the JWKS");
        verify(&before, &jwks, &server.url, STS)
            .expect("a token of the previous key must verify until it is retired");
        // IAM accepts both during the overlap.
        iam_verdict(&server.url, &after)
            .await
            .expect("IAM, new key");
        iam_verdict(&server.url, &before)
            .await
            .expect("IAM, previous key during the overlap");

        // Retire the old key, named by its bare key id this time.
        let bare_id = old.rsplit('/').next().unwrap();
        let (ok, out, err) = server.cli(&["keys", "retire", bare_id]);
        assert!(ok, "{err}");
        let state = report(&out);
        assert_eq!(state["published"], json!([]), "{state}");
        wait_for("the retired key to leave the JWKS", PROPAGATION, || async {
            (server.kids().await == vec![new_kid.clone()]).then_some(())
        })
        .await;
        let jwks = server.jwks().await;
        let err = verify(&before, &jwks, &server.url, STS).unwrap_err();
        assert!(err.contains("not in the JWKS"), "{err}");
        verify(&after, &jwks, &server.url, STS).unwrap();
        let refused = iam_verdict(&server.url, &before).await.unwrap_err();
        assert!(refused.starts_with("InvalidIdentityToken"), "{refused}");
        iam_verdict(&server.url, &after)
            .await
            .expect("IAM, new key after retirement");

        // The parameter holds ARNs, as the operator documentation says.
        let stored = ssm
            .get_parameter()
            .name(KEYS_PARAMETER)
            .send()
            .await
            .unwrap();
        let stored: Value =
            serde_json::from_str(stored.parameter().unwrap().value().unwrap()).unwrap();
        assert_eq!(stored, json!({"current": new, "published": []}));

        // A parameter deleted by mistake does not switch back to the configured key.
        delete_parameter(&ssm, KEYS_PARAMETER).await;
        wait_for(
            "the missing parameter to be noticed",
            PROPAGATION,
            || async { server.log().contains("has disappeared").then_some(()) },
        )
        .await;
        assert_eq!(server.kids().await, vec![new_kid.clone()]);
        let still = server.exchange_ok(&token_for(&issuer, AUD), None).await;
        assert_eq!(header(&still)["kid"], new_kid.as_str());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_clearly_when_aws_is_unusable() {
    bounded(async {
        // Nothing listens there: the first registry load fails, and so does start-up.
        let nowhere = format!("http://127.0.0.1:{}", free_port());
        let log = ssm_kms(&nowhere, "alias/none")
            .try_spawn()
            .await
            .err()
            .expect("claimex started without a registry");
        assert!(log.contains("cannot load the issuer registry"), "{log}");

        let moto = Moto::start();
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let issuer = TestIssuer::start().unwrap();
        put_issuer(
            &ssm,
            "github",
            &issuer_entry(issuer.url(), AUD),
            ParameterType::String,
        )
        .await;

        // An encryption key cannot sign.
        let encrypting = kms
            .create_key()
            .key_usage(KeyUsageType::EncryptDecrypt)
            .send()
            .await
            .unwrap();
        let arn = encrypting.key_metadata().unwrap().arn().unwrap().to_owned();
        let log = ssm_kms(&moto.url(), &arn)
            .try_spawn()
            .await
            .err()
            .expect("claimex started with an encryption key");
        assert!(log.contains("not SIGN_VERIFY"), "{log}");

        // A broken rotation parameter is not silently ignored.
        let key = create_key(&kms, KeySpec::Rsa2048).await;
        put_parameter(
            &ssm,
            KEYS_PARAMETER,
            r#"{"current": ""}"#,
            ParameterType::String,
        )
        .await;
        let log = ssm_kms(&moto.url(), &key)
            .env("CLAIMEX_SIGNER__KMS_KEYS_PARAMETER", KEYS_PARAMETER)
            .try_spawn()
            .await
            .err()
            .expect("claimex started with a broken keys parameter");
        assert!(
            log.contains(KEYS_PARAMETER) && log.contains("current"),
            "{log}"
        );
    })
    .await;
}
