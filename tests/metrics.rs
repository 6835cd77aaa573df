//! `GET /metrics` after a known sequence of exchanges: the counts, read through the
//! Prometheus project's own OpenMetrics parser (Python `prometheus_client`, installed by
//! `make test`), so the format is proven, not assumed. The same run exercises a shadow
//! mapper: it disagrees on the tokens the live mapper allows and agrees on the one it denies.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claimex_testkit::TestIssuer;
use claimex_testkit::client::{exchange, http};
use claimex_testkit::now;
use claimex_testkit::server::{Claimex, FAST};
use serde_json::{Value, json};

const AUD: &str = "https://claimex.test";

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// Scrapes `/metrics` and parses it with `prometheus_client.openmetrics.parser`.
async fn scrape(metrics_url: &str) -> Vec<Sample> {
    let response = http()
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/metrics_support/parse.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "the Prometheus parser is missing: `make test` installs it (pip install prometheus-client)"
    );
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused /metrics: {stderr}\n{text}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_owned(),
                labels: v["labels"].as_object().unwrap().clone(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k) == Some(&json!(v)))
        })
        .map(|s| s.value)
        .sum()
}

fn entry(issuer: &TestIssuer) -> String {
    format!(
        "[issuers.github]\nissuer = {url:?}\naudiences = [{AUD:?}]\n\
         mapper = \"claimex_mapper_github.wasm\"\n\
         mapper_config = {{ allowed_owner_ids = [\"65\"] }}\n\
         shadow_mapper = \"claimex_mapper_github.wasm\"\n\
         shadow_mapper_config = {{ allowed_owner_ids = [\"65\"], allowed_refs = [\"refs/heads/release/*\"] }}\n",
        url = issuer.url()
    )
}

