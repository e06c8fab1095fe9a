//! teosd's log as the kit reads it: JSON lines (`log_format = "json"`), each parsed into a
//! [`LogEvent`] whose fields are looked up by name, never by matching the wording of a message.
//!
//! A line that is not JSON (`teosd: <config error>` printed before logging starts) is kept as text.

use std::fmt::{self, Write as _};
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// One structured log event of teosd, as `tracing-subscriber`'s JSON format writes it:
/// `{"timestamp":…,"level":"INFO","fields":{"message":"Tower ready","event":"ready",…},"target":"teosd::daemon"}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct LogEvent {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    #[serde(default)]
    pub level: String,
    /// The module that logged it, e.g. `teosd::block_processor`.
    #[serde(default)]
    pub target: String,
    /// The event's fields in the order they were recorded, `message` included.
    #[serde(default)]
    pub fields: Fields,
}

/// The fields of a [`LogEvent`], in recorded order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of event fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

impl LogEvent {
    /// Parses one JSON log line; `None` if it is not one.
    pub fn parse(line: &str) -> Option<LogEvent> {
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }

    /// The value of field `name`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Field `name` as text (a string field, or any other value written as JSON).
    pub fn text(&self, name: &str) -> Option<String> {
        self.field(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Field `name` as an unsigned integer.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.field(name).and_then(Value::as_u64)
    }

    /// The `event` field: the name teosd gives the events other programs wait for (`ready`,
    /// `admin_listening`).
    pub fn name(&self) -> Option<&str> {
        self.field("event").and_then(Value::as_str)
    }

    /// Whether this is the event named `name` (its `event` field).
    pub fn is(&self, name: &str) -> bool {
        self.name() == Some(name)
    }

    /// The message (the text a human reads; not for matching).
    pub fn message(&self) -> &str {
        self.field("message").and_then(Value::as_str).unwrap_or("")
    }

    /// The event the way teosd's human format prints it, without the timestamp:
    /// `LEVEL target: message key=value …` (strings unquoted; the `log.*` fields of records from
    /// the `log` crate left out).
    pub fn render(&self) -> String {
        let mut out = format!("{} {}: {}", self.level, self.target, self.message());
        for (key, value) in &self.fields.0 {
            // `log.target`, `log.file`…: where a `log` record (from a dependency) came from.
            if key == "message" || key.starts_with("log.") {
                continue;
            }
            let _ = match value {
                Value::String(s) => write!(out, " {key}={s}"),
                other => write!(out, " {key}={other}"),
            };
        }
        out
    }
}

/// One line teosd wrote on stderr, with the instant it reached the kit.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// When the line was read (stderr is unbuffered in teosd: when it was written, give or take a
    /// pipe hop). Benchmarks time startup phases with it.
    pub at: Instant,
    /// The line as written, without the newline.
    pub raw: String,
    /// The parsed event, when the line is JSON.
    pub event: Option<LogEvent>,
}

impl LogLine {
    fn new(raw: String) -> LogLine {
        LogLine {
            at: Instant::now(),
            event: LogEvent::parse(&raw),
            raw,
        }
    }

    /// A human-readable form: [`LogEvent::render`], or the raw text of a non-JSON line.
    pub fn text(&self) -> String {
        match &self.event {
            Some(event) => event.render(),
            None => self.raw.clone(),
        }
    }

    /// Whether the line is the event named `name` ([`LogEvent::is`]).
    pub fn is(&self, name: &str) -> bool {
        self.event.as_ref().is_some_and(|e| e.is(name))
    }
}

/// The lines of one teosd process, filled by a reader thread.
#[derive(Default)]
pub(crate) struct Logs {
    lines: Mutex<Vec<LogLine>>,
    /// The reader reached the end of stderr: every line the process wrote is in `lines`.
    closed: AtomicBool,
}

impl Logs {
    /// Starts a thread reading `stream` line by line into a new [`Logs`]; each line is echoed to
    /// this process's stderr with `prefix` (in its [`LogLine::text`] form) when `echo`.
    pub(crate) fn capture(
        stream: impl Read + Send + 'static,
        echo: Option<String>,
    ) -> std::io::Result<Arc<Logs>> {
        let logs = Arc::new(Logs::default());
        let shared = logs.clone();
        std::thread::Builder::new()
            .name("teosd-log".into())
            .spawn(move || {
                for raw in BufReader::new(stream).lines().map_while(Result::ok) {
                    let line = LogLine::new(raw);
                    if let Some(prefix) = &echo {
                        eprintln!("{prefix}{}", line.text());
                    }
                    shared.lock().push(line);
                }
                shared.closed.store(true, Ordering::SeqCst);
            })?;
        Ok(logs)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<LogLine>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether stderr reached its end (the process exited or closed it).
    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The first line at index `>= from` that `matches`.
    pub(crate) fn find(&self, from: usize, matches: impl Fn(&LogLine) -> bool) -> Option<LogLine> {
        self.lock().iter().skip(from).find(|l| matches(l)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str = r#"{"timestamp":"2026-01-02T03:04:05.000006Z","level":"INFO","fields":{"message":"Tower ready","event":"ready","tower_id":"02ab","api":"127.0.0.1:9814"},"target":"teosd::daemon"}"#;

    #[test]
    fn events_are_found_by_their_fields() {
        let event = LogEvent::parse(READY).unwrap();
        assert!(event.is("ready"));
        assert_eq!(event.text("api").as_deref(), Some("127.0.0.1:9814"));
        assert_eq!(event.text("tower_id").as_deref(), Some("02ab"));
        assert_eq!(event.level, "INFO");
        assert_eq!(event.target, "teosd::daemon");
    }

    #[test]
    fn fields_keep_their_recorded_order_when_rendered() {
        let line = r#"{"level":"DEBUG","fields":{"message":"block connected","height":212,"hash":"00ab","txs":4},"target":"teosd::block_processor"}"#;
        let event = LogEvent::parse(line).unwrap();
        assert_eq!(event.u64("height"), Some(212));
        assert_eq!(
            event.render(),
            "DEBUG teosd::block_processor: block connected height=212 hash=00ab txs=4"
        );
    }

    #[test]
    fn text_lines_are_kept_as_they_are() {
        assert_eq!(LogEvent::parse("teosd: api_port: bad value"), None);
        let line = LogLine::new("teosd: api_port: bad value".into());
        assert_eq!(line.text(), "teosd: api_port: bad value");
        assert!(!line.is("ready"));
    }
}
