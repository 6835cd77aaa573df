//! `POST /credentials` end to end: the real `claimex serve` binary, a loopback OIDC issuer,
//! the stock GitHub mapper, and the AWS emulator's STS (`moto_server`) reached through
//! `aws-sdk-sts` with claimex's `[aws] endpoint_url`. The emulator's
//! `AssumeRoleWithWebIdentity` accepts any role and any token: it proves the plumbing (and that
//! a refusal came from claimex, since moto would have said yes); the STS error mapping is
//! checked against a loopback stand-in for STS that answers STS's error documents and records
//! what it was sent (to prove the call is unsigned).
//!
//! `POST /token` with claimex's `requested_token_type` for AWS credentials goes the same way
//! (same role checks, same STS adapter); the credentials it answers are used with the real
//! `aws-sdk-sts` against the emulator, and Authlib performs one such exchange.
//!
//! Needs `moto[server]` (`make emulator`) and Authlib (`make pytools`).

use std::sync::{Arc, Mutex};

use claimex_testkit::client::{Answer, http, metric_sum};
use claimex_testkit::entries::file as issuer_entry;
use claimex_testkit::moto::Moto;
use claimex_testkit::server::{Claimex, FAST, Process};
use claimex_testkit::{TestIssuer, now};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const AUD: &str = "https://claimex.test";
const GITHUB_CONFIG: &str =
    r#"{ allowed_owner_ids = ["65"], transitive_tag_keys = ["repository"] }"#;
const ROLE: &str = "arn:aws:iam::123456789012:role/ci/deploy";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// claimex's `requested_token_type` for AWS credentials (README, "The token endpoint").
const AWS_CREDENTIALS: &str = "urn:claimex:params:oauth:token-type:aws-credentials";
const OTHER_ROLE: &str = "arn:aws:iam::123456789012:role/admin";

/// Two entries for one issuer: `github` may assume `role/ci/*` for at most 2 h; `open` may
/// assume any role and names a default.
fn issuers(issuer: &TestIssuer) -> String {
    let github = issuer_entry(
        "github",
        issuer.url(),
        AUD,
        "claimex-mapper-github",
        GITHUB_CONFIG,
    );
    let open = issuer_entry(
        "open",
        issuer.url(),
        AUD,
        "claimex-mapper-github",
        GITHUB_CONFIG,
    );
    format!(
        "{github}allowed_roles = [\"arn:aws:iam::123456789012:role/ci/*\"]\nmax_duration_seconds = 7200\n\
         {open}allowed_roles = [\"*\"]\ndefault_role_arn = {OTHER_ROLE:?}\n"
    )
}

async fn claimex_on(issuer: &TestIssuer, sts_url: &str) -> Process {
    Claimex::new()
        .issuers(&issuers(issuer))
        .settings(FAST)
        .env("CLAIMEX_AWS__ENDPOINT_URL", sts_url)
        .metrics()
        .spawn()
        .await
}

/// How many `AssumeRoleWithWebIdentity` calls `/metrics` counted with `outcome`.
async fn sts_calls(server: &Process, outcome: &str) -> f64 {
    let url = server.metrics_url.as_ref().expect("metrics are on");
    let labels = [
        ("operation", "AssumeRoleWithWebIdentity"),
        ("outcome", outcome),
    ];
    metric_sum(url, "claimex_sts_call_duration_seconds_count", &labels).await
}

/// How many `AssumeRoleWithWebIdentity` calls `/metrics` counted, whatever their outcome.
async fn all_sts_calls(server: &Process) -> f64 {
    let url = server.metrics_url.as_ref().expect("metrics are on");
    let labels = [("operation", "AssumeRoleWithWebIdentity")];
    metric_sum(url, "claimex_sts_call_duration_seconds_count", &labels).await
}

