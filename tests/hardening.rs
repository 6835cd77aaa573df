//! Issue 14: what trying claimex as a new user and as an attacker found, end to end on
//! loopback. Raw-socket tests bound every wait with a read timeout, so each stops by itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimex_testkit::TestIssuer;
use claimex_testkit::client::{Answer, exchange, http, metric_sum};
use claimex_testkit::entries::file as issuer_entry;
use claimex_testkit::now;
use claimex_testkit::server::{Claimex, FAST, InProcess};
use serde_json::{Value, json};

const AUD: &str = "https://claimex.test";
const GITHUB_CONFIG: &str =
    r#"{ allowed_owner_ids = ["65"], transitive_tag_keys = ["repository"] }"#;

fn github_setup() -> (TestIssuer, InProcess) {
    github_setup_with(FAST)
}

fn github_setup_with(extra: &str) -> (TestIssuer, InProcess) {
    let issuer = TestIssuer::start().unwrap();
    let claimex = Claimex::new()
        .issuers(&issuer_entry(
            "github",
            issuer.url(),
            AUD,
            "claimex-mapper-github",
            GITHUB_CONFIG,
        ))
        .settings(extra)
        .metrics()
        .start();
    (issuer, claimex)
}

fn github_token(issuer: &TestIssuer) -> String {
    issuer.mint(&issuer.github_claims(AUD, now()))
}

