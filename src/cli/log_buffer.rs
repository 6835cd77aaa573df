//! The server's log writer. By default each line (the audit line among them) is written to
//! stderr at once. With `CLAIMEX_LOG_FLUSH_MS` = N > 0, lines are gathered in memory and
//! written in batches: when a batch reaches [`BATCH_BYTES`], by a background thread at least
//! every N ms, and in full when the [`FlushGuard`] is dropped, so a clean shutdown loses
//! nothing (a process killed outright, SIGKILL, loses at most the last N ms of lines).
//!
//! Why write-through is the default: alone, the batched writer costs half as much per line
//! (1.3 vs 2.6 µs, a native micro-benchmark), yet the server under load measured 7 % fewer
//! ES256 exchanges per second with it than without (BENCHMARKS.md, "Log writer"); until that is
//! understood, batching is opt-in. On AWS Lambda lines are always written through: Lambda
//! freezes the process as soon as the answer is sent and may end a frozen process without a
//! signal, so nothing may wait in memory there.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// A batch this large is written at once, by the thread that filled it.
pub const BATCH_BYTES: usize = 32 * 1024;

/// The wait of a batched writer whose interval is not given (tests).
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The variable that sets the longest wait in milliseconds (`0`: write each line at once).
pub const FLUSH_ENV: &str = "CLAIMEX_LOG_FLUSH_MS";

/// The largest wait [`FLUSH_ENV`] may set.
pub const MAX_FLUSH_MS: u64 = 60_000;

/// How lines are written here: `None` to write each through at once (the default; always on
/// AWS Lambda, where `AWS_LAMBDA_FUNCTION_NAME` is set), else the longest wait ([`FLUSH_ENV`]);
/// with the reason when [`FLUSH_ENV`] held something unusable (lines are written through then).
pub fn interval_from_env() -> (Option<Duration>, Option<String>) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        return (None, None);
    }
    let Some(raw) = std::env::var_os(FLUSH_ENV) else {
        return (None, None);
    };
    match raw.to_str().and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(0) => (None, None),
        Some(ms) if ms <= MAX_FLUSH_MS => (Some(Duration::from_millis(ms)), None),
        _ => (
            None,
            Some(format!(
                "{FLUSH_ENV} must be 0 to {MAX_FLUSH_MS} (milliseconds); writing each line at once"
            )),
        ),
    }
}

struct State<W> {
    pending: Vec<u8>,
    sink: W,
    stopping: bool,
}

struct Shared<W> {
    state: Mutex<State<W>>,
    wake: Condvar,
    /// Write each line through (no batching).
    through: AtomicBool,
}

impl<W: Write> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A writer that panicked mid-line leaves bytes, not a broken invariant: keep logging.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W: Write> State<W> {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            // Nowhere to report a failed log write; the bytes are dropped, not retried forever.
            let _ = self.sink.write_all(&self.pending);
            let _ = self.sink.flush();
            self.pending.clear();
        }
    }
}

/// The writer handed to `tracing_subscriber`'s fmt layer.
pub struct LogBuffer<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for LogBuffer<W> {
    fn clone(&self) -> Self {
        LogBuffer {
            shared: self.shared.clone(),
        }
    }
}

/// Writes what is still in memory and stops the background thread, when dropped.
#[must_use = "dropping the guard flushes and stops the log writer"]
pub struct FlushGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

impl<W: Write + Send + 'static> LogBuffer<W> {
    /// A writer over `sink`: batched, with a background thread flushing every `interval`; or,
    /// with `through`, writing each line at once (no thread).
    pub fn new(sink: W, through: bool, interval: Duration) -> (LogBuffer<W>, FlushGuard<W>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(if through { 0 } else { BATCH_BYTES * 2 }),
                sink,
                stopping: false,
            }),
            wake: Condvar::new(),
            through: AtomicBool::new(through),
        });
        let thread = (!through)
            .then(|| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name("claimex-log".into())
                    .spawn(move || {
                        let mut state = shared.lock();
                        while !state.stopping {
                            state = shared
                                .wake
                                .wait_timeout(state, interval)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                            state.flush();
                        }
                    })
                    .ok()
            })
            .flatten();
        if thread.is_none() {
            // The thread could not be spawned: write through rather than hold lines forever.
            shared.through.store(true, Ordering::Relaxed);
        }
        (
            LogBuffer {
                shared: shared.clone(),
            },
            FlushGuard { shared, thread },
        )
    }
}

impl<W: Write + Send + 'static> Drop for FlushGuard<W> {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.lock().flush();
    }
}

impl<W: Write> Write for LogBuffer<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if self.shared.through.load(Ordering::Relaxed) {
            return state.sink.write(bytes);
        }
        state.pending.extend_from_slice(bytes);
        if state.pending.len() >= BATCH_BYTES {
            state.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // The fmt layer flushes after every event: batching is the point, so this is a no-op
        // (the guard and the thread flush).
        if self.shared.through.load(Ordering::Relaxed) {
            self.shared.lock().sink.flush()
        } else {
            Ok(())
        }
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for LogBuffer<W> {
    type Writer = LogBuffer<W>;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records each write it receives.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorded {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Recorded {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    #[test]
    fn lines_are_batched_and_all_written_in_order_when_the_guard_drops() {
        let sink = Recorded::default();
        // An interval longer than the test: only the batch size and the guard write.
        let (writer, guard) = LogBuffer::new(sink.clone(), false, Duration::from_secs(3600));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        writer.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                        writer.flush().unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
        // 8,000 lines of about 7 bytes went out in a handful of writes, not 8,000.
        assert!(sink.writes() < 10, "{} writes", sink.writes());
    }

    #[test]
    fn the_thread_writes_within_the_interval() {
        let sink = Recorded::default();
        let (mut writer, _guard) = LogBuffer::new(sink.clone(), false, Duration::from_millis(5));
        writer.write_all(b"one line\n").unwrap();
        // Waits for the thread (no timing asserted: the loop ends when the line is out).
        while sink.text().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.text(), "one line\n");
    }

    #[test]
    fn through_writes_each_line_at_once() {
        let sink = Recorded::default();
        let (mut writer, guard) = LogBuffer::new(sink.clone(), true, INTERVAL);
        assert!(guard.thread.is_none());
        writer.write_all(b"a\n").unwrap();
        assert_eq!(sink.text(), "a\n");
        writer.write_all(b"b\n").unwrap();
        assert_eq!(sink.writes(), 2);
    }
}
