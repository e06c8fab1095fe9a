//! `teosd backup <DEST_FILE>`: a consistent copy of the tower's database, taken while the tower runs.
//!
//! The copy goes through SQLite's online backup API (rusqlite's [`Backup`]) from a separate
//! connection, in one step: the whole copy reads one snapshot (a WAL read transaction), so it holds
//! every transaction committed before it started and none half-done, and the tower's writer is never
//! blocked (in WAL mode readers and the writer do not wait for each other; the WAL just cannot be
//! checkpointed past the snapshot until the copy ends). Every appointment whose receipt was sent
//! before the backup started is in it (receipts are sent after the commit, ARCHITECTURE.md
//! "Invariants").
//!
//! The copy is written to `<DEST_FILE>.partial`, checked (`PRAGMA quick_check`), switched to a
//! rollback journal (a standalone file, no `-wal` beside it), synced and only then given its name,
//! which must not exist. It holds the tower's secret key: mode 0600.
//!
//! What else to keep (not in the database): the admin TLS files and `teos.toml` of the data dir, and
//! `onion_v3_sk` when Tor is used. Restoring is: stop teosd, copy the file to
//! `<datadir>/<network>/teos_db.sql3`, delete any `teos_db.sql3-wal` and `teos_db.sql3-shm` there,
//! start teosd (README, "Backup and restore").

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::storage::{StorageError, appointments, keys, trackers, users};
use crate::tower::TowerKey;

/// `teosd backup --help`.
pub const HELP: &str = "\
Copies the tower's database (--datadir, --btcnetwork: <datadir>/<network>/teos_db.sql3) to DEST_FILE with \
SQLite's online backup API: consistent while the tower runs and writes, every acknowledged appointment \
included. DEST_FILE must not exist; it holds the tower key (mode 0600). Also keep the data dir's TLS files, \
teos.toml and onion_v3_sk. Restore: stop teosd, copy the file to <datadir>/<network>/teos_db.sql3, delete \
teos_db.sql3-wal and teos_db.sql3-shm there, start teosd.";

/// How long the copy waits for the database while another connection holds a lock it needs (WAL
/// recovery, a checkpoint), in total.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// Why a backup was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No database at the configured place.
    #[error("no database at {0}: check --datadir and --btcnetwork")]
    NoDatabase(PathBuf),
    /// The destination exists (never overwritten).
    #[error("{0} exists: choose a new file name (a backup never replaces a file)")]
    DestinationExists(PathBuf),
    /// SQLite failed.
    #[error("{what}: {source}")]
    Sqlite {
        what: &'static str,
        source: rusqlite::Error,
    },
    /// Reading the copy back failed.
    #[error("checking the copy: {0}")]
    Storage(#[from] StorageError),
    /// The copy did not pass `PRAGMA quick_check`.
    #[error("the copy failed its integrity check: {0}")]
    Corrupt(String),
    /// The database stayed locked for longer than the copy waits.
    #[error("the database stayed locked for {0:?}")]
    Busy(Duration),
    /// Files.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl BackupError {
    /// 2 when refused (nothing to copy, destination exists), 1 when the copy failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::NoDatabase(_) | BackupError::DestinationExists(_) => 2,
            _ => 1,
        }
    }
}

