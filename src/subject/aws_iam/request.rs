//! The signed `sts:GetCallerIdentity` request a caller hands over as its subject token, and
//! every check made on it before anything is sent: pure, no I/O, time passed in.
//!
//! Encoding (`subject_token_type=urn:ietf:params:aws:token-type:aws4_request`): base64url
//! (padding optional) of the JSON object
//! `{"url": "https://sts.amazonaws.com/", "method": "POST", "headers": [{"key": "...",
//! "value": "..."}, ...], "body": "Action=GetCallerIdentity&Version=2011-06-15"}`.
//!
//! Checks, each a typed refusal: the URL's origin is on the entry's STS allow-list (path `/`,
//! no query); the method is `POST`; the body is exactly `Action=GetCallerIdentity` and
//! `Version=2011-06-15`; at most [`MAX_HEADERS`] headers of bounded size, none twice; a
//! `Host` header equal to the URL's; an `Authorization: AWS4-HMAC-SHA256 Credential=...,
//! SignedHeaders=..., Signature=...` whose signed headers include `host`, `x-amz-date` and
//! [`SERVER_ID_HEADER`] (each present); the server-id header equal to the configured id;
//! `x-amz-date` within [`DATE_WINDOW_SECS`] of now.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::policy::AwsIamPolicy;
use crate::error::{ExchangeError, ReasonCode, shown};

/// The header that binds a signed request to one claimex.
pub const SERVER_ID_HEADER: &str = "x-claimex-server-id";
/// How far `x-amz-date` may be from now, seconds: the window STS itself enforces.
pub const DATE_WINDOW_SECS: u64 = 15 * 60;
/// The most headers a signed request may carry.
pub const MAX_HEADERS: usize = 32;
/// The longest header name, bytes.
pub const MAX_HEADER_NAME: usize = 128;
/// The longest header value, bytes.
pub const MAX_HEADER_VALUE: usize = 4096;
/// The longest body, bytes.
pub const MAX_BODY: usize = 256;

/// Headers about the connection, not the request: never forwarded, so refused.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-connection",
];

/// Whether `b` may appear in an HTTP header name (RFC 9110 §5.6.2 `tchar`).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The request as the caller encoded it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Encoded {
    url: String,
    method: String,
    headers: Vec<Header>,
    #[serde(default)]
    body: String,
}

/// One header of the signed request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The name, as sent.
    pub key: String,
    /// The value, as sent.
    pub value: String,
}

/// A signed request that passed every check: what the STS adapter sends, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The STS endpoint (allowed).
    pub url: url::Url,
    /// The headers, as the caller signed them.
    pub headers: Vec<Header>,
    /// The body.
    pub body: String,
    /// The SigV4 signature (hex): the one-use key. Never logged.
    pub signature: String,
    /// The region of the credential scope.
    pub region: String,
    /// Its `x-amz-date`, seconds since the Unix epoch.
    pub signed_at: u64,
}

fn refuse(code: ReasonCode, description: impl Into<String>) -> ExchangeError {
    ExchangeError::coded(code, description)
}

fn malformed(description: impl Into<String>) -> ExchangeError {
    refuse(ReasonCode::AwsRequestMalformed, description)
}

