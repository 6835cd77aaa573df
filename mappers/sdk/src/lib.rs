//! The Rust SDK for claimex claims mappers (contract `claimex:mapper@0.2.0`).
//!
//! A mapper is one function from the verified claims of an inbound credential and the issuer
//! entry's typed configuration to the outbound claims, or a [`Deny`]:
//!
//! ```
//! use claimex_mapper::{Deny, Input, Outbound};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, Default)]
//! #[serde(default)]
//! pub struct Config {
//!     allowed_owners: Vec<String>,
//! }
//!
//! pub fn map(input: &Input, config: &Config) -> Result<Outbound, Deny> {
//!     let owner = input.require_str("repository_owner")?;
//!     let allowed = config.allowed_owners.iter().any(|o| o == owner);
//!     if !input.check("owner", allowed, || format!("repository owner {owner}")) {
//!         return Err(Deny::new("owner_not_allowed", format!("repository owner {owner} is not allowed")));
//!     }
//!     Ok(Outbound::new()
//!         .sub(input.require_str("sub")?)
//!         .tag("repository", input.require_str("repository")?))
//! }
//!
//! /// Runs when an issuer entry is loaded: refuse a configuration that cannot work.
//! pub fn validate(config: &Config) -> Result<(), String> {
//!     if config.allowed_owners.is_empty() { Err("set allowed_owners".into()) } else { Ok(()) }
//! }
//!
//! // In a `cdylib` crate built for `wasm32-wasip2`:
//! claimex_mapper::export_mapper!(map, validate = validate);
//! # let input = Input::new("github", "https://issuer", serde_json::json!({"repository_owner": "o", "repository": "o/r", "sub": "x"}));
//! # let config = claimex_mapper::load_config("{\"allowed_owners\": [\"o\"]}", validate).unwrap();
//! # assert!(map(&input, &config).is_ok());
//! ```
//!
//! [`export_mapper!`] generates the component's two exports: `validate-config` reads the
//! configuration into the author's type (refusing unknown fields, whether or not the type
//! says `#[serde(deny_unknown_fields)]`) and runs the optional validation hook; `map` does the
//! same, then calls the function. The function is plain Rust, so mapper crates unit-test it
//! natively with `cargo test`; [`load_config`] and [`run`] are exactly what the exports do,
//! for tests of the whole path. [`Outbound::validate`] applies the session-tag rules the host
//! applies before signing, so a bad tag fails in the author's own tests first.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::fmt;

pub use claimex_tags::{self as tags, TAGS_CLAIM, TagError, sanitize_value};
use serde::de::DeserializeOwned;
pub use serde_json::{self, Map, Value, json};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "claims-mapper",
        pub_export_macro: true,
        export_macro_name: "__export_claims_mapper",
        default_bindings_module: "claimex_mapper::bindings",
    });
}

mod glob;
#[allow(deprecated)]
pub use glob::glob_match;
pub use glob::{GlobError, MAX_PATTERN_CHARS, PathGlob, PathGlobs, wildcard_match};
mod prefix;
pub use prefix::{PrefixMap, longest_prefix};
mod claim;
mod readers;
pub use claim::Claim;

/// The contract version this SDK builds components for.
pub const CONTRACT: &str = "claimex:mapper/mapper@0.2.0";

/// Longest deny code, in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// Fewest characters of an outbound `sub` (AWS STS: `SubjectFromWebIdentityToken`).
pub const MIN_SUB_CHARS: usize = 6;
/// Most characters of an outbound `sub`.
pub const MAX_SUB_CHARS: usize = 255;

/// What kind of credential the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectKind {
    /// An OIDC id-token (GitHub Actions, GitLab CI, ...), verified against its issuer.
    #[default]
    Oidc,
    /// An AWS IAM identity, verified with AWS STS (planned in claimex).
    AwsIam,
}

/// One check a mapper made, reported when the host asks for an explanation
/// (`claimex mapper test --explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A short name, e.g. `allowed_refs`.
    pub name: String,
    /// Whether the credential passed it.
    pub passed: bool,
    /// What was compared.
    pub detail: String,
}

