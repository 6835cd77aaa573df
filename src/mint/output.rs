//! Checking a mapper's `allow` output before anything is signed: a JSON object, parsed once
//! over borrowed text; no member given twice; none of the claims claimex owns, however
//! spelled; `sub` a string of 6–255 characters (AWS STS's rule); `aud` one audience or a list, each allowed by
//! the entry; the AWS session-tags claim by AWS's rules. What passes is signed as written.

use std::borrow::Cow;

use claimex_tags::{TAGS_CLAIM, TagError, TagSummary};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{DEFAULT_AUDIENCE, MAX_SUB_CHARS, MIN_SUB_CHARS, OutputPolicy, RESERVED_CLAIMS, Stamp};
use crate::error::{ExchangeError, ReasonCode, Refusal, shown};

fn invalid(description: impl Into<String>) -> ExchangeError {
    ExchangeError::new(Refusal::InvalidOutput, description)
}

/// Mapper output that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedClaims {
    /// The mapper's object members exactly as it wrote them (the text between its braces),
    /// checked: valid JSON, no member name twice, none of the host-owned claims.
    members: String,
    /// Whether the mapper set no `aud`, so claimex adds the default.
    default_aud: bool,
    /// The outbound `sub`.
    pub sub: String,
    /// The outbound audiences.
    pub aud: Vec<String>,
    /// The session-tag keys, when the tags claim is present.
    pub tags: Option<TagSummary>,
}

impl CheckedClaims {
    /// The outbound payload as JSON text: claimex's claims (`iss`, `iat`, `nbf`, `exp`,
    /// `jti`), then the mapper's members as written, then the default `aud` when it set none.
    pub fn payload_json(&self, stamp: &Stamp) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.members.len() + stamp.iss.len() + 128);
        out.push_str(r#"{"iss":"#);
        // A string and numbers: serialising them cannot fail.
        out.push_str(&Value::from(stamp.iss.as_str()).to_string());
        let _ = write!(
            out,
            r#","iat":{iat},"nbf":{iat},"exp":{exp},"jti":"#,
            iat = stamp.iat,
            exp = stamp.exp,
        );
        if stamp
            .jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            // base64url, as the system id source gives: nothing to escape.
            let _ = write!(out, r#""{}","#, stamp.jti);
        } else {
            out.push_str(&Value::from(stamp.jti.as_str()).to_string());
            out.push(',');
        }
        out.push_str(&self.members);
        if self.default_aud {
            let _ = write!(out, r#","aud":"{DEFAULT_AUDIENCE}""#);
        }
        out.push('}');
        out
    }
}

impl CheckedClaims {
    /// Narrows the outbound audience to `audience` alone (`POST /token`'s `audience`, already
    /// checked against the entry's output audiences): allowed when the mapper set no `aud`,
    /// or set one that includes it. The mapper's other members stay as written.
    pub fn narrow_audience(&mut self, audience: &str) -> Result<(), ExchangeError> {
        if !self.default_aud && !self.aud.iter().any(|a| a == audience) {
            return Err(ExchangeError::coded(
                ReasonCode::AudienceNotAllowed,
                format!(
                    "the mapper grants the audiences {} only, not the one requested",
                    self.aud.join(", ")
                ),
            ));
        }
        if !self.default_aud {
            self.members = members_without_aud(&self.members)?;
        }
        // A string always serializes.
        let aud = Value::from(audience).to_string();
        if self.members.is_empty() {
            self.members = format!(r#""aud":{aud}"#);
        } else {
            self.members.push_str(&format!(r#","aud":{aud}"#));
        }
        self.default_aud = false;
        self.aud = vec![audience.to_owned()];
        Ok(())
    }
}

/// The checked members of a mapper's object, without its `aud`: names re-encoded, values as
/// written.
fn members_without_aud(members: &str) -> Result<String, ExchangeError> {
    let object = format!("{{{members}}}");
    let Members::<&RawValue>(all) = serde_json::from_str(&object).map_err(|_| {
        ExchangeError::new(
            Refusal::Internal,
            "the checked claims could not be read again",
        )
    })?;
    let mut out = String::with_capacity(members.len());
    for (MemberName(name), value) in all.iter().filter(|(n, _)| n.0 != "aud") {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&Value::from(name.as_ref()).to_string());
        out.push(':');
        out.push_str(value.get());
    }
    Ok(out)
}

/// The members of the mapper's object that claimex reads, borrowed from its output; the
/// rest are only checked for duplicate and reserved names.
#[derive(Default)]
struct OutputMembers<'a> {
    sub: Option<&'a RawValue>,
    aud: Option<&'a RawValue>,
    tags: Option<&'a RawValue>,
    reserved: Option<&'static str>,
    duplicate: Option<String>,
}

impl<'de> serde::Deserialize<'de> for OutputMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = OutputMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OutputMembers<'de>, A::Error> {
                let mut out = OutputMembers::default();
                let mut seen = std::collections::HashSet::new();
                while let Some(MemberName(name)) = map.next_key()? {
                    match name.as_ref() {
                        "sub" => out.sub = Some(map.next_value()?),
                        "aud" => out.aud = Some(map.next_value()?),
                        TAGS_CLAIM => out.tags = Some(map.next_value()?),
                        other => {
                            if out.reserved.is_none() {
                                out.reserved =
                                    RESERVED_CLAIMS.iter().copied().find(|r| *r == other);
                            }
                            // Read in the same pass, to the end: skipping a value would
                            // check its syntax, not its numbers, and a number beyond f64
                            // (1e999) would be signed as written and break the token's
                            // readers.
                            map.next_value::<Wellformed>()?;
                        }
                    }
                    if !seen.insert(name.clone()) && out.duplicate.is_none() {
                        out.duplicate = Some(name.into_owned());
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Members)
    }
}

