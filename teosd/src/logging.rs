//! Log output (tracing): human-readable on a terminal, journald-friendly under systemd, or JSON lines;
//! to stderr or to a file that SIGHUP reopens (for logrotate).
//!
//! journald style (`log_format = "journald"`, or `auto` when `JOURNAL_STREAM` is set): no timestamp
//! (the journal adds its own) and a `<N>` syslog priority prefix per line, which journald reads as the
//! entry's priority (sd-daemon(3)): error 3, warn 4, info 6, debug/trace 7.
//!
//! Secrets never reach the log: the config's `Debug` masks the RPC password, the tower key is never
//! formatted, decrypted penalties are only referred to by txid.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::Config;

/// The log file, when one is configured; [`reopen`] swaps its handle.
static LOG_FILE: OnceLock<Arc<ReopenableFile>> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured levels.
///
/// Errors: the log file cannot be opened (the caller reports it on stderr and exits).
pub fn init(config: &Config) -> io::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.log_filter()));
    let format = match config.log_format.as_str() {
        "auto" if std::env::var_os("JOURNAL_STREAM").is_some() && config.log_file.is_none() => {
            "journald"
        }
        "auto" => "human",
        other => other,
    };
    let file = match &config.log_file {
        Some(path) => {
            let file = Arc::new(ReopenableFile::open(path)?);
            let _ = LOG_FILE.set(file.clone());
            Some(file)
        }
        None => None,
    };
    let ansi = file.is_none() && io::stderr().is_terminal();
    let writer = LogWriter { file };
    // A log line that cannot be written (stderr's pipe closed: a log collector restarting,
    // `teosd 2>&1 | head`) is dropped. tracing-subscriber would otherwise report it with `eprintln!`, which
    // panics on the same closed pipe in whichever thread logged — e.g. the signals thread, before it
    // triggers shutdown (reliability_signals.rs).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false);
    let _ = match format {
        "json" => builder.json().try_init(),
        "journald" => builder.event_format(JournaldFormat).try_init(),
        _ => builder.with_ansi(ansi).try_init(),
    };
    Ok(())
}

/// Reopens the log file at its configured path (`log_file`), creating it if logrotate moved it away;
/// lines written after the swap go to the new file. Called on SIGHUP (`crate::signals`).
///
/// Returns the path reopened, or `None` when there is no log file (logging to stderr or the journal).
///
/// Errors: the file cannot be created or opened (directory gone, permissions); the old handle is kept,
/// so lines keep going to the moved file.
pub fn reopen() -> Result<Option<&'static Path>, ReopenError> {
    let Some(file) = LOG_FILE.get() else {
        return Ok(None);
    };
    file.reopen().map_err(|source| ReopenError {
        path: file.path.clone(),
        source,
    })?;
    Ok(Some(&file.path))
}

/// The log file could not be reopened (see [`reopen`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot reopen the log file {}: {source}", path.display())]
pub struct ReopenError {
    /// The configured `log_file`.
    pub path: PathBuf,
    /// Why opening it failed.
    pub source: io::Error,
}

/// An append-mode file whose handle can be replaced while writers use it.
struct ReopenableFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl ReopenableFile {
    fn open(path: &Path) -> io::Result<ReopenableFile> {
        Ok(ReopenableFile {
            path: path.to_path_buf(),
            file: Mutex::new(Self::open_file(path)?),
        })
    }

    fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    fn reopen(&self) -> io::Result<()> {
        let new = Self::open_file(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }
}

/// Where log lines go: the reopenable file, or stderr.
#[derive(Clone)]
struct LogWriter {
    file: Option<Arc<ReopenableFile>>,
}

/// One log line's writer.
enum LineWriter {
    File(Arc<ReopenableFile>),
    Stderr(io::Stderr),
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LineWriter::File(f) => f.file.lock().unwrap_or_else(|e| e.into_inner()).write(buf),
            LineWriter::Stderr(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            LineWriter::File(f) => f.file.lock().unwrap_or_else(|e| e.into_inner()).flush(),
            LineWriter::Stderr(s) => s.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        match &self.file {
            Some(file) => LineWriter::File(file.clone()),
            None => LineWriter::Stderr(io::stderr()),
        }
    }
}

/// `<priority>target: message key=value...` — for the systemd journal.
struct JournaldFormat;

impl<S, N> FormatEvent<S, N> for JournaldFormat
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
        let meta = event.metadata();
        write!(writer, "<{}>{}: ", priority(meta.level()), meta.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// syslog priority of a tracing level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn reopen_writes_to_the_new_file_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teosd.log");
        let file = Arc::new(ReopenableFile::open(&path).unwrap());
        let mut writer = LineWriter::File(file.clone());
        writer.write_all(b"before\n").unwrap();
        std::fs::rename(&path, dir.path().join("teosd.log.1")).unwrap();
        file.reopen().unwrap();
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("teosd.log.1")).unwrap(),
            "before\n"
        );
    }
}