/// What the host hands to the mapper for one exchange.
///
/// The claims arrive as JSON text and are read only as far as the mapper asks: the accessors
/// ([`Input::claim`], [`Input::require_str`], ...) read the whole object into a
/// [`serde_json::Map`] on first use, while [`Input::read`] (the lean path) reads just the
/// claims the mapper's own struct names, over the text, without building that map.
#[derive(Debug)]
pub struct Input {
    /// What kind of credential the claims come from.
    pub subject_kind: SubjectKind,
    /// The id the issuer is registered under (e.g. `github`).
    pub issuer_id: String,
    /// For OIDC, the registered issuer URL, equal to the token's verified `iss`.
    pub issuer_url: String,
    /// The claims as the host sent them (`None`: built from a value by [`Input::new`]).
    text: Option<String>,
    /// The claims as one JSON object, read on first use.
    value: OnceCell<Value>,
    /// Why the claims could not be read, when they could not: the call fails (a host that
    /// sends claims which are not a JSON object breaks the contract).
    unreadable: RefCell<Option<String>>,
    explain: bool,
    checks: RefCell<Vec<Check>>,
}

impl Input {
    /// Builds the input of an OIDC exchange by hand, for native unit tests. A `claims` value
    /// that is not an object yields empty claims.
    pub fn new(issuer_id: &str, issuer_url: &str, claims: Value) -> Input {
        let claims = match claims {
            Value::Object(map) => Value::Object(map),
            _ => Value::Object(Map::new()),
        };
        Input {
            subject_kind: SubjectKind::Oidc,
            issuer_id: issuer_id.to_owned(),
            issuer_url: issuer_url.to_owned(),
            text: None,
            value: OnceCell::from(claims),
            unreadable: RefCell::new(None),
            explain: false,
            checks: RefCell::new(Vec::new()),
        }
    }

    /// The input of one call as the host makes it: the claims stay text until read.
    fn from_request(request: Request) -> Input {
        Input {
            subject_kind: request.subject_kind,
            issuer_id: request.issuer_id,
            issuer_url: request.issuer_url,
            text: Some(request.claims),
            value: OnceCell::new(),
            unreadable: RefCell::new(None),
            explain: request.explain,
            checks: RefCell::new(Vec::new()),
        }
    }

    fn unreadable(&self, why: String) {
        self.unreadable.borrow_mut().get_or_insert(why);
    }

