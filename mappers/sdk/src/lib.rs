//! The Rust SDK for claimex claims mappers.
//!
//! A mapper is one function from the verified claims of an inbound token to a [`Decision`]:
//!
//! ```
//! use claimex_mapper::{Decision, Input, Outbound};
//!
//! fn map(input: &Input) -> Decision {
//!     let Some(repo) = input.str_claim("repository") else {
//!         return Decision::deny("the token has no repository claim");
//!     };
//!     Outbound::new()
//!         .sub(input.str_claim("sub").unwrap_or_default())
//!         .tag("repository", repo)
//!         .allow()
//! }
//! // In a `cdylib` crate built for `wasm32-wasip2`:
//! // claimex_mapper::export_mapper!(map);
//! # let input = Input::new("github", "https://issuer", serde_json::json!({"repository": "a/b", "sub": "x"}), serde_json::Value::Null);
//! # assert!(matches!(map(&input), Decision::Allow(_)));
//! ```
//!
//! [`export_mapper!`] generates the WebAssembly Component export for the WIT contract in
//! `mappers/wit/`. The same function is plain Rust, so mapper crates unit-test it natively
//! with `cargo test`. [`Outbound::validate`] applies the session-tag rules the host applies
//! before signing, so a bad tag fails in the author's own tests first.

pub use claimex_tags::{self as tags, TAGS_CLAIM, TagError, sanitize_value};
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
pub use glob::glob_match;

/// What the host hands to the mapper for one exchange.
#[derive(Debug, Clone)]
pub struct Input {
    /// The id the issuer is registered under (e.g. `github`).
    pub issuer_id: String,
    /// The registered issuer URL, equal to the token's verified `iss`.
    pub issuer_url: String,
    /// The verified claims of the inbound token.
    pub claims: Map<String, Value>,
    /// The issuer entry's mapper configuration (`Value::Null` when none is set).
    pub config: Value,
}

impl Input {
    /// Builds an input by hand, for native unit tests. A `claims` value that is not an
    /// object yields empty claims.
    pub fn new(issuer_id: &str, issuer_url: &str, claims: Value, config: Value) -> Input {
        let claims = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Input {
            issuer_id: issuer_id.to_owned(),
            issuer_url: issuer_url.to_owned(),
            claims,
            config,
        }
    }

    /// The claim at `path`: a top-level name, or a dotted path into nested objects
    /// (`"a.b.c"`). A top-level claim whose name itself contains dots wins.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.claims.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut current = self.claims.get(parts.next()?)?;
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
}

/// The mapper's verdict on one exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Accept, with the claims of the outbound token.
    Allow(Map<String, Value>),
    /// Refuse, with a reason the caller will read. Keep secrets out of it.
    Deny(String),
}

impl Decision {
    /// A refusal with `reason`.
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision::Deny(reason.into())
    }
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

    /// Adds a principal (session) tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Outbound {
        self.tags
            .insert(key.into(), Value::Array(vec![Value::String(value.into())]));
        self
    }

    /// Adds a principal tag and marks it transitive (kept through role chaining).
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

    /// Applies the host's session-tag rules, naming the offending tag on failure.
    pub fn validate(&self) -> Result<(), TagError> {
        let claims = self.clone().into_claims();
        match claims.get(TAGS_CLAIM) {
            Some(tags) => claimex_tags::check_claim(tags).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Accepts the exchange with these claims.
    pub fn allow(self) -> Decision {
        Decision::Allow(self.into_claims())
    }
}

#[doc(hidden)]
pub fn __run(
    request: bindings::exports::claimex::mapper::mapper::Request,
    map: impl FnOnce(&Input) -> Decision,
) -> bindings::exports::claimex::mapper::mapper::Decision {
    use bindings::exports::claimex::mapper::mapper::Decision as Wire;
    let claims = match serde_json::from_str::<Map<String, Value>>(&request.claims) {
        Ok(claims) => claims,
        Err(e) => return Wire::Deny(format!("mapper could not read the claims: {e}")),
    };
    let config = match serde_json::from_str::<Value>(&request.config) {
        Ok(config) => config,
        Err(e) => return Wire::Deny(format!("mapper could not read its config: {e}")),
    };
    let input = Input {
        issuer_id: request.issuer_id,
        issuer_url: request.issuer_url,
        claims,
        config,
    };
    match map(&input) {
        Decision::Allow(claims) => Wire::Allow(Value::Object(claims).to_string()),
        Decision::Deny(reason) => Wire::Deny(reason),
    }
}

/// Exports a function `fn(&Input) -> Decision` as the claimex mapper of this component.
///
/// Use it once, at the root of a `cdylib` crate built with
/// `cargo build --target wasm32-wasip2 --release`.
///
/// The export exists only on `wasm32` targets. Elsewhere the macro only checks the
/// function's signature: the component export symbols (`claimex:mapper/mapper@0.1.0#map`)
/// cannot be linked into a native `cdylib`, and native builds are for unit tests.
#[macro_export]
macro_rules! export_mapper {
    ($map:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ClaimexMapperExport;
            impl $crate::bindings::exports::claimex::mapper::mapper::Guest for __ClaimexMapperExport {
                fn map(
                    request: $crate::bindings::exports::claimex::mapper::mapper::Request,
                ) -> $crate::bindings::exports::claimex::mapper::mapper::Decision {
                    $crate::__run(request, $map)
                }
            }
            $crate::bindings::__export_claims_mapper!(__ClaimexMapperExport with_types_in $crate::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&$crate::Input) -> $crate::Decision = $map;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Input {
        Input::new(
            "github",
            "https://token.actions.githubusercontent.com",
            json!({"sub": "repo:a/b", "run_id": 42, "nested": {"deep": {"x": "y"}}, "a.b": "dotted"}),
            Value::Null,
        )
    }

    #[test]
    fn reads_claims() {
        let input = input();
        assert_eq!(input.str_claim("sub"), Some("repo:a/b"));
        assert_eq!(input.text_claim("run_id").as_deref(), Some("42"));
        assert_eq!(input.str_claim("nested.deep.x"), Some("y"));
        assert_eq!(input.str_claim("a.b"), Some("dotted"));
        assert_eq!(input.claim("nested.missing"), None);
    }

    #[test]
    fn builds_the_tags_claim() {
        let out = Outbound::new()
            .sub("x")
            .tag("repository", "a/b")
            .transitive_tag("ref", "refs/heads/main");
        assert!(out.validate().is_ok());
        let claims = out.into_claims();
        assert_eq!(
            claims[TAGS_CLAIM],
            json!({"principal_tags": {"repository": ["a/b"], "ref": ["refs/heads/main"]},
                   "transitive_tag_keys": ["ref"]})
        );
    }

    #[test]
    fn validate_names_the_bad_tag() {
        let err = Outbound::new().tag("bad#key", "v").validate().unwrap_err();
        assert!(err.to_string().contains("bad#key"));
    }

    #[test]
    fn no_tags_no_claim() {
        assert!(
            !Outbound::new()
                .sub("s")
                .into_claims()
                .contains_key(TAGS_CLAIM)
        );
    }
}
