//! The KMS envelope signer (`signer.backend = "kms-envelope"`) end to end: the real
//! `claimex serve` binary against the AWS emulator (moto, through the test kit's launcher,
//! which adds KMS `GenerateDataKeyPair[WithoutPlaintext]` that moto lacks), keys made by
//! `claimex keys create-envelope` (or its library function), tokens verified against claimex's
//! JWKS and against the public key KMS generated.

use std::future::Future;
use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use aws_sdk_ssm::types::ParameterType;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use claimex::signer::SigningAlg;
use claimex::signer::envelope::{EnvelopeRecord, create};
use claimex_testkit::entries::ssm as issuer_entry;
use claimex_testkit::jwks::{STS, header, verify};
use claimex_testkit::moto::{Moto, kms, put_issuer, put_parameter, ssm};
use claimex_testkit::server::Claimex;
use claimex_testkit::{TestIssuer, now, wait_for};
use serde_json::{Value, json};

const AUD: &str = "https://claimex.test";
const KEYS_PARAMETER: &str = "/claimex/signing-keys";
const TEST_LIMIT: Duration = Duration::from_secs(300);
const PROPAGATION: Duration = Duration::from_secs(30);

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"));
}

fn token_for(issuer: &TestIssuer) -> String {
    issuer.mint(&issuer.github_claims(AUD, now()))
}

/// A symmetric KMS key (what envelope keys are encrypted under); its ARN.
async fn symmetric_key(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .description("claimex envelope test key")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

/// claimex with the SSM registry and the envelope signer, both on the emulator.
fn envelope(endpoint: &str) -> Claimex {
    Claimex::new()
        .env("CLAIMEX_AWS__ENDPOINT_URL", endpoint)
        .env("CLAIMEX_REGISTRY__BACKEND", "ssm")
        .env("CLAIMEX_REGISTRY__REFRESH_SECS", "1")
        .env("CLAIMEX_SIGNER__BACKEND", "kms-envelope")
        .env("CLAIMEX_SIGNER__KMS_KEYS_PARAMETER", KEYS_PARAMETER)
        .env("CLAIMEX_JWKS__MIN_TTL_SECS", "1")
        .env("CLAIMEX_JWKS__DEFAULT_TTL_SECS", "1")
}

async fn set_keys(ssm: &aws_sdk_ssm::Client, keys: Value) {
    put_parameter(
        ssm,
        KEYS_PARAMETER,
        &keys.to_string(),
        ParameterType::String,
    )
    .await;
}

async fn record(ssm: &aws_sdk_ssm::Client, name: &str) -> EnvelopeRecord {
    let out = ssm.get_parameter().name(name).send().await.unwrap();
    serde_json::from_str(out.parameter().unwrap().value().unwrap()).unwrap()
}

/// Whether `token` verifies with the SubjectPublicKeyInfo KMS generated (as stored).
fn signed_by(record: &EnvelopeRecord, token: &str) -> bool {
    let algorithm: &'static dyn VerificationAlgorithm = match record.alg {
        SigningAlg::Es256 => &ECDSA_P256_SHA256_FIXED,
        SigningAlg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
    };
    let spki = STANDARD.decode(&record.public_key).unwrap();
    let verifier = ParsedPublicKey::new(algorithm, &spki).unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    verifier.verify_sig(input.as_bytes(), &signature).is_ok()
}