    /// The verified claims, one JSON object (read from the host's text on first use).
    pub fn claims(&self) -> &Map<String, Value> {
        let value = self.value.get_or_init(|| {
            let text = self.text.as_deref().unwrap_or("{}");
            match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(map) => Value::Object(map),
                Err(e) => {
                    self.unreadable(e.to_string());
                    Value::Object(Map::new())
                }
            }
        });
        match value {
            Value::Object(map) => map,
            // Never stored: only objects are.
            _ => {
                static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
                EMPTY.get_or_init(Map::new)
            }
        }
    }

    /// The lean path: the claims read straight into the mapper's own type, which names only
    /// the claims it needs (every other claim is skipped unread), borrowing their text where
    /// it can. Use [`Claim`] fields: they take any JSON value, so a claim of an unexpected type
    /// is the mapper's to judge (`missing_claim` or `invalid_claim` through
    /// [`Claim::require_str`]), not a read error.
    ///
    /// ```
    /// use claimex_mapper::{Claim, Deny, Input, Outbound, json};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize, Default)]
    /// #[serde(default)]
    /// struct Claims<'a> {
    ///     #[serde(borrow)]
    ///     sub: Claim<'a>,
    ///     #[serde(borrow)]
    ///     repository_owner: Claim<'a>,
    /// }
    ///
    /// fn map(input: &Input) -> Result<Outbound, Deny> {
    ///     let claims: Claims = input.read()?;
    ///     if claims.repository_owner.as_str() != Some("octo-org") {
    ///         return Err(Deny::new("owner_not_allowed", "not octo-org"));
    ///     }
    ///     Ok(Outbound::new().sub(claims.sub.require_sub("sub")?))
    /// }
    /// # let input = Input::new("github", "https://x", json!({"sub": "repo:octo-org/r:ref:x", "repository_owner": "octo-org"}));
    /// # assert!(map(&input).is_ok());
    /// ```
    ///
    /// A read error is an `invalid_claim` [`Deny`] (a 403 with the reason, not a failed call):
    /// a claim the type names given twice (RFC 7519 §4 wants claim names unique; the host
    /// refuses only registered claims given twice), or claims that are not a JSON object.
    pub fn read<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, Deny> {
        let read = match &self.text {
            // serde reads a struct from a JSON list too, by position: claims are an object.
            Some(text) if !text.trim_start().starts_with('{') => {
                return Err(Deny::new(
                    codes::INVALID_CLAIM,
                    "the credential's claims could not be read: they are not a JSON object",
                ));
            }
            Some(text) => serde_json::from_str::<T>(text),
            None => T::deserialize(self.value.get().unwrap_or_else(|| empty_object())),
        };
        read.map_err(|e| {
            Deny::new(
                codes::INVALID_CLAIM,
                format!("the credential's claims could not be read: {e}"),
            )
        })
    }

    /// The same input with another subject kind.
    pub fn with_subject_kind(mut self, kind: SubjectKind) -> Input {
        self.subject_kind = kind;
        self
    }

    /// The same input, asking for the checks (as `claimex mapper test --explain` does).
    pub fn explaining(mut self) -> Input {
        self.explain = true;
        self
    }

    /// Whether the host asked for the checks. [`Input::check`] already does nothing when it
    /// did not; test this only to skip work done for the checks alone.
    pub fn explain(&self) -> bool {
        self.explain
    }

    /// Records a check when the host asked for an explanation, and returns `passed`.
    /// `detail` is called only then, so the exchange path pays nothing for it:
    ///
    /// ```
    /// # use claimex_mapper::{Deny, Input};
    /// # fn f(input: &Input, git_ref: &str) -> Result<(), Deny> {
    /// let ok = git_ref == "refs/heads/main";
    /// if !input.check("ref", ok, || format!("ref {git_ref:?}, wanted refs/heads/main")) {
    ///     return Err(Deny::new("ref_not_allowed", format!("ref {git_ref:?} is not allowed")));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn check<D: Into<String>>(
        &self,
        name: &str,
        passed: bool,
        detail: impl FnOnce() -> D,
    ) -> bool {
        if self.explain {
            self.checks.borrow_mut().push(Check {
                name: name.to_owned(),
                passed,
                detail: detail().into(),
            });
        }
        passed
    }

    /// The checks recorded so far (none unless [`Input::explain`]).
    pub fn checks(&self) -> Vec<Check> {
        self.checks.borrow().clone()
    }

    /// The claim at `path`: a top-level name, or a dotted path into nested objects
    /// (`"a.b.c"`). A top-level claim whose name itself contains dots wins.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        let claims = self.claims();
        if let Some(v) = claims.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut current = claims.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// The claim at `path` when it is a string.
    pub fn str_claim(&self, path: &str) -> Option<&str> {
        self.claim(path)?.as_str()
    }

    /// The claim at `path` as text: strings as they are, numbers and booleans printed.
    /// GitHub and GitLab send most ids as strings and a few as numbers; this reads both.
    pub fn text_claim(&self, path: &str) -> Option<String> {
        match self.claim(path)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The string claim at `path`, or a [`Deny`] `missing_claim` (absent or null) or
    /// `invalid_claim` (not a string) that names it.
    pub fn require_str(&self, path: &str) -> Result<&str, Deny> {
        match self.claim(path) {
            Some(Value::String(s)) => Ok(s),
            found => Err(claim_deny(path, found, "a string")),
        }
    }

    /// The string claim at `path` as an outbound `sub`: like [`Input::require_str`], and a
    /// [`Deny`] `invalid_sub` when it is not [`MIN_SUB_CHARS`] to [`MAX_SUB_CHARS`]
    /// characters, which AWS STS would refuse (and so the host does).
    pub fn require_sub(&self, path: &str) -> Result<&str, Deny> {
        let sub = self.require_str(path)?;
        check_sub(sub).map_err(|reason| {
            Deny::new(
                codes::INVALID_SUB,
                format!("the credential's {path} claim {reason}"),
            )
        })?;
        Ok(sub)
    }

    /// The claim at `path` as text (see [`Input::text_claim`]), or a [`Deny`]
    /// `missing_claim` (absent or null) or `invalid_claim` (an object or a list).
    pub fn require_text(&self, path: &str) -> Result<String, Deny> {
        match self.text_claim(path) {
            Some(text) => Ok(text),
            None => Err(claim_deny(
                path,
                self.claim(path),
                "a string, number or boolean",
            )),
        }
    }
}