/// Decodes the subject token and checks it against `policy` with `server_id` (the entry's,
/// else `public_url`) at `now`.
pub fn check(
    credential: &str,
    policy: &AwsIamPolicy,
    server_id: &str,
    now: u64,
) -> Result<SignedRequest, ExchangeError> {
    let text = credential.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(credential.trim()))
        .map_err(|_| {
            malformed("the subject token is not base64url: encode the signed request's JSON (README: From inside AWS)")
        })?;
    let encoded: Encoded = serde_json::from_slice(&bytes).map_err(|_| {
        malformed(
            "the subject token must be the JSON {\"url\", \"method\", \"headers\": [{\"key\", \"value\"}], \"body\"}",
        )
    })?;
    let url = url::Url::parse(&encoded.url).map_err(|_| {
        refuse(
            ReasonCode::StsEndpointNotAllowed,
            "the signed request's url is not a URL",
        )
    })?;
    if !policy.sts_endpoints.allows(&url) || !url.username().is_empty() || url.password().is_some()
    {
        return Err(refuse(
            ReasonCode::StsEndpointNotAllowed,
            format!(
                "the signed request is for an endpoint issuer {:?} does not call; sign it for one of {}",
                policy.id,
                policy.sts_endpoints.describe()
            ),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(refuse(
            ReasonCode::NotGetCallerIdentity,
            "the signed request must be POST / with its parameters in the body",
        ));
    }
    if encoded.method != "POST" {
        return Err(refuse(
            ReasonCode::NotGetCallerIdentity,
            "the signed request's method must be POST",
        ));
    }
    check_body(&encoded.body)?;
    let headers = encoded.headers;
    if headers.len() > MAX_HEADERS {
        return Err(malformed(format!(
            "the signed request has more than {MAX_HEADERS} headers"
        )));
    }
    let mut names = std::collections::HashSet::new();
    for h in &headers {
        if h.key.is_empty()
            || h.key.len() > MAX_HEADER_NAME
            || !h.key.bytes().all(is_token_char)
            || h.value.len() > MAX_HEADER_VALUE
            || !h
                .value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return Err(malformed(format!(
                "a header of the signed request is empty, too long (name {MAX_HEADER_NAME}, value {MAX_HEADER_VALUE} bytes) or not visible ASCII"
            )));
        }
        let lower = h.key.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str())
            || (lower == "content-length" && h.value.trim() != encoded.body.len().to_string())
        {
            return Err(malformed(format!(
                "the signed request may not carry the header {} (hop-by-hop, or a wrong content-length)",
                shown(&h.key, 64)
            )));
        }
        if !names.insert(lower) {
            return Err(malformed(format!(
                "the header {} is given twice",
                shown(&h.key, 64)
            )));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim())
    };
    let authorization = get("authorization").ok_or_else(|| {
        refuse(
            ReasonCode::AwsSignatureMalformed,
            "the signed request has no Authorization header",
        )
    })?;
    let auth = parse_authorization(authorization)?;
    for required in ["host", "x-amz-date", SERVER_ID_HEADER] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(refuse(
                ReasonCode::UnsignedRequiredHeader,
                format!("the header {required} must be signed (listed in SignedHeaders)"),
            ));
        }
    }
    if let Some(missing) = auth.signed_headers.iter().find(|h| get(h).is_none()) {
        return Err(refuse(
            ReasonCode::UnsignedRequiredHeader,
            format!(
                "the signed header {} is not among the request's headers",
                shown(missing, 64)
            ),
        ));
    }
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    if get("host").is_some_and(|h| !h.eq_ignore_ascii_case(&authority)) {
        return Err(refuse(
            ReasonCode::StsEndpointNotAllowed,
            "the signed Host header does not match the request's url",
        ));
    }
    if get(SERVER_ID_HEADER) != Some(server_id) {
        return Err(refuse(
            ReasonCode::ServerIdMismatch,
            format!(
                "the signed {SERVER_ID_HEADER} header must be {server_id:?}, this claimex's server id"
            ),
        ));
    }
    let date = get("x-amz-date").unwrap_or_default();
    let signed_at = parse_amz_date(date).ok_or_else(|| {
        refuse(
            ReasonCode::AwsSignatureMalformed,
            "x-amz-date must be YYYYMMDDTHHMMSSZ",
        )
    })?;
    if signed_at.abs_diff(now) > DATE_WINDOW_SECS {
        return Err(refuse(
            ReasonCode::AwsRequestExpired,
            format!(
                "the request was signed {} s from claimex's clock; sign a fresh one (at most {DATE_WINDOW_SECS} s off)",
                signed_at.abs_diff(now)
            ),
        ));
    }
    Ok(SignedRequest {
        url,
        headers,
        body: encoded.body,
        signature: auth.signature,
        region: auth.region,
        signed_at,
    })
}

/// The body must be `Action=GetCallerIdentity&Version=2011-06-15`, in any order, nothing else.
fn check_body(body: &str) -> Result<(), ExchangeError> {
    let wrong = || {
        refuse(
            ReasonCode::NotGetCallerIdentity,
            "the signed request's body must be exactly Action=GetCallerIdentity&Version=2011-06-15",
        )
    };
    if body.len() > MAX_BODY {
        return Err(wrong());
    }
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    if pairs
        != [
            ("Action".to_owned(), "GetCallerIdentity".to_owned()),
            ("Version".to_owned(), "2011-06-15".to_owned()),
        ]
    {
        return Err(wrong());
    }
    Ok(())
}

