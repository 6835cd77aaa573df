//! The background refresh loop shared by everything claimex re-reads on a timer: the issuer
//! registry and the KMS signing-key set.
//!
//! One loop, one backoff rule: refresh every `interval`; after failures wait 1 s, 2 s, 4 s, …
//! capped at `interval`, and log each failure once with the wait before the next attempt. The
//! loop holds only a weak reference, so it ends when the refreshed thing is dropped.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The wait after `failures` failed refreshes in a row: 1 s, 2 s, 4 s, ... capped at `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16));
    exp.min(cap)
}

/// Calls `refresh` on `target` every `interval` for as long as anyone else holds it, backing
/// off after failures. `what_failed` is the log message of a failed attempt (say what is
/// kept in force). Returns when `target` has been dropped everywhere else.
pub async fn every<T, F, Fut>(
    target: Arc<T>,
    interval: Duration,
    what_failed: &'static str,
    mut refresh: F,
) where
    F: FnMut(Arc<T>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let weak: Weak<T> = Arc::downgrade(&target);
    drop(target);
    let mut wait = interval;
    let mut failures: u32 = 0;
    loop {
        tokio::time::sleep(wait).await;
        let Some(target) = weak.upgrade() else {
            return;
        };
        match refresh(target).await {
            Ok(()) => {
                failures = 0;
                wait = interval;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                wait = backoff(failures, interval);
                tracing::warn!(
                    %error,
                    failures,
                    retry_in_secs = wait.as_secs_f64(),
                    "{what_failed}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(1, cap), Duration::from_secs(1));
        assert_eq!(backoff(2, cap), Duration::from_secs(2));
        assert_eq!(backoff(5, cap), Duration::from_secs(16));
        assert_eq!(backoff(9, cap), cap);
        assert_eq!(backoff(200, cap), cap);
    }

    #[tokio::test]
    async fn the_loop_goes_on_after_failures_and_ends_with_its_target() {
        let calls = Arc::new(AtomicU32::new(0));
        let target = Arc::new(());
        let counted = calls.clone();
        // An interval below the 1 s backoff step caps every wait at the interval.
        let interval = Duration::from_millis(20);
        let task = tokio::spawn(every(target.clone(), interval, "test", move |_| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            // Calls 2, 3 and 4 fail; the loop keeps calling.
            async move {
                if (2..=4).contains(&n) {
                    Err(format!("failure {n}"))
                } else {
                    Ok(())
                }
            }
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::SeqCst) < 6 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the loop stopped calling"
            );
            tokio::time::sleep(interval).await;
        }
        drop(target);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the loop outlived its target")
            .unwrap();
    }
}
