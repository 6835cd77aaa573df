//! [`Claim`]: one claim as the lean path ([`crate::Input::read`]) reads it: any JSON value
//! accepted, strings borrowed from the claims' text when they hold no escapes, objects and
//! lists skipped unread.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{Deny, check_sub, codes};

/// One claim, read by the lean path. A field of this type in the mapper's claims struct (with
/// `#[serde(borrow)]` and the struct `#[serde(default)]`) is [`Claim::Absent`] when the token
/// does not carry the claim.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Claim<'a> {
    /// Not in the token.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A string.
    Str(Cow<'a, str>),
    /// A number, as JSON wrote it (re-printed).
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// An object or a list (not read).
    Other,
}

impl<'a> Claim<'a> {
    /// The claim when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Claim::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The claim as text: strings as they are, numbers and booleans printed (GitHub and GitLab
    /// send most ids as strings and a few as numbers), as [`crate::Input::text_claim`] reads.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Claim::Str(s) => Some(Cow::Borrowed(s)),
            Claim::Number(n) => Some(Cow::Borrowed(n)),
            Claim::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }

    /// The string, or a [`Deny`] `missing_claim` (absent or null) or `invalid_claim` that
    /// names the claim `name`, as [`crate::Input::require_str`] does.
    pub fn require_str(&self, name: &str) -> Result<&str, Deny> {
        match self {
            Claim::Str(s) => Ok(s),
            Claim::Absent | Claim::Null => Err(Deny::new(
                codes::MISSING_CLAIM,
                format!("the credential has no {name} claim"),
            )),
            _ => Err(Deny::new(
                codes::INVALID_CLAIM,
                format!("the credential's {name} claim is not a string"),
            )),
        }
    }

    /// The string as an outbound `sub`, as [`crate::Input::require_sub`] checks it.
    pub fn require_sub(&self, name: &str) -> Result<&str, Deny> {
        let sub = self.require_str(name)?;
        check_sub(sub).map_err(|reason| {
            Deny::new(
                codes::INVALID_SUB,
                format!("the credential's {name} claim {reason}"),
            )
        })?;
        Ok(sub)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Claim<'de>, E> {
        Ok(Claim::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Claim<'de>, E> {
        Ok(Claim::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Claim<'de>, E> {
        Ok(Claim::Number(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Claim<'de>, E> {
        Ok(Claim::Number(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Claim<'de>, E> {
        // As serde_json prints the number it read (`Value::Number`'s `Display`).
        Ok(Claim::Number(
            serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()),
        ))
    }

    fn visit_unit<E>(self) -> Result<Claim<'de>, E> {
        Ok(Claim::Null)
    }

    fn visit_none<E>(self) -> Result<Claim<'de>, E> {
        Ok(Claim::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Claim<'de>, D::Error> {
        d.deserialize_any(ClaimVisitor)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claim<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Claim::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Claim<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Claim::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Claim<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Claim<'a>, D::Error> {
        d.deserialize_any(ClaimVisitor)
    }
}