/// The parts of a SigV4 `Authorization` header claimex reads (it does not verify the
/// signature: STS does).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization {
    region: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Authorization, ExchangeError> {
    let bad = |what: &str| {
        refuse(
            ReasonCode::AwsSignatureMalformed,
            format!(
                "the Authorization header is not AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...: {what}"
            ),
        )
    };
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| bad("another scheme"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, val) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| bad("a part without ="))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(bad("an unknown part")),
        };
        if slot.replace(val).is_some() {
            return Err(bad("a part given twice"));
        }
    }
    let credential = credential.ok_or_else(|| bad("no Credential"))?;
    // AKID/yyyymmdd/region/sts/aws4_request
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[3] != "sts" || scope[4] != "aws4_request" || scope[2].is_empty() {
        return Err(bad(
            "the credential scope is not <key>/<date>/<region>/sts/aws4_request",
        ));
    }
    let signed_headers: Vec<String> = signed
        .ok_or_else(|| bad("no SignedHeaders"))?
        .split(';')
        .map(str::to_owned)
        .collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(bad("SignedHeaders must be lowercase names separated by ;"));
    }
    let signature = signature.ok_or_else(|| bad("no Signature"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("Signature must be 64 hex digits"));
    }
    Ok(Authorization {
        region: scope[2].to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// `YYYYMMDDTHHMMSSZ` as seconds since the Unix epoch.
fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), for y >= 1970.
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::aws_iam::policy::StsEndpoints;

    const NOW: u64 = 1_764_633_600; // 2025-12-02T00:00:00Z
    const DATE: &str = "20251202T000000Z";
    const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn policy() -> AwsIamPolicy {
        AwsIamPolicy {
            id: "aws".into(),
            accounts: vec!["123456789012".into()],
            sts_endpoints: StsEndpoints::AwsPartition,
            server_id: None,
        }
    }

    fn request() -> serde_json::Value {
        serde_json::json!({
            "url": "https://sts.amazonaws.com/",
            "method": "POST",
            "headers": [
                {"key": "Host", "value": "sts.amazonaws.com"},
                {"key": "X-Amz-Date", "value": DATE},
                {"key": "x-claimex-server-id", "value": "https://claimex.example.com"},
                {"key": "Content-Type", "value": "application/x-www-form-urlencoded; charset=utf-8"},
                {"key": "Authorization", "value": format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251202/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-claimex-server-id, Signature={SIG}")},
            ],
            "body": "Version=2011-06-15&Action=GetCallerIdentity",
        })
    }

    fn encode(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn code(v: serde_json::Value, now: u64) -> String {
        check(&encode(&v), &policy(), "https://claimex.example.com", now)
            .unwrap_err()
            .reason_code()
            .to_owned()
    }

    fn header(v: &mut serde_json::Value, key: &str, value: &str) {
        let headers = v["headers"].as_array_mut().unwrap();
        headers.retain(|h| !h["key"].as_str().unwrap().eq_ignore_ascii_case(key));
        if !value.is_empty() {
            headers.push(serde_json::json!({"key": key, "value": value}));
        }
    }

    #[test]
    fn accepts_a_well_formed_request() {
        let ok = check(
            &encode(&request()),
            &policy(),
            "https://claimex.example.com",
            NOW + 60,
        )
        .unwrap();
        assert_eq!(ok.signature, SIG);
        assert_eq!(ok.region, "us-east-1");
        assert_eq!(ok.url.as_str(), "https://sts.amazonaws.com/");
        assert_eq!(parse_amz_date(DATE), Some(NOW));
        assert_eq!(parse_amz_date("19700101T000001Z"), Some(1));
        // Padded base64url is accepted too.
        let padded = URL_SAFE.encode(request().to_string());
        assert!(check(&padded, &policy(), "https://claimex.example.com", NOW).is_ok());
    }

    #[test]
    fn refuses_each_bad_request_with_its_code() {
        let mut v = request();
        v["url"] = "https://evil.example.com/".into();
        assert_eq!(code(v, NOW), "sts_endpoint_not_allowed");
        let mut v = request();
        header(&mut v, "Host", "evil.example.com");
        assert_eq!(code(v, NOW), "sts_endpoint_not_allowed");
        let mut v = request();
        v["url"] = "https://sts.amazonaws.com/?Action=GetCallerIdentity".into();
        assert_eq!(code(v, NOW), "not_get_caller_identity");
        let mut v = request();
        v["method"] = "GET".into();
        assert_eq!(code(v, NOW), "not_get_caller_identity");
        for body in [
            "Action=AssumeRole&Version=2011-06-15",
            "Action=GetCallerIdentity&Version=2011-06-15&x=1",
            "Action=GetCallerIdentity&Action=GetCallerIdentity&Version=2011-06-15",
            "",
        ] {
            let mut v = request();
            v["body"] = body.into();
            assert_eq!(code(v, NOW), "not_get_caller_identity", "{body}");
        }
        assert_eq!(
            code(request(), NOW + DATE_WINDOW_SECS + 1),
            "aws_request_expired"
        );
        assert_eq!(
            code(request(), NOW - DATE_WINDOW_SECS - 1),
            "aws_request_expired"
        );
        let mut v = request();
        header(&mut v, SERVER_ID_HEADER, "https://other.example.com");
        assert_eq!(code(v, NOW), "server_id_mismatch");
        let mut v = request();
        header(&mut v, SERVER_ID_HEADER, "");
        assert_eq!(code(v, NOW), "unsigned_required_header");
        let mut v = request();
        header(
            &mut v,
            "Authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20251202/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature={SIG}"
            ),
        );
        assert_eq!(code(v, NOW), "unsigned_required_header");
        for auth in [
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=AKID/x/sts/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host",
        ] {
            let mut v = request();
            header(&mut v, "Authorization", auth);
            assert_eq!(code(v, NOW), "aws_signature_malformed", "{auth}");
        }
        let mut v = request();
        header(&mut v, "x-amz-date", "yesterday");
        assert_eq!(code(v, NOW), "aws_signature_malformed");
        let mut v = request();
        v["headers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"key": "host", "value": "sts.amazonaws.com"}));
        assert_eq!(code(v, NOW), "aws_request_malformed");
        for (key, value) in [
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
            ("Content-Length", "5"),
            ("bad name", "1"),
            ("x(y)", "1"),
        ] {
            let mut v = request();
            header(&mut v, key, value);
            assert_eq!(code(v, NOW), "aws_request_malformed", "{key}");
        }
        let mut v = request();
        header(&mut v, "Content-Length", "43");
        assert!(check(&encode(&v), &policy(), "https://claimex.example.com", NOW).is_ok());
        let mut v = request();
        header(&mut v, "x-big", &"a".repeat(MAX_HEADER_VALUE + 1));
        assert_eq!(code(v, NOW), "aws_request_malformed");
        let mut v = request();
        for i in 0..MAX_HEADERS {
            header(&mut v, &format!("x-{i}"), "1");
        }
        assert_eq!(code(v, NOW), "aws_request_malformed");
        for junk in [
            "",
            "%%%",
            &URL_SAFE_NO_PAD.encode("[1]"),
            &URL_SAFE_NO_PAD.encode("{\"url\": 1}"),
        ] {
            let err = check(junk, &policy(), "x", NOW).unwrap_err();
            assert_eq!(err.reason_code(), "aws_request_malformed");
        }
    }

    proptest::proptest! {
        /// Any subject token, raw or as the JSON shape with arbitrary members, is refused with
        /// a typed reason or accepted; never a panic.
        #[test]
        fn any_input_is_refused_or_accepted_without_panic(
            raw in ".{0,200}",
            url in ".{0,40}",
            method in "POST|GET|.{0,5}",
            keys in proptest::collection::vec("[ -~]{0,20}", 0..6),
            values in proptest::collection::vec("[ -~]{0,60}", 0..6),
            body in ".{0,60}",
            now in 0u64..4_000_000_000,
        ) {
            let _ = check(&raw, &policy(), "https://claimex.example.com", now);
            let headers: Vec<_> = keys.iter().zip(values.iter())
                .map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect();
            let mut v = request();
            v["url"] = url.into();
            v["method"] = method.into();
            v["body"] = body.into();
            v["headers"].as_array_mut().unwrap().extend(headers);
            if let Err(e) = check(&encode(&v), &policy(), "https://claimex.example.com", now) {
                proptest::prop_assert!(!e.description.contains(SIG));
            }
            let _ = parse_amz_date(&raw);
        }
    }

    #[test]
    fn refusals_never_quote_the_signature() {
        let mut v = request();
        header(&mut v, SERVER_ID_HEADER, "wrong");
        let err = check(&encode(&v), &policy(), "https://claimex.example.com", NOW).unwrap_err();
        assert!(!err.description.contains(SIG));
    }
}