/// claimex's log holds none of `secrets`, and no credential field name.
fn assert_no_secret_in(log: &str, secrets: &[String]) {
    assert!(!secrets.is_empty());
    for secret in secrets {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
    assert!(
        !log.contains("SecretAccessKey") && !log.contains("SessionToken"),
        "{log}"
    );
}

fn token(issuer: &TestIssuer) -> String {
    issuer.mint(&issuer.github_claims(AUD, now()))
}

/// `POST /credentials` + `query` with `body` and the headers given.
async fn post(
    server: &Process,
    query: &str,
    body: String,
    headers: &[(&str, &str)],
) -> (Answer, Option<String>, Option<String>) {
    let mut request = http().post(format!("{}/credentials{query}", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /credentials: {e}\n{}", server.log_tail(30)));
    let answer = Answer::read(response).await.unwrap();
    let (cache, content_type) = (answer.cache_control.clone(), answer.content_type.clone());
    (answer, cache, content_type)
}

fn role_query(role: &str) -> String {
    format!("?issuerId=github&role_arn={}", url_encode(role))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Seconds from now until an RFC 3339 `...Z` time (to the second).
fn secs_until(rfc3339: &str) -> i64 {
    let output = std::process::Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s"])
        .output()
        .expect("date");
    let at: i64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a time: {rfc3339}"));
    at - now() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_moto_in_both_formats_and_never_in_the_log() {
    let moto = Moto::start();
    let issuer = TestIssuer::start().unwrap();
    let server = claimex_on(&issuer, &moto.url()).await;
    let mut secrets = Vec::new();

    // Raw token, parameters in the query, default format: credential_process JSON.
    let (answer, cache, content_type) = post(&server, &role_query(ROLE), token(&issuer), &[]).await;
    assert_eq!(
        answer.status,
        200,
        "{}\n{}",
        answer.body,
        server.log_tail(30)
    );
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let json = answer.json();
    assert_eq!(json["Version"], 1, "{json}");
    for key in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        assert!(
            json[key].as_str().is_some_and(|s| s.len() >= 16),
            "{key}: {json}"
        );
    }
    let left = secs_until(json["Expiration"].as_str().unwrap());
    assert!(
        (3000..=3700).contains(&left),
        "default 1 h session: {left} s"
    );
    secrets.push(json["SecretAccessKey"].as_str().unwrap().to_owned());
    secrets.push(json["SessionToken"].as_str().unwrap().to_owned());

    // JSON body with the parameters, ?format=env: shell lines.
    let body = serde_json::json!({"token": token(&issuer), "role_arn": ROLE, "duration_seconds": 7200, "role_session_name": "my-job@1"}).to_string();
    let (answer, cache, content_type) = post(
        &server,
        "?issuerId=github&format=env",
        body,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert!(content_type.unwrap().starts_with("text/x-shellscript"));
    let lines: Vec<&str> = answer.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", answer.body);
    for (line, name) in lines.iter().zip([
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    ]) {
        let value = line
            .strip_prefix(&format!("export {name}='"))
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or_else(|| panic!("not a quoted export of {name}: {line}"));
        assert!(!value.contains('\''), "{line}");
        if name == "AWS_CREDENTIAL_EXPIRATION" {
            let left = secs_until(value);
            assert!((6600..=7300).contains(&left), "asked 2 h: {left} s");
        } else if name != "AWS_ACCESS_KEY_ID" {
            secrets.push(value.to_owned());
        }
    }
    // The same through `sh`: the quoting holds.
    let shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}\nprintf %s \"$AWS_SECRET_ACCESS_KEY\"",
            answer.body
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&shell.stdout), secrets[2]);

    // Accept: text/x-shellscript also asks for the shell lines.
    let (answer, _, _) = post(
        &server,
        &role_query(ROLE),
        token(&issuer),
        &[("accept", "text/x-shellscript")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.starts_with("export AWS_ACCESS_KEY_ID='"),
        "{}",
        answer.body
    );
    for line in answer.body.lines().skip(1).take(2) {
        secrets.push(
            line.split_once('=')
                .unwrap()
                .1
                .trim_matches('\'')
                .to_owned(),
        );
    }

    // Nothing secret in claimex's log (stdout and stderr, `CLAIMEX_LOG=info`); the issuance is.
    let log = server.stop();
    assert!(log.contains("AWS credentials issued"), "{log}");
    assert!(log.contains("role_session_name"), "{log}");
    assert_no_secret_in(&log, &secrets);
}

/// Form pairs, status, `error`, `reason_code`.
type Case = (
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
    &'static str,
);

/// `POST /token` (RFC 8693) with the form `pairs` after the grant and the subject token.
async fn token_exchange(
    server: &Process,
    subject_token: &str,
    pairs: &[(&str, &str)],
) -> (Answer, Option<String>) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", GRANT),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("subject_token", subject_token),
        ])
        .extend_pairs(pairs)
        .finish();
    let response = http()
        .post(format!("{}/token", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /token: {e}\n{}", server.log_tail(30)));
    let answer = Answer::read(response).await.unwrap();
    let cache = answer.cache_control.clone();
    (answer, cache)
}

/// The `credential_process` document in a `/token` answer's `access_token`, checked.
fn credentials_in(answer: &serde_json::Value) -> serde_json::Value {
    assert_eq!(answer["issued_token_type"], AWS_CREDENTIALS, "{answer}");
    assert_eq!(answer["token_type"], "N_A", "{answer}");
    let document = answer["access_token"]
        .as_str()
        .expect("a string access_token");
    let credentials: serde_json::Value = serde_json::from_str(document).unwrap();
    assert_eq!(credentials["Version"], 1);
    for key in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        assert!(credentials[key].is_string(), "{key}");
    }
    credentials
}

/// The caller's ARN, per `sts:GetCallerIdentity` on the emulator, signed by the real
/// `aws-sdk-sts` with `credentials` (a `credential_process` document).
async fn caller_arn(sts_url: &str, credentials: &serde_json::Value) -> String {
    let key = |name: &str| credentials[name].as_str().unwrap().to_owned();
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .endpoint_url(sts_url)
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            key("AccessKeyId"),
            key("SecretAccessKey"),
            Some(key("SessionToken")),
            None,
            "claimex-token-endpoint",
        ))
        .build();
    let identity = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetCallerIdentity with the credentials: {e:?}"));
    identity.arn().unwrap_or_default().to_owned()
}

