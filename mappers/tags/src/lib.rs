//! AWS session-tag rules for the `https://aws.amazon.com/tags` claim.
//!
//! `sts:AssumeRoleWithWebIdentity` reads session tags from this claim and refuses the whole
//! call when one rule is broken, with an error that does not say which tag. claimex checks
//! the same rules before it signs anything, and mapper authors run the very same checks in
//! their own unit tests through the mapper SDK, so a bad tag is named where it is made.
//!
//! The rules (IAM User Guide, "Passing session tags in AWS STS" and "Tagging rules"):
//! - the claim is `{"principal_tags": {KEY: [VALUE]}, "transitive_tag_keys": [KEY, ...]}`;
//! - at most [`MAX_TAGS`] tags, each value an array of exactly one string;
//! - a key has 1 to [`MAX_KEY_CHARS`] characters, a value 0 to [`MAX_VALUE_CHARS`], both
//!   drawn from Unicode letters, separators and numbers plus `_ . : / = + - @`;
//! - neither keys nor values may start with `aws:` (in any case);
//! - keys are case-insensitive, so two keys equal ignoring case collide;
//! - `transitive_tag_keys` names tags that exist, each once, at most [`MAX_TAGS`] of them.

use std::borrow::Cow;
// Not HashSet: std's RandomState makes a wasm32-wasip2 guest import
// `wasi:random/insecure-seed`, which the mapper sandbox does not grant.
use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;
use unicode_general_category::{GeneralCategory, get_general_category};

/// The claim under which AWS reads session tags.
pub const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";
/// Most session tags one role session may carry.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const MAX_KEY_CHARS: usize = 128;
/// Longest tag value, in characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// Why a tags claim would be refused by AWS STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagError {
    /// The claim is not a JSON object.
    NotAnObject,
    /// The claim has a member other than `principal_tags` and `transitive_tag_keys`.
    UnknownMember(String),
    /// `principal_tags` is missing or not an object.
    PrincipalTagsNotAnObject,
    /// More than [`MAX_TAGS`] principal tags.
    TooManyTags(usize),
    /// A key is empty or longer than [`MAX_KEY_CHARS`] characters.
    KeyLength { key: String, chars: usize },
    /// A key holds a character outside the allowed set.
    KeyCharacter { key: String, character: char },
    /// A key starts with `aws:`.
    KeyReservedPrefix(String),
    /// Two keys are equal when case is ignored.
    KeyCollision { first: String, second: String },
    /// A tag's value is not an array of exactly one string.
    ValueShape(String),
    /// A value is longer than [`MAX_VALUE_CHARS`] characters.
    ValueLength { key: String, chars: usize },
    /// A value holds a character outside the allowed set.
    ValueCharacter { key: String, character: char },
    /// A value starts with `aws:`.
    ValueReservedPrefix(String),
    /// `transitive_tag_keys` is not an array of strings.
    TransitiveShape,
    /// More than [`MAX_TAGS`] transitive keys.
    TooManyTransitive(usize),
    /// A transitive key names no principal tag.
    TransitiveUnknown(String),
    /// A transitive key is listed twice.
    TransitiveDuplicate(String),
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::NotAnObject => write!(f, "the tags claim must be a JSON object"),
            TagError::UnknownMember(m) => write!(
                f,
                "the tags claim has an unknown member {m:?}: only principal_tags and transitive_tag_keys are allowed"
            ),
            TagError::PrincipalTagsNotAnObject => {
                write!(f, "principal_tags must be a JSON object of KEY: [VALUE]")
            }
            TagError::TooManyTags(n) => {
                write!(f, "{n} session tags: AWS allows at most {MAX_TAGS}")
            }
            TagError::KeyLength { key, chars } => write!(
                f,
                "tag key {key:?} has {chars} characters: keys need 1 to {MAX_KEY_CHARS}"
            ),
            TagError::KeyCharacter { key, character } => write!(
                f,
                "tag key {key:?} has the character {character:?}: only letters, numbers, spaces and _ . : / = + - @ are allowed"
            ),
            TagError::KeyReservedPrefix(key) => {
                write!(f, "tag key {key:?} starts with the reserved prefix aws:")
            }
            TagError::KeyCollision { first, second } => write!(
                f,
                "tag keys {first:?} and {second:?} are equal ignoring case: AWS tag keys are case-insensitive"
            ),
            TagError::ValueShape(key) => write!(
                f,
                "tag {key:?} must have an array of exactly one string as its value"
            ),
            TagError::ValueLength { key, chars } => write!(
                f,
                "the value of tag {key:?} has {chars} characters: values may have at most {MAX_VALUE_CHARS}"
            ),
            TagError::ValueCharacter { key, character } => write!(
                f,
                "the value of tag {key:?} has the character {character:?}: only letters, numbers, spaces and _ . : / = + - @ are allowed"
            ),
            TagError::ValueReservedPrefix(key) => write!(
                f,
                "the value of tag {key:?} starts with the reserved prefix aws:"
            ),
            TagError::TransitiveShape => {
                write!(f, "transitive_tag_keys must be an array of strings")
            }
            TagError::TooManyTransitive(n) => {
                write!(f, "{n} transitive tag keys: AWS allows at most {MAX_TAGS}")
            }
            TagError::TransitiveUnknown(key) => write!(
                f,
                "transitive tag key {key:?} names no tag in principal_tags"
            ),
            TagError::TransitiveDuplicate(key) => {
                write!(f, "transitive tag key {key:?} is listed twice")
            }
        }
    }
}