/// A JSON value read to the end without being built: every number is parsed (so one out of
/// range is refused), strings are borrowed when they can be.
struct Wellformed;

impl<'de> serde::Deserialize<'de> for Wellformed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Wellformed, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Wellformed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_str<E>(self, _: &str) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_unit<E>(self) -> Result<Wellformed, E> {
                Ok(Wellformed)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Wellformed, A::Error> {
                while seq.next_element::<Wellformed>()?.is_some() {}
                Ok(Wellformed)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Wellformed, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, Wellformed>()?
                    .is_some()
                {}
                Ok(Wellformed)
            }
        }
        d.deserialize_any(V)
    }
}

/// A member name, unescaped (so `"\u0069ss"` is `iss`), borrowed when it has no escapes.
struct MemberName<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
}

/// Parses a member claimex checks in depth (the tags claim), refusing a name given twice in
/// any of its objects: the text is signed as written, so what was checked must be the only
/// reading of it.
fn strict_value(raw: &RawValue) -> Result<Value, ExchangeError> {
    struct Strict(Value);
    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_unit<E>(self) -> Result<Strict, E> {
                    Ok(Strict(Value::Null))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Strict, A::Error> {
                    let mut list = Vec::new();
                    while let Some(Strict(item)) = seq.next_element()? {
                        list.push(item);
                    }
                    Ok(Strict(Value::Array(list)))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Strict, A::Error> {
                    let mut object = serde_json::Map::new();
                    while let Some(MemberName(name)) = map.next_key()? {
                        let Strict(value) = map.next_value()?;
                        let name = name.into_owned();
                        if object.contains_key(&name) {
                            return Err(serde::de::Error::custom(format_args!(
                                "the member {} is given twice",
                                shown(&name, 64)
                            )));
                        }
                        object.insert(name, value);
                    }
                    Ok(Strict(Value::Object(object)))
                }
            }
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Strict>(raw.get())
        .map(|Strict(value)| value)
        .map_err(|e| invalid(format!("the mapper's session tags are invalid: {e}")))
}

/// Checks the tags claim over its text, without building a [`Value`], when it has the one
/// shape AWS accepts: `principal_tags` an object of `KEY: [VALUE]` and `transitive_tag_keys`
/// absent or a list of strings, no name given twice. `None` for anything else, which
/// [`strict_value`] and [`claimex_tags::check_claim`] then read for their exact error; on this
/// shape both give the same answer (`tags_are_read_alike_with_and_without_a_value`).
fn read_tags(raw: &RawValue) -> Option<Result<TagSummary, TagError>> {
    let TagsText {
        mut principal,
        transitive,
    } = serde_json::from_str(raw.get()).ok()?;
    // In key order, as the claim's map holds them; a key given twice is the strict reader's.
    principal.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if principal.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let pairs: Vec<(&str, &str)> = principal.iter().map(|(k, v)| (&**k, &**v)).collect();
    let transitive: Vec<&str> = transitive.iter().map(|k| &**k).collect();
    Some(claimex_tags::check_pairs(&pairs, &transitive))
}

/// The tags claim in its accepted shape, borrowed from the mapper's output where unescaped.
struct TagsText<'a> {
    principal: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    transitive: Vec<Cow<'a, str>>,
}

