//! What clients make the HTTP server log. actix-http reports a connection it cannot serve (a
//! request that does not parse, a stream that breaks) at ERROR, once per connection: volume an
//! attacker chooses, on the level operators alarm on. Those events are kept out of the log
//! and reported here instead, at WARN and at most once per [`INTERVAL_SECS`], with how many
//! were folded into the line.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Least time between two client-error lines, seconds.
pub const INTERVAL_SECS: u64 = 10;

/// Whether an event is actix-http's report of a connection a client broke.
pub fn is_client_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with("actix_http::h1")
}

/// Admits one line per interval and counts the rest.
#[derive(Debug, Default)]
pub struct RateLimit {
    /// When the last line was admitted, seconds since the Unix epoch, plus one (0: never).
    last: AtomicU64,
    /// Events not admitted since.
    folded: AtomicU64,
}

impl RateLimit {
    /// At `now` (seconds), `Some(folded)` when a line may be written, with the events folded
    /// since the last one; `None` when this event is folded.
    pub fn admit(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last - 1 + INTERVAL_SECS {
            self.folded.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.folded.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.folded.swap(0, Ordering::Relaxed))
    }
}

/// The layer that turns actix-http's client errors into rate-limited warnings.
#[derive(Debug, Default)]
pub struct ClientErrors {
    limit: RateLimit,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for ClientErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !is_client_error(event.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Some(folded) = self.limit.admit(now) else {
            return;
        };
        let mut message = Message(String::new());
        event.record(&mut message);
        let error: String = message.0.chars().take(200).collect();
        tracing::warn!(
            target: "claimex::http",
            %error,
            folded,
            "a client connection failed (malformed request or broken stream); such lines are \
             written at most once per {INTERVAL_SECS} s"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_folded() {
        let limit = RateLimit::default();
        assert_eq!(limit.admit(100), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.admit(105), None);
        }
        assert_eq!(limit.admit(109), None);
        assert_eq!(limit.admit(110), Some(6));
        assert_eq!(limit.admit(111), None);
        assert_eq!(limit.admit(500), Some(1));
    }
}
