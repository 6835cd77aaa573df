//! Claim readers for flags and booleans: GitHub and GitLab send booleans as strings
//! (`"ref_protected": "true"`), so these read `true` and `"true"` alike.

use serde_json::Value;

use crate::{Deny, Input, claim_deny};

impl Input {
    /// The claim at `path` as a boolean: `true`/`false`, or the strings `"true"`/`"false"`.
    /// `None` when it is missing or anything else.
    pub fn bool_claim(&self, path: &str) -> Option<bool> {
        match self.claim(path)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => None,
        }
    }

    /// Whether the claim at `path` is `true` or `"true"`; anything else (missing, `false`,
    /// `"yes"`) is not.
    ///
    /// ```
    /// # use claimex_mapper::{Input, json};
    /// let input = Input::new("gitlab", "https://gitlab.example.com", json!({"ref_protected": "true"}));
    /// assert!(input.is_true("ref_protected"));
    /// assert!(!input.is_true("environment_protected"));
    /// ```
    pub fn is_true(&self, path: &str) -> bool {
        self.bool_claim(path) == Some(true)
    }

    /// The claim at `path` as a boolean (see [`Input::bool_claim`]), or a [`Deny`]
    /// `missing_claim` (absent or null) or `invalid_claim` (anything else), for `?`:
    ///
    /// ```
    /// # use claimex_mapper::{Deny, Input, json};
    /// # fn f(input: &Input) -> Result<(), Deny> {
    /// if !input.require_bool("ref_protected")? {
    ///     return Err(Deny::new("ref_not_protected", "deploy from a protected ref"));
    /// }
    /// # Ok(()) }
    /// # let input = Input::new("gitlab", "https://x", json!({"ref_protected": "yes"}));
    /// # assert_eq!(f(&input).unwrap_err().code(), "invalid_claim");
    /// ```
    pub fn require_bool(&self, path: &str) -> Result<bool, Deny> {
        self.bool_claim(path)
            .ok_or_else(|| claim_deny(path, self.claim(path), "true or false"))
    }
}
