//! The registered claims of a payload, read in one pass and checked by the rules of
//! RFC 8725 and RFC 7519: `exp` and `iat` required, `nbf` honoured, each within the leeway;
//! `iss` equal to the registered URL; `aud` naming an accepted audience; not older than the
//! maximum age; no registered claim given twice. Every other claim is skipped without being
//! built: it stays in the payload text for the mapper.
//!
//! [`read`] runs once, before the signature is checked, and nothing it finds is trusted then
//! but for choosing the issuer entry by `iss` ([`Claims::unverified_iss`]); [`check`] runs on
//! the same reading after the signature holds.

use super::{OidcPolicy, VerifyPolicy};
use crate::error::{ExchangeError, ReasonCode};

fn unverified(code: ReasonCode, description: impl Into<String>) -> ExchangeError {
    ExchangeError::coded(code, description)
}

/// The registered claims claimex itself reads; every other claim stays in the raw payload
/// for the mapper, so the payload is never turned into a map on the hot path.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    /// `iss`, when it is a string.
    pub iss: Option<String>,
    /// `sub`, when it is a string.
    pub sub: Option<String>,
    /// `jti`, when it is a string.
    pub jti: Option<String>,
}

/// Reads the registered claims of a payload, trusting none of them: `None` when the payload
/// is not a JSON object (which [`check`] refuses once the signature holds).
pub fn read(payload: &str) -> Option<Claims> {
    // serde's messages may quote the payload: none of them reaches the caller or the log.
    serde_json::from_str(payload).ok()
}

/// Checks the registered claims [`read`] found in a payload whose signature holds against
/// `policy` at `now` (seconds since the Unix epoch).
pub fn check(
    claims: Option<Claims>,
    policy: &OidcPolicy,
    limits: &VerifyPolicy,
    now: u64,
) -> Result<Registered, ExchangeError> {
    let claims = claims.ok_or_else(|| {
        unverified(
            ReasonCode::MalformedClaims,
            "the token's payload is not a valid JSON object",
        )
    })?;
    if let Some(name) = claims.duplicate {
        return Err(unverified(
            ReasonCode::DuplicateClaim,
            format!("the token's {name} claim is given twice; parsers disagree on which counts"),
        ));
    }
    claims.check(policy, limits, now)?;
    Ok(Registered {
        iss: claims.iss.into_text(),
        sub: claims.sub.into_text(),
        jti: claims.jti.into_text(),
    })
}

/// The value of one registered claim as it came, before its type is checked.
#[derive(Debug, Clone, Default)]
enum Claim {
    /// Absent.
    #[default]
    Missing,
    /// A string.
    Text(String),
    /// A non-negative number, as seconds (a fraction is dropped, RFC 7519 §2).
    Seconds(u64),
    /// A list whose members are all strings.
    Texts(Vec<String>),
    /// Anything else.
    Other,
}

