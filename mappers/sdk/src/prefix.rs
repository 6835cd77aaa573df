//! Longest-prefix lookups: `namespace → team` maps where the most specific entry wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A map from `/`-separated path prefixes to values, where a lookup finds the entry whose
/// key is the longest prefix of the path made of whole segments: with keys `platform` and
/// `platform/payments`, `platform/payments/api` finds `platform/payments`, `platform/web`
/// finds `platform`, and `platformx/web` finds nothing.
///
/// Read it from a configuration (`"teams": {"platform": "core", "platform/payments": "pay"}`)
/// as a field of type `PrefixMap<String>`: a key that is empty, starts or ends with `/` or
/// holds `//` refuses the configuration when the issuer entry loads.
///
/// ```
/// # use claimex_mapper::PrefixMap;
/// let teams: PrefixMap<String> =
///     serde_json::from_str(r#"{"platform": "core", "platform/payments": "pay"}"#).unwrap();
/// assert_eq!(teams.lookup("platform/payments/api"), Some(("platform/payments", &"pay".to_owned())));
/// assert_eq!(teams.lookup("platform/web").map(|(_, team)| team.as_str()), Some("core"));
/// assert_eq!(teams.lookup("platformx/web"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixMap<V> {
    entries: BTreeMap<String, V>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> PrefixMap<V> {
        PrefixMap {
            entries: BTreeMap::new(),
        }
    }
}

impl<V> PrefixMap<V> {
    /// A map of these entries, or why a key cannot be a path prefix.
    pub fn new(entries: BTreeMap<String, V>) -> Result<PrefixMap<V>, String> {
        for key in entries.keys() {
            if key.is_empty() || key.starts_with('/') || key.ends_with('/') || key.contains("//") {
                return Err(format!(
                    "prefix {key:?} must be a path of non-empty segments without a leading or trailing /"
                ));
            }
        }
        Ok(PrefixMap { entries })
    }

    /// The entry whose key is the longest whole-segment prefix of `path` (or `path` itself).
    pub fn lookup(&self, path: &str) -> Option<(&str, &V)> {
        longest_prefix(&self.entries, path)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, by key.
    pub fn entries(&self) -> &BTreeMap<String, V> {
        &self.entries
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for PrefixMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PrefixMap<V>, D::Error> {
        let entries = BTreeMap::<String, V>::deserialize(deserializer)?;
        PrefixMap::new(entries).map_err(serde::de::Error::custom)
    }
}

/// The entry of `map` whose key is the longest prefix of `path` made of whole
/// `/`-separated segments (see [`PrefixMap`], which also checks the keys when read).
/// O(segments × log entries).
pub fn longest_prefix<'a, V>(map: &'a BTreeMap<String, V>, path: &str) -> Option<(&'a str, &'a V)> {
    let mut end = path.len();
    loop {
        if let Some((key, value)) = map.get_key_value(&path[..end]) {
            return Some((key.as_str(), value));
        }
        end = path[..end].rfind('/')?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_whole_segment_prefix_wins() {
        let map: PrefixMap<u32> =
            serde_json::from_str(r#"{"a": 1, "a/b": 2, "a/b/c/d": 4, "x/y": 5}"#).unwrap();
        assert_eq!(map.lookup("a"), Some(("a", &1)));
        assert_eq!(map.lookup("a/z"), Some(("a", &1)));
        assert_eq!(map.lookup("a/b"), Some(("a/b", &2)));
        assert_eq!(map.lookup("a/b/c"), Some(("a/b", &2)));
        assert_eq!(map.lookup("a/b/c/d/e"), Some(("a/b/c/d", &4)));
        assert_eq!(map.lookup("a/bc"), Some(("a", &1)));
        assert_eq!(map.lookup("ab"), None);
        assert_eq!(map.lookup("x"), None);
        assert_eq!(map.lookup("x/yz"), None);
        assert_eq!(map.lookup(""), None);
        assert_eq!(map.lookup("/a"), None);
        assert_eq!(map.lookup("a/"), Some(("a", &1)));
        assert!(PrefixMap::<u32>::default().lookup("a").is_none());
    }

    #[test]
    fn bad_keys_are_refused_when_read() {
        for bad in [
            r#"{"": 1}"#,
            r#"{"/a": 1}"#,
            r#"{"a/": 1}"#,
            r#"{"a//b": 1}"#,
        ] {
            let e = serde_json::from_str::<PrefixMap<u32>>(bad).unwrap_err();
            assert!(
                e.to_string()
                    .contains("must be a path of non-empty segments"),
                "{bad}: {e}"
            );
        }
        assert!(serde_json::from_str::<PrefixMap<u32>>(r#"{"a": "x"}"#).is_err());
    }
}
