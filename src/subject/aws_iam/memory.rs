//! The in-memory one-use store (the default): a bounded cache in this process, each
//! redeemed signature kept until its request stops being valid (and a minute more, for
//! clock steps). Enough for one instance; several instances need the shared DynamoDB store
//! (`dynamodb.rs`), or a request redeemed on one could be redeemed again on another.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::one_use::{OneUseError, OneUseStore, Redeemed, Redemption};

/// How many redeemed signatures are remembered at most.
pub const REDEEMED_CAPACITY: u64 = 100_000;
/// Kept this long after the request stops being valid.
const MARGIN_SECS: u64 = 60;
/// Kept at most this long: both sides of the date window, and the margin.
const LONGEST_SECS: u64 = 2 * super::request::DATE_WINDOW_SECS + MARGIN_SECS;

/// Each entry's value is how long it lives.
struct UntilValid;

impl moka::Expiry<String, Duration> for UntilValid {
    fn expire_after_create(
        &self,
        _key: &String,
        lives: &Duration,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(*lives)
    }
}

/// Redeemed signatures in a bounded in-process cache.
pub struct MemoryOneUse {
    redeemed: moka::future::Cache<String, Duration>,
}

impl MemoryOneUse {
    /// An empty store of [`REDEEMED_CAPACITY`] entries.
    pub fn new() -> MemoryOneUse {
        MemoryOneUse {
            redeemed: moka::future::Cache::builder()
                .max_capacity(REDEEMED_CAPACITY)
                .expire_after(UntilValid)
                .build(),
        }
    }
}

impl Default for MemoryOneUse {
    fn default() -> Self {
        MemoryOneUse::new()
    }
}

#[async_trait]
impl OneUseStore for MemoryOneUse {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn redeem(&self, redemption: &Redemption, now: u64) -> Result<Redeemed, OneUseError> {
        let lives = redemption
            .expires_at
            .saturating_sub(now)
            .saturating_add(MARGIN_SECS)
            .min(LONGEST_SECS);
        let entry = self
            .redeemed
            .entry(redemption.key.clone())
            .or_insert(Duration::from_secs(lives))
            .await;
        Ok(if entry.is_fresh() {
            Redeemed::First
        } else {
            Redeemed::Again
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_redeemed_once() {
        let store = MemoryOneUse::new();
        let r = Redemption {
            key: "k".into(),
            expires_at: 1_000,
        };
        assert_eq!(store.redeem(&r, 500).await, Ok(Redeemed::First));
        assert_eq!(store.redeem(&r, 501).await, Ok(Redeemed::Again));
        let other = Redemption {
            key: "l".into(),
            expires_at: 1_000,
        };
        assert_eq!(store.redeem(&other, 502).await, Ok(Redeemed::First));
    }
}
