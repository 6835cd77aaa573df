//! AWS identities in, over `POST /token`: a workload signs `sts:GetCallerIdentity` (with the
//! `aws-sigv4` crate) using an access key the AWS emulator issued, with the emulator's SigV4
//! checking on (`INITIAL_NO_AUTH_ACTION_COUNT`); claimex replays the request to the emulator's
//! STS, maps the identity with the stock rules mapper and mints a JWT. Each tampered or
//! misbound request gets its documented refusal, and nothing is ever sent to a host off the
//! entry's STS allow-list (a loopback listener counts the connections it gets).
//!
//! The shared one-use table: two `claimex serve` processes with `[aws_iam] replay_table` on
//! the emulator's DynamoDB (the table created with the real SDK, as the templates create it)
//! redeem a signed request once between them, and the item holds the signature's hash and the
//! end of its window; an unreachable or missing table refuses with 503 before STS is called.
//! `issuer_id` left out: the one `aws-iam` entry is used, several are named in the refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use claimex_testkit::client::{Answer, http};
use claimex_testkit::jwks;
use claimex_testkit::mappers;
use claimex_testkit::moto::{self, Moto};
use claimex_testkit::server::{Claimex, FAST, InProcess};
use claimex_testkit::sigv4::{self, GET_CALLER_IDENTITY, Signed};
use serde_json::json;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AWS4: &str = "urn:ietf:params:aws:token-type:aws4_request";
const ACCOUNT: &str = "123456789012";

/// A loopback listener that counts the connections it accepts (and answers none).
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

fn entry(id: &str, account: &str, sts: &str) -> String {
    let config = json!({"rules": [{
        "name": "workloads",
        "when": {"principal_type": "user", "account": ACCOUNT},
        "tags": {"user": "user_name", "account": "account"},
    }]});
    format!(
        "[issuers.{id}]\nkind = \"aws-iam\"\naccounts = [{account:?}]\nsts_endpoints = [{sts:?}]\nmapper = {:?}\nmapper_config = {}\n",
        mappers::file_name("claimex-mapper-rules"),
        toml_inline(&config),
    )
}

/// A JSON value as a TOML inline value.
fn toml_inline(value: &serde_json::Value) -> String {
    let v: toml::Value = serde_json::from_value(value.clone()).unwrap();
    v.to_string()
}

/// `POST /token` with a signed request to the claimex at `url`, naming `issuer_id` if given.
async fn exchange_at(url: &str, issuer_id: Option<&str>, token: &str) -> Answer {
    let mut pairs = vec![
        ("grant_type", GRANT),
        ("subject_token_type", AWS4),
        ("subject_token", token),
    ];
    if let Some(id) = issuer_id {
        pairs.push(("issuer_id", id));
    }
    post_token(url, &pairs).await
}

