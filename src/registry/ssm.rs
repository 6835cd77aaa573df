//! The SSM Parameter Store issuer source: one parameter per issuer under a prefix.
//!
//! This module owns the mapping from parameters to raw registry entries; validation,
//! snapshots, refresh, backoff and `/healthz` status belong to [`super::Registry`].
//!
//! Each issuer is one `String` or `SecureString` parameter named `<prefix><issuer id>` (the
//! default prefix is `/claimex/issuers/`) whose value is the JSON form of
//! [`IssuerSpec`](super::IssuerSpec), the same fields as the local file backend:
//!
//! ```json
//! {
//!   "issuer": "https://token.actions.githubusercontent.com",
//!   "audiences": ["https://claimex.example.com"],
//!   "mapper": "claimex_mapper_github.wasm",
//!   "mapper_sha256": "<64 hex digits, optional>",
//!   "mapper_config": {"allowed_owners": ["octo-org"]},
//!   "algorithms": ["RS256"],
//!   "output_audiences": ["sts.amazonaws.com"],
//!   "token_lifetime_secs": 900
//! }
//! ```
//!
//! Every load reads the whole prefix with `GetParametersByPath` (recursive, decrypted, every
//! page). A parameter nested deeper than the prefix (`/claimex/issuers/team/github`), of type
//! `StringList`, or whose value is not a valid entry becomes an invalid entry with the
//! parameter name as its origin: the registry logs and skips it, the others keep working.

use async_trait::async_trait;
use aws_sdk_ssm::types::{Parameter, ParameterType};

use super::{EntryError, IssuerSource, IssuerSpec, RawEntry, SourceError, valid_issuer_id};
use crate::aws::describe_error;

/// Issuers registered as SSM parameters under a prefix.
pub struct SsmSource {
    client: aws_sdk_ssm::Client,
    /// The prefix, always ending with `/`.
    prefix: String,
}

/// `prefix` with exactly one trailing `/` (the form parameter names start with).
pub fn normalize_prefix(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}

/// The `Path` argument of `GetParametersByPath` for a normalized prefix: the prefix without
/// its trailing `/`, except for the root `/`.
fn query_path(prefix: &str) -> &str {
    match prefix.trim_end_matches('/') {
        "" => "/",
        path => path,
    }
}

impl SsmSource {
    /// A source reading the parameters under `prefix` (e.g. `/claimex/issuers/`; a missing
    /// trailing `/` is added).
    pub fn new(client: aws_sdk_ssm::Client, prefix: &str) -> SsmSource {
        SsmSource {
            client,
            prefix: normalize_prefix(prefix),
        }
    }

    /// The normalized prefix (ends with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Turns one parameter into a raw entry: its id is the name minus the prefix.
    pub fn entry(&self, parameter: &Parameter) -> RawEntry {
        let name = parameter.name().unwrap_or_default();
        let origin = format!("ssm parameter {name}");
        let id = name.strip_prefix(&self.prefix).unwrap_or(name).to_owned();
        let spec = check_name(&id)
            .and_then(|()| check_type(parameter.r#type()))
            .and_then(|()| {
                serde_json::from_str::<serde_json::Value>(parameter.value().unwrap_or_default())
                    .map_err(|e| format!("the value is not a valid issuer entry (JSON): {e}"))
            })
            .map_err(EntryError::Parse)
            .and_then(IssuerSpec::from_value);
        RawEntry { id, origin, spec }
    }
}

fn check_name(id: &str) -> Result<(), String> {
    if id.contains('/') {
        return Err(format!(
            "nested parameter: issuer parameters must sit directly under the prefix, \
             named by the issuer id (found {id:?})"
        ));
    }
    if !valid_issuer_id(id) {
        return Err(format!(
            "issuer id {id:?} (the parameter name after the prefix) must be 1 to 64 of the \
             characters A-Z a-z 0-9 _ . -"
        ));
    }
    Ok(())
}

fn check_type(kind: Option<&ParameterType>) -> Result<(), String> {
    match kind {
        Some(ParameterType::String | ParameterType::SecureString) | None => Ok(()),
        Some(other) => Err(format!(
            "parameter type {} is not supported: use String or SecureString holding JSON",
            other.as_str()
        )),
    }
}

#[async_trait]
impl IssuerSource for SsmSource {
    fn describe(&self) -> String {
        format!("ssm {}", self.prefix)
    }

    async fn load(&self) -> Result<Vec<RawEntry>, SourceError> {
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(query_path(&self.prefix))
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut entries = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                SourceError(format!(
                    "ssm GetParametersByPath {}: {}",
                    self.prefix,
                    describe_error(&e)
                ))
            })?;
            entries.extend(page.parameters().iter().map(|p| self.entry(p)));
        }
        entries.sort_by(|a, b| a.origin.cmp(&b.origin));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(prefix: &str) -> SsmSource {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .build();
        SsmSource::new(aws_sdk_ssm::Client::from_conf(config), prefix)
    }

    fn parameter(name: &str, kind: ParameterType, value: &str) -> Parameter {
        Parameter::builder()
            .name(name)
            .r#type(kind)
            .value(value)
            .build()
    }

    const GOOD: &str = r#"{"issuer": "https://token.actions.githubusercontent.com",
        "audiences": ["https://claimex.example.com"], "mapper": "github.wasm"}"#;

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(source("/claimex/issuers").prefix(), "/claimex/issuers/");
        assert_eq!(source("/claimex/issuers/").prefix(), "/claimex/issuers/");
        assert_eq!(query_path("/claimex/issuers/"), "/claimex/issuers");
        assert_eq!(query_path("/"), "/");
        assert_eq!(source("/").prefix(), "/");
    }

    #[test]
    fn ids_are_names_after_the_prefix() {
        let s = source("/claimex/issuers/");
        for kind in [ParameterType::String, ParameterType::SecureString] {
            let entry = s.entry(&parameter("/claimex/issuers/github", kind, GOOD));
            assert_eq!(entry.id, "github");
            assert_eq!(entry.origin, "ssm parameter /claimex/issuers/github");
            assert!(entry.spec.is_ok(), "{:?}", entry.spec);
        }
    }

    #[test]
    fn bad_parameters_are_entry_errors() {
        let s = source("/claimex/issuers/");
        let cases = [
            (
                parameter("/claimex/issuers/team/github", ParameterType::String, GOOD),
                "nested parameter",
            ),
            (
                parameter("/claimex/issuers/git hub", ParameterType::String, GOOD),
                "must be 1 to 64",
            ),
            (
                parameter("/claimex/issuers/list", ParameterType::StringList, "a,b"),
                "StringList is not supported",
            ),
            (
                parameter("/claimex/issuers/json", ParameterType::String, "{nope"),
                "not a valid issuer entry",
            ),
            (
                parameter(
                    "/claimex/issuers/unknown",
                    ParameterType::String,
                    r#"{"issuer": "https://x.example", "audiences": ["a"], "mapper": "m.wasm", "colour": 1}"#,
                ),
                "unknown field `colour`",
            ),
        ];
        for (p, needle) in cases {
            let entry = s.entry(&p);
            let err = entry.spec.unwrap_err().to_string();
            assert!(err.contains(needle), "{}: {err}", entry.origin);
        }
    }
}
