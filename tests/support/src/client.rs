//! The caller's side of claimex's HTTP API: one client, one answer type; and an independent
//! OAuth client library (Authlib) for `POST /token`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// An HTTP client for loopback: 30 s timeout, no proxy from the environment.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
}

/// An HTTP answer: status, the headers tests look at, body as text.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// `Retry-After`, when present.
    pub retry_after: Option<String>,
    /// `Cache-Control`, when present.
    pub cache_control: Option<String>,
    /// `Content-Type`, when present.
    pub content_type: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// Reads a response.
    pub async fn read(response: reqwest::Response) -> Result<Answer, reqwest::Error> {
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (retry_after, cache_control, content_type) = (
            header("retry-after"),
            header("cache-control"),
            header("content-type"),
        );
        let body = response.text().await?;
        Ok(Answer {
            status,
            retry_after,
            cache_control,
            content_type,
            body,
        })
    }

    /// The body as JSON; panics when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON (status {}): {}", self.status, self.body))
    }

    /// Asserts an RFC 6749 error with this status and code and a non-empty description;
    /// returns the description.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        let json = self.json();
        assert_eq!(json["error"], code, "{}", self.body);
        let description = json["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !description.is_empty(),
            "no error_description: {}",
            self.body
        );
        description
    }
}

/// `GET base + path`.
pub async fn get(base: &str, path: &str) -> Result<Answer, reqwest::Error> {
    Answer::read(http().get(format!("{base}{path}")).send().await?).await
}

/// `POST base/exchange + query` (e.g. `?issuerId=github`) with `body` as it is; panics when
/// the request cannot be made.
pub async fn exchange(base: &str, query: &str, body: impl Into<reqwest::Body>) -> Answer {
    let response = http()
        .post(format!("{base}/exchange{query}"))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the exchange request failed: {e}"));
    Answer::read(response)
        .await
        .unwrap_or_else(|e| panic!("the exchange answer could not be read: {e}"))
}

/// The sum of the samples of `name` (e.g. `claimex_exchanges_total`) whose labels include
/// every `key="value"` of `labels`, read from `<metrics_url>/metrics`. A quick reader for
/// counts; tests/metrics.rs proves the format with the Prometheus parser.
pub async fn metric_sum(metrics_url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = http()
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("cannot scrape {metrics_url}/metrics: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("cannot read {metrics_url}/metrics: {e}"));
    // `name{labels} value`, or `name value` for a metric without labels.
    let prefix = format!("{name}{{");
    let bare = format!("{name} ");
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines()
        .filter(|l| {
            (l.starts_with(&prefix) || l.starts_with(&bare))
                && wanted.iter().all(|w| l.contains(w.as_str()))
        })
        .map(|l| {
            let value = l.rsplit(' ').next().unwrap_or_default();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a sample value: {l}"))
        })
        .sum()
}

/// Runs an RFC 8693 token exchange with Python's Authlib (`tests/token_support/exchange.py`,
/// `make pytools`) against `endpoint`, the subject `token` on its stdin; `extra` are more
/// form parameters (`requested_token_type`, `role_arn`, ...). Its JSON answer: the token
/// response, or `{"oauth_error", "description"}`. Panics when Authlib is missing or fails.
pub fn authlib(
    endpoint: &str,
    token_type: &str,
    audience: &str,
    issuer_id: &str,
    extra: &[(&str, &str)],
    token: &str,
) -> Value {
    let script = crate::root().join("tests/token_support/exchange.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([endpoint, token_type, audience, issuer_id])
        .args(extra.iter().map(|(k, v)| format!("{k}={v}")))
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(token.as_bytes())
        .expect("the Authlib client reads its token");
    let out = child.wait_with_output().expect("the Authlib client ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'authlib'"),
        "Authlib is missing: `make pytools` installs it (pip install authlib requests)"
    );
    assert!(out.status.success(), "the Authlib client failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Authlib client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
