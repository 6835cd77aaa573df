//! SigV4-signed AWS Query requests, with the `aws-sigv4` crate: the emulator's IAM set-up
//! calls, and the signed `sts:GetCallerIdentity` a workload hands to claimex as its
//! `aws4_request` subject token (the documented encoding: base64url of `{"url", "method",
//! "headers": [{"key", "value"}], "body"}`).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The body of `sts:GetCallerIdentity`.
pub const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// A request to sign: `POST url` with `body` and these extra headers (`host` is added).
#[derive(Debug, Clone)]
pub struct Signed {
    /// The URL.
    pub url: String,
    /// Every header, signed ones and the signature's own, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Signed {
    /// The `aws4_request` subject token for claimex.
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.json().to_string())
    }

    /// The JSON before encoding.
    pub fn json(&self) -> Value {
        json!({
            "url": self.url,
            "method": "POST",
            "headers": self.headers.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
            "body": self.body,
        })
    }

    /// Replaces (or, with `None`, removes) a header, ignoring case.
    pub fn set_header(&mut self, name: &str, value: Option<&str>) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }

    /// The value of a header, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Signs `POST url` (`url` ends with `/`) for `service` in `region` with the key pair, at
/// `time`, signing `host`, `content-type` and `extra` headers.
#[allow(clippy::too_many_arguments)]
pub fn sign_post(
    url: &str,
    service: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
    body: &str,
    extra: &[(&str, &str)],
    time: SystemTime,
) -> Signed {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url} is not a URL: {e}"));
    let host = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        (
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let identity = Credentials::new(access_key, secret_key, None, None, "claimex-testkit").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap_or_else(|e| panic!("cannot build the signing parameters: {e}"))
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("cannot sign {url}: {e}"));
    let (instructions, _) = sign(signable, &params)
        .unwrap_or_else(|e| panic!("cannot sign {url}: {e}"))
        .into_parts();
    for (name, value) in instructions.headers() {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_owned(), value.to_owned()));
    }
    Signed {
        url: url.to_owned(),
        headers,
        body: body.to_owned(),
    }
}

/// Sends a signed request; the status and body.
pub async fn send(signed: &Signed) -> (u16, String) {
    let mut request = crate::client::http().post(&signed.url);
    for (k, v) in &signed.headers {
        if !k.eq_ignore_ascii_case("host") {
            request = request.header(k.as_str(), v.as_str());
        }
    }
    let response = request
        .body(signed.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} cannot be reached: {e}", signed.url));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
