//! One use of a signed request: the port ([`OneUseStore`]) through which a redeemed
//! signature is remembered for as long as the request could still be valid, what is stored
//! ([`Redemption`]: a SHA-256 of the signature, never the request itself, and when the
//! request stops being valid), and the `[aws_iam]` settings that choose the store.
//!
//! Two adapters: `memory.rs` (a bounded in-process cache, the default: enough for one
//! instance) and `dynamodb.rs` (a DynamoDB table with a conditional put, shared by every
//! instance of a deployment). Pure here: time is an argument, the adapters do the I/O.

use async_trait::async_trait;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::request::{DATE_WINDOW_SECS, SignedRequest};
use crate::settings::SettingError;

/// What is remembered of one redeemed signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// base64url (no padding) of the SHA-256 of the SigV4 signature: the store's key. The
    /// signature itself is never stored, nor any other part of the request.
    pub key: String,
    /// When the request stops being valid (seconds since the Unix epoch): its `x-amz-date`
    /// plus the window STS (and claimex) allow. The store may forget it after that.
    pub expires_at: u64,
}

impl Redemption {
    /// The redemption of a checked request.
    pub fn of(request: &SignedRequest) -> Redemption {
        Redemption {
            key: URL_SAFE_NO_PAD.encode(digest::digest(
                &digest::SHA256,
                request.signature.as_bytes(),
            )),
            expires_at: request.signed_at + DATE_WINDOW_SECS,
        }
    }
}

/// Whether a signature was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// First use: now remembered.
    First,
    /// Already redeemed (here or on another instance sharing the store).
    Again,
}

/// Why the store could not say: the exchange then fails closed (503), never accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneUseError {
    /// The store throttled the call.
    #[error("the one-use store is throttled: {0}")]
    Throttled(String),
    /// The store cannot be reached, timed out, refused claimex (permissions, missing table)
    /// or failed.
    #[error("the one-use store is unavailable: {0}")]
    Unavailable(String),
}

/// The port: remembers redeemed signatures.
#[async_trait]
pub trait OneUseStore: Send + Sync {
    /// The backend's name for logs and metrics (`memory`, `dynamodb`).
    fn backend(&self) -> &'static str;

    /// Records `redemption` at `now` (seconds since the Unix epoch) unless it is already
    /// recorded, atomically: of two concurrent calls with the same key, one gets
    /// [`Redeemed::First`].
    async fn redeem(&self, redemption: &Redemption, now: u64) -> Result<Redeemed, OneUseError>;
}

/// The `[aws_iam]` section: server-wide settings of the `aws-iam` subject kind.
///
/// ```toml
/// [aws_iam]
/// replay_table = "claimex-replay"   # a DynamoDB table shared by every instance
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsIamSettings {
    /// The DynamoDB table where redeemed signed requests are remembered, shared by every
    /// instance (partition key `signature_sha256`, a string; TTL on `expires_at`). Unset (the
    /// default): an in-memory cache per instance, which is enough for one instance only.
    /// Calls use the `[aws]` client settings (region, endpoint override).
    pub replay_table: Option<String>,
}

impl AwsIamSettings {
    /// Checks the table name against DynamoDB's rule: 3 to 255 of `[A-Za-z0-9_.-]`.
    pub fn validate(&self) -> Result<(), SettingError> {
        if let Some(table) = &self.replay_table
            && (table.len() < 3
                || table.len() > 255
                || !table
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
        {
            return Err(SettingError::new(
                "replay_table",
                format!(
                    "{:?} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)",
                    table.chars().take(64).collect::<String>()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redemption_keeps_a_hash_and_the_end_of_the_window() {
        let request = SignedRequest {
            url: url::Url::parse("https://sts.amazonaws.com/").unwrap(),
            headers: vec![],
            body: String::new(),
            signature: "ab".repeat(32),
            region: "us-east-1".into(),
            signed_at: 1_764_633_600,
        };
        let r = Redemption::of(&request);
        assert_eq!(r.expires_at, 1_764_633_600 + 900);
        assert_eq!(r.key.len(), 43);
        assert!(!r.key.contains("abab"));
        let mut other = request.clone();
        other.signature = "cd".repeat(32);
        assert_ne!(Redemption::of(&other).key, r.key);
    }

    #[test]
    fn table_names_are_checked() {
        let with = |t: &str| AwsIamSettings {
            replay_table: Some(t.into()),
        };
        assert!(with("claimex-replay").validate().is_ok());
        assert!(AwsIamSettings::default().validate().is_ok());
        for bad in ["ab", "a b c", "tab/le", &"x".repeat(256)] {
            assert_eq!(with(bad).validate().unwrap_err().key, "replay_table");
        }
    }
}