impl std::error::Error for TagError {}

/// The tag keys of a valid claim, for audit lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSummary {
    /// The principal tag keys, in claim order.
    pub keys: Vec<String>,
    /// The transitive tag keys, in claim order.
    pub transitive: Vec<String>,
}

/// Whether `c` may appear in a tag key or value: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
pub fn is_allowed_char(c: char) -> bool {
    if c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
    {
        return true;
    }
    if c.is_ascii() {
        return false;
    }
    use GeneralCategory::*;
    matches!(
        get_general_category(c),
        UppercaseLetter
            | LowercaseLetter
            | TitlecaseLetter
            | ModifierLetter
            | OtherLetter
            | SpaceSeparator
            | LineSeparator
            | ParagraphSeparator
            | DecimalNumber
            | LetterNumber
            | OtherNumber
    )
}

fn has_aws_prefix(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// Checks one tag key against AWS's rules.
pub fn check_key(key: &str) -> Result<(), TagError> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(TagError::KeyLength {
            key: key.to_owned(),
            chars,
        });
    }
    if let Some(character) = key.chars().find(|c| !is_allowed_char(*c)) {
        return Err(TagError::KeyCharacter {
            key: key.to_owned(),
            character,
        });
    }
    if has_aws_prefix(key) {
        return Err(TagError::KeyReservedPrefix(key.to_owned()));
    }
    Ok(())
}

/// Checks the value of tag `key` against AWS's rules.
pub fn check_value(key: &str, value: &str) -> Result<(), TagError> {
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Err(TagError::ValueLength {
            key: key.to_owned(),
            chars,
        });
    }
    if let Some(character) = value.chars().find(|c| !is_allowed_char(*c)) {
        return Err(TagError::ValueCharacter {
            key: key.to_owned(),
            character,
        });
    }
    if has_aws_prefix(value) {
        return Err(TagError::ValueReservedPrefix(key.to_owned()));
    }
    Ok(())
}

/// Makes free text (a workflow name, say) usable as a tag value, so that [`check_value`]
/// accepts it whatever it was: every character AWS does not allow becomes `_`, the result
/// is cut to [`MAX_VALUE_CHARS`] characters, and a leading `aws:` (AWS's reserved prefix, in
/// any case) becomes `aws_` with its case kept (`AWS: Deploy` gives `AWS_ Deploy`).
pub fn sanitize_value(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_VALUE_CHARS)
        .map(|c| if is_allowed_char(c) { c } else { '_' })
        .collect();
    if has_aws_prefix(&out) {
        // The prefix is ASCII: byte 3 is the colon.
        out.replace_range(3..4, "_");
    }
    out
}

/// Checks a whole `https://aws.amazon.com/tags` claim and returns its keys.
pub fn check_claim(claim: &Value) -> Result<TagSummary, TagError> {
    let object = claim.as_object().ok_or(TagError::NotAnObject)?;
    if let Some(unknown) = object
        .keys()
        .find(|k| *k != "principal_tags" && *k != "transitive_tag_keys")
    {
        return Err(TagError::UnknownMember(unknown.clone()));
    }
    let tags = match object.get("principal_tags") {
        Some(Value::Object(tags)) => tags,
        _ => return Err(TagError::PrincipalTagsNotAnObject),
    };
    let keys = check_principal_tags(tags.iter().map(|(key, value)| {
        let value = match value.as_array().map(Vec::as_slice) {
            Some([Value::String(v)]) => Some(v.as_str()),
            _ => None,
        };
        (key.as_str(), value)
    }))?;
    let transitive = match object.get("transitive_tag_keys") {
        None => Vec::new(),
        Some(Value::Array(list)) => check_transitive(list.iter().map(Value::as_str), &keys)?,
        Some(_) => return Err(TagError::TransitiveShape),
    };
    Ok(TagSummary { keys, transitive })
}

