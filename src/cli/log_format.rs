//! The server's JSON log line, written in one pass.
//!
//! The line is tracing-subscriber's own JSON format, configured as `claimex serve` uses it
//! (`flatten_event(true)`, no current span): `timestamp`, `level`, the event's fields in order
//! (`message` among them), `target`. tracing-subscriber serializes it through an adaptor that
//! checks every fragment (each key, each quote) as UTF-8 on its way into the line: about half
//! the cost of the audit line, which is written once per exchange. [`JsonLine`] runs the same
//! serializer (serde_json, tracing-serde's field visitor) into a byte buffer and checks the line
//! once. Events it would not render alike (inside a span, records bridged from the `log`
//! crate) go to tracing-subscriber's formatter unchanged. The tests below hold the two to the
//! same bytes.

use std::cell::RefCell;
use std::fmt;

use serde::ser::{SerializeMap as _, Serializer as _};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_serde::AsSerde as _;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The JSON line of `claimex serve`'s log, one per event.
#[derive(Debug)]
pub struct JsonLine {
    /// tracing-subscriber's formatter, for the events this one does not render itself.
    general: Format<Json>,
}

impl Default for JsonLine {
    fn default() -> Self {
        JsonLine {
            general: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false),
        }
    }
}

/// The fmt layer that writes [`JsonLine`]s to `writer`: the server's log format.
pub fn json_layer<S, W>(writer: W) -> tracing_subscriber::fmt::Layer<S, JsonFields, JsonLine, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    // `.json()` for its field formatter (a span's fields, as JSON) and no ANSI; the event
    // format it sets is replaced by `JsonLine`, which carries the server's JSON settings.
    tracing_subscriber::fmt::layer()
        .json()
        .event_format(JsonLine::default())
        .with_writer(writer)
}

thread_local! {
    /// The line being serialized; its capacity is kept from one event to the next.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let in_span = event.parent().is_some() || ctx.lookup_current().is_some();
        if in_span || event.is_log() {
            return self.general.format_event(ctx, writer, event);
        }
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        LINE.with(|line| {
            // tracing mutes events raised while this thread is inside the subscriber, so this
            // is not re-entered; if it ever were, a fresh buffer serves, not a borrow panic.
            let mut own = Vec::new();
            let mut held = line.try_borrow_mut();
            let buf = match held.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut own,
            };
            buf.clear();
            let mut serializer = serde_json::Serializer::new(&mut *buf);
            let written = (|| {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("timestamp", &timestamp)?;
                map.serialize_entry("level", &meta.level().as_serde())?;
                let mut fields = tracing_serde::SerdeMapVisitor::new(map);
                event.record(&mut fields);
                let mut map = fields.take_serializer()?;
                map.serialize_entry("target", meta.target())?;
                map.end()
            })();
            written.map_err(|_| fmt::Error)?;
            writer.write_str(std::str::from_utf8(buf).map_err(|_| fmt::Error)?)?;
            writeln!(writer)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use proptest::prelude::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            all.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<String> {
            let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8(all.clone())
                .expect("UTF-8 lines")
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// The line with its timestamp's value replaced (the two formatters read the clock
    /// apart), after checking it has the shape tracing-subscriber writes.
    fn untimed(line: &str) -> String {
        let prefix = "{\"timestamp\":\"";
        assert!(line.starts_with(prefix), "no timestamp first: {line}");
        let rest = &line[prefix.len()..];
        let end = rest.find('"').expect("the timestamp ends");
        let stamp = &rest[..end];
        assert!(
            stamp.len() == 27 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "not an RFC 3339 UTC timestamp: {stamp}"
        );
        format!("{prefix}T{}", &rest[end..])
    }

    /// Runs `events` under tracing-subscriber's JSON layer, configured as the server's was,
    /// and under [`json_layer`], both at once; the two sets of lines.
    fn both(events: impl FnOnce()) -> (Vec<String>, Vec<String>) {
        let (general, one_pass) = (Capture::default(), Capture::default());
        let (g, o) = (general.clone(), one_pass.clone());
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(move || g.clone()),
            )
            .with(json_layer(move || o.clone()));
        tracing::subscriber::with_default(subscriber, events);
        (general.lines(), one_pass.lines())
    }

    fn assert_same(events: impl FnOnce()) -> usize {
        let (general, one_pass) = both(events);
        assert_eq!(general.len(), one_pass.len(), "{general:?}\n{one_pass:?}");
        for (g, o) in general.iter().zip(&one_pass) {
            assert_eq!(untimed(g), untimed(o));
            serde_json::from_str::<serde_json::Value>(o).expect("each line is JSON");
        }
        one_pass.len()
    }

    #[derive(Debug)]
    struct Odd;

    impl fmt::Display for Odd {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("display \"quoted\" \\ \u{7}")
        }
    }

    #[test]
    fn the_same_bytes_as_tracing_subscriber_for_every_kind_of_field() {
        let hostile =
            "quote \" backslash \\ newline \n tab \t nul \0 del \u{7f} \u{1f} é 𝄞 \u{2028}";
        let error = io::Error::other("an error \"quoted\"");
        let n = assert_same(|| {
            crate::audit::Audit {
                subject_kind: Some(crate::subject::SubjectKind::Oidc),
                issuer_id: Some("github".into()),
                inbound_sub: Some(hostile.into()),
                outbound_aud: vec!["a".into(), "b\"c".into()],
                tag_keys: vec!["repo".into(), hostile.into()],
                detail: Some("x".repeat(5000)),
                ..Default::default()
            }
            .emit(Ok(()));
            tracing::info!(target: "claimex::audit", text = hostile, "m {}", hostile);
            tracing::warn!(
                small = -7i64,
                big = u64::MAX,
                ratio = 0.1f64,
                nan = f64::NAN,
                yes = true,
                debug = ?Some(hostile),
                display = %Odd,
                error = &error as &dyn std::error::Error,
                r#type = "raw identifier",
                "warned"
            );
            tracing::error!("only a message");
            tracing::info!(empty = "");
        });
        assert_eq!(n, 5);
    }

    #[test]
    fn events_in_a_span_and_bridged_log_records_are_rendered_as_tracing_subscriber_renders_them() {
        let n = assert_same(|| {
            let span = tracing::info_span!("request", id = 7, path = "/exchange");
            let _entered = span.enter();
            tracing::info!(inner = "x", "in a span");
            let record = tracing_log::log::Record::builder()
                .args(format_args!("from the log crate \"quoted\""))
                .level(tracing_log::log::Level::Warn)
                .target("some::crate")
                .module_path_static(Some("some::crate"))
                .file_static(Some("lib.rs"))
                .line(Some(3))
                .build();
            tracing_log::format_trace(&record).expect("the record is dispatched");
        });
        assert_eq!(n, 2);
        let (_, lines) = both(|| {
            let record = tracing_log::log::Record::builder()
                .args(format_args!("bridged"))
                .level(tracing_log::log::Level::Warn)
                .target("some::crate")
                .build();
            tracing_log::format_trace(&record).expect("the record is dispatched");
        });
        assert!(
            lines[0].contains("\"target\":\"some::crate\""),
            "{}",
            lines[0]
        );
    }

    proptest! {
        #[test]
        fn any_text_and_number_give_the_same_line(
            text in any::<String>(),
            other in "[\\x00-\\x7f]{0,40}",
            n in any::<i64>(),
            u in any::<u64>(),
        ) {
            assert_same(|| {
                tracing::info!(target: "claimex::audit", text = text.as_str(), n, u, shown = %other, "{}", other);
            });
        }
    }
}