fn empty_object() -> &'static Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

/// Checks an outbound `sub` against AWS STS's rule: [`MIN_SUB_CHARS`] to [`MAX_SUB_CHARS`]
/// characters. The error completes a sentence about the sub: `has 300 characters: AWS
/// accepts 6 to 255`.
pub fn check_sub(sub: &str) -> Result<(), String> {
    let chars = sub.chars().count();
    if (MIN_SUB_CHARS..=MAX_SUB_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(format!(
            "has {chars} characters: AWS accepts {MIN_SUB_CHARS} to {MAX_SUB_CHARS} in a sub"
        ))
    }
}

fn claim_deny(path: &str, found: Option<&Value>, wanted: &str) -> Deny {
    match found {
        None | Some(Value::Null) => Deny::new(
            codes::MISSING_CLAIM,
            format!("the credential has no {path} claim"),
        ),
        Some(_) => Deny::new(
            codes::INVALID_CLAIM,
            format!("the credential's {path} claim is not {wanted}"),
        ),
    }
}

/// The deny codes the SDK itself uses.
pub mod codes {
    /// A claim the mapper needs is absent or null.
    pub const MISSING_CLAIM: &str = "missing_claim";
    /// A claim the mapper needs has the wrong type.
    pub const INVALID_CLAIM: &str = "invalid_claim";
    /// The session tags the mapper built break AWS's rules ([`crate::Outbound::validate`]).
    pub const INVALID_SESSION_TAGS: &str = "invalid_session_tags";
    /// The outbound `sub` would not be [`crate::MIN_SUB_CHARS`] to [`crate::MAX_SUB_CHARS`]
    /// characters ([`crate::Input::require_sub`]).
    pub const INVALID_SUB: &str = "invalid_sub";
}

/// Describes what a configuration list allows, for a deny reason: `mapper_config.KEY allows
/// "a", "b"` (at most ten values, then how many more), or `mapper_config.KEY is empty`. The
/// values are the operator's configuration (ids, refs, names), which a CI user may see; keep
/// secrets out of configuration lists.
pub fn allowed_by<S: AsRef<str>>(key: &str, values: impl IntoIterator<Item = S>) -> String {
    const SHOWN: usize = 10;
    let mut text = format!("mapper_config.{key} allows ");
    let mut count = 0usize;
    for value in values {
        if count < SHOWN {
            if count > 0 {
                text.push_str(", ");
            }
            let shown: String = value.as_ref().chars().take(128).collect();
            text.push_str(&format!("{shown:?}"));
        }
        count += 1;
    }
    if count == 0 {
        return format!("mapper_config.{key} is empty");
    }
    if count > SHOWN {
        text.push_str(&format!(" and {} more", count - SHOWN));
    }
    text
}

/// A policy refusal: the caller gets a 403 `access_denied` with the reason, and the audit
/// line records the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    code: Cow<'static, str>,
    reason: String,
}

