//! The time: one `now()` for every test and bench, and one way to wait for a condition.

use std::future::Future;
use std::time::{Duration, Instant};

/// Seconds since the Unix epoch: claimex's own clock ([`claimex::system::unix_now`]), so that
/// tokens minted by a test and the checks claimex makes read the same time.
pub fn now() -> u64 {
    claimex::system::unix_now()
}

/// Polls `probe` every 100 ms until it yields a value; panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
