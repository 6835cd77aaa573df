//! What every part's settings share: the error that names a key, and the range check.
//!
//! Each part owns its settings struct (a `Deserialize` section with serde defaults) and its
//! `validate`; [`crate::config`] composes the sections and prefixes the section name.

/// A setting out of range or inconsistent, named relative to its section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingError {
    /// The key within its section (e.g. `leeway_secs`).
    pub key: &'static str,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl SettingError {
    /// An error naming `key`.
    pub fn new(key: &'static str, message: impl Into<String>) -> SettingError {
        SettingError {
            key,
            message: message.into(),
        }
    }
}

/// Checks `min <= value <= max`, naming `key` and the accepted range otherwise.
pub fn range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), SettingError> {
    if value < min || value > max {
        return Err(SettingError::new(
            key,
            format!("{value} is out of range; use {min} to {max}"),
        ));
    }
    Ok(())
}

/// Deserializes a list given as a TOML array or as comma-separated text (how an environment
/// variable gives it).
pub fn list_or_csv<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Csv(String),
    }
    Ok(
        match <Either as serde::Deserialize>::deserialize(deserializer)? {
            Either::List(list) => list,
            Either::Csv(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
        .into_iter()
        .map(T::from)
        .collect(),
    )
}
