//! The system's clock and random source: the adapters behind the core's [`Clock`] and
//! [`IdSource`] ports, and the one place claimex reads the time or draws token ids.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::exchange::{Clock, IdSource};

/// Seconds since the Unix epoch, by the system clock (0 before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        unix_now()
    }
}

/// Token ids of 128 random bits from the system generator (aws-lc-rs), base64url.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn token_id(&self) -> String {
        let mut id = [0u8; 16];
        // A failing system RNG is not recoverable; aws-lc-rs aborts rather than return it.
        aws_lc_rs::rand::fill(&mut id).expect("the system random number generator failed");
        URL_SAFE_NO_PAD.encode(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_base64url() {
        let (a, b) = (RandomIds.token_id(), RandomIds.token_id());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
