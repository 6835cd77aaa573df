//! `POST /token`, RFC 8693 token exchange: an independent OAuth client library (Python's
//! Authlib, `make pytools`) performs the exchange against claimex on loopback, and hand-made
//! bad requests each get their documented RFC 6749 error.

use claimex_testkit::client::{Answer, exchange, http};
use claimex_testkit::entries::file as issuer_entry;
use claimex_testkit::jwks;
use claimex_testkit::server::{Claimex, FAST, InProcess};
use claimex_testkit::{TestIssuer, now};
use serde_json::Value;

const AUD: &str = "https://claimex.test";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const OTHER_AUD: &str = "https://partner.example.com";

/// An issuer and a claimex that trusts it with the GitHub mapper under id `github`, which may
/// mint for STS and for [`OTHER_AUD`].
fn setup() -> (TestIssuer, InProcess) {
    let issuer = TestIssuer::start().unwrap();
    let entry = issuer_entry(
        "github",
        issuer.url(),
        AUD,
        "claimex-mapper-github",
        r#"{ allowed_owner_ids = ["65"], transitive_tag_keys = ["repository"] }"#,
    ) + &format!("output_audiences = [\"sts.amazonaws.com\", {OTHER_AUD:?}]\n");
    let claimex = Claimex::new().issuers(&entry).settings(FAST).start();
    (issuer, claimex)
}

/// Runs the Authlib client for issuer `github`; its JSON answer.
fn authlib(endpoint: &str, token_type: &str, audience: &str, token: &str) -> Value {
    claimex_testkit::client::authlib(endpoint, token_type, audience, "github", &[], token)
}

async fn post_form(base: &str, query: &str, pairs: &[(&str, &str)]) -> (Answer, Option<String>) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    post(base, query, "application/x-www-form-urlencoded", body).await
}