/// `POST /token` with `requested_token_type` = claimex's AWS credentials URN: the credentials
/// come back as RFC 8693 JSON and work with the real SDK; a role off the list and a bad
/// duration are refused before STS (the STS call count does not move), with the codes of
/// `/credentials`; unknown token types and role parameters without the URN are refused;
/// Authlib performs one such exchange; no secret reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_issues_aws_credentials_through_the_same_checks() {
    let moto = Moto::start();
    let issuer = TestIssuer::start().unwrap();
    let server = claimex_on(&issuer, &moto.url()).await;
    let mut secrets = Vec::new();
    let asked = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = vec![
            ("issuer_id", "github"),
            ("requested_token_type", AWS_CREDENTIALS),
        ];
        pairs.extend_from_slice(extra);
        pairs
    };

    let (answer, cache) = token_exchange(
        &server,
        &token(&issuer),
        &asked(&[("role_arn", ROLE), ("role_session_name", "token-job")]),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}\n{}",
        answer.body,
        server.log_tail(30)
    );
    assert_eq!(cache.as_deref(), Some("no-store"));
    let json = answer.json();
    let credentials = credentials_in(&json);
    let expires_in = json["expires_in"].as_i64().expect("expires_in");
    assert!((3000..=3600).contains(&expires_in), "default 1 h: {json}");
    let left = secs_until(credentials["Expiration"].as_str().unwrap());
    assert!((left - expires_in).abs() <= 60, "{left} vs {expires_in}");
    assert_eq!(
        caller_arn(&moto.url(), &credentials).await,
        "arn:aws:sts::123456789012:assumed-role/deploy/token-job"
    );
    for key in ["SecretAccessKey", "SessionToken"] {
        secrets.push(credentials[key].as_str().unwrap().to_owned());
    }

    // A duration within the entry's 2 h.
    let (answer, _) = token_exchange(
        &server,
        &token(&issuer),
        &asked(&[("role_arn", ROLE), ("duration_seconds", "7200")]),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let expires_in = answer.json()["expires_in"].as_i64().unwrap();
    assert!(
        (6600..=7200).contains(&expires_in),
        "asked 2 h: {expires_in}"
    );
    secrets.push(
        credentials_in(&answer.json())["SessionToken"]
            .as_str()
            .unwrap()
            .to_owned(),
    );

    // moto grants any role (the `open` entry's default is OTHER_ROLE) ...
    let (answer, _) = token_exchange(
        &server,
        &token(&issuer),
        &[
            ("issuer_id", "open"),
            ("requested_token_type", AWS_CREDENTIALS),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        credentials_in(&answer.json())["AccessKeyId"].is_string(),
        "{}",
        answer.body
    );

    // ... so these refusals are claimex's, and STS is not called for any of them.
    let before = all_sts_calls(&server).await;
    let cases: Vec<Case> = vec![
        (
            asked(&[("role_arn", OTHER_ROLE)]),
            403,
            "access_denied",
            "role_not_allowed",
        ),
        (asked(&[]), 400, "invalid_request", "role_arn_missing"),
        (
            asked(&[("role_arn", ROLE), ("duration_seconds", "899")]),
            400,
            "invalid_request",
            "duration_out_of_range",
        ),
        (
            asked(&[("role_arn", ROLE), ("duration_seconds", "7201")]),
            400,
            "invalid_request",
            "duration_out_of_range",
        ),
        (
            asked(&[("role_arn", ROLE), ("duration_seconds", "soon")]),
            400,
            "invalid_request",
            "invalid_parameter",
        ),
        (
            asked(&[("role_arn", ROLE), ("role_session_name", "a b")]),
            400,
            "invalid_request",
            "invalid_parameter",
        ),
        (
            vec![
                ("issuer_id", "github"),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("role_arn", ROLE),
            ],
            400,
            "invalid_request",
            "unsupported_requested_token_type",
        ),
        (
            vec![("issuer_id", "github"), ("role_arn", ROLE)],
            400,
            "invalid_request",
            "invalid_parameter",
        ),
    ];
    for (pairs, status, error, reason) in cases {
        let subject = token(&issuer);
        let (answer, cache) = token_exchange(&server, &subject, &pairs).await;
        answer.assert_error(status, error);
        assert_eq!(
            answer.json()["reason_code"],
            reason,
            "{pairs:?}: {}",
            answer.body
        );
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert!(!answer.body.contains(&subject), "the token is echoed");
    }
    assert_eq!(all_sts_calls(&server).await, before, "STS was called");

    // An independent OAuth client library asks for credentials the same way.
    let endpoint = format!("{}/token", server.url);
    let run = |role: &'static str| {
        let endpoint = endpoint.clone();
        let subject = token(&issuer);
        tokio::task::spawn_blocking(move || {
            claimex_testkit::client::authlib(
                &endpoint,
                ID_TOKEN_TYPE,
                "sts.amazonaws.com",
                "github",
                &[
                    ("requested_token_type", AWS_CREDENTIALS),
                    ("role_arn", role),
                ],
                &subject,
            )
        })
    };
    let answer = run(ROLE).await.unwrap();
    let credentials = credentials_in(&answer);
    assert!(
        caller_arn(&moto.url(), &credentials)
            .await
            .starts_with("arn:aws:sts::123456789012:assumed-role/deploy/repo-octo-org-octo-repo"),
    );
    secrets.push(credentials["SecretAccessKey"].as_str().unwrap().to_owned());
    let answer = run(OTHER_ROLE).await.unwrap();
    assert_eq!(answer["oauth_error"], "access_denied", "{answer}");

    let log = server.stop();
    assert!(log.contains("AWS credentials issued"), "{log}");
    assert_no_secret_in(&log, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_durations_are_checked_before_sts() {
    let moto = Moto::start();
    let issuer = TestIssuer::start().unwrap();
    let server = claimex_on(&issuer, &moto.url()).await;

    // moto grants any role: the `open` entry gets OTHER_ROLE (its default)...
    let (answer, _, _) = post(&server, "?issuerId=open", token(&issuer), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // ... so the refusal of the same role for `github` is claimex's, before STS.
    let (answer, _, _) = post(&server, &role_query(OTHER_ROLE), token(&issuer), &[]).await;
    let description = answer.assert_error(403, "access_denied");
    assert_eq!(answer.json()["reason_code"], "role_not_allowed");
    assert!(description.contains("allowed_roles"), "{description}");

    let (answer, _, _) = post(&server, "?issuerId=github", token(&issuer), &[]).await;
    answer.assert_error(400, "invalid_request");
    assert_eq!(answer.json()["reason_code"], "role_arn_missing");

    for (seconds, status) in [
        (899, 400),
        (7201, 400),
        (43_200, 400),
        (900, 200),
        (7200, 200),
    ] {
        let query = format!("{}&duration_seconds={seconds}", role_query(ROLE));
        let (answer, _, _) = post(&server, &query, token(&issuer), &[]).await;
        assert_eq!(answer.status, status, "{seconds}: {}", answer.body);
        if status == 400 {
            assert_eq!(answer.json()["reason_code"], "duration_out_of_range");
        } else {
            let left = secs_until(answer.json()["Expiration"].as_str().unwrap());
            assert!(
                (seconds as i64 - 600..=seconds as i64 + 60).contains(&left),
                "{seconds}: {left}"
            );
        }
    }

    for (query, code) in [
        (
            format!("{}&role_session_name=a%20b", role_query(ROLE)),
            "invalid_parameter",
        ),
        (
            "?issuerId=github&role_arn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx".to_owned(),
            "invalid_parameter",
        ),
        (format!("{}&token=x", role_query(ROLE)), "token_in_url"),
        (
            format!("{}&roleArn=x", role_query(ROLE)),
            "invalid_parameter",
        ),
    ] {
        let (answer, _, _) = post(&server, &query, token(&issuer), &[]).await;
        answer.assert_error(400, "invalid_request");
        assert_eq!(answer.json()["reason_code"], code, "{query}");
    }
    // A token that does not verify never reaches the role check.
    let (answer, _, _) = post(&server, &role_query(ROLE), "a.b.c".into(), &[]).await;
    assert!(
        answer.status == 400 || answer.status == 401,
        "{}",
        answer.body
    );
}

/// What the stand-in STS saw.
#[derive(Default)]
struct Seen {
    requests: Vec<String>,
}

/// A loopback HTTP stand-in: reads one request per connection (head and body), records it,
/// and answers what `respond` makes of it (`None`: closes the connection without an answer).
async fn stand_in<F>(seen: Arc<Mutex<Seen>>, respond: F) -> String
where
    F: Fn(&str) -> Option<(&'static str, String)> + Send + Sync + 'static,
{
    let respond = Arc::new(respond);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let request = loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break text;
                        }
                    }
                };
                seen.lock().unwrap().requests.push(request.clone());
                let Some((status, body)) = respond(&request) else {
                    return;
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

/// A stand-in for STS: answers STS's error document for the code named by the request's
/// `RoleSessionName` (`Cut`: closes the connection without an answer).
async fn fake_sts(seen: Arc<Mutex<Seen>>) -> String {
    stand_in(seen, |request| {
        let code = request
            .split('&')
            .find_map(|p| p.strip_prefix("RoleSessionName="))
            .unwrap_or("none")
            .to_owned();
        let status = match code.as_str() {
            "Cut" => return None,
            "AccessDenied" | "IDPRejectedClaim" => "403 Forbidden",
            "ServiceUnavailable" => "503 Service Unavailable",
            _ => "400 Bad Request",
        };
        Some((
            status,
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>stand-in says {code}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
            ),
        ))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_refusals_are_typed_and_the_call_is_unsigned() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sts = fake_sts(seen.clone()).await;
    let issuer = TestIssuer::start().unwrap();
    let server = claimex_on(&issuer, &sts).await;
    for (code, status, error, reason) in [
        ("AccessDenied", 403, "access_denied", "sts_access_denied"),
        (
            "IDPRejectedClaim",
            403,
            "access_denied",
            "sts_rejected_claim",
        ),
        (
            "InvalidIdentityToken",
            502,
            "server_error",
            "sts_invalid_identity_token",
        ),
        ("ExpiredToken", 502, "server_error", "sts_expired_token"),
        ("ValidationError", 502, "server_error", "sts_refused"),
        (
            "Throttling",
            503,
            "temporarily_unavailable",
            "sts_throttled",
        ),
        (
            "ServiceUnavailable",
            503,
            "temporarily_unavailable",
            "sts_unavailable",
        ),
        ("Cut", 503, "temporarily_unavailable", "sts_unavailable"),
    ] {
        let query = format!("{}&role_session_name={code}", role_query(ROLE));
        let (answer, cache, _) = post(&server, &query, token(&issuer), &[]).await;
        answer.assert_error(status, error);
        assert_eq!(
            answer.json()["reason_code"],
            reason,
            "{code}: {}",
            answer.body
        );
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert_eq!(answer.retry_after.is_some(), status == 503, "{code}");
    }
    // Each call timed once by outcome, whatever the SDK retried inside it.
    assert_eq!(sts_calls(&server, "refused").await, 5.0);
    assert_eq!(sts_calls(&server, "throttled").await, 1.0);
    assert_eq!(sts_calls(&server, "unavailable").await, 2.0);
    assert_eq!(sts_calls(&server, "ok").await, 0.0);
    let requests = std::mem::take(&mut seen.lock().unwrap().requests);
    assert!(requests.len() >= 8, "{}", requests.len());
    for request in &requests {
        let lower = request.to_ascii_lowercase();
        assert!(
            lower.contains("action=assumerolewithwebidentity"),
            "{request}"
        );
        assert!(!lower.contains("\r\nauthorization:"), "signed: {request}");
        assert!(!lower.contains("x-amz-security-token"), "{request}");
        assert!(!lower.contains("credential="), "{request}");
    }
    // An unreachable STS: nothing listens on the port any more.
    let port = claimex_testkit::free_port();
    let server2 = claimex_on(&issuer, &format!("http://127.0.0.1:{port}")).await;
    let (answer, _, _) = post(&server2, &role_query(ROLE), token(&issuer), &[]).await;
    answer.assert_error(503, "temporarily_unavailable");
    assert_eq!(answer.json()["reason_code"], "sts_unavailable");
    assert!(answer.retry_after.is_some());
}

/// Every token claimex mints with either local signer algorithm passes the IAM acceptance
/// checker (discovery, JWKS, token, trust policy on the session tags), and a trust policy
/// that asks for another repository refuses it, as IAM would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_pass_the_iam_acceptance_checker() {
    use claimex_testkit::iam::{Operator, Provider, STS_CLIENT_ID, Trust, condition};
    let issuer = TestIssuer::start().unwrap();
    for alg in ["RS256", "ES256"] {
        let claimex = Claimex::new()
            .issuers(&issuers(&issuer))
            .settings(FAST)
            .settings(&format!("[signer]\nalg = \"{alg}\"\n"))
            .start();
        let answer =
            claimex_testkit::client::exchange(&claimex.url, "?issuerId=github", token(&issuer))
                .await;
        assert_eq!(answer.status, 200, "{alg}: {}", answer.body);
        let minted = answer.body;
        assert_eq!(claimex_testkit::jwks::header(&minted)["alg"], alg);
        let provider = Provider::discover(&claimex.url, &[STS_CLIENT_ID])
            .await
            .unwrap_or_else(|e| panic!("{alg}: IAM would not read claimex's provider: {e:?}"));
        let host = provider.host().to_owned();
        let trust = Trust::with(vec![
            condition(
                Operator::StringEquals,
                &format!("{host}:aud"),
                &[STS_CLIENT_ID],
            ),
            condition(
                Operator::StringLike,
                &format!("{host}:sub"),
                &["repo:octo-org/*"],
            ),
            condition(
                Operator::StringEquals,
                "aws:RequestTag/repository",
                &["octo-org/octo-repo"],
            ),
        ]);
        let accepted = provider
            .assume(&minted, &trust, now())
            .unwrap_or_else(|e| panic!("{alg}: STS would refuse claimex's token: {e:?}"));
        assert_eq!(accepted.transitive, vec!["repository".to_owned()]);
        let other = Trust::with(vec![condition(
            Operator::StringEquals,
            "aws:RequestTag/repository",
            &["octo-org/other"],
        )]);
        assert_eq!(
            provider.assume(&minted, &other, now()).unwrap_err().code(),
            "AccessDenied"
        );
    }
}

/// `claimex credentials --github-actions`: the id-token comes from a loopback stand-in for
/// GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL` (which checks the bearer token and the audience);
/// the credential_process JSON and the export lines come out; a refusal exits non-zero with
/// claimex's reason code on stderr and nothing on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_gets_credentials_with_the_github_actions_protocol() {
    let moto = Moto::start();
    let issuer = TestIssuer::start().unwrap();
    let server = claimex_on(&issuer, &moto.url()).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let id_token = token(&issuer);
    let answer = id_token.clone();
    let actions = stand_in(seen.clone(), move |request| {
        let head = request.split("\r\n\r\n").next().unwrap_or_default();
        let authorized = head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("authorization: Bearer runner-secret"));
        let audience = head
            .lines()
            .next()
            .is_some_and(|l| l.contains("audience=https%3A%2F%2Fclaimex.test"));
        Some(if authorized && audience {
            ("200 OK", serde_json::json!({"value": answer}).to_string())
        } else {
            ("403 Forbidden", "{}".to_owned())
        })
    })
    .await;
    let env = vec![
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL".to_owned(),
            format!("{actions}/token?api-version=2.0"),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN".to_owned(),
            "runner-secret".to_owned(),
        ),
    ];
    let run = |extra: Vec<String>| {
        let env = env.clone();
        let url = server.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut args: Vec<String> = [
                "credentials",
                "--url",
                &url,
                "--issuer-id",
                "github",
                "--github-actions",
                "--audience",
                AUD,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            claimex_testkit::cli::run(&args, env)
        })
    };
    let out = run(vec!["--role-arn".into(), ROLE.into()]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["Version"], 1);
    assert!(json["SessionToken"].is_string(), "{json}");
    let requests = std::mem::take(&mut seen.lock().unwrap().requests);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /token?api-version=2.0&audience="),
        "{}",
        requests[0]
    );

    let out = run(vec![
        "--role-arn".into(),
        ROLE.into(),
        "--format".into(),
        "env".into(),
        "--duration-seconds".into(),
        "900".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("export AWS_ACCESS_KEY_ID='"));

    let out = run(vec!["--role-arn".into(), OTHER_ROLE.into()])
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("role_not_allowed"), "{stderr}");
    assert!(!stderr.contains(&id_token), "the token is on stderr");

    // GitLab CI's id_tokens variable, and any variable named with --token-env.
    for (flag, var) in [
        ("--gitlab-ci", "CLAIMEX_ID_TOKEN"),
        ("--token-env", "MY_TOKEN"),
    ] {
        let url = server.url.clone();
        let id_token = token(&issuer);
        let out = tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "credentials",
                "--url",
                &url,
                "--issuer-id",
                "github",
                "--role-arn",
                ROLE,
                flag,
            ];
            if flag == "--token-env" {
                args.push(var);
            }
            claimex_testkit::cli::run(&args, [(var, id_token)])
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["Version"], 1, "{flag}");
    }

    // Without the runner's variables, --github-actions says what is missing.
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        claimex_testkit::cli::run(
            &[
                "credentials",
                "--url",
                &url,
                "--issuer-id",
                "github",
                "--github-actions",
                "--audience",
                AUD,
            ],
            Vec::<(String, String)>::new(),
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ACTIONS_ID_TOKEN_REQUEST_URL"));
}

