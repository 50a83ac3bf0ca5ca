//! Log setup: structured lines on stderr (journald captures them), text or JSON.
//!
//! JSON lines are written by [`JsonLines`] rather than tracing-subscriber's formatter,
//! which prints every `?`-recorded value as a string: here a list (`providers = ?vec`)
//! stays a JSON array, and numbers and booleans stay numbers and booleans.

use crate::config::{LogConfig, LogFormat};
use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match cfg.format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// One JSON object per event: `timestamp` (RFC 3339, UTC), `level`, `message` and the
/// event's fields at the top level.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", json_line(event, crate::clock::now_ms()))
    }
}

fn json_line(event: &Event<'_>, now_ms: i64) -> Value {
    let mut fields = Map::new();
    fields.insert(
        "timestamp".into(),
        Value::String(crate::clock::rfc3339(now_ms)),
    );
    fields.insert(
        "level".into(),
        Value::String(event.metadata().level().as_str().into()),
    );
    event.record(&mut JsonFields(&mut fields));
    Value::Object(fields)
}

/// Records each field as its JSON type.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        // A Debug list of strings or numbers (`["zengapay", "daraja"]`) is JSON already.
        let value = if field.name() != "message" && text.starts_with('[') {
            match serde_json::from_str::<Value>(&text) {
                Ok(list @ Value::Array(_)) => list,
                _ => Value::String(text),
            }
        } else {
            Value::String(text)
        };
        self.0.insert(field.name().into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_keep_lists_numbers_and_strings_as_such() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let enabled = vec!["zengapay", "daraja"];
            tracing::info!(providers = ?enabled, attempt = 3, txn_ref = %"ws_CO_1", label = ?"[x", "payhook started");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["providers"], serde_json::json!(["zengapay", "daraja"]));
        assert_eq!(line["attempt"], 3);
        assert_eq!(line["txn_ref"], "ws_CO_1");
        assert_eq!(line["label"], "\"[x\"");
        assert_eq!(line["message"], "payhook started");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