async fn exchange_with(alg: SigningAlg) {
    let moto = Moto::start();
    let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
    let master = symmetric_key(&kms).await;
    let name = "/claimex/keys/first";
    let created = create(&kms, &ssm, name, &master, alg).await.unwrap();
    assert_eq!(created.kms_key_id, master);
    let stored = record(&ssm, name).await;
    assert_eq!(stored, created);
    // Only ciphertext is stored: the record has no plaintext, and the ciphertext is not a key.
    assert!(!stored.private_key_ciphertext.is_empty());
    set_keys(&ssm, json!({"current": name})).await;
    let issuer = TestIssuer::start().unwrap();
    put_issuer(
        &ssm,
        "github",
        &issuer_entry(issuer.url(), AUD),
        ParameterType::String,
    )
    .await;
    let server = envelope(&moto.url()).spawn().await;

    let jwks = server.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["alg"], alg.as_str());
    // The published key is the one KMS generated.
    let generated = serde_json::to_value(stored.public_jwk().unwrap()).unwrap();
    assert_eq!(jwks["keys"][0], generated);

    let token = server.exchange_ok(&token_for(&issuer), None).await;
    assert_eq!(header(&token)["alg"], alg.as_str());
    assert_eq!(header(&token)["kid"], jwks["keys"][0]["kid"]);
    let claims = verify(&token, &jwks, &server.url, STS).expect("the token against the JWKS");
    assert_eq!(claims["iss"], server.url.as_str());
    // The decrypted private key is the pair of the generated public key.
    assert!(
        signed_by(&stored, &token),
        "not signed by the generated key"
    );

    let (ok, out, err) = server.cli(&["keys", "jwks"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), jwks);
    // Nothing of the key in the log.
    let log = server.log();
    assert!(
        !log.contains(&stored.private_key_ciphertext[..40]),
        "the log shows the ciphertext"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_envelope_key_signs_locally_and_verifies_against_the_jwks() {
    bounded(exchange_with(SigningAlg::Es256)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_envelope_key_signs_locally_and_verifies_against_the_jwks() {
    bounded(exchange_with(SigningAlg::Rs256)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_clearly_when_the_key_does_not_decrypt_or_match() {
    bounded(async {
        let moto = Moto::start();
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let master = symmetric_key(&kms).await;
        let a = create(&kms, &ssm, "/claimex/keys/a", &master, SigningAlg::Es256)
            .await
            .unwrap();
        let b = create(&kms, &ssm, "/claimex/keys/b", &master, SigningAlg::Es256)
            .await
            .unwrap();

        // A ciphertext copied under another parameter: the encryption context differs.
        let copied = EnvelopeRecord {
            private_key_ciphertext: a.private_key_ciphertext.clone(),
            ..b.clone()
        };
        put_parameter(
            &ssm,
            "/claimex/keys/copied",
            &serde_json::to_string(&copied).unwrap(),
            ParameterType::String,
        )
        .await;
        set_keys(&ssm, json!({"current": "/claimex/keys/copied"})).await;
        let log = envelope(&moto.url())
            .try_spawn()
            .await
            .err()
            .expect("claimex started with a key it cannot decrypt");
        assert!(
            log.contains("cannot decrypt the signing key in /claimex/keys/copied"),
            "{log}"
        );
        assert!(log.contains("kms:Decrypt"), "{log}");

        // Garbage ciphertext.
        let garbage = EnvelopeRecord {
            private_key_ciphertext: STANDARD.encode(b"not a KMS ciphertext at all"),
            ..b.clone()
        };
        put_parameter(
            &ssm,
            "/claimex/keys/garbage",
            &serde_json::to_string(&garbage).unwrap(),
            ParameterType::String,
        )
        .await;
        set_keys(&ssm, json!({"current": "/claimex/keys/garbage"})).await;
        let log = envelope(&moto.url()).try_spawn().await.err().unwrap();
        assert!(
            log.contains("cannot decrypt the signing key in /claimex/keys/garbage"),
            "{log}"
        );

        // A public key that is not the private key's: refused, not published.
        let swapped = EnvelopeRecord {
            public_key: a.public_key.clone(),
            ..b.clone()
        };
        put_parameter(
            &ssm,
            "/claimex/keys/b",
            &serde_json::to_string(&swapped).unwrap(),
            ParameterType::String,
        )
        .await;
        set_keys(&ssm, json!({"current": "/claimex/keys/b"})).await;
        let log = envelope(&moto.url()).try_spawn().await.err().unwrap();
        assert!(log.contains("does not match its public_key"), "{log}");
    })
    .await;
}

fn report(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not a JSON report ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_overlap() {
    bounded(async {
        let moto = Moto::start();
        let (ssm, kms) = (ssm(&moto.url()), kms(&moto.url()));
        let master = symmetric_key(&kms).await;
        let old = "/claimex/keys/old";
        let new = "/claimex/keys/new";
        create(&kms, &ssm, old, &master, SigningAlg::Rs256)
            .await
            .unwrap();
        set_keys(&ssm, json!({"current": old})).await;
        let issuer = TestIssuer::start().unwrap();
        put_issuer(
            &ssm,
            "github",
            &issuer_entry(issuer.url(), AUD),
            ParameterType::String,
        )
        .await;
        let server = envelope(&moto.url()).spawn().await;
        let (ok, out, err) = server.cli(&["keys", "show"]);
        assert!(ok, "{err}");
        let old_kid = report(&out)["current"]["kid"].as_str().unwrap().to_owned();
        assert_eq!(server.kids().await, vec![old_kid.clone()]);
        let before = server.exchange_ok(&token_for(&issuer), None).await;

        // The operator makes the next key with the CLI.
        let (ok, out, err) = server.cli(&[
            "keys",
            "create-envelope",
            new,
            "--kms-key-id",
            &master,
            "--alg",
            "ES256",
        ]);
        assert!(ok, "{err}");
        let new_kid = report(&out)["kid"].as_str().unwrap().to_owned();

        // Stage: published, not signing.
        let (ok, out, err) = server.cli(&["keys", "stage", new]);
        assert!(ok, "{err}");
        let state = report(&out);
        assert_eq!(state["published"][0]["key"], new, "{state}");
        assert_eq!(state["published"][0]["kid"], new_kid.as_str(), "{state}");
        wait_for("the pending key in the JWKS", PROPAGATION, || async {
            server.kids().await.contains(&new_kid).then_some(())
        })
        .await;
        let pending = server.exchange_ok(&token_for(&issuer), None).await;
        assert_eq!(header(&pending)["kid"], old_kid.as_str());

        // Promote: the new key signs; the old one stays published.
        let (ok, _, err) = server.cli(&["keys", "promote", new]);
        assert!(ok, "{err}");
        let after = wait_for("the promoted key to sign", PROPAGATION, || async {
            let token = server.exchange_ok(&token_for(&issuer), None).await;
            (header(&token)["kid"] == new_kid.as_str()).then_some(token)
        })
        .await;
        assert_eq!(header(&after)["alg"], "ES256");
        let jwks = server.jwks().await;
        verify(&after, &jwks, &server.url, STS).expect("the new token against the JWKS");
        verify(&before, &jwks, &server.url, STS).expect("the old token during the overlap");
        assert!(signed_by(&record(&ssm, new).await, &after));

        // Retire the old key.
        let (ok, _, err) = server.cli(&["keys", "retire", old]);
        assert!(ok, "{err}");
        wait_for("the retired key to leave the JWKS", PROPAGATION, || async {
            (server.kids().await == vec![new_kid.clone()]).then_some(())
        })
        .await;
        let jwks = server.jwks().await;
        assert!(verify(&before, &jwks, &server.url, STS).is_err());
        // One Decrypt per current key: at start and at the promotion.
        let log = server
            .log_until(Duration::from_secs(5), |log| {
                log.matches("envelope signing keys changed").count() >= 3
            })
            .await;
        assert_eq!(
            log.matches("envelope signing keys changed").count(),
            3,
            "stage, promote, retire: {log}"
        );
    })
    .await;
}

#[test]
fn kms_envelope_needs_the_keys_parameter() {
    let env = |extra: &[(&str, &str)]| {
        let mut all = vec![
            (
                "CLAIMEX_PUBLIC_URL".to_owned(),
                "https://claimex.example.com".to_owned(),
            ),
            (
                "CLAIMEX_SIGNER__BACKEND".to_owned(),
                "kms-envelope".to_owned(),
            ),
        ];
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    };
    let error = claimex::config::Config::load_with_env(None, &env(&[]))
        .expect_err("kms-envelope without kms_keys_parameter must be refused")
        .to_string();
    assert!(error.contains("kms_keys_parameter"), "{error}");
    let config = claimex::config::Config::load_with_env(
        None,
        &env(&[("CLAIMEX_SIGNER__KMS_KEYS_PARAMETER", KEYS_PARAMETER)]),
    )
    .unwrap();
    assert_eq!(
        config.signer.backend,
        claimex::signer::SignerBackend::KmsEnvelope
    );
}
