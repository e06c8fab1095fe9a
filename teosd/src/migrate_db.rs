//! `teosd migrate-db`: moves a tower between the embedded SQLite database and PostgreSQL (issue 12,
//! docs/fleet.md "Moving a tower to PostgreSQL and back").
//!
//! * `teosd migrate-db --to postgresql://…` copies the data dir's SQLite database (users,
//!   appointments, trackers, pending breaches, remembered blocks, the tower key) into an EMPTY
//!   PostgreSQL database;
//! * `teosd migrate-db --from postgresql://…` copies a PostgreSQL database into the data dir's
//!   SQLite database, which must not hold a tower yet (the way back, e.g. to leave a fleet).
//!
//! The copy is written once over [`Tx`](crate::storage::Tx) ([`copy::copy`], [`copy::verify`]), so
//! both directions run the same code. It runs inside ONE destination transaction, with the check
//! of every record against the source before the commit, and the check runs again on the
//! committed copy: a failure at any point leaves the destination as it was. The source is read in
//! one transaction too: SQLite's is `BEGIN IMMEDIATE` (a tower still running on the file cannot
//! acknowledge anything meanwhile; stop it first anyway, or what it acknowledges after the copy
//! stays behind), PostgreSQL's a REPEATABLE READ snapshot.
//!
//! Exit codes as every subcommand: 0 copied and checked; 1 failed while working (nothing
//! committed, or the check of the committed copy failed: drop it); 2 refused (bad arguments, no
//! source tower, a destination that is not empty).

use std::ffi::OsString;
use std::process::ExitCode;

use crate::config::Config;
use crate::storage::postgres::{DatabaseUrl, PgOptions, PgStore};
use crate::storage::{SqliteTx, StorageError};

pub mod copy;

use copy::{Copied, CopyError};

/// `teosd migrate-db --help`.
pub const HELP: &str = "\
--to postgresql://USER@HOST:PORT/DB: copies the tower's embedded database (--datadir, --btcnetwork: \
<datadir>/<network>/teos_db.sql3) into that PostgreSQL database, which must be empty (created, \
nothing in it). --from postgresql://…: copies a PostgreSQL database into the data dir's embedded \
database, which must not hold a tower. Users, appointments, trackers, pending breaches, the \
remembered blocks and the tower key (the newest) are copied in one transaction and checked record by \
record before and after the commit. Stop teosd first. The password comes from the URL, PGPASSWORD or \
the password file (PGPASSFILE, ~/.pgpass). Then set (or remove) database_url in teos.toml and start \
teosd.";

/// Which way the copy goes.
#[derive(Debug)]
enum Direction {
    /// SQLite → PostgreSQL.
    To(DatabaseUrl),
    /// PostgreSQL → SQLite.
    From(DatabaseUrl),
}

/// Why `migrate-db` stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Bad operands.
    #[error("{0}")]
    Usage(String),
    /// No SQLite database where the config says.
    #[error("no database at {0}: check --datadir and --btcnetwork")]
    NoDatabase(std::path::PathBuf),
    /// The copy or its check.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// Opening or committing a database.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The committed copy did not check out (the destination holds it: drop it).
    #[error("the committed copy does not check out: {0}; drop the destination and try again")]
    CommittedCopy(CopyError),
}

impl MigrateError {
    /// 2 when refused (nothing written), 1 when the copy failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            MigrateError::Usage(_)
            | MigrateError::NoDatabase(_)
            | MigrateError::Copy(CopyError::NotEmpty(_) | CopyError::NoTower) => 2,
            _ => 1,
        }
    }
}

fn direction(operands: &[OsString]) -> Result<Direction, MigrateError> {
    let [flag, url] = operands else {
        return Err(MigrateError::Usage(
            "expected --to DATABASE_URL or --from DATABASE_URL".into(),
        ));
    };
    let url = url
        .to_str()
        .ok_or_else(|| MigrateError::Usage("the database URL is not UTF-8".into()))?;
    let url = DatabaseUrl::parse(url).map_err(|e| MigrateError::Usage(e.to_string()))?;
    match flag.to_str() {
        Some("--to") => Ok(Direction::To(url)),
        Some("--from") => Ok(Direction::From(url)),
        _ => Err(MigrateError::Usage(format!(
            "expected --to or --from before the database URL, not {}",
            flag.to_string_lossy()
        ))),
    }
}

/// `teosd migrate-db <--to|--from> <DATABASE_URL> [teosd options]`.
pub fn main(operands: Vec<OsString>, teosd_args: Vec<OsString>) -> ExitCode {
    let config = match crate::subcommand::load_config(teosd_args, crate::subcommand::environment())
    {
        Ok(config) => config,
        Err(code) => return code,
    };
    let outcome = direction(&operands).and_then(|direction| migrate(&config, direction));
    match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("teosd migrate-db: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Copies and checks, in the direction given; returns what to tell the operator.
fn migrate(config: &Config, direction: Direction) -> Result<String, MigrateError> {
    let path = config.db_path();
    let options = PgOptions {
        pool_size: 1,
        application_name: "teosd-migrate-db".into(),
        ..PgOptions::default()
    };
    match direction {
        Direction::To(url) => {
            if !path.is_file() {
                return Err(MigrateError::NoDatabase(path));
            }
            let sqlite = crate::storage::open_sqlite(&path)?;
            let pg = PgStore::open(&url, options)?;
            sqlite
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(StorageError::from)?;
            let mut src = SqliteTx::new(&sqlite);
            let copied = pg.write_once(|dst| -> Result<Copied, MigrateError> {
                let copied = copy::copy(&mut src, dst)?;
                copy::verify(&mut src, dst)?;
                Ok(copied)
            })?;
            pg.read_once(|dst| copy::verify(&mut src, dst).map_err(MigrateError::CommittedCopy))?;
            sqlite
                .execute_batch("ROLLBACK")
                .map_err(StorageError::from)?;
            Ok(format!(
                "copied and checked {copied} from {} to {}.\nNext: set database_url = \"{}\" in {} \
                 (the password from PGPASSWORD or the password file, not the URL) and start teosd; \
                 keep {} until the tower runs on PostgreSQL.",
                path.display(),
                url.masked(),
                url.masked(),
                config.config_file().display(),
                path.display()
            ))
        }
        Direction::From(url) => {
            std::fs::create_dir_all(config.network_dir()).map_err(StorageError::from)?;
            let pg = PgStore::open(&url, options)?;
            let sqlite = crate::storage::open_sqlite(&path)?;
            sqlite
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(StorageError::from)?;
            let copied = pg.read_once(|src| -> Result<Copied, MigrateError> {
                let mut dst = SqliteTx::new(&sqlite);
                let copied = copy::copy(src, &mut dst)?;
                copy::verify(src, &mut dst)?;
                Ok(copied)
            });
            let copied = match copied {
                Ok(copied) => copied,
                Err(e) => {
                    sqlite
                        .execute_batch("ROLLBACK")
                        .map_err(StorageError::from)?;
                    return Err(e);
                }
            };
            sqlite.execute_batch("COMMIT").map_err(StorageError::from)?;
            pg.read_once(|src| {
                copy::verify(src, &mut SqliteTx::new(&sqlite)).map_err(MigrateError::CommittedCopy)
            })?;
            Ok(format!(
                "copied and checked {copied} from {} to {}.\nNext: remove database_url from {} (and \
                 TEOS_DATABASE_URL, --databaseurl) and start teosd.",
                url.masked(),
                path.display(),
                config.config_file().display()
            ))
        }
    }
}