/// `POST /token` with the form `pairs` to the claimex at `url`.
async fn post_token(url: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let response = http()
        .post(format!("{url}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    Answer::read(response).await.unwrap()
}

struct Setup {
    /// An allowed STS endpoint where nothing listens (entry `aws-down`).
    down: String,
    moto: Moto,
    claimex: InProcess,
    key: (String, String),
    nonce: AtomicUsize,
}

impl Setup {
    async fn start() -> Setup {
        Setup::start_with("", Claimex::new()).await
    }

    /// With more fields in the `aws` entry (TOML lines), on a claimex built from `claimex`.
    async fn start_with(aws_fields: &str, claimex: Claimex) -> Setup {
        let moto = Moto::start_authenticated(3);
        let key = moto::create_user_with_key(&moto.url(), "workload").await;
        let sts = moto.url();
        let down = format!("http://127.0.0.1:{}", claimex_testkit::free_port());
        let issuers = entry("aws", ACCOUNT, &sts)
            + aws_fields
            + &entry("aws-other", "111111111111", &sts)
            + &entry("aws-down", ACCOUNT, &down);
        let claimex = claimex.issuers(&issuers).settings(FAST).start();
        Setup {
            down,
            moto,
            claimex,
            key,
            nonce: AtomicUsize::new(0),
        }
    }

    /// GetCallerIdentity signed for `url` at `time`, with the server-id header `server_id`
    /// (none: not sent) and a fresh signed nonce.
    fn sign(&self, url: &str, server_id: Option<&str>, time: SystemTime) -> Signed {
        let nonce = self.nonce.fetch_add(1, Ordering::SeqCst).to_string();
        let mut extra = vec![("x-claimex-nonce", nonce.as_str())];
        if let Some(id) = server_id {
            extra.push(("x-claimex-server-id", id));
        }
        sigv4::sign_post(
            url,
            "sts",
            moto::REGION,
            &self.key.0,
            &self.key.1,
            GET_CALLER_IDENTITY,
            &extra,
            time,
        )
    }

    fn good(&self) -> Signed {
        self.sign(
            &format!("{}/", self.moto.url()),
            Some(&self.claimex.url),
            SystemTime::now(),
        )
    }

    async fn exchange(&self, issuer_id: &str, token: &str) -> Answer {
        self.exchange_with(issuer_id, token, &[]).await
    }

    /// `POST /token` with more form parameters.
    async fn exchange_with(&self, issuer_id: &str, token: &str, extra: &[(&str, &str)]) -> Answer {
        let mut pairs = vec![
            ("grant_type", GRANT),
            ("subject_token_type", AWS4),
            ("subject_token", token),
            ("issuer_id", issuer_id),
        ];
        pairs.extend_from_slice(extra);
        post_token(&self.claimex.url, &pairs).await
    }

    async fn refused(&self, token: &str, error: &str, reason: &str) -> String {
        let answer = self.exchange("aws", token).await;
        let description = answer.assert_error(400, error);
        assert_eq!(answer.json()["reason_code"], reason, "{}", answer.body);
        description
    }
}

#[tokio::test]
async fn a_signed_get_caller_identity_becomes_a_claimex_jwt_once() {
    let setup = Setup::start().await;
    // The emulator checks signatures: the signed request itself is good.
    let (status, text) = sigv4::send(&setup.good()).await;
    assert_eq!(status, 200, "{text}");

    let signed = setup.good();
    let answer = setup.exchange("aws", &signed.token()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert_eq!(
        json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    let claims = jwks::verify_at(&setup.claimex.url, json["access_token"].as_str().unwrap()).await;
    assert_eq!(
        claims["sub"],
        format!("arn:aws:iam::{ACCOUNT}:user/workload")
    );
    assert_eq!(claims["iss"], setup.claimex.url);
    let tags = &claims["https://aws.amazon.com/tags"]["principal_tags"];
    assert_eq!(tags["user"], json!(["workload"]));
    assert_eq!(tags["account"], json!([ACCOUNT]));

    // The same signed request again: refused, however honest.
    setup
        .refused(&signed.token(), "invalid_grant", "aws_request_replayed")
        .await;
}

/// An AWS identity asks `POST /token` for AWS credentials (claimex's `requested_token_type`):
/// the signed GetCallerIdentity is checked by the authenticated emulator, then the token
/// claimex mints goes, unsigned, to a second emulator's `AssumeRoleWithWebIdentity` (the
/// first one would want a signature); the entry's `allowed_roles` decide which roles.
#[tokio::test]
async fn an_aws_identity_gets_aws_credentials_from_the_token_endpoint() {
    const CREDENTIALS: &str = "urn:claimex:params:oauth:token-type:aws-credentials";
    let sts = Moto::start();
    let setup = Setup::start_with(
        "allowed_roles = [\"arn:aws:iam::123456789012:role/workload-*\"]\n",
        Claimex::new().env("CLAIMEX_AWS__ENDPOINT_URL", sts.url()),
    )
    .await;
    let role = "arn:aws:iam::123456789012:role/workload-deploy";
    let asked = [("requested_token_type", CREDENTIALS), ("role_arn", role)];
    let answer = setup
        .exchange_with("aws", &setup.good().token(), &asked)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert_eq!(json["issued_token_type"], CREDENTIALS);
    assert_eq!(json["token_type"], "N_A");
    assert!(
        json["expires_in"].as_u64().is_some_and(|s| s > 900),
        "{json}"
    );
    let credentials: serde_json::Value =
        serde_json::from_str(json["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(credentials["Version"], 1);
    assert!(credentials["SessionToken"].is_string(), "{credentials}");

    let other = [
        ("requested_token_type", CREDENTIALS),
        ("role_arn", "arn:aws:iam::123456789012:role/admin"),
    ];
    let answer = setup
        .exchange_with("aws", &setup.good().token(), &other)
        .await;
    answer.assert_error(403, "access_denied");
    assert_eq!(answer.json()["reason_code"], "role_not_allowed");
}

#[tokio::test]
async fn the_python_botocore_example_gets_a_token() {
    let setup = Setup::start().await;
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/aws_token.py");
    let run = |issuer: &str| {
        std::process::Command::new(moto::python())
            .args([example, &setup.claimex.url, "--issuer-id", issuer])
            .env("AWS_ACCESS_KEY_ID", &setup.key.0)
            .env("AWS_SECRET_ACCESS_KEY", &setup.key.1)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_DEFAULT_REGION", moto::REGION)
            .env("AWS_ENDPOINT_URL_STS", setup.moto.url())
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap()
    };
    // A refusal: claimex's reason on stderr, exit 1 (not a Python traceback).
    let refused = run("no-such-issuer");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("claimex refused (400)") && stderr.contains("unknown_issuer"),
        "{stderr}"
    );
    let out = run("aws");
    assert!(
        out.status.success(),
        "examples/aws_token.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = jwks::verify_at(&setup.claimex.url, token.trim()).await;
    assert_eq!(
        claims["sub"],
        format!("arn:aws:iam::{ACCOUNT}:user/workload")
    );
}

#[tokio::test]
async fn claimex_token_aws_signs_with_the_credential_chain() {
    let setup = Setup::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("token.jwt");
    let run = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claimex"));
        command
            .args([
                "token",
                "aws",
                "--url",
                &setup.claimex.url,
                "--issuer-id",
                "aws",
            ])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", &setup.key.0)
            .env("AWS_SECRET_ACCESS_KEY", &setup.key.1)
            .env("AWS_REGION", moto::REGION)
            .env("AWS_CONFIG_FILE", dir.path().join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_STS", setup.moto.url())
            .env("CLAIMEX_LOG", "off");
        command.output().unwrap()
    };
    let out = run(&["--audience", jwks::STS]);
    assert!(
        out.status.success(),
        "claimex token aws failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = jwks::verify_at(&setup.claimex.url, token.trim()).await;
    assert_eq!(
        claims["sub"],
        format!("arn:aws:iam::{ACCOUNT}:user/workload")
    );

    // Twice in a row (a fresh nonce each time), written to a private file.
    let out = run(&["-o", out_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&out_file).unwrap();
    jwks::verify_at(&setup.claimex.url, written.trim()).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A refusal: exit code 1 and the reason on stderr.
    let out = run(&["--server-id", "https://other.example.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server_id_mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn tampered_or_misbound_requests_are_refused_and_nothing_leaves_the_allow_list() {
    let setup = Setup::start().await;
    let (elsewhere, connections) = counting_listener().await;
    let sts = format!("{}/", setup.moto.url());
    let server_id = setup.claimex.url.clone();

    // Tampered signature: STS (the emulator) refuses it, and says why.
    let mut signed = setup.good();
    let auth = signed.header("authorization").unwrap().to_owned();
    let flipped = if auth.ends_with('0') { "1" } else { "0" };
    signed.set_header(
        "authorization",
        Some(&format!("{}{flipped}", &auth[..auth.len() - 1])),
    );
    let description = setup
        .refused(&signed.token(), "invalid_grant", "aws_identity_refused")
        .await;
    assert!(
        description.contains("SignatureDoesNotMatch"),
        "{description}"
    );

    // Tampered body: another action is refused before sending; the same action with its
    // parameters reordered passes claimex's check and fails the signature at STS.
    let mut signed = setup.good();
    signed.body = "Action=AssumeRole&Version=2011-06-15".into();
    setup
        .refused(&signed.token(), "invalid_grant", "not_get_caller_identity")
        .await;
    let mut signed = setup.good();
    signed.body = "Version=2011-06-15&Action=GetCallerIdentity".into();
    setup
        .refused(&signed.token(), "invalid_grant", "aws_identity_refused")
        .await;

    // Another host: a request signed for it, and a good request pointed at it.
    let signed = setup.sign(&elsewhere, Some(&server_id), SystemTime::now());
    setup
        .refused(&signed.token(), "invalid_grant", "sts_endpoint_not_allowed")
        .await;
    let mut signed = setup.good();
    signed.url = elsewhere.clone();
    setup
        .refused(&signed.token(), "invalid_grant", "sts_endpoint_not_allowed")
        .await;

    // Old and future dates, beyond STS's 15 minutes.
    for offset in [-1, 1] {
        let shift = Duration::from_secs(20 * 60);
        let time = if offset < 0 {
            SystemTime::now() - shift
        } else {
            SystemTime::now() + shift
        };
        let signed = setup.sign(&sts, Some(&server_id), time);
        setup
            .refused(&signed.token(), "invalid_grant", "aws_request_expired")
            .await;
    }

    // The server-id header: missing (so unsigned), wrong, or sent but not signed.
    let signed = setup.sign(&sts, None, SystemTime::now());
    setup
        .refused(&signed.token(), "invalid_grant", "unsigned_required_header")
        .await;
    let signed = setup.sign(&sts, Some("https://other.example.com"), SystemTime::now());
    setup
        .refused(&signed.token(), "invalid_grant", "server_id_mismatch")
        .await;
    let mut signed = setup.sign(&sts, None, SystemTime::now());
    signed.set_header("x-claimex-server-id", Some(&server_id));
    setup
        .refused(&signed.token(), "invalid_grant", "unsigned_required_header")
        .await;

    // An account the entry does not accept.
    let answer = setup.exchange("aws-other", &setup.good().token()).await;
    answer.assert_error(400, "invalid_grant");
    assert_eq!(answer.json()["reason_code"], "aws_account_not_allowed");

    // STS unreachable: 503 with Retry-After.
    let signed = setup.sign(
        &format!("{}/", setup.down),
        Some(&server_id),
        SystemTime::now(),
    );
    let answer = setup.exchange("aws-down", &signed.token()).await;
    answer.assert_error(503, "temporarily_unavailable");
    assert_eq!(answer.json()["reason_code"], "aws_sts_unavailable");
    assert_eq!(answer.retry_after.as_deref(), Some("5"));

    // Not the encoding.
    setup
        .refused(
            "not base64 json",
            "invalid_request",
            "aws_request_malformed",
        )
        .await;

    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "claimex connected to a host off the allow-list"
    );
}

/// The server id both instances of a deployment share (each has its own `public_url` here).
const SHARED_ID: &str = "https://claimex.shared";
const TABLE: &str = "claimex-replay";

/// The key claimex stores for a signed request: base64url(SHA-256(signature)).
fn stored_key(signed: &Signed) -> String {
    use base64::Engine as _;
    let auth = signed.header("authorization").unwrap();
    let signature = auth.rsplit_once("Signature=").unwrap().1;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        signature.as_bytes(),
    ))
}

/// `[aws]` on `endpoint` and `[aws_iam] replay_table`: the shared one-use store.
fn replay_settings(endpoint: &str) -> String {
    format!(
        "[aws]\nregion = {:?}\nendpoint_url = {endpoint:?}\n[aws_iam]\nreplay_table = {TABLE:?}\n",
        moto::REGION
    )
}

#[tokio::test]
async fn two_instances_sharing_the_dynamodb_table_redeem_a_request_once() {
    // STS checks signatures (its own emulator); the table lives in a plain one.
    let sts_moto = Moto::start_authenticated(3);
    let key = moto::create_user_with_key(&sts_moto.url(), "workload").await;
    let table_moto = Moto::start();
    let dynamodb = moto::dynamodb(&table_moto.url());
    moto::create_replay_table(&dynamodb, TABLE).await;

    let issuers = entry("aws", ACCOUNT, &sts_moto.url()) + &format!("server_id = {SHARED_ID:?}\n");
    let start = || {
        Claimex::new()
            .issuers(&issuers)
            .settings(FAST)
            .settings(&replay_settings(&table_moto.url()))
            .metrics()
            .spawn()
    };
    let a = start().await;
    let b = start().await;
    let sign = |at: SystemTime| {
        sigv4::sign_post(
            &format!("{}/", sts_moto.url()),
            "sts",
            moto::REGION,
            &key.0,
            &key.1,
            GET_CALLER_IDENTITY,
            &[
                ("x-claimex-server-id", SHARED_ID),
                ("x-claimex-nonce", &format!("{at:?}")),
            ],
            at,
        )
    };

    // Redeemed on A; refused on B (and on A again), before B calls STS.
    let at = SystemTime::now();
    let signed = sign(at);
    let first = exchange_at(&a.url, Some("aws"), &signed.token()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    jwks::verify_at(&a.url, first.json()["access_token"].as_str().unwrap()).await;
    for other in [&b, &a] {
        let again = exchange_at(&other.url, Some("aws"), &signed.token()).await;
        again.assert_error(400, "invalid_grant");
        assert_eq!(again.json()["reason_code"], "aws_request_replayed");
        assert!(again.json().get("access_token").is_none());
    }
    // And the other way round: a request redeemed on B first is refused on A.
    let second = sign(at + Duration::from_secs(1));
    let on_b = exchange_at(&b.url, Some("aws"), &second.token()).await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    let on_a = exchange_at(&a.url, Some("aws"), &second.token()).await;
    assert_eq!(on_a.json()["reason_code"], "aws_request_replayed");

    // The item: the hash of the signature, and when the request stops being valid (its
    // x-amz-date, whole seconds, plus STS's 15 minutes), nothing else.
    let signed_at = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let item = dynamodb
        .get_item()
        .table_name(TABLE)
        .key(
            "signature_sha256",
            aws_sdk_dynamodb::types::AttributeValue::S(stored_key(&signed)),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the redeemed request is in the table");
    assert_eq!(
        item.get("expires_at").and_then(|v| v.as_n().ok()),
        Some(&(signed_at + 15 * 60).to_string())
    );
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["expires_at", "signature_sha256"]);
    let scan = dynamodb.scan().table_name(TABLE).send().await.unwrap();
    assert_eq!(scan.count, 2, "one item per redeemed request");
    let signature = signed
        .header("authorization")
        .unwrap()
        .rsplit_once('=')
        .unwrap()
        .1;
    assert!(!format!("{:?}", scan.items).contains(signature));

    // Each instance's metrics say what its store answered.
    let count = |url: &Option<String>, outcome: &'static str| {
        let url = url.clone().unwrap();
        async move {
            claimex_testkit::client::metric_sum(
                &url,
                "claimex_replay_check_duration_seconds_count",
                &[("backend", "dynamodb"), ("outcome", outcome)],
            )
            .await
        }
    };
    assert_eq!(count(&a.metrics_url, "first").await, 1.0);
    assert_eq!(count(&a.metrics_url, "replayed").await, 2.0);
    assert_eq!(count(&b.metrics_url, "first").await, 1.0);
    assert_eq!(count(&b.metrics_url, "replayed").await, 1.0);
}

#[tokio::test]
async fn an_unreachable_table_refuses_with_503_and_mints_nothing() {
    // STS is a listener that counts connections: the refusal must come before any call.
    let (sts, connections) = counting_listener().await;
    let closed = format!("http://127.0.0.1:{}", claimex_testkit::free_port());
    let issuers =
        entry("aws", ACCOUNT, sts.trim_end_matches('/')) + &format!("server_id = {SHARED_ID:?}\n");
    let claimex = Claimex::new()
        .issuers(&issuers)
        .settings(FAST)
        .settings(&replay_settings(&closed))
        .spawn()
        .await;
    let signed = sigv4::sign_post(
        &sts,
        "sts",
        moto::REGION,
        "AKIDEXAMPLE",
        "secret",
        GET_CALLER_IDENTITY,
        &[("x-claimex-server-id", SHARED_ID), ("x-claimex-nonce", "1")],
        SystemTime::now(),
    );
    let answer = exchange_at(&claimex.url, Some("aws"), &signed.token()).await;
    answer.assert_error(503, "temporarily_unavailable");
    assert_eq!(answer.json()["reason_code"], "replay_store_unavailable");
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert!(answer.json().get("access_token").is_none());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "fail closed: nothing was sent to STS"
    );
    // The audit line says refused, and no token id was minted (the whole log: written out
    // by a clean stop).
    let log = claimex.stop();
    let audit = log
        .lines()
        .find(|l| l.contains("replay_store_unavailable") && l.contains("claimex::audit"))
        .unwrap_or_else(|| panic!("no audit line:\n{log}"));
    let audit: serde_json::Value = serde_json::from_str(audit).unwrap();
    assert_eq!(audit["decision"], "refuse");
    assert_eq!(audit["outbound_jti"], "", "no token was minted");

    // DynamoDB answering, but without the table (ResourceNotFoundException): refused alike.
    let no_table = Moto::start();
    let claimex = Claimex::new()
        .issuers(&issuers)
        .settings(FAST)
        .settings(&replay_settings(&no_table.url()))
        .spawn()
        .await;
    let answer = exchange_at(&claimex.url, Some("aws"), &signed.token()).await;
    answer.assert_error(503, "temporarily_unavailable");
    assert_eq!(answer.json()["reason_code"], "replay_store_unavailable");
    let log = claimex.stop();
    assert!(log.contains("ResourceNotFound"), "the log says why:\n{log}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn issuer_id_may_be_left_out_when_one_aws_entry_is_registered() {
    let setup = Setup::start().await;
    // Three aws-iam entries: the parameter is named, and the candidates.
    let answer = exchange_at(&setup.claimex.url, None, &setup.good().token()).await;
    let description = answer.assert_error(400, "invalid_request");
    assert_eq!(answer.json()["reason_code"], "ambiguous_issuer");
    for needle in ["issuer_id", "aws, aws-down, aws-other"] {
        assert!(description.contains(needle), "{description}");
    }

    // One aws-iam entry (and an OIDC one, of another kind): it is used.
    let issuers = entry("aws", ACCOUNT, &setup.moto.url())
        + &format!(
            "[issuers.github]\nissuer = \"https://token.actions.githubusercontent.com\"\naudiences = [\"x\"]\nmapper = {:?}\nmapper_config = {{ allowed_owner_ids = [\"65\"] }}\n",
            mappers::file_name("claimex-mapper-github")
        );
    let single = Claimex::new().issuers(&issuers).settings(FAST).start();
    let signed = setup.sign(
        &format!("{}/", setup.moto.url()),
        Some(&single.url),
        SystemTime::now(),
    );
    let answer = exchange_at(&single.url, None, &signed.token()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let claims =
        jwks::verify_at(&single.url, answer.json()["access_token"].as_str().unwrap()).await;
    assert_eq!(
        claims["sub"],
        format!("arn:aws:iam::{ACCOUNT}:user/workload")
    );
}