impl Deny {
    /// A refusal. `code` is stable and machine-readable: 1 to 64 characters of `[a-z0-9_]`
    /// (e.g. `owner_not_allowed`; a mapper whose code breaks this shape fails the call, see
    /// [`is_valid_code`]). `reason` tells a CI user what to fix; keep secrets out of it.
    pub fn new(code: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Deny {
        Deny {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Deny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl From<TagError> for Deny {
    fn from(e: TagError) -> Deny {
        Deny::new(
            codes::INVALID_SESSION_TAGS,
            format!("the mapper built invalid session tags: {e}"),
        )
    }
}

/// Whether `code` is a valid deny code: 1 to [`MAX_CODE_CHARS`] characters of `[a-z0-9_]`.
pub fn is_valid_code(code: &str) -> bool {
    (1..=MAX_CODE_CHARS).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A builder for the claims of the outbound token.
///
/// The host owns `iss`, `iat`, `nbf`, `exp` and `jti`: setting them here makes the host
/// refuse the exchange. `aud` defaults to `sts.amazonaws.com` on the host side.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    claims: Map<String, Value>,
    tags: Map<String, Value>,
    transitive: Vec<Value>,
}

impl Outbound {
    /// An empty set of outbound claims.
    pub fn new() -> Outbound {
        Outbound::default()
    }

    /// Sets `sub`, which AWS logs in CloudTrail as `SubjectFromWebIdentityToken`.
    #[allow(clippy::should_implement_trait)] // `sub` is the JWT claim, not subtraction.
    pub fn sub(self, sub: impl Into<String>) -> Outbound {
        self.claim("sub", Value::String(sub.into()))
    }

    /// Sets `aud` to one audience.
    pub fn aud(self, aud: impl Into<String>) -> Outbound {
        self.claim("aud", Value::String(aud.into()))
    }

    /// Sets any other claim.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Outbound {
        self.claims.insert(name.into(), value);
        self
    }

    /// Adds a principal (session) tag. The value is made a valid tag value first when it is
    /// not one ([`sanitize_value`]: disallowed characters become `_`, it is cut to 256
    /// characters, a leading `aws:` becomes `aws_`), so a claim's value, whatever it holds,
    /// never makes the output invalid. [`Outbound::tag_exact`] keeps it as given.
    pub fn tag(self, key: impl Into<String>, value: impl Into<String>) -> Outbound {
        let value = value.into();
        let value = if claimex_tags::check_value("", &value).is_ok() {
            value
        } else {
            sanitize_value(&value)
        };
        self.tag_exact(key, value)
    }

    /// Adds a principal tag with its value exactly as given: a value AWS would refuse
    /// makes the host refuse the output (or [`Outbound::validate`] deny it).
    pub fn tag_exact(mut self, key: impl Into<String>, value: impl Into<String>) -> Outbound {
        self.tags
            .insert(key.into(), Value::Array(vec![Value::String(value.into())]));
        self
    }

    /// Adds a principal tag (its value sanitized, as [`Outbound::tag`] does) and marks it
    /// transitive (kept through role chaining).
    pub fn transitive_tag(self, key: impl Into<String>, value: impl Into<String>) -> Outbound {
        let key = key.into();
        let mut out = self.tag(key.clone(), value);
        out.transitive.push(Value::String(key));
        out
    }

    /// Marks an already added tag as transitive.
    pub fn make_transitive(mut self, key: impl Into<String>) -> Outbound {
        self.transitive.push(Value::String(key.into()));
        self
    }

    /// The claims as the host will receive them, as JSON text: the same text as
    /// [`Outbound::into_claims`] then `to_string` gives, written without building the map.
    pub fn to_json(&self) -> String {
        use serde::ser::{SerializeMap, Serializer};
        struct Tags<'a>(&'a Outbound);
        impl serde::Serialize for Tags<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("principal_tags", &self.0.tags)?;
                if !self.0.transitive.is_empty() {
                    map.serialize_entry("transitive_tag_keys", &self.0.transitive)?;
                }
                map.end()
            }
        }
        struct Claims<'a>(&'a Outbound);
        impl serde::Serialize for Claims<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let out = self.0;
                let tagged = !out.tags.is_empty() || !out.transitive.is_empty();
                let mut map = serializer.serialize_map(None)?;
                // In the map's (sorted) order, the tags claim in its place: the same text as
                // `into_claims` then `to_string` writes.
                let mut pending = tagged;
                for (name, value) in &out.claims {
                    if pending && name.as_str() >= TAGS_CLAIM {
                        map.serialize_entry(TAGS_CLAIM, &Tags(out))?;
                        pending = false;
                    }
                    // `into_claims` lets the tags replace a claim set under their name.
                    if !(tagged && name == TAGS_CLAIM) {
                        map.serialize_entry(name, value)?;
                    }
                }
                if pending {
                    map.serialize_entry(TAGS_CLAIM, &Tags(out))?;
                }
                map.end()
            }
        }
        // Strings and maps of strings always serialize.
        serde_json::to_string(&Claims(self)).unwrap_or_default()
    }

    /// The claims as the host will receive them.
    pub fn into_claims(self) -> Map<String, Value> {
        let mut claims = self.claims;
        if !self.tags.is_empty() || !self.transitive.is_empty() {
            let mut tags = Map::new();
            tags.insert("principal_tags".into(), Value::Object(self.tags));
            if !self.transitive.is_empty() {
                tags.insert("transitive_tag_keys".into(), Value::Array(self.transitive));
            }
            claims.insert(TAGS_CLAIM.into(), Value::Object(tags));
        }
        claims
    }

    /// Applies the host's session-tag rules, naming the offending tag on failure. In a mapper,
    /// `out.validate()?` denies with `invalid_session_tags`.
    pub fn validate(&self) -> Result<(), TagError> {
        let claims = self.clone().into_claims();
        match claims.get(TAGS_CLAIM) {
            Some(tags) => claimex_tags::check_claim(tags).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The decision as it goes to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept, with the outbound claims as one JSON object.
    Allow(String),
    /// Refuse.
    Deny(Deny),
}

/// The decision and the checks behind it, as they go to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// The checks, when the request asked for them.
    pub checks: Vec<Check>,
}

