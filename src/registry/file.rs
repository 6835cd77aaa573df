//! The local file issuer source, the embedded default.
//!
//! A TOML (`.toml`) or JSON (any other extension) file with one table per issuer id:
//!
//! ```toml
//! [issuers.github]
//! issuer = "https://token.actions.githubusercontent.com"
//! audiences = ["https://claimex.example.com"]
//! mapper = "claimex_mapper_github.wasm"
//! mapper_config = { allowed_owners = ["octo-org"] }
//! ```
//!
//! The file is read again on every refresh, so edits take effect without a restart.

use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;

use super::{IssuerSource, IssuerSpec, RawEntry, SourceError};

/// Issuers from a local TOML or JSON file.
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: PathBuf) -> FileSource {
        FileSource { path }
    }

    /// Parses the file's text into raw entries.
    pub fn parse(&self, text: &str) -> Result<Vec<RawEntry>, SourceError> {
        let shown = self.path.display();
        let is_toml = self.path.extension().is_some_and(|e| e == "toml");
        let document: Value = if is_toml {
            toml::from_str(text).map_err(|e| SourceError(format!("{shown}: {e}")))?
        } else {
            serde_json::from_str(text).map_err(|e| SourceError(format!("{shown}: {e}")))?
        };
        let Value::Object(mut top) = document else {
            return Err(SourceError(format!("{shown}: expected a table of issuers")));
        };
        if let Some(unknown) = top.keys().find(|k| *k != "issuers") {
            return Err(SourceError(format!(
                "{shown}: unknown top-level key {unknown:?}; issuers go under [issuers.<id>]"
            )));
        }
        let issuers = match top.remove("issuers") {
            None => return Ok(Vec::new()),
            Some(Value::Object(issuers)) => issuers,
            Some(_) => {
                return Err(SourceError(format!(
                    "{shown}: `issuers` must be a table of issuer ids"
                )));
            }
        };
        Ok(issuers
            .into_iter()
            .map(|(id, value)| RawEntry {
                origin: format!("{shown} [issuers.{id}]"),
                spec: IssuerSpec::from_value(value),
                id,
            })
            .collect())
    }
}

#[async_trait]
impl IssuerSource for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn load(&self) -> Result<Vec<RawEntry>, SourceError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| SourceError(format!("{}: {e}", self.path.display())))?;
        self.parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_per_entry_errors() {
        let source = FileSource::new("issuers.toml".into());
        let entries = source
            .parse(
                r#"
                [issuers.github]
                issuer = "https://token.actions.githubusercontent.com"
                audiences = ["a"]
                mapper = "github.wasm"
                mapper_config = { allowed_owners = ["octo-org"] }

                [issuers.broken]
                issuer = "https://x"
                "#,
            )
            .unwrap();
        assert_eq!(entries.len(), 2);
        let github = entries.iter().find(|e| e.id == "github").unwrap();
        let spec = github.spec.as_ref().unwrap();
        assert_eq!(
            spec.mapper_config().unwrap()["allowed_owners"][0],
            "octo-org"
        );
        let broken = entries.iter().find(|e| e.id == "broken").unwrap();
        assert!(
            broken
                .spec
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("missing field")
        );
        assert!(broken.origin.contains("[issuers.broken]"));
    }

    #[test]
    fn parses_json_and_refuses_bad_documents() {
        let source = FileSource::new("issuers.json".into());
        let entries = source
            .parse(r#"{"issuers": {"a": {"issuer": "https://a", "audiences": ["x"], "mapper": "m.wasm"}}}"#)
            .unwrap();
        assert!(entries[0].spec.is_ok());
        assert!(source.parse("[1]").is_err());
        assert!(
            source
                .parse(r#"{"issuer": {}}"#)
                .unwrap_err()
                .0
                .contains("unknown top-level key")
        );
        assert!(source.parse("{").is_err());
        assert!(source.parse("{}").unwrap().is_empty());
    }
}
