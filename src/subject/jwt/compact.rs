//! Reading a compact JWS without trusting it: size, alphabet, three parts, the JOSE header,
//! the payload decoded once and its registered claims read once. Nothing here checks a
//! signature; [`Unverified`] only lets the caller choose the registered issuer and its key.

use base64_simd::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde_json::Value;

use super::VerifyPolicy;
use super::claims::{self, Claims};
use crate::error::{ExchangeError, ReasonCode, shown};

fn not_a_jwt(description: impl Into<String>) -> ExchangeError {
    ExchangeError::coded(ReasonCode::NotAJwt, description)
}

/// A token whose shape has been checked but whose signature has not. Nothing here is
/// trusted: the header only selects the key, and the payload is handed on only once
/// [`super::verify`] has checked the signature over it.
#[derive(Debug, Clone)]
pub struct Unverified<'t> {
    /// The decoded JOSE header.
    pub header: Header,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    pub(super) signing_input: &'t str,
    /// The signature, still base64url-encoded.
    pub(super) signature: &'t str,
    /// The payload, decoded once (UTF-8 JSON text, handed to the mapper as it is).
    pub(super) payload: String,
    /// The payload's registered claims, read once; `None` when it is not a JSON object.
    pub(super) claims: Option<Claims>,
}

impl Unverified<'_> {
    /// The token's `iss`, unverified: only to choose which registered issuer verifies it.
    /// `None` when it is absent, not a string, given twice, or the payload is not JSON.
    pub fn iss(&self) -> Option<&str> {
        self.claims.as_ref()?.unverified_iss()
    }
}

/// Checks size and shape, reads the header and decodes the payload, trusting neither.
pub fn inspect<'t>(token: &'t str, policy: &VerifyPolicy) -> Result<Unverified<'t>, ExchangeError> {
    if token.len() > policy.max_token_bytes {
        return Err(ExchangeError::coded(
            ReasonCode::TokenTooLarge,
            format!(
                "the token is {} bytes; at most {} are accepted",
                token.len(),
                policy.max_token_bytes
            ),
        ));
    }
    if token.is_empty() {
        return Err(ExchangeError::coded(
            ReasonCode::TokenMissing,
            "no token: send the id-token as the request body",
        ));
    }
    let not_compact = || {
        not_a_jwt(
            "the body is not a JWT in compact serialization (three base64url parts joined by dots)",
        )
    };
    if !is_compact_charset(token.as_bytes()) {
        return Err(not_compact());
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or_else(not_compact)?;
    let (encoded_header, encoded_payload) =
        signing_input.split_once('.').ok_or_else(not_compact)?;
    if encoded_payload.contains('.') {
        return Err(not_compact());
    }
    // jsonwebtoken's own Header type, read from the header part alone (its decode_header
    // would scan the whole token for the dots again).
    let header: Header = URL_SAFE_NO_PAD
        .decode_to_vec(encoded_header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| describe_bad_header(encoded_header))?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: a recipient must refuse critical extensions it does not
        // understand, and claimex understands none.
        return Err(ExchangeError::coded(
            ReasonCode::UnsupportedCritHeader,
            "the token's header lists critical extensions (crit), which claimex does not support",
        ));
    }
    let payload = URL_SAFE_NO_PAD
        .decode_to_vec(encoded_payload)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| not_a_jwt("the token's payload is not base64url-encoded UTF-8"))?;
    let claims = claims::read(&payload);
    Ok(Unverified {
        header,
        signing_input,
        signature,
        payload,
        claims,
    })
}

/// Whether every byte is a base64url character or a dot. Written without early exit so
/// the compiler can check many bytes per instruction (tokens are up to 16 KiB).
fn is_compact_charset(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & (b.is_ascii_lowercase()
            | b.is_ascii_uppercase()
            | b.is_ascii_digit()
            | (b == b'-')
            | (b == b'_')
            | (b == b'.'))
    })
}

/// The JOSE header members jsonwebtoken reads as strings.
const STRING_MEMBERS: [&str; 7] = ["typ", "cty", "kid", "jku", "x5u", "x5t", "x5t#S256"];

/// Says why a header did not decode, naming what is wrong: a member given twice, a member of
/// the wrong type, no `alg`, or an `alg` claimex never accepts (such as `none`: a token that
/// fails verification). Nothing of the header's values is quoted but a short `alg`.
fn describe_bad_header(encoded_header: &str) -> ExchangeError {
    let not_object = || not_a_jwt("the token header is not a JSON object with an alg");
    let Some(bytes) = URL_SAFE_NO_PAD.decode_to_vec(encoded_header).ok() else {
        return not_object();
    };
    let members = match serde_json::from_slice::<HeaderMembers>(&bytes) {
        Ok(HeaderMembers(members)) => members,
        Err(_) => return not_object(),
    };
    let mut seen: Vec<&str> = Vec::with_capacity(members.len());
    for (name, _) in &members {
        if seen.contains(&name.as_str()) {
            return not_a_jwt(format!(
                "the token header has the member {} twice",
                shown(name, 32)
            ));
        }
        seen.push(name);
    }
    let get = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let alg = match get("alg") {
        None => return not_a_jwt("the token header has no alg"),
        Some(Value::String(alg)) => alg,
        Some(_) => return not_a_jwt("the token header's alg is not a string"),
    };
    if alg.parse::<jsonwebtoken::Algorithm>().is_err() {
        return ExchangeError::coded(
            ReasonCode::AlgorithmNotAllowed,
            format!("the token's algorithm {} is never accepted", shown(alg, 16)),
        );
    }
    if let Some(name) = STRING_MEMBERS
        .iter()
        .find(|name| get(name).is_some_and(|v| !v.is_string()))
    {
        return not_a_jwt(format!("the token header's {name} is not a string"));
    }
    not_a_jwt("the token header is not a valid JOSE header")
}

/// A JSON object's members in order, duplicates kept.
struct HeaderMembers(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for HeaderMembers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HeaderMembers, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = HeaderMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HeaderMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    members.push(entry);
                }
                Ok(HeaderMembers(members))
            }
        }
        d.deserialize_map(Members)
    }
}