/// One call of `map` as the host makes it (the WIT `request`, in Rust).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// What kind of credential the claims come from.
    pub subject_kind: SubjectKind,
    /// The registered issuer id.
    pub issuer_id: String,
    /// The registered issuer URL (OIDC).
    pub issuer_url: String,
    /// The verified claims, one JSON object.
    pub claims: String,
    /// The entry's `mapper_config` as JSON, `null` when unset.
    pub config: String,
    /// Whether the host wants the checks.
    pub explain: bool,
}

/// A mapper function, as [`export_mapper!`] takes it.
pub type MapFn<C> = fn(&Input, &C) -> Result<Outbound, Deny>;
/// A configuration validation hook, as [`export_mapper!`] takes it.
pub type ValidateFn<C> = fn(&C) -> Result<(), String>;

/// The hook of a mapper without one: every configuration its type can read is valid.
pub fn no_validation<C>(_config: &C) -> Result<(), String> {
    Ok(())
}

/// Reads an issuer entry's `mapper_config` (JSON) into the mapper's configuration type, as
/// `validate-config` does when the host loads the entry:
///
/// - `null` (no `mapper_config`) is read as `null` when the type takes it (an `Option`),
///   else as `{}` (a `#[serde(default)]` struct: its defaults);
/// - a member the type does not read is refused (``unknown field `rules.0.tag` ``), even
///   without `#[serde(deny_unknown_fields)]`, so a typo never silently widens a policy;
/// - then `validate` runs.
///
/// The error is the message the host shows for the entry.
pub fn load_config<C: DeserializeOwned>(json: &str, validate: ValidateFn<C>) -> Result<C, String> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("the configuration is not JSON: {e}"))?;
    let config = if value.is_null() {
        match read_strictly(&Value::Null) {
            Ok(config) => config,
            Err(_) => read_strictly(&Value::Object(Map::new()))?,
        }
    } else {
        read_strictly(&value)?
    };
    validate(&config)?;
    Ok(config)
}

/// Deserializes `value`, refusing the members the type ignored.
fn read_strictly<C: DeserializeOwned>(value: &Value) -> Result<C, String> {
    let mut unknown: Vec<String> = Vec::new();
    let config = serde_ignored::deserialize(value, |path| {
        let mut dotted = String::new();
        write_path(&path, &mut dotted);
        // An empty path: the type itself is `IgnoredAny`, it takes anything on purpose.
        if !dotted.is_empty() {
            unknown.push(dotted);
        }
    })
    .map_err(|e: serde_json::Error| e.to_string())?;
    match unknown.as_slice() {
        [] => Ok(config),
        [one] => Err(format!("unknown field `{one}`")),
        many => Err(format!("unknown fields `{}`", many.join("`, `"))),
    }
}