#[tokio::test]
async fn metrics_count_a_known_sequence_and_parse_as_openmetrics() {
    let issuer = TestIssuer::start().unwrap();
    let claimex = Claimex::new()
        .issuers(&entry(&issuer))
        .settings(FAST)
        .metrics()
        .start();
    let metrics_url = claimex.metrics_url.clone().unwrap();
    let good = || issuer.mint(&issuer.github_claims(AUD, now()));

    // 3 allowed, 1 denied by the mapper, 1 expired, 1 unknown issuer id, 1 not a JWT.
    for _ in 0..3 {
        assert_eq!(
            exchange(&claimex.url, "?issuerId=github", good())
                .await
                .status,
            200
        );
    }
    let mut evil = issuer.github_claims(AUD, now());
    evil["repository_owner_id"] = json!("666");
    let answer = exchange(&claimex.url, "?issuerId=github", issuer.mint(&evil)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let mut old = issuer.github_claims(AUD, now());
    old["exp"] = json!(now() - 600);
    old["iat"] = json!(now() - 1200);
    let answer = exchange(&claimex.url, "?issuerId=github", issuer.mint(&old)).await;
    assert_eq!(answer.json()["reason_code"], "token_expired");
    let answer = exchange(&claimex.url, "?issuerId=nobody", good()).await;
    assert_eq!(answer.json()["reason_code"], "unknown_issuer");
    assert_eq!(exchange(&claimex.url, "", "garbage").await.status, 400);

    // The shadow runs off the response path: wait (bounded) until it compared all four
    // decisions the live mapper made.
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let samples = scrape(&metrics_url).await;
        if sum(
            &samples,
            "claimex_shadow_comparisons_total",
            &[("issuer", "github")],
        ) >= 4.0
        {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "the shadow comparisons did not all happen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ex = "claimex_exchanges_total";
    let github = ("issuer", "github");
    assert_eq!(
        sum(
            &samples,
            ex,
            &[github, ("outcome", "allow"), ("kind", "oidc")]
        ),
        3.0
    );
    assert_eq!(
        sum(
            &samples,
            ex,
            &[
                github,
                ("outcome", "deny"),
                ("refusal", "denied"),
                ("reason", "owner_not_allowed")
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            ex,
            &[
                github,
                ("refusal", "unverified"),
                ("reason", "token_expired")
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            ex,
            &[("issuer", "-"), ("reason", "unknown_issuer")]
        ),
        1.0
    );
    assert_eq!(
        sum(&samples, ex, &[("issuer", "-"), ("reason", "not_a_jwt")]),
        1.0
    );
    assert_eq!(sum(&samples, ex, &[]), 7.0);
    // A requested but unknown issuer id never becomes a label value.
    assert!(
        samples
            .iter()
            .all(|s| s.labels.values().all(|v| v != "nobody")),
        "an unknown issuer id became a label"
    );
    let count = |name: &str, labels: &[(&str, &str)]| sum(&samples, name, labels);
    assert_eq!(
        count(
            "claimex_exchange_duration_seconds_count",
            &[github, ("outcome", "allow")]
        ),
        3.0
    );
    assert_eq!(
        count("claimex_verify_duration_seconds_count", &[("kind", "oidc")]),
        7.0
    );
    assert_eq!(
        count(
            "claimex_mapper_call_duration_seconds_count",
            &[github, ("role", "live")]
        ),
        4.0
    );
    assert_eq!(
        count(
            "claimex_mapper_call_duration_seconds_count",
            &[github, ("role", "shadow")]
        ),
        4.0
    );
    assert_eq!(
        count(
            "claimex_sign_duration_seconds_count",
            &[("backend", "local")]
        ),
        3.0
    );
    assert_eq!(
        count(
            "claimex_shadow_comparisons_total",
            &[github, ("result", "disagree")]
        ),
        3.0
    );
    assert_eq!(
        count(
            "claimex_shadow_comparisons_total",
            &[github, ("result", "agree")]
        ),
        1.0
    );
    assert!(
        count(
            "claimex_issuer_key_fetches_total",
            &[github, ("result", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        count(
            "claimex_issuer_key_fetches_total",
            &[github, ("result", "error")]
        ),
        0.0
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "claimex_issuer_keys_age_seconds"
                && s.labels.get("issuer") == Some(&json!("github"))),
        "no JWKS age for github"
    );
    assert_eq!(count("claimex_registry_issuers", &[]), 1.0);
    assert_eq!(count("claimex_registry_invalid_entries", &[]), 0.0);
    assert_eq!(count("claimex_registry_shadow_errors", &[]), 0.0);
    assert_eq!(count("claimex_signing_keys_published", &[]), 1.0);
    assert!(count("claimex_registry_since_last_success_seconds", &[]) < 60.0);
    assert!(
        samples.iter().any(|s| s.name == "claimex_build_info"
            && s.labels.get("version") == Some(&json!(env!("CARGO_PKG_VERSION")))),
        "no build info"
    );
    // Every histogram bucket set ends in +Inf and counts as many as _count.
    let inf = sum(
        &samples,
        "claimex_exchange_duration_seconds_bucket",
        &[github, ("outcome", "allow"), ("le", "+Inf")],
    );
    assert_eq!(inf, 3.0);

    // The public listener does not serve metrics; /healthz reports the signer.
    let public = http()
        .get(format!("{}/metrics", claimex.url))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let health: Value = http()
        .get(format!("{}/healthz", claimex.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["signer"]["failing"], false, "{health}");
    assert_eq!(health["registry"]["shadow_errors"], json!([]), "{health}");
}

#[tokio::test]
async fn a_shadow_that_cannot_load_never_stops_its_entry() {
    let issuer = TestIssuer::start().unwrap();
    let entries = format!(
        "[issuers.github]\nissuer = {url:?}\naudiences = [{AUD:?}]\n\
         mapper = \"claimex_mapper_github.wasm\"\n\
         mapper_config = {{ allowed_owner_ids = [\"65\"] }}\n\
         shadow_mapper = \"claimex_mapper_github.wasm\"\n\
         shadow_mapper_config = {{ typo = 1 }}\n",
        url = issuer.url()
    );
    let claimex = Claimex::new()
        .issuers(&entries)
        .settings(FAST)
        .metrics()
        .start();
    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    assert_eq!(
        exchange(&claimex.url, "?issuerId=github", token)
            .await
            .status,
        200
    );
    let health: Value = http()
        .get(format!("{}/healthz", claimex.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Named by id only: why is in the log, not on the unauthenticated /healthz.
    assert_eq!(
        health["registry"]["shadow_errors"],
        json!(["github"]),
        "{health}"
    );
    let samples = scrape(claimex.metrics_url.as_deref().unwrap()).await;
    assert_eq!(sum(&samples, "claimex_registry_shadow_errors", &[]), 1.0);
    assert_eq!(sum(&samples, "claimex_shadow_comparisons_total", &[]), 0.0);
}