/// Checks principal tags given as `(key, value)` in the claim's key order, `None` for a value
/// that is not an array of exactly one string; their keys, in that order.
fn check_principal_tags<'a>(
    tags: impl ExactSizeIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Vec<String>, TagError> {
    if tags.len() > MAX_TAGS {
        return Err(TagError::TooManyTags(tags.len()));
    }
    // Keys are case-insensitive: each key's lower case (the key itself when it has nothing
    // to fold: ASCII without a capital), with the key it came from.
    let mut folded: Vec<(Cow<'a, str>, &str)> = Vec::with_capacity(tags.len());
    for (key, value) in tags {
        check_key(key)?;
        let value = value.ok_or_else(|| TagError::ValueShape(key.to_owned()))?;
        check_value(key, value)?;
        let lower = if key.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            Cow::Owned(key.to_lowercase())
        } else {
            Cow::Borrowed(key)
        };
        if let Some((_, first)) = folded.iter().find(|(l, _)| *l == lower) {
            return Err(TagError::KeyCollision {
                first: (*first).to_owned(),
                second: key.to_owned(),
            });
        }
        folded.push((lower, key));
    }
    Ok(folded.into_iter().map(|(_, key)| key.to_owned()).collect())
}

/// The same rules as [`check_claim`], over a claim its reader has already found in its one
/// accepted shape (`principal_tags` an object of `KEY: [VALUE]`, `transitive_tag_keys` absent or
/// an array of strings), so that no [`Value`] is built: `principal` are the tags as
/// `(key, value)` pairs in the order [`check_claim`] reads them (keys sorted, each once),
/// `transitive` the transitive keys as listed.
pub fn check_pairs(
    principal: &[(&str, &str)],
    transitive: &[&str],
) -> Result<TagSummary, TagError> {
    let keys = check_principal_tags(principal.iter().map(|(k, v)| (*k, Some(*v))))?;
    let transitive = check_transitive(transitive.iter().map(|k| Some(*k)), &keys)?;
    Ok(TagSummary { keys, transitive })
}