/// Writes `path` as `rules.0.tag` (serde_ignored's own form marks options with `?`).
fn write_path(path: &serde_ignored::Path<'_>, out: &mut String) {
    use serde_ignored::Path;
    let (parent, segment) = match path {
        Path::Root => return,
        Path::Seq { parent, index } => (parent, index.to_string()),
        Path::Map { parent, key } => (parent, key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => {
            return write_path(parent, out);
        }
    };
    write_path(parent, out);
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(&segment);
}

/// What the `map` export does: reads the claims and the configuration, calls `map`, and
/// packs the outcome. `Err` is a mapper failure (unreadable claims, a configuration that
/// does not load, an invalid deny code): the host answers 500, not 403.
pub fn run<C: DeserializeOwned>(
    request: Request,
    map: MapFn<C>,
    validate: ValidateFn<C>,
) -> Result<Verdict, String> {
    let config = load_config(&request.config, validate)
        .map_err(|e| format!("mapper configuration is invalid: {e}"))?;
    let input = Input::from_request(request);
    let outcome = map(&input, &config);
    if let Some(why) = input.unreadable.take() {
        return Err(format!("mapper could not read the claims: {why}"));
    }
    let decision = match outcome {
        Ok(out) => Decision::Allow(out.to_json()),
        Err(deny) if is_valid_code(deny.code()) => Decision::Deny(deny),
        Err(deny) => {
            return Err(format!(
                "mapper denied with the code {:?}, which is not 1 to {MAX_CODE_CHARS} characters of [a-z0-9_]",
                deny.code()
                    .chars()
                    .take(MAX_CODE_CHARS + 1)
                    .collect::<String>()
            ));
        }
    };
    Ok(Verdict {
        decision,
        checks: input.checks.into_inner(),
    })
}

#[doc(hidden)]
pub mod __export {
    //! What the generated exports call: conversions between the WIT types and the SDK's.
    use super::*;
    use crate::bindings::exports::claimex::mapper::mapper as wire;

    pub fn validate_config<C: DeserializeOwned>(
        config: String,
        _map: MapFn<C>,
        validate: ValidateFn<C>,
    ) -> Result<(), String> {
        load_config(&config, validate).map(|_| ())
    }

    pub fn map<C: DeserializeOwned>(
        request: wire::Request,
        map: MapFn<C>,
        validate: ValidateFn<C>,
    ) -> Result<wire::Verdict, String> {
        let request = Request {
            subject_kind: match request.subject_kind {
                wire::SubjectKind::Oidc => SubjectKind::Oidc,
                wire::SubjectKind::AwsIam => SubjectKind::AwsIam,
            },
            issuer_id: request.issuer_id,
            issuer_url: request.issuer_url,
            claims: request.claims,
            config: request.config,
            explain: request.explain,
        };
        let verdict = run(request, map, validate)?;
        Ok(wire::Verdict {
            decision: match verdict.decision {
                Decision::Allow(json) => wire::Decision::Allow(json),
                Decision::Deny(deny) => wire::Decision::Deny(wire::Denial {
                    code: deny.code.into_owned(),
                    reason: deny.reason,
                }),
            },
            checks: verdict
                .checks
                .into_iter()
                .map(|c| wire::Check {
                    name: c.name,
                    passed: c.passed,
                    detail: c.detail,
                })
                .collect(),
        })
    }
}

/// Exports a mapper function as this component's `claimex:mapper/mapper@0.2.0`.
///
/// ```ignore
/// claimex_mapper::export_mapper!(map);                       // no validation hook
/// claimex_mapper::export_mapper!(map, validate = validate);  // with one
/// ```
///
/// `map` is a `fn(&Input, &Config) -> Result<Outbound, Deny>` where `Config` is any
/// `serde::de::DeserializeOwned` type (a struct with `#[derive(Deserialize)]`, or
/// `serde_json::Value` to take any configuration); `validate` a `fn(&Config) -> Result<(),
/// String>`. Use the macro once, at the root of a `cdylib` crate built with
/// `cargo build --target wasm32-wasip2 --release`.
///
/// The exports exist only on `wasm32` targets. Elsewhere the macro only checks the
/// functions' signatures: the component export symbols cannot be linked into a native
/// `cdylib`, and native builds are for unit tests.
#[macro_export]
macro_rules! export_mapper {
    ($map:path) => {
        $crate::export_mapper!($map, validate = $crate::no_validation);
    };
    ($map:path, validate = $validate:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::exports::claimex::mapper::mapper as __wire;
            struct __ClaimexMapperExport;
            impl __wire::Guest for __ClaimexMapperExport {
                fn validate_config(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__export::validate_config(config, $map, $validate)
                }
                fn map(
                    request: __wire::Request,
                ) -> ::std::result::Result<__wire::Verdict, ::std::string::String> {
                    $crate::__export::map(request, $map, $validate)
                }
            }
            $crate::bindings::__export_claims_mapper!(__ClaimexMapperExport with_types_in $crate::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            #[allow(dead_code)]
            fn __claimex_mapper_signatures() {
                $crate::__signatures($map, $validate);
            }
        };
    };
}

#[doc(hidden)]
pub fn __signatures<C: DeserializeOwned>(_map: MapFn<C>, _validate: ValidateFn<C>) {}

#[cfg(test)]
mod tests;