/// A real AWS SDK consumes the client's output: botocore (through boto3) reads a profile whose
/// `credential_process` is `claimex credentials --token-file ...`, and calls the emulator's
/// `sts:GetCallerIdentity` with the session: the caller is the assumed role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_uses_the_client_as_credential_process() {
    let moto = Moto::start();
    let issuer = TestIssuer::start().unwrap();
    let server = claimex_on(&issuer, &moto.url()).await;
    let dir = claimex_testkit::scratch("credential-process");
    let token_file = dir.join("id-token");
    std::fs::write(&token_file, token(&issuer)).unwrap();
    let config = dir.join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile ci]\nregion = us-east-1\ncredential_process = {} credentials --url {} --issuer-id github --role-arn {ROLE} --token-file {}\n",
            claimex_testkit::cli::bin().display(),
            server.url,
            token_file.display()
        ),
    )
    .unwrap();
    let empty = dir.join("aws-credentials");
    std::fs::write(&empty, "").unwrap();
    let script = claimex_testkit::root().join("tests/python/credential_process.py");
    let python = claimex_testkit::moto::python();
    let moto_url = moto.url();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(python);
        claimex_testkit::cli::clean_env(&mut command);
        command
            .arg(script)
            .arg(moto_url)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["method"], "custom-process", "{result}");
    let arn = result["Arn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:sts::123456789012:assumed-role/deploy/repo-octo-org-octo-repo"),
        "{arn}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hostile mapper outputs (tags IAM would refuse, reserved claims, a non-object, an oversized