async fn post(
    base: &str,
    query: &str,
    content_type: &str,
    body: String,
) -> (Answer, Option<String>) {
    let response = http()
        .post(format!("{base}/token{query}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let answer = Answer::read(response).await.unwrap();
    let cache = answer.cache_control.clone();
    (answer, cache)
}

#[tokio::test]
async fn an_oauth_client_library_exchanges_an_id_token() {
    let (issuer, claimex) = setup();
    let endpoint = format!("{}/token", claimex.url);
    let discovery = jwks::discover(&claimex.url).await;
    assert_eq!(discovery["token_endpoint"], endpoint.as_str());
    assert_eq!(discovery["grant_types_supported"][0], GRANT);

    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    let answer = authlib(&endpoint, ID_TOKEN, jwks::STS, &token);
    assert_eq!(answer["issued_token_type"], JWT, "{answer}");
    assert_eq!(answer["token_type"], "N_A", "{answer}");
    assert_eq!(answer["expires_in"], 900, "{answer}");
    let access = answer["access_token"].as_str().unwrap();
    let claims = jwks::verify_at(&claimex.url, access).await;
    assert_eq!(claims["sub"], "repo:octo-org/octo-repo:environment:prod");
    assert_eq!(claims["aud"], jwks::STS);

    // The other allowed audience becomes the token's only `aud`.
    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    let answer = authlib(&endpoint, JWT, OTHER_AUD, &token);
    let access = answer["access_token"].as_str().expect("a token");
    let keys = jwks::fetch(&claimex.url).await;
    let claims = jwks::verify(access, &keys, &claimex.url, OTHER_AUD).unwrap();
    assert_eq!(claims["aud"], OTHER_AUD);

    // An audience the entry does not allow: the library sees invalid_target.
    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    let answer = authlib(&endpoint, ID_TOKEN, "https://evil.example.com", &token);
    assert_eq!(answer["oauth_error"], "invalid_target", "{answer}");
    // A token that does not verify (wrong inbound audience): invalid_grant.
    let token = issuer.mint(&issuer.github_claims("https://elsewhere", now()));
    let answer = authlib(&endpoint, ID_TOKEN, jwks::STS, &token);
    assert_eq!(answer["oauth_error"], "invalid_grant", "{answer}");
}

#[tokio::test]
async fn the_token_endpoint_answers_like_rfc_8693_and_exchange_is_unchanged() {
    let (issuer, claimex) = setup();
    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    let (answer, cache) = post_form(
        &claimex.url,
        "?issuerId=github",
        &[
            ("grant_type", GRANT),
            ("subject_token", &token),
            ("subject_token_type", ID_TOKEN),
            ("requested_token_type", JWT),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(cache.as_deref(), Some("no-store"));
    let json = answer.json();
    let claims = jwks::verify_at(&claimex.url, json["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["aud"], jwks::STS);

    // /exchange still answers the raw JWT.
    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    let plain = exchange(&claimex.url, "?issuerId=github", token).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(plain.body.split('.').count(), 3);
}

#[tokio::test]
async fn bad_token_requests_get_their_documented_errors() {
    let (issuer, claimex) = setup();
    let token = issuer.mint(&issuer.github_claims(AUD, now()));
    let base = [
        ("grant_type", GRANT),
        ("subject_token", token.as_str()),
        ("subject_token_type", ID_TOKEN),
        ("issuer_id", "github"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        pairs
    };
    let replaced = |name: &str, value: &'static str| {
        let mut pairs: Vec<(&str, &str)> =
            base.iter().copied().filter(|(k, _)| *k != name).collect();
        if !value.is_empty() {
            pairs.push((name_static(name), value));
        }
        pairs
    };
    let cases: Vec<Case<'_>> = vec![
        (
            replaced("grant_type", "password"),
            "",
            400,
            "unsupported_grant_type",
            "unsupported_grant_type",
        ),
        (
            replaced("grant_type", ""),
            "",
            400,
            "invalid_request",
            "missing_parameter",
        ),
        (
            replaced("subject_token", ""),
            "",
            400,
            "invalid_request",
            "missing_parameter",
        ),
        (
            replaced(
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2",
            ),
            "",
            400,
            "invalid_request",
            "unsupported_token_type",
        ),
        (
            with(&[(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            )]),
            "",
            400,
            "invalid_request",
            "unsupported_requested_token_type",
        ),
        (
            with(&[("audience", "https://evil.example.com")]),
            "",
            400,
            "invalid_target",
            "audience_not_allowed",
        ),
        (
            with(&[("audience", "a"), ("audience", "b")]),
            "",
            400,
            "invalid_target",
            "audience_not_allowed",
        ),
        (
            with(&[("resource", "https://x.example.com")]),
            "",
            400,
            "invalid_target",
            "audience_not_allowed",
        ),
        (
            with(&[("actor_token", "x")]),
            "",
            400,
            "invalid_request",
            "actor_token_unsupported",
        ),
        (
            with(&[("issuer_id", "github")]),
            "",
            400,
            "invalid_request",
            "invalid_parameter",
        ),
        (
            replaced("issuer_id", "nobody"),
            "",
            400,
            "invalid_request",
            "unknown_issuer",
        ),
        (
            base.to_vec(),
            "?issuerId=other",
            400,
            "invalid_request",
            "invalid_parameter",
        ),
        (
            base.to_vec(),
            "?subject_token=x",
            400,
            "invalid_request",
            "token_in_url",
        ),
    ];
    for (pairs, query, status, error, reason) in cases {
        let (answer, cache) = post_form(&claimex.url, query, &pairs).await;
        answer.assert_error(status, error);
        assert_eq!(answer.json()["reason_code"], reason, "{}", answer.body);
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert!(!answer.body.contains(&token), "the token is echoed");
    }

    // Not a form.
    let (answer, _) = post(&claimex.url, "", "application/json", "{}".into()).await;
    answer.assert_error(400, "invalid_request");
    assert_eq!(answer.json()["reason_code"], "not_a_form");
    // A token that does not verify: invalid_grant, as a 400 (RFC 6749 §5.2).
    let (answer, _) = post_form(
        &claimex.url,
        "",
        &[
            ("grant_type", GRANT),
            ("subject_token", "x.y.z"),
            ("subject_token_type", JWT),
            ("issuer_id", "github"),
        ],
    )
    .await;
    answer.assert_error(400, "invalid_request");
    let expired = issuer.mint(&issuer.github_claims(AUD, now() - 7200));
    let (answer, _) = post_form(
        &claimex.url,
        "",
        &[
            ("grant_type", GRANT),
            ("subject_token", &expired),
            ("subject_token_type", JWT),
        ],
    )
    .await;
    answer.assert_error(400, "invalid_grant");
    // Too large: 413, before parsing.
    let huge = "a".repeat(16 * 1024 * 3 + 8192);
    let (answer, _) = post(
        &claimex.url,
        "",
        "application/x-www-form-urlencoded",
        format!("grant_type={GRANT}&subject_token={huge}"),
    )
    .await;
    answer.assert_error(413, "invalid_request");
}

/// Form pairs, query, status, `error`, `reason_code`.
type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16, &'a str, &'a str);

fn name_static(name: &str) -> &'static str {
    match name {
        "grant_type" => "grant_type",
        "subject_token" => "subject_token",
        "subject_token_type" => "subject_token_type",
        "issuer_id" => "issuer_id",
        other => panic!("no such parameter {other}"),
    }
}