/// Checks the transitive keys (`None`: an item that is not a string) against the tag keys.
fn check_transitive<'a>(
    list: impl ExactSizeIterator<Item = Option<&'a str>>,
    keys: &[String],
) -> Result<Vec<String>, TagError> {
    if list.len() > MAX_TAGS {
        return Err(TagError::TooManyTransitive(list.len()));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let key = item.ok_or(TagError::TransitiveShape)?;
        if !keys.iter().any(|k| k == key) {
            return Err(TagError::TransitiveUnknown(key.to_owned()));
        }
        if !seen.insert(key) {
            return Err(TagError::TransitiveDuplicate(key.to_owned()));
        }
        out.push(key.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn tags(principal: Value) -> Value {
        json!({ "principal_tags": principal })
    }

    #[test]
    fn accepts_a_typical_claim() {
        let claim = json!({
            "principal_tags": {
                "repository": ["octo-org/octo-repo"],
                "ref": ["refs/heads/main"],
                "empty": [""],
                "ünïcode Ключ": ["值 ٣ x@y+z=w"]
            },
            "transitive_tag_keys": ["repository"]
        });
        let summary = check_claim(&claim).unwrap();
        assert_eq!(summary.keys.len(), 4);
        assert_eq!(summary.transitive, vec!["repository".to_owned()]);
    }

    /// A claim and a test of the error it must be refused with.
    type Case = (Value, fn(&TagError) -> bool);

    #[test]
    fn refuses_each_rule() {
        let cases: Vec<Case> = vec![
            (json!([]), |e| matches!(e, TagError::NotAnObject)),
            (
                json!({"principal_tags": {}, "x": 1}),
                |e| matches!(e, TagError::UnknownMember(m) if m == "x"),
            ),
            (json!({"principal_tags": []}), |e| {
                matches!(e, TagError::PrincipalTagsNotAnObject)
            }),
            (tags(json!({"": ["v"]})), |e| {
                matches!(e, TagError::KeyLength { chars: 0, .. })
            }),
            (tags(json!({"k".repeat(129): ["v"]})), |e| {
                matches!(e, TagError::KeyLength { chars: 129, .. })
            }),
            (tags(json!({"a#b": ["v"]})), |e| {
                matches!(e, TagError::KeyCharacter { character: '#', .. })
            }),
            (tags(json!({"AWS:x": ["v"]})), |e| {
                matches!(e, TagError::KeyReservedPrefix(_))
            }),
            (tags(json!({"Repo": ["a"], "rEPO": ["b"]})), |e| {
                matches!(e, TagError::KeyCollision { .. })
            }),
            // A key with nothing to fold against one that folds to it: ASCII, Cyrillic, and
            // the Kelvin sign, whose lower case is the ASCII "k".
            (tags(json!({"repo": ["a"], "Repo": ["b"]})), |e| {
                matches!(e, TagError::KeyCollision { .. })
            }),
            (tags(json!({"ключ": ["a"], "Ключ": ["b"]})), |e| {
                matches!(e, TagError::KeyCollision { .. })
            }),
            (tags(json!({"k": ["a"], "\u{212A}": ["b"]})), |e| {
                matches!(e, TagError::KeyCollision { .. })
            }),
            (tags(json!({"k": "v"})), |e| {
                matches!(e, TagError::ValueShape(_))
            }),
            (tags(json!({"k": ["a", "b"]})), |e| {
                matches!(e, TagError::ValueShape(_))
            }),
            (tags(json!({"k": []})), |e| {
                matches!(e, TagError::ValueShape(_))
            }),
            (tags(json!({"k": [1]})), |e| {
                matches!(e, TagError::ValueShape(_))
            }),
            (tags(json!({"k": ["v".repeat(257)]})), |e| {
                matches!(e, TagError::ValueLength { chars: 257, .. })
            }),
            (tags(json!({"k": ["a\nb"]})), |e| {
                matches!(
                    e,
                    TagError::ValueCharacter {
                        character: '\n',
                        ..
                    }
                )
            }),
            (tags(json!({"k": ["aws:thing"]})), |e| {
                matches!(e, TagError::ValueReservedPrefix(_))
            }),
            (
                json!({"principal_tags": {"k": ["v"]}, "transitive_tag_keys": "k"}),
                |e| matches!(e, TagError::TransitiveShape),
            ),
            (
                json!({"principal_tags": {"k": ["v"]}, "transitive_tag_keys": ["K"]}),
                |e| matches!(e, TagError::TransitiveUnknown(_)),
            ),
            (
                json!({"principal_tags": {"k": ["v"]}, "transitive_tag_keys": ["k", "k"]}),
                |e| matches!(e, TagError::TransitiveDuplicate(_)),
            ),
        ];
        for (claim, expected) in cases {
            let err = check_claim(&claim).expect_err(&claim.to_string());
            assert!(expected(&err), "{claim}: unexpected {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn counts_tags() {
        let fifty: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(["v"]))).collect();
        assert!(check_claim(&tags(Value::Object(fifty.clone()))).is_ok());
        let mut fifty_one = fifty;
        fifty_one.insert("k50".into(), json!(["v"]));
        assert_eq!(
            check_claim(&tags(Value::Object(fifty_one))),
            Err(TagError::TooManyTags(51))
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(check_key(&"é".repeat(128)).is_ok());
        assert!(check_value("k", &"é".repeat(256)).is_ok());
    }

    #[test]
    fn sanitizes_free_text() {
        assert_eq!(sanitize_value("CI (main) #1"), "CI _main_ _1");
        assert_eq!(sanitize_value(&"x".repeat(300)).chars().count(), 256);
        assert!(check_value("k", &sanitize_value("a\tb!c?")).is_ok());
    }

    /// Issue 14: free text starting with `aws:` (workflow names are free text) made a tag
    /// value AWS refuses.
    #[test]
    fn sanitized_values_never_start_with_the_reserved_prefix() {
        for text in [
            "aws: deploy",
            "AWS: Deploy to prod",
            "aWs:x",
            "aws:",
            "AWS:",
        ] {
            let clean = sanitize_value(text);
            assert_eq!(check_value("k", &clean), Ok(()), "{text:?} -> {clean:?}");
            assert_eq!(clean.chars().count(), text.chars().count(), "{text:?}");
        }
        assert_eq!(sanitize_value("AWS: Deploy to prod"), "AWS_ Deploy to prod");
        assert_eq!(sanitize_value("aws-deploy"), "aws-deploy");
        assert_eq!(sanitize_value("deploy aws:"), "deploy aws:");
    }
}