/// output) are refused at mint: `/credentials` answers claimex's refusal and STS is never
/// called (the stand-in records no request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mapper_outputs_never_reach_sts() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sts = fake_sts(seen.clone()).await;
    let issuer = TestIssuer::start().unwrap();
    let fixtures = ["badtags", "reserved", "notobject", "bigoutput"];
    let entries: String = fixtures
        .iter()
        .map(|f| {
            format!(
                "{}allowed_roles = [\"*\"]\n",
                issuer_entry(f, issuer.url(), AUD, &format!("claimex-fixture-{f}"), "{}")
            )
        })
        .collect();
    let server = Claimex::new()
        .issuers(&entries)
        .settings(FAST)
        .env("CLAIMEX_AWS__ENDPOINT_URL", &sts)
        .spawn()
        .await;
    for fixture in fixtures {
        let query = format!("?issuerId={fixture}&role_arn={}", url_encode(ROLE));
        let (answer, _, _) = post(&server, &query, token(&issuer), &[]).await;
        assert_eq!(answer.status, 500, "{fixture}: {}", answer.body);
        let reason = answer.json()["reason_code"].as_str().unwrap().to_owned();
        assert!(
            reason == "invalid_mapper_output" || reason == "mapper_failed",
            "{fixture}: {reason}"
        );
    }
    assert!(
        seen.lock().unwrap().requests.is_empty(),
        "a hostile output reached STS"
    );
}
