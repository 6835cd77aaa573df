//! The signing-key rotation state, pure: which key signs and which are only published, and
//! the operator's steps on it (stage, promote, retire), each keeping verifiers able to check
//! every token in flight. Stored as JSON in the SSM parameter `signer.kms_keys_parameter` by
//! the KMS adapter and the `claimex keys` command.

use serde::{Deserialize, Serialize};

use super::SignerSettings;

/// The most keys a key set may name (IAM reads at most 100 keys of each type).
pub const MAX_KEYS: usize = 100;

/// Why a rotation state or step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// The parameter's value is not the expected JSON.
    #[error(r#"expected {{"current": "<key>", "published": ["<key>", ...]}}: {0}"#)]
    NotJson(String),
    /// No current key.
    #[error("current must name a KMS key")]
    NoCurrent,
    /// An empty key in `published`.
    #[error("published must not contain an empty key")]
    EmptyKey,
    /// Too many keys.
    #[error("at most {MAX_KEYS} keys may be published")]
    TooMany,
    /// Staging the key that already signs.
    #[error("{0} is already the current key")]
    AlreadyCurrent(String),
    /// Promoting a key verifiers have not seen yet.
    #[error(
        "{0} is not published yet: stage it first (`claimex keys stage {0}`) and wait until \
         verifiers have fetched the JWKS with it, then promote it (--force skips this check)"
    )]
    NotStaged(String),
    /// Retiring the key that signs.
    #[error("{0} is the current key and cannot be retired: promote another key first")]
    RetireCurrent(String),
    /// Retiring a key that is not published.
    #[error("{0} is not published")]
    NotPublished(String),
}

/// The key set as the operator names it: the key that signs and the keys that are only
/// published (previous and pending). The JSON value of the rotation parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRefs {
    /// The key that signs (key id, key ARN, alias name or alias ARN).
    pub current: String,
    /// Keys published besides the current one.
    #[serde(default)]
    pub published: Vec<String>,
}

impl KeyRefs {
    /// Parses and checks a parameter value: `current` non-empty, no empty entries, at most
    /// [`MAX_KEYS`] keys. Duplicates and a repeated current key are dropped.
    pub fn parse(text: &str) -> Result<KeyRefs, RotationError> {
        let refs: KeyRefs =
            serde_json::from_str(text).map_err(|e| RotationError::NotJson(e.to_string()))?;
        refs.checked()
    }

    /// The same set with duplicates removed, checked.
    pub fn checked(mut self) -> Result<KeyRefs, RotationError> {
        self.current = self.current.trim().to_owned();
        if self.current.is_empty() {
            return Err(RotationError::NoCurrent);
        }
        let mut published: Vec<String> = Vec::new();
        for key in self.published.drain(..) {
            let key = key.trim().to_owned();
            if key.is_empty() {
                return Err(RotationError::EmptyKey);
            }
            if key != self.current && !published.contains(&key) {
                published.push(key);
            }
        }
        self.published = published;
        if self.published.len() + 1 > MAX_KEYS {
            return Err(RotationError::TooMany);
        }
        Ok(self)
    }

    /// The current key, then the published ones.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.as_str()).chain(self.published.iter().map(String::as_str))
    }

    /// Publishes `key` without signing with it (the pending key of a rotation).
    pub fn stage(&mut self, key: &str) -> Result<(), RotationError> {
        if self.current == key {
            return Err(RotationError::AlreadyCurrent(key.to_owned()));
        }
        if !self.published.iter().any(|k| k == key) {
            self.published.push(key.to_owned());
        }
        Ok(())
    }

    /// Makes `key` the current key; the old current key stays published. Unless `force`,
    /// `key` must be published already, so verifiers trust it before it signs.
    pub fn promote(&mut self, key: &str, force: bool) -> Result<(), RotationError> {
        if self.current == key {
            return Ok(());
        }
        let Some(at) = self.published.iter().position(|k| k == key) else {
            if !force {
                return Err(RotationError::NotStaged(key.to_owned()));
            }
            let old = std::mem::replace(&mut self.current, key.to_owned());
            self.published.insert(0, old);
            return Ok(());
        };
        self.published.remove(at);
        let old = std::mem::replace(&mut self.current, key.to_owned());
        self.published.insert(0, old);
        Ok(())
    }

    /// Stops publishing `key`. The current key cannot be retired.
    pub fn retire(&mut self, key: &str) -> Result<(), RotationError> {
        if self.current == key {
            return Err(RotationError::RetireCurrent(key.to_owned()));
        }
        let before = self.published.len();
        self.published.retain(|k| k != key);
        if self.published.len() == before {
            return Err(RotationError::NotPublished(key.to_owned()));
        }
        Ok(())
    }

    /// The key set the settings name statically, when they name a current key.
    pub fn from_settings(signer: &SignerSettings) -> Option<KeyRefs> {
        let current = signer.kms_key_id.clone().filter(|k| !k.trim().is_empty())?;
        KeyRefs {
            current,
            published: signer.kms_published_key_ids.clone(),
        }
        .checked()
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(current: &str, published: &[&str]) -> KeyRefs {
        KeyRefs {
            current: current.into(),
            published: published.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parameter_values_parse_and_normalize() {
        let parsed =
            KeyRefs::parse(r#"{"current": "a", "published": ["b", "a", "b", "c"]}"#).unwrap();
        assert_eq!(parsed, refs("a", &["b", "c"]));
        assert_eq!(
            KeyRefs::parse(r#"{"current": "a"}"#).unwrap(),
            refs("a", &[])
        );
        for bad in [
            r#"{"current": ""}"#,
            r#"{"published": ["a"]}"#,
            r#"{"current": "a", "published": [""]}"#,
            r#"{"current": "a", "pending": "b"}"#,
            "not json",
        ] {
            assert!(KeyRefs::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_steps() {
        let mut state = refs("a", &[]);
        state.stage("b").unwrap();
        assert_eq!(state, refs("a", &["b"]));
        state.stage("b").unwrap();
        assert_eq!(state, refs("a", &["b"]));
        assert!(state.stage("a").is_err());
        assert!(state.promote("c", false).is_err());
        state.promote("b", false).unwrap();
        assert_eq!(state, refs("b", &["a"]));
        assert_eq!(
            state.retire("b"),
            Err(RotationError::RetireCurrent("b".into()))
        );
        assert_eq!(
            state.retire("z"),
            Err(RotationError::NotPublished("z".into()))
        );
        state.retire("a").unwrap();
        assert_eq!(state, refs("b", &[]));
        state.promote("c", true).unwrap();
        assert_eq!(state, refs("c", &["b"]));
        assert_eq!(state.all().collect::<Vec<_>>(), vec!["c", "b"]);
    }
}