/// POSTs `body` as `content_type` and returns the status and the body.
async fn post_as(claimex: &InProcess, content_type: &str, body: String) -> Answer {
    let response = http()
        .post(format!("{}/exchange?issuerId=github", claimex.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    Answer::read(response).await.unwrap()
}

/// The host:port of a claimex URL.
fn addr(claimex: &InProcess) -> String {
    claimex.url.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a fresh connection (a blocking socket, off the test's runtime) and
/// reads until the server closes it, waiting at most 30 s for each read. Returns what was
/// read and whether the server closed the connection (`false`: it was still open when the
/// wait ran out).
async fn raw_exchange(claimex: &InProcess, request: impl Into<String>) -> (String, bool) {
    let (addr, request) = (addr(claimex), request.into());
    tokio::task::spawn_blocking(move || raw_exchange_blocking(&addr, request.as_bytes()))
        .await
        .unwrap()
}

fn raw_exchange_blocking(addr: &str, request: &[u8]) -> (String, bool) {
    let wait = Duration::from_secs(30);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(e) => panic!("read failed: {e}"),
        }
    };
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

// ---------------------------------------------------------------------------------------
// Defect 3: stalled and absurd request bodies.

#[tokio::test]
async fn a_stalled_body_is_timed_out_and_its_connection_closed() {
    let (_issuer, claimex) = github_setup();
    let request = "POST /exchange?issuerId=github HTTP/1.1\r\nHost: claimex\r\n\
                   Content-Length: 1000\r\n\r\n{\"tok";
    let (answer, closed) = raw_exchange(&claimex, request).await;
    assert!(closed, "the stalled connection is still open: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert_eq!(refusals_counted(&claimex, "request_timeout").await, 1.0);
}

/// The `claimex_exchanges_total` samples with `reason`, summed.
async fn refusals_counted(claimex: &InProcess, reason: &str) -> f64 {
    let url = claimex.metrics_url.as_ref().expect("metrics are on");
    metric_sum(url, "claimex_exchanges_total", &[("reason", reason)]).await
}

#[tokio::test]
async fn an_absurd_content_length_is_refused_before_reading() {
    let (_issuer, claimex) = github_setup();
    let request = "POST /exchange?issuerId=github HTTP/1.1\r\nHost: claimex\r\n\
                   Content-Length: 1000000000000\r\n\r\n";
    let (answer, closed) = raw_exchange(&claimex, request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(closed, "the connection is still open: {answer:?}");
    assert!(answer.contains("16384 bytes"), "{answer}");
    assert_eq!(refusals_counted(&claimex, "token_too_large").await, 1.0);
}

// ---------------------------------------------------------------------------------------
// Defect 9: `Connection: close` after a 413 on a pipelined connection.

/// A 413 closes the connection (`Connection: close`): the request pipelined behind it on the
/// same connection is not served (RFC 9112 §9.6), and the 413 arrives whole.
#[tokio::test]
async fn connection_close_is_honoured_after_a_413() {
    let (_issuer, claimex) = github_setup();
    // With and without the request's own `Connection: close`: the 413's closes either way.
    for asked in ["Connection: close\r\n", ""] {
        let body = "x".repeat(20_000);
        let request = format!(
            "POST /exchange?issuerId=github HTTP/1.1\r\nHost: claimex\r\n{asked}\
             Content-Length: {}\r\n\r\n{body}GET /healthz HTTP/1.1\r\nHost: claimex\r\n\r\n",
            body.len()
        );
        let (answer, closed) = raw_exchange(&claimex, request).await;
        assert!(closed, "the connection is still open ({asked:?})");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("token_too_large"), "{answer}");
        assert!(answer.ends_with('}'), "the 413 was cut short: {answer}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "the pipelined request was answered ({asked:?}): {answer}"
        );
    }
    assert_eq!(pipelined_refused(&claimex).await, 2.0);
}

/// `claimex_http_pipelined_refused_total`.
async fn pipelined_refused(claimex: &InProcess) -> f64 {
    let url = claimex.metrics_url.as_ref().expect("metrics are on");
    metric_sum(url, "claimex_http_pipelined_refused_total", &[]).await
}

/// A request that itself says `Connection: close` is answered, and the one pipelined behind
/// it is not.
#[tokio::test]
async fn nothing_is_served_behind_a_request_that_asked_to_close() {
    let (_issuer, claimex) = github_setup();
    // Behind it: a plain request, and one that expects `100 Continue` (which is not sent).
    for next in [
        "GET /healthz HTTP/1.1\r\nHost: claimex\r\n\r\n",
        "POST /exchange?issuerId=github HTTP/1.1\r\nHost: claimex\r\n\
         Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    ] {
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: claimex\r\nConnection: close\r\n\r\n{next}");
        let (answer, closed) = raw_exchange(&claimex, request).await;
        assert!(closed, "the connection is still open: {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"status\""), "{answer}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "the pipelined request was answered: {answer}"
        );
    }
    assert_eq!(pipelined_refused(&claimex).await, 2.0);
}

/// `Expect: 100-continue` is still answered with `100 Continue` on a connection nothing closed.
#[tokio::test]
async fn expect_continue_is_still_answered() {
    let (_issuer, claimex) = github_setup();
    let request = "POST /exchange?issuerId=github HTTP/1.1\r\nHost: claimex\r\n\
                   Expect: 100-continue\r\nConnection: close\r\nContent-Length: 5\r\n\r\nxxxxx";
    let (answer, closed) = raw_exchange(&claimex, request).await;
    assert!(closed, "the connection is still open: {answer:?}");
    assert!(
        answer.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400"),
        "{answer}"
    );
    assert!(answer.contains("not_a_jwt"), "{answer}");
}

/// Pipelining itself still works: two requests without `Connection: close` on one connection
/// get both answers, in order, and the connection stays open for more.
#[tokio::test]
async fn pipelined_keep_alive_requests_are_all_answered() {
    let (_issuer, claimex) = github_setup();
    let request = "GET /healthz HTTP/1.1\r\nHost: claimex\r\n\r\n\
                   GET /.well-known/jwks.json HTTP/1.1\r\nHost: claimex\r\n\r\n";
    let target = addr(&claimex);
    let (answer, _) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(target).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        // Reads until both answers are in (their bodies named below), then a third request
        // on the same connection, with `Connection: close`, which is answered too.
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while !(String::from_utf8_lossy(&received).contains("\"keys\"")) {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) => panic!("read failed: {e}"),
            }
        }
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: claimex\r\nConnection: close\r\n\r\n")
            .unwrap();
        let closed = loop {
            match stream.read(&mut buffer) {
                Ok(0) => break true,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) => panic!("read failed: {e}"),
            }
        };
        (String::from_utf8_lossy(&received).into_owned(), closed)
    })
    .await
    .unwrap();
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &answer[at..at + 12])
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 200"; 3], "{answer}");
    let status_body = answer.find("\"status\"").expect("the health answer");
    let keys_body = answer.find("\"keys\"").expect("the JWKS answer");
    assert!(status_body < keys_body, "out of order: {answer}");
    assert_eq!(pipelined_refused(&claimex).await, 0.0);
}

// ---------------------------------------------------------------------------------------
// Defects 4, 5 and the 413 message of defect 7: request bodies.