impl Claim {
    fn into_text(self) -> Option<String> {
        match self {
            Claim::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A NumericDate claim that must be present.
    fn required_seconds(&self, name: &str) -> Result<u64, ExchangeError> {
        match self {
            Claim::Missing => Err(unverified(
                ReasonCode::MissingClaim,
                format!("the token has no {name} claim"),
            )),
            other => other.optional_seconds(name).map(Option::unwrap_or_default),
        }
    }

    fn optional_seconds(&self, name: &str) -> Result<Option<u64>, ExchangeError> {
        match self {
            Claim::Missing => Ok(None),
            Claim::Seconds(s) => Ok(Some(*s)),
            _ => Err(unverified(
                ReasonCode::MalformedClaim,
                format!("the token's {name} claim is malformed: it must be a number of seconds"),
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Claim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Claim, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Claim;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a claim value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Claim, E> {
                Ok(Claim::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Claim, E> {
                Ok(Claim::Text(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Claim, E> {
                Ok(Claim::Seconds(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Claim, E> {
                Ok(u64::try_from(v).map_or(Claim::Other, Claim::Seconds))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Claim, E> {
                Ok(if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Claim::Seconds(v as u64)
                } else {
                    Claim::Other
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Claim, E> {
                Ok(Claim::Other)
            }
            fn visit_unit<E>(self) -> Result<Claim, E> {
                Ok(Claim::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Claim, A::Error> {
                let mut texts = Vec::new();
                let mut all_text = true;
                while let Some(item) = seq.next_element::<Claim>()? {
                    match item {
                        Claim::Text(s) if all_text => texts.push(s),
                        _ => all_text = false,
                    }
                }
                Ok(if all_text {
                    Claim::Texts(texts)
                } else {
                    Claim::Other
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claim, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Claim::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The registered claims of a payload, read in one pass over the JSON object. Every other
/// member is skipped without being built; a registered claim given twice is refused, since
/// JSON parsers disagree on which one counts (RFC 8725 §2.8).
#[derive(Debug, Clone, Default)]
pub struct Claims {
    iss: Claim,
    sub: Claim,
    jti: Claim,
    aud: Claim,
    exp: Claim,
    nbf: Claim,
    iat: Claim,
    /// The first registered claim found twice.
    duplicate: Option<&'static str>,
    /// Whether `iss` was among the claims found twice.
    iss_twice: bool,
}

impl<'de> serde::Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Claims, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Claims;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claims, A::Error> {
                let mut claims = Claims::default();
                while let Some(name) = map.next_key::<Name>()? {
                    let (slot, label) = match name {
                        Name::Iss => (&mut claims.iss, "iss"),
                        Name::Sub => (&mut claims.sub, "sub"),
                        Name::Jti => (&mut claims.jti, "jti"),
                        Name::Aud => (&mut claims.aud, "aud"),
                        Name::Exp => (&mut claims.exp, "exp"),
                        Name::Nbf => (&mut claims.nbf, "nbf"),
                        Name::Iat => (&mut claims.iat, "iat"),
                        Name::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if matches!(slot, Claim::Missing) {
                        *slot = map.next_value()?;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        claims.duplicate.get_or_insert(label);
                        claims.iss_twice |= label == "iss";
                    }
                }
                Ok(claims)
            }
        }
        d.deserialize_map(V)
    }
}

/// The name of a payload member, matched without allocating.
enum Name {
    Iss,
    Sub,
    Jti,
    Aud,
    Exp,
    Nbf,
    Iat,
    Other,
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Name, E> {
                Ok(match v {
                    "iss" => Name::Iss,
                    "sub" => Name::Sub,
                    "jti" => Name::Jti,
                    "aud" => Name::Aud,
                    "exp" => Name::Exp,
                    "nbf" => Name::Nbf,
                    "iat" => Name::Iat,
                    _ => Name::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl Claims {
    /// `iss` when it is a string given once, unverified: only to choose which registered
    /// issuer verifies the token.
    pub fn unverified_iss(&self) -> Option<&str> {
        match &self.iss {
            Claim::Text(iss) if !self.iss_twice => Some(iss),
            _ => None,
        }
    }

    fn check(
        &self,
        issuer: &OidcPolicy,
        limits: &VerifyPolicy,
        now: u64,
    ) -> Result<(), ExchangeError> {
        let leeway = limits.leeway_secs;
        let exp = self.exp.required_seconds("exp")?;
        if exp.saturating_add(leeway) < now {
            return Err(unverified(
                ReasonCode::TokenExpired,
                "the token has expired",
            ));
        }
        if let Some(nbf) = self.nbf.optional_seconds("nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(unverified(
                ReasonCode::TokenNotYetValid,
                "the token is not valid yet (nbf lies in the future)",
            ));
        }
        match &self.iss {
            Claim::Text(iss) if *iss == issuer.url => {}
            Claim::Missing => {
                return Err(unverified(
                    ReasonCode::MissingClaim,
                    "the token has no iss claim",
                ));
            }
            _ => {
                return Err(unverified(
                    ReasonCode::IssuerMismatch,
                    format!(
                        "the token's iss is not {:?}, the URL registered for issuer {:?}",
                        issuer.url, issuer.id
                    ),
                ));
            }
        }
        let accepted = |aud: &String| issuer.audiences.contains(aud);
        let aud_ok = match &self.aud {
            Claim::Missing => {
                return Err(unverified(
                    ReasonCode::MissingClaim,
                    "the token has no aud claim",
                ));
            }
            Claim::Text(aud) => accepted(aud),
            Claim::Texts(list) => list.iter().any(accepted),
            _ => {
                return Err(unverified(
                    ReasonCode::MalformedClaim,
                    "the token's aud claim is malformed",
                ));
            }
        };
        if !aud_ok {
            return Err(unverified(
                ReasonCode::AudienceMismatch,
                format!(
                    "the token's aud does not include an audience accepted for issuer {:?}",
                    issuer.id
                ),
            ));
        }
        let iat = self.iat.required_seconds("iat")?;
        if iat > now.saturating_add(leeway) {
            return Err(unverified(
                ReasonCode::TokenIssuedInFuture,
                "the token's iat lies in the future",
            ));
        }
        if now.saturating_sub(iat) > limits.max_token_age_secs.saturating_add(leeway) {
            return Err(unverified(
                ReasonCode::TokenTooOld,
                format!(
                    "the token was issued {} s ago; tokens older than {} s are refused",
                    now - iat,
                    limits.max_token_age_secs
                ),
            ));
        }
        Ok(())
    }
}