/// A JSON string, borrowed when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MemberName::deserialize(d).map(|MemberName(text)| Text(text))
    }
}

/// `[VALUE]`: an array of exactly one string.
struct OneText<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for OneText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of one string")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneText<'de>, A::Error> {
                use serde::de::Error as _;
                let Some(Text(value)) = seq.next_element()? else {
                    return Err(A::Error::custom("empty"));
                };
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom("more than one"));
                }
                Ok(OneText(value))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> serde::Deserialize<'de> for TagsText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TagsText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a tags claim")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TagsText<'de>, A::Error> {
                use serde::de::Error as _;
                let (mut principal, mut transitive) = (None, None);
                while let Some(MemberName(name)) = map.next_key()? {
                    match name.as_ref() {
                        "principal_tags" if principal.is_none() => {
                            let Members(pairs) = map.next_value::<Members<OneText>>()?;
                            principal = Some(
                                pairs
                                    .into_iter()
                                    .map(|(MemberName(key), OneText(value))| (key, value))
                                    .collect(),
                            )
                        }
                        "transitive_tag_keys" if transitive.is_none() => {
                            transitive = Some(map.next_value::<Vec<Text>>()?)
                        }
                        _ => return Err(A::Error::custom("another shape")),
                    }
                }
                Ok(TagsText {
                    principal: principal.ok_or_else(|| A::Error::custom("no principal_tags"))?,
                    transitive: transitive
                        .unwrap_or_default()
                        .into_iter()
                        .map(|Text(t)| t)
                        .collect(),
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON object's members in the order written: names unescaped, values read as `V`.
struct Members<'a, V>(Vec<(MemberName<'a>, V)>);

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Members<'de, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Members<'de, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de, V>, A::Error> {
                let mut all = Vec::new();
                while let Some(name) = map.next_key::<MemberName<'de>>()? {
                    all.push((name, map.next_value::<V>()?));
                }
                Ok(Members(all))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Checks a mapper's `allow` output for the entry whose output policy is `issuer`. The output is parsed once, without
/// building it: only `sub`, `aud` and the tags claim are read into values.
pub fn check_output(json: &str, issuer: &OutputPolicy) -> Result<CheckedClaims, ExchangeError> {
    let trimmed = json.trim();
    if !trimmed.starts_with('{') {
        return Err(
            match serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
                Ok(_) => invalid("the mapper's output is not a JSON object"),
                Err(e) => invalid(format!("the mapper's output is not valid JSON: {e}")),
            },
        );
    }
    let members: OutputMembers<'_> = serde_json::from_str(trimmed)
        .map_err(|e| invalid(format!("the mapper's output is not valid JSON: {e}")))?;
    if let Some(reserved) = members.reserved {
        return Err(invalid(format!(
            "the mapper set the claim {reserved:?}, which only claimex may set"
        )));
    }
    if let Some(name) = members.duplicate {
        return Err(invalid(format!(
            "the mapper's output has the claim {} twice",
            shown(&name, 64)
        )));
    }
    let value = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null);
    let sub = match members.sub.map(value) {
        Some(Value::String(sub))
            if (MIN_SUB_CHARS..=MAX_SUB_CHARS).contains(&sub.chars().count()) =>
        {
            sub
        }
        Some(Value::String(sub)) => {
            return Err(invalid(format!(
                "the mapper's sub has {} characters: AWS STS accepts {MIN_SUB_CHARS} to {MAX_SUB_CHARS}",
                sub.chars().count()
            )));
        }
        Some(_) => return Err(invalid("the mapper's sub must be a string")),
        None => return Err(invalid("the mapper's output has no sub")),
    };
    let aud: Vec<String> = match members.aud.map(value) {
        None => vec![DEFAULT_AUDIENCE.to_owned()],
        Some(Value::String(a)) => vec![a],
        Some(Value::Array(list)) if !list.is_empty() => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("the mapper's aud must be a string or a list of strings"))?,
        Some(_) => {
            return Err(invalid(
                "the mapper's aud must be a string or a non-empty list of strings",
            ));
        }
    };
    if let Some(bad) = aud.iter().find(|a| !issuer.audiences.contains(a)) {
        return Err(invalid(format!(
            "the audience {bad:?} is not allowed for issuer {:?} (allowed: {})",
            issuer.issuer_id,
            issuer.audiences.join(", ")
        )));
    }
    let tags = match members.tags {
        None => None,
        Some(raw) => Some(
            match read_tags(raw) {
                Some(checked) => checked,
                // Not the one accepted shape: the strict reader says exactly why.
                None => claimex_tags::check_claim(&strict_value(raw)?),
            }
            .map_err(|e| invalid(format!("the mapper's session tags are invalid: {e}")))?,
        ),
    };
    // Valid JSON starting with '{' ends with '}': the members are what lies between.
    let inner = trimmed[1..trimmed.len() - 1].trim();
    Ok(CheckedClaims {
        members: inner.to_owned(),
        default_aud: members.aud.is_none(),
        sub,
        aud,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The strict reader's answer: what `check_output` gave before `read_tags` existed.
    fn strict(text: &str) -> Option<Result<TagSummary, TagError>> {
        let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
        let value = strict_value(&raw).ok()?;
        Some(claimex_tags::check_claim(&value))
    }

    fn fast(text: &str) -> Option<Result<TagSummary, TagError>> {
        let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
        read_tags(&raw)
    }

    #[test]
    fn tags_are_read_alike_with_and_without_a_value() {
        for (text, fast_path) in [
            (
                r#"{"principal_tags": {"r": ["a/b"], "Actor": ["x"]}}"#,
                true,
            ),
            (
                r#"{"principal_tags": {"r": ["a"]}, "transitive_tag_keys": ["r"]}"#,
                true,
            ),
            (r#"{"transitive_tag_keys": [], "principal_tags": {}}"#, true),
            (r#"{"principal_tags": {"\u0072": ["\u0061"]}}"#, true),
            (r#"{"principal_tags": {"r": ["aws:x"]}}"#, true),
            (r#"{"principal_tags": {"R": ["a"], "r": ["b"]}}"#, true),
            (
                r#"{"principal_tags": {"r": ["a"]}, "transitive_tag_keys": ["s"]}"#,
                true,
            ),
            (
                r#"{"principal_tags": {"r": ["a"]}, "transitive_tag_keys": ["r", "r"]}"#,
                true,
            ),
            (r#"{"principal_tags": {"r": ["a"], "r": ["b"]}}"#, false),
            (
                r#"{"principal_tags": {"r": ["a"]}, "principal_tags": {}}"#,
                false,
            ),
            (r#"{"principal_tags": {"r": ["a", "b"]}}"#, false),
            (r#"{"principal_tags": {"r": []}}"#, false),
            (r#"{"principal_tags": {"r": "a"}}"#, false),
            (r#"{"principal_tags": {"r": ["a"]}, "x": 1}"#, false),
            (r#"{"transitive_tag_keys": ["r"]}"#, false),
            (
                r#"{"principal_tags": {"r": ["a"]}, "transitive_tag_keys": [1]}"#,
                false,
            ),
            (r#"[]"#, false),
        ] {
            let answer = fast(text);
            assert_eq!(answer.is_some(), fast_path, "{text}");
            if answer.is_some() {
                assert_eq!(answer, strict(text), "{text}");
            }
        }
    }

    /// A tags claim as text, from parts that make every rule and shape likely.
    fn claim_text() -> impl Strategy<Value = String> {
        let word = prop::sample::select(vec![
            "r", "R", "ref", "Ref", "aws:k", "a b", "x!", "\\u0072", "", "é",
        ]);
        // Mostly the accepted shape, so that many claims reach the end of both readers.
        let value = prop_oneof![
            20 => word.clone().prop_map(|w| format!("[\"{w}\"]")),
            1 => Just("[]".to_owned()),
            1 => Just("[\"a\", \"b\"]".to_owned()),
            1 => Just("\"a\"".to_owned()),
            1 => Just("[1]".to_owned()),
            1 => Just("[{\"a\": 1, \"a\": 2}]".to_owned()),
        ];
        let principal = prop::collection::vec((word.clone(), value), 0..6).prop_map(|pairs| {
            let members: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", members.join(", "))
        });
        let transitive = prop::collection::vec(word, 0..4).prop_map(|keys| {
            let items: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
            format!("[{}]", items.join(", "))
        });
        let member = prop_oneof![
            6 => principal.prop_map(|p| format!("\"principal_tags\": {p}")),
            3 => transitive.prop_map(|t| format!("\"transitive_tag_keys\": {t}")),
            1 => Just("\"other\": 1".to_owned()),
        ];
        prop::collection::vec(member, 0..3).prop_map(|m| format!("{{{}}}", m.join(", ")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Wherever the reader without a value answers, it answers as the strict reader.
        #[test]
        fn the_fast_tags_reader_agrees_with_the_strict_one(text in claim_text()) {
            if let Some(answer) = fast(&text) {
                prop_assert_eq!(Some(answer), strict(&text), "{}", text);
            }
        }
    }
}