fn sqlite(what: &'static str) -> impl FnOnce(rusqlite::Error) -> BackupError {
    move |source| BackupError::Sqlite { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The tower id of the newest key in the copy.
    pub tower_id: Option<String>,
    /// Registered users in the copy.
    pub users: u64,
    /// Appointments in the copy (with and without tracker).
    pub appointments: u64,
    /// Trackers in the copy.
    pub trackers: u64,
    /// Size of the copy (bytes).
    pub bytes: u64,
}

/// The subcommand's entry point (see [`crate::subcommand`]).
pub fn main(operands: Vec<OsString>, teosd_args: Vec<OsString>) -> ExitCode {
    let Some(dest) = operands.into_iter().next().map(PathBuf::from) else {
        return ExitCode::from(2);
    };
    let config = match crate::subcommand::load_config(teosd_args, crate::subcommand::environment())
    {
        Ok(config) => config,
        Err(code) => return code,
    };
    match backup(&config.db_path(), &dest) {
        Ok(summary) => {
            let keep: Vec<PathBuf> = also_keep(&config)
                .into_iter()
                .filter(|p| p.exists())
                .collect();
            let json = serde_json::json!({
                "file": dest,
                "bytes": summary.bytes,
                "tower_id": summary.tower_id,
                "users": summary.users,
                "appointments": summary.appointments,
                "trackers": summary.trackers,
                "also_keep": keep,
            });
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("teosd backup: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The files of the data dir a backup of the database does not hold: the admin TLS files and
/// `teos.toml` in `config.data_dir`, and the Tor key in the network directory.
pub fn also_keep(config: &crate::config::Config) -> Vec<PathBuf> {
    [
        crate::tls::CA_CERT,
        crate::tls::CA_KEY,
        crate::tls::SERVER_CERT,
        crate::tls::SERVER_KEY,
        crate::tls::CLIENT_CERT,
        crate::tls::CLIENT_KEY,
        crate::config::CONFIG_FILE_NAME,
    ]
    .into_iter()
    .map(|name| config.data_dir.join(name))
    .chain([crate::tor::key_path(&config.network_dir())])
    .collect()
}

/// Copies the database at `db` to `dest` (see the module docs).
///
/// Errors: [`BackupError`]; a failed copy leaves no file at `dest` nor at `<dest>.partial`.
pub fn backup(db: &Path, dest: &Path) -> Result<BackupSummary, BackupError> {
    if !db.is_file() {
        return Err(BackupError::NoDatabase(db.to_path_buf()));
    }
    if dest.exists() {
        return Err(BackupError::DestinationExists(dest.to_path_buf()));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = fs::remove_file(&partial); // left by an interrupted backup
    let result = copy(db, &partial).and_then(|summary| {
        // Linking fails rather than replace a file that appeared meanwhile.
        fs::hard_link(&partial, dest).map_err(io(format!("naming {}", dest.display())))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(format!("syncing {}", dir.display())))?;
        }
        Ok(summary)
    });
    let _ = fs::remove_file(&partial);
    result
}

fn copy(db: &Path, partial: &Path) -> Result<BackupSummary, BackupError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(partial)
        .map_err(io(format!("creating {}", partial.display())))?;

    // Read-write without create: a WAL database needs its -shm, which a read-only connection cannot
    // create when the tower is stopped. Nothing is written through it.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let source = Connection::open_with_flags(db, flags).map_err(sqlite("opening the database"))?;
    source
        .busy_timeout(BUSY_WAIT)
        .map_err(sqlite("opening the database"))?;
    let mut copy = Connection::open(partial).map_err(sqlite("opening the copy"))?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(sqlite("starting the backup"))?;
        let started = std::time::Instant::now();
        // -1: every page in one step, so the whole copy reads one snapshot and never restarts.
        loop {
            match backup.step(-1).map_err(sqlite("copying"))? {
                StepResult::Done => break,
                StepResult::More => continue,
                _busy_or_locked if started.elapsed() < BUSY_WAIT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => return Err(BackupError::Busy(BUSY_WAIT)),
            }
        }
    }
    drop(source);
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(sqlite("checking the copy"))?;
    if check != "ok" {
        return Err(BackupError::Corrupt(check));
    }
    // A standalone file: rollback journal, nothing beside it. teosd switches it back to WAL on open.
    let _: String = copy
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(sqlite("setting the copy's journal mode"))?;
    let summary = summarize(&copy)?;
    copy.close()
        .map_err(|(_, e)| sqlite("closing the copy")(e))?;
    let file = File::open(partial).map_err(io(format!("syncing {}", partial.display())))?;
    file.sync_all()
        .map_err(io(format!("syncing {}", partial.display())))?;
    let bytes = file
        .metadata()
        .map_err(io(format!("reading {}", partial.display())))?
        .len();
    Ok(BackupSummary { bytes, ..summary })
}

fn summarize(conn: &Connection) -> Result<BackupSummary, BackupError> {
    Ok(BackupSummary {
        tower_id: keys::latest(conn)?.map(|k| TowerKey::new(k).id().to_string()),
        users: users::count(conn)?,
        appointments: appointments::count(conn)?,
        trackers: trackers::count(conn)?,
        bytes: 0,
    })
}

/// Bytes taken by the files under `dir` (recursively; symbolic links not followed; entries that vanish
/// or cannot be read while walking are skipped), for `get_tower_info` and the
/// `teosd_data_dir_bytes` metric. Blocking: call it off async workers.
pub fn data_dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let meta = fs::symlink_metadata(entry.path()).ok()?;
            Some(match meta.is_dir() {
                true => data_dir_size(&entry.path()),
                false => meta.len(),
            })
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_size_counts_files_in_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        fs::create_dir(dir.path().join("regtest")).unwrap();
        fs::write(dir.path().join("regtest/b"), [0u8; 32]).unwrap();
        assert_eq!(data_dir_size(dir.path()), 42);
        assert_eq!(data_dir_size(&dir.path().join("missing")), 0);
    }

    #[test]
    fn a_backup_never_replaces_a_file_and_needs_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("backup.sql3");
        fs::write(&dest, b"keep").unwrap();
        let db = dir.path().join("teos_db.sql3");
        assert!(matches!(
            backup(&db, &dir.path().join("new")),
            Err(BackupError::NoDatabase(_))
        ));
        fs::write(&db, b"").unwrap();
        assert!(matches!(
            backup(&db, &dest),
            Err(BackupError::DestinationExists(_))
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"keep");
    }
}
