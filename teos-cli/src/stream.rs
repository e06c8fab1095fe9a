//! Writing answers as they arrive: a list is written item by item, page by page, so teos-cli never
//! holds more than one page (1000 items) of a listing, whatever the tower holds.
//!
//! Two formats:
//! - JSON (default): exactly what `serde_json::to_string_pretty` gives for the whole object (two-space
//!   indent, keys in sorted order, `[]` for an empty list), so the output is byte for byte the one of
//!   a teos-cli that built the object in memory;
//! - NDJSON (`--ndjson`): one compact JSON value per line, the list's items only (for a single
//!   answer, the answer on one line).
//!
//! Writes are buffered and flushed after each page. After an error, what was written stays written:
//! stdout then holds an unfinished document, and the exit code says what failed.

use std::io::{self, Write};

use serde_json::{Map, Value};

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One pretty-printed JSON document.
    Json,
    /// One compact JSON value per line.
    Ndjson,
}

/// Prints one (small) answer.
pub fn write_value(out: &mut impl Write, format: Format, value: &Value) -> io::Result<()> {
    match format {
        Format::Json => serde_json::to_writer_pretty(&mut *out, value)?,
        Format::Ndjson => serde_json::to_writer(&mut *out, value)?,
    }
    out.write_all(b"\n")?;
    out.flush()
}

/// A JSON object with one list field (`list_key`) written item by item; the other fields
/// (`fields`) are known when the list starts.
pub struct ListWriter<W: Write> {
    out: W,
    format: Format,
    /// Fields sorting after the list key, written by [`ListWriter::finish`] (JSON only).
    after: Map<String, Value>,
    /// Items written so far.
    count: u64,
}

impl<W: Write> ListWriter<W> {
    /// Starts the object: in JSON, `{`, the fields sorting before `list_key`, and the list's opening.
    pub fn begin(
        mut out: W,
        format: Format,
        list_key: &str,
        fields: Map<String, Value>,
    ) -> io::Result<ListWriter<W>> {
        let mut after = Map::new();
        if format == Format::Json {
            out.write_all(b"{\n")?;
            for (key, value) in fields {
                if key.as_str() < list_key {
                    write_field(&mut out, &key, &value)?;
                    out.write_all(b",\n")?;
                } else {
                    after.insert(key, value);
                }
            }
            out.write_all(b"  ")?;
            serde_json::to_writer(&mut out, list_key)?;
            out.write_all(b": [")?;
        }
        Ok(ListWriter {
            out,
            format,
            after,
            count: 0,
        })
    }

    /// Writes one item of the list.
    pub fn item(&mut self, item: &Value) -> io::Result<()> {
        match self.format {
            Format::Json => {
                self.out
                    .write_all(if self.count == 0 { b"\n" } else { b",\n" })?;
                write_indented(&mut self.out, item, "    ")?;
            }
            Format::Ndjson => {
                serde_json::to_writer(&mut self.out, item)?;
                self.out.write_all(b"\n")?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Flushes what was written (at the end of a page).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Closes the list and the object; returns the number of items written.
    pub fn finish(mut self) -> io::Result<u64> {
        if self.format == Format::Json {
            self.out
                .write_all(if self.count == 0 { b"]" } else { b"\n  ]" })?;
            for (key, value) in std::mem::take(&mut self.after) {
                self.out.write_all(b",\n")?;
                write_field(&mut self.out, &key, &value)?;
            }
            self.out.write_all(b"\n}\n")?;
        }
        self.out.flush()?;
        Ok(self.count)
    }
}

/// `  "key": value` with `value` pretty-printed at the object's depth.
fn write_field(out: &mut impl Write, key: &str, value: &Value) -> io::Result<()> {
    out.write_all(b"  ")?;
    serde_json::to_writer(&mut *out, key)?;
    out.write_all(b": ")?;
    let text = serde_json::to_string_pretty(value)?;
    write_lines(out, &text, "  ", false)
}

/// `value` pretty-printed, every line indented by `indent`.
fn write_indented(out: &mut impl Write, value: &Value, indent: &str) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_lines(out, &text, indent, true)
}

/// Writes `text` with `indent` before each line (before the first only if `first`).
fn write_lines(out: &mut impl Write, text: &str, indent: &str, first: bool) -> io::Result<()> {
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.write_all(b"\n")?;
        }
        if n > 0 || first {
            out.write_all(indent.as_bytes())?;
        }
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn streamed(format: Format, key: &str, fields: &Value, items: &[Value]) -> String {
        let mut out = Vec::new();
        let fields = fields.as_object().cloned().unwrap_or_default();
        let mut writer = ListWriter::begin(&mut out, format, key, fields).unwrap();
        for item in items {
            writer.item(item).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), items.len() as u64);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn streamed_json_is_byte_for_byte_the_pretty_printed_object() {
        let entry = |n: u32| {
            json!({ "appointment": {
                "locator": format!("{n:032x}"), "encrypted_blob": "00ff", "to_self_delay": n,
            }})
        };
        let fields = json!({ "user_id": "02ab", "available_slots": 7, "subscription_expiry": 9,
                             "nested": { "a": [1, 2], "b": {} } });
        for n in [0, 1, 3, 1001] {
            let items: Vec<Value> = (0..n).map(entry).collect();
            for (key, fields) in [
                ("appointments", json!({})),
                ("appointments", fields.clone()),
                ("zzz", fields.clone()),
                ("a", fields.clone()),
            ] {
                let mut whole = fields.as_object().cloned().unwrap();
                whole.insert(key.to_owned(), Value::Array(items.clone()));
                let expected = serde_json::to_string_pretty(&Value::Object(whole)).unwrap() + "\n";
                assert_eq!(
                    streamed(Format::Json, key, &fields, &items),
                    expected,
                    "{n} items under {key}"
                );
            }
        }
    }

    #[test]
    fn ndjson_is_one_compact_item_per_line() {
        let items = [json!({"a": 1}), json!("02ab"), json!({"b": {"c": [1, 2]}})];
        let out = streamed(Format::Ndjson, "items", &json!({"ignored": 1}), &items);
        assert_eq!(out, "{\"a\":1}\n\"02ab\"\n{\"b\":{\"c\":[1,2]}}\n");
        assert_eq!(streamed(Format::Ndjson, "items", &json!({}), &[]), "");
    }
}