#[tokio::test]
async fn json_bodies_must_be_the_documented_object() {
    let (issuer, claimex) = github_setup();
    let token = github_token(&issuer);
    let answer = post_as(&claimex, "application/json", json!([token]).to_string()).await;
    let description = answer.assert_error(400, "invalid_request");
    assert!(description.contains("{\"token\""), "{description}");
    let answer = post_as(
        &claimex,
        "application/json",
        json!({"token": token}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn media_types_are_matched_as_rfc_9110_says() {
    let (issuer, claimex) = github_setup();
    let json_body = json!({"token": github_token(&issuer)}).to_string();
    for content_type in [
        "Application/JSON",
        "APPLICATION/json; charset=UTF-8",
        "application/json ; charset=utf-8",
        "application/vnd.claimex+json",
        "Application/Problem+JSON",
    ] {
        let answer = post_as(&claimex, content_type, json_body.clone()).await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.body);
    }
    // Not JSON: the body is the raw token.
    for content_type in [
        "application/jsonx",
        "text/plain",
        "application/jwt",
        "nonsense",
    ] {
        let answer = post_as(&claimex, content_type, github_token(&issuer)).await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.body);
    }
    // The answer follows `Accept`, matched the same way.
    let response = http()
        .post(format!("{}/exchange?issuerId=github", claimex.url))
        .header("accept", "Application/JSON")
        .body(github_token(&issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["token"].is_string(), "{body}");
}

#[tokio::test]
async fn the_413_message_names_the_documented_limit() {
    let (_issuer, claimex) = github_setup();
    let description = exchange(&claimex.url, "?issuerId=github", "x".repeat(20_000))
        .await
        .assert_error(413, "invalid_request");
    assert!(description.contains("16384 bytes"), "{description}");
    assert!(!description.contains("16386"), "{description}");
}

// ---------------------------------------------------------------------------------------
// Defect 7: misleading header errors.

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn header_errors_say_what_is_wrong() {
    let (issuer, claimex) = github_setup();
    let payload = b64(&issuer.github_claims(AUD, now()).to_string());
    let kid = issuer.kid();
    let cases = [
        (r#"{"alg":"RS256","kid":5}"#.to_owned(), "kid"),
        (r#"{"alg":"RS256","typ":["JWT"]}"#.to_owned(), "typ"),
        (
            format!(r#"{{"alg":"RS256","kid":"{kid}","kid":"other"}}"#),
            "\"kid\" twice",
        ),
        (
            r#"{"alg":"RS256","alg":"none"}"#.to_owned(),
            "\"alg\" twice",
        ),
    ];
    for (header, needle) in cases {
        let token = format!("{}.{payload}.c2ln", b64(&header));
        let answer = exchange(&claimex.url, "?issuerId=github", token).await;
        assert!(
            answer.status == 400 || answer.status == 401,
            "{}",
            answer.body
        );
        let description = answer.json()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !description.contains("never accepted"),
            "{header}: {description}"
        );
        assert!(description.contains(needle), "{header}: {description}");
    }
}

// ---------------------------------------------------------------------------------------
// Defect 6: unreachable issuers and Retry-After.

#[tokio::test]
async fn an_unknown_kid_while_the_issuer_is_down_is_temporarily_unavailable() {
    let (issuer, claimex) = github_setup();
    assert_eq!(
        exchange(&claimex.url, "?issuerId=github", github_token(&issuer))
            .await
            .status,
        200
    );
    issuer.stage_key();
    let token = issuer
        .mint_staged(&issuer.github_claims(AUD, now()))
        .unwrap();
    issuer.set_up(false);
    // Past the refetch interval, so the unknown kid prompts a fetch, which fails.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let response = http()
            .post(format!("{}/exchange?issuerId=github", claimex.url))
            .body(token.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=1).contains(&retry), "Retry-After: {retry}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    // A token whose kid is cached still verifies.
    assert_eq!(
        exchange(&claimex.url, "?issuerId=github", github_token(&issuer))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn retry_after_says_when_the_next_key_fetch_may_happen() {
    // The default refetch interval: 30 s between two fetches for a failing issuer.
    let (issuer, claimex) = github_setup_with("[registry]\nrefresh_secs = 1\n");
    issuer.set_up(false);
    let mut previous = u64::MAX;
    for _ in 0..3 {
        let response = http()
            .post(format!("{}/exchange?issuerId=github", claimex.url))
            .body(github_token(&issuer))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((25..=30).contains(&retry), "Retry-After: {retry}");
        assert!(retry <= previous);
        previous = retry;
    }
}

// ---------------------------------------------------------------------------------------
// Defect 8: health without the registry's internals (ids only, no reasons, no paths).

#[tokio::test]
async fn healthz_names_skipped_entries_but_not_why() {
    let (issuer, claimex) = github_setup();
    // An invalid entry beside the valid one: its error text must not be shown.
    claimex.write_issuers(&format!(
        "{}\n[issuers.broken]\nissuer = \"https://broken.example\"\naudiences = []\nmapper = \"nope.wasm\"\n",
        issuer_entry(
            "github",
            issuer.url(),
            AUD,
            "claimex-mapper-github",
            GITHUB_CONFIG
        )
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let body = http()
        .get(format!("{}/healthz", claimex.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let health: Value = serde_json::from_str(&body).unwrap();
    // A skipped entry degrades the service and is named by id; why it was skipped is in
    // the log, never on the unauthenticated /healthz.
    assert_eq!(health["status"], "degraded", "{body}");
    assert_eq!(health["registry"]["issuers"], 1, "{body}");
    assert_eq!(
        health["registry"]["invalid_entries"],
        json!(["broken"]),
        "{body}"
    );
    let dir = claimex.dir().display().to_string();
    assert!(!body.contains(&dir), "the file path is shown: {body}");
    assert!(!body.contains("issuers.toml"), "{body}");
    assert!(
        !body.contains("nope.wasm"),
        "an entry's error is shown: {body}"
    );
    assert!(
        !body.contains("audiences"),
        "an entry's error is shown: {body}"
    );
}

// ---------------------------------------------------------------------------------------
// Defect 11: a public URL with a path.

#[tokio::test]
async fn a_public_url_with_a_path_is_served_under_that_path() {
    let issuer = TestIssuer::start().unwrap();
    let claimex = Claimex::new()
        .issuers(&issuer_entry(
            "github",
            issuer.url(),
            AUD,
            "claimex-mapper-github",
            GITHUB_CONFIG,
        ))
        .settings(&format!("public_url = \"{{url}}/tenant\"\n{FAST}"))
        .start();
    let public = format!("{}/tenant", claimex.url);
    let discovery: Value = http()
        .get(format!("{public}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], public);
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{public}/.well-known/jwks.json"));
    let jwks: Value = http()
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    // The exchange answers under the path too, and at the root (behind a proxy that strips it).
    let answer = exchange(&public, "?issuerId=github", github_token(&issuer)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = exchange(&claimex.url, "?issuerId=github", github_token(&issuer)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

// ---------------------------------------------------------------------------------------
// Defect 10: `signer.published_paths` takes public keys, as documented.

#[tokio::test]
async fn published_paths_take_public_keys() {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let previous = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let spki: PublicKeyX509Der<'static> = previous.public_key().as_der().unwrap();
    let kid =
        claimex::signer::jwk::jwk_from_spki(spki.as_ref(), claimex::signer::SigningAlg::Es256)
            .unwrap()
            .kid()
            .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("previous.pub.pem");
    std::fs::write(
        &path,
        pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
    )
    .unwrap();
    let issuer = TestIssuer::start().unwrap();
    let claimex = Claimex::new()
        .issuers(&issuer_entry(
            "github",
            issuer.url(),
            AUD,
            "claimex-mapper-github",
            GITHUB_CONFIG,
        ))
        .settings(&format!(
            "{FAST}[signer]\npublished_paths = [{:?}]\n",
            path.display().to_string()
        ))
        .start();
    let jwks: Value = http()
        .get(format!("{}/.well-known/jwks.json", claimex.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&kid.as_str()), "{jwks}");
}

// ---------------------------------------------------------------------------------------
// Defect 8: client HTTP errors are not ERROR lines an attacker can multiply.

#[tokio::test]
async fn malformed_http_is_a_rate_limited_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("issuers.toml"), "").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("claimex.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_claimex"))
        .arg("serve")
        .current_dir(dir.path())
        .env("CLAIMEX_PUBLIC_URL", &url)
        .env("CLAIMEX_LISTEN", format!("127.0.0.1:{port}"))
        .env("CLAIMEX_ALLOW_HTTP_LOOPBACK", "true")
        .env("CLAIMEX_WORKERS", "1")
        .env("CLAIMEX_LOG", "info")
        .env("CLAIMEX_VERSION", "1.2.3")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child_guard = Kill(child);
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = http().get(format!("{url}/healthz")).send().await {
            ready = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{}", std::fs::read_to_string(&log).unwrap());
    let target = format!("127.0.0.1:{port}");
    tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            let mut stream = TcpStream::connect(&target).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .write_all(b"GARBAGE \x01\x02 NOT/HTTP\r\n\r\n")
                .unwrap();
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    })
    .await
    .unwrap();
    // The server's own line for the last connection may still be on its way: wait for
    // the warning, bounded.
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains("claimex::http") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client_errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("actix_http") || l.contains("claimex::http"))
        .collect();
    assert!(
        !client_errors.iter().any(|l| l.contains("\"ERROR\"")),
        "{client_errors:#?}"
    );
    assert_eq!(client_errors.len(), 1, "{client_errors:#?}");
    assert!(client_errors[0].contains("\"WARN\""), "{client_errors:#?}");
    // An unrelated CLAIMEX_* variable is a warning, not a refusal to start.
    assert!(
        text.lines()
            .any(|l| l.contains("\"WARN\"") && l.contains("CLAIMEX_VERSION")),
        "{text}"
    );
}
