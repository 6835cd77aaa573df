//! The STS adapter: sends a checked signed request to its (allowed) STS endpoint with a short
//! timeout, exactly as signed, following no redirect, and reads the `GetCallerIdentity`
//! answer (XML) or STS's error code.

use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_xml::decode::{Document, try_data};

use super::{CallerIdentity, SignedRequest, StsCaller, StsError};

/// How long one STS call may take.
pub const STS_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest STS answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// STS over HTTPS (or loopback HTTP in tests), with reqwest.
pub struct HttpSts {
    client: reqwest::Client,
}

impl HttpSts {
    /// A client with [`STS_TIMEOUT`], no redirects, no proxy from the environment unless set.
    pub fn new() -> Result<HttpSts, reqwest::Error> {
        Ok(HttpSts {
            client: reqwest::Client::builder()
                .timeout(STS_TIMEOUT)
                .connect_timeout(STS_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }
}

#[async_trait]
impl StsCaller for HttpSts {
    async fn get_caller_identity(
        &self,
        request: &SignedRequest,
    ) -> Result<CallerIdentity, StsError> {
        let mut builder = self.client.post(request.url.clone());
        for h in &request.headers {
            // reqwest sets Host and Content-Length from the URL and body.
            if h.key.eq_ignore_ascii_case("host") || h.key.eq_ignore_ascii_case("content-length") {
                continue;
            }
            builder = builder.header(h.key.as_str(), h.value.as_str());
        }
        let response = builder
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| StsError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StsError::Unavailable(e.without_url().to_string()))?;
        if body.len() > MAX_ANSWER {
            return Err(StsError::Unavailable("STS's answer is too large".into()));
        }
        let text = String::from_utf8_lossy(&body);
        if status.is_success() {
            parse_identity(&text).ok_or_else(|| {
                StsError::Unavailable("STS's answer is not a GetCallerIdentityResponse".into())
            })
        } else if status.is_client_error() {
            Err(StsError::Refused(
                parse_error_code(&text).unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            ))
        } else {
            Err(StsError::Unavailable(format!("HTTP {}", status.as_u16())))
        }
    }
}

/// The text children of `root`'s child `section`: `(name, text)` pairs.
fn fields(xml: &str, root: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut doc = Document::new(xml);
    let mut decoder = doc.root_element().ok()?;
    if decoder.start_el().local() != root {
        return None;
    }
    let mut out = Vec::new();
    while let Some(mut child) = decoder.next_tag() {
        if child.start_el().local() != section {
            continue;
        }
        while let Some(mut leaf) = child.next_tag() {
            let name = leaf.start_el().local().to_owned();
            if let Ok(text) = try_data(&mut leaf) {
                out.push((name, text.into_owned()));
            }
        }
    }
    Some(out)
}

/// `Arn`, `Account` and `UserId` of a `GetCallerIdentityResponse`.
fn parse_identity(xml: &str) -> Option<CallerIdentity> {
    let found = fields(xml, "GetCallerIdentityResponse", "GetCallerIdentityResult")?;
    let get = |n: &str| {
        found
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.trim().to_owned())
    };
    let identity = CallerIdentity {
        arn: get("Arn")?,
        account: get("Account")?,
        user_id: get("UserId")?,
    };
    (identity.account.len() == 12 && identity.account.bytes().all(|b| b.is_ascii_digit()))
        .then_some(identity)
}

/// The `Code` of an `ErrorResponse`, when it is a plain identifier: STS's
/// `ErrorResponse/Error/Code`, or the `ErrorResponse/Errors/Error/Code` of other Query
/// services (and the emulator).
fn parse_error_code(xml: &str) -> Option<String> {
    let mut doc = Document::new(xml);
    let mut root = doc.root_element().ok()?;
    if root.start_el().local() != "ErrorResponse" {
        return None;
    }
    let mut code = None;
    while let Some(mut child) = root.next_tag() {
        match child.start_el().local() {
            "Error" => code = code.or_else(|| code_of(&mut child)),
            "Errors" => {
                while let Some(mut error) = child.next_tag() {
                    if error.start_el().local() == "Error" {
                        code = code.or_else(|| code_of(&mut error));
                    }
                }
            }
            _ => {}
        }
    }
    code.map(|c| c.trim().chars().take(64).collect::<String>())
        .filter(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        })
}

fn code_of(error: &mut aws_smithy_xml::decode::ScopedDecoder<'_, '_>) -> Option<String> {
    let mut code = None;
    while let Some(mut leaf) = error.next_tag() {
        if leaf.start_el().local() == "Code" {
            code = try_data(&mut leaf).ok().map(|c| c.into_owned());
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sts_answers() {
        let ok = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/deploy/run-1</Arn>
    <UserId>AROAEXAMPLE:run-1</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
        let id = parse_identity(ok).unwrap();
        assert_eq!(
            id.arn,
            "arn:aws:sts::123456789012:assumed-role/deploy/run-1"
        );
        assert_eq!(id.account, "123456789012");
        assert_eq!(id.user_id, "AROAEXAMPLE:run-1");
        let err = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>nope</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        assert_eq!(
            parse_error_code(err).as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert!(parse_identity(err).is_none());
        let wrapped = r#"<?xml version="1.0" encoding="utf-8"?>
<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>m</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        assert_eq!(
            parse_error_code(wrapped).as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(
            parse_error_code("<ErrorResponse><Error><Code>a b</Code></Error></ErrorResponse>"),
            None
        );
        assert!(parse_identity("not xml").is_none());
        assert!(parse_identity("<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>a</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>").is_none());
    }
}
