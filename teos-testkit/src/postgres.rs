//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, `postgres` on a free port of
//! 127.0.0.1, password (SCRAM) authentication for a `teos` role, stopped when dropped.
//!
//! Each test that needs PostgreSQL starts its own cluster ([`PgCluster::start`]), so every test
//! binary is self-sufficient: nothing has to be started or exported before `cargo test`. Where no
//! `initdb` can be found the test skips with a clear line, unless `TEOS_TEST_REQUIRE_POSTGRES` is
//! set (as `.ci/run` does), in which case it fails. `TEOS_TEST_DATABASE_URL`, when set, names an
//! existing server to use instead (see [`PgTarget::from_env`]).
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then `initdb`, `pg_ctl` and `postgres`
//! run as the `postgres` system user (`runuser -u postgres --`, Debian's package creates that
//! user), in a temp dir handed over to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{KitError, free_port};

/// The role the tests log in as, with a password (so they exercise a URL that carries one).
pub const TEST_ROLE: &str = "teos";
/// Its password. A throwaway cluster on 127.0.0.1 only; nothing secret.
const TEST_PASSWORD: &str = "teos-test-pw";
/// The environment variable naming an existing server for the tests (a `postgresql://` URL whose
/// role may `CREATE DATABASE`).
pub const DATABASE_URL_ENV: &str = "TEOS_TEST_DATABASE_URL";
/// When set (to anything), a test that finds no PostgreSQL fails instead of skipping (CI).
pub const REQUIRE_ENV: &str = "TEOS_TEST_REQUIRE_POSTGRES";
/// Overrides where `initdb`, `pg_ctl` and `psql` are looked up (a PostgreSQL `bin` directory).
pub const BIN_DIR_ENV: &str = "TEOS_TEST_PG_BIN";

/// Where a test's PostgreSQL comes from.
pub enum PgTarget {
    /// An existing server named by `TEOS_TEST_DATABASE_URL` (its URL).
    External(String),
    /// A cluster this test started and owns (stopped when dropped).
    Owned(PgCluster),
}

impl PgTarget {
    /// `TEOS_TEST_DATABASE_URL` if set, else a fresh [`PgCluster`] if PostgreSQL's binaries are
    /// installed, else `Ok(None)` after printing a skip line naming `test` (or an error when
    /// `TEOS_TEST_REQUIRE_POSTGRES` is set).
    ///
    /// Errors: the cluster could not start; PostgreSQL is required but missing.
    pub fn from_env(test: &str) -> Result<Option<PgTarget>, KitError> {
        if let Ok(url) = std::env::var(DATABASE_URL_ENV)
            && !url.is_empty()
        {
            return Ok(Some(PgTarget::External(url)));
        }
        match PgCluster::start()? {
            Some(cluster) => Ok(Some(PgTarget::Owned(cluster))),
            None => skip_or_fail(test).map(|()| None),
        }
    }

    /// The URL tests connect with: `postgresql://teos:…@127.0.0.1:PORT/teos` or the external one.
    pub fn url(&self) -> String {
        match self {
            PgTarget::External(url) => url.clone(),
            PgTarget::Owned(cluster) => cluster.url(),
        }
    }
}

/// Prints why `test` is skipped, or fails when `TEOS_TEST_REQUIRE_POSTGRES` is set.
///
/// Errors: [`KitError::Io`] (kind NotFound) when PostgreSQL is required.
pub fn skip_or_fail(test: &str) -> Result<(), KitError> {
    if std::env::var_os(REQUIRE_ENV).is_some() {
        return Err(KitError::io(
            format!("{test}: {REQUIRE_ENV} is set but no PostgreSQL initdb was found"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    eprintln!(
        "SKIPPED {test}: no PostgreSQL (install the `postgresql` package, set {BIN_DIR_ENV}, or set \
         {DATABASE_URL_ENV})"
    );
    Ok(())
}

/// A running throwaway PostgreSQL cluster, stopped (`pg_ctl stop -m immediate`) and deleted when
/// dropped.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres_user: bool,
    /// False between [`PgCluster::stop`] and [`PgCluster::start_again`].
    running: AtomicBool,
}

impl PgCluster {
    /// Finds PostgreSQL's binaries, runs `initdb` (superuser `postgres`, trusted only over the
    /// cluster's own Unix socket), starts the server on a free port of 127.0.0.1, and creates the
    /// `teos` role (LOGIN CREATEDB, password) and its database `teos`. About 1–2 s.
    ///
    /// Returns `Ok(None)` when no `initdb` is installed.
    ///
    /// Errors: [`KitError::Io`] if a step fails (its output is in the message).
    pub fn start() -> Result<Option<PgCluster>, KitError> {
        let Some(bin) = find_bin_dir() else {
            return Ok(None);
        };
        let as_postgres_user = is_root();
        let dir = tempfile::Builder::new()
            .prefix("teos-pg-")
            .tempdir()
            .map_err(|e| KitError::io("creating the PostgreSQL temp dir", e))?;
        if as_postgres_user {
            give_to_postgres(dir.path())?;
        }
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            as_postgres_user,
            running: AtomicBool::new(false),
        };
        cluster.run(
            "initdb",
            Command::new(cluster.bin.join("initdb"))
                .arg("-D")
                .arg(cluster.data_dir())
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--no-sync",
                    "--encoding=UTF8",
                    "--locale=C",
                ]),
        )?;
        // The port is bound then released; a clash with another test is retried.
        let mut last = None;
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start("pg_ctl start") {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        cluster.running.store(true, Ordering::SeqCst);
        cluster.psql(&format!(
            "CREATE ROLE {TEST_ROLE} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}'"
        ))?;
        // CREATE DATABASE cannot share psql's one implicit transaction with another statement.
        cluster.psql(&format!("CREATE DATABASE {TEST_ROLE} OWNER {TEST_ROLE}"))?;
        Ok(Some(cluster))
    }

    /// `postgresql://teos:PASSWORD@127.0.0.1:PORT/teos`.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{TEST_ROLE}:{TEST_PASSWORD}@127.0.0.1:{}/{TEST_ROLE}",
            self.port
        )
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every session is closed, advisory locks
    /// are released, committed data stays. Same port, same URL.
    ///
    /// Errors: [`KitError::Io`] if pg_ctl fails.
    pub fn restart(&self) -> Result<(), KitError> {
        self.stop()?;
        self.start_again()
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are closed, committed data stays) and
    /// leaves it down until [`PgCluster::start_again`]: connections to the port are refused
    /// meanwhile.
    ///
    /// Errors: [`KitError::Io`] if pg_ctl fails.
    pub fn stop(&self) -> Result<(), KitError> {
        self.run(
            "pg_ctl stop",
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "stop"]),
        )?;
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Starts the server stopped by [`PgCluster::stop`] again, on the same port (same URL). Waits
    /// until it accepts connections.
    ///
    /// Errors: [`KitError::Io`] if pg_ctl fails (e.g. the port was taken meanwhile).
    pub fn start_again(&self) -> Result<(), KitError> {
        self.pg_ctl_start("pg_ctl start (again)")?;
        self.running.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Runs SQL as the superuser over the cluster's Unix socket (`psql -v ON_ERROR_STOP=1`).
    ///
    /// Errors: [`KitError::Io`] with psql's output if it fails.
    pub fn psql(&self, sql: &str) -> Result<String, KitError> {
        let out = self.run(
            "psql",
            Command::new(self.tool("psql"))
                .arg("-h")
                .arg(self.dir.path())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `name` from the cluster's bin directory, else from PATH (Debian has psql in both; a
    /// hand-made bin directory may hold only the server tools).
    fn tool(&self, name: &str) -> PathBuf {
        let path = self.bin.join(name);
        if path.is_file() {
            path
        } else {
            PathBuf::from(name)
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl_start(&self, what: &str) -> Result<(), KitError> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            what,
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        )
        .map(|_| ())
    }

    /// Runs `command`, as the `postgres` user when this process is root.
    fn run(&self, what: &str, command: &mut Command) -> Result<Output, KitError> {
        let mut command = if self.as_postgres_user {
            let mut wrapped = Command::new("runuser");
            wrapped
                .args(["-u", "postgres", "--"])
                .arg(command.get_program())
                .args(command.get_args());
            wrapped
        } else {
            std::mem::replace(command, Command::new("true"))
        };
        // The server must not die with this process group's terminal; keep its output in files.
        command.current_dir(self.dir.path());
        let out = command
            .output()
            .map_err(|e| KitError::io(format!("running {what}"), e))?;
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            return Err(KitError::io(
                format!(
                    "{what} failed ({}): {}{}\nserver.log:\n{log}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                std::io::Error::other("PostgreSQL command failed"),
            ));
        }
        Ok(out)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port == 0 || !self.running.load(Ordering::SeqCst) {
            return;
        }
        let mut stop = Command::new(self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]);
        if let Err(e) = self.run("pg_ctl stop", &mut stop) {
            eprintln!("stopping the test PostgreSQL cluster: {e}");
        }
    }
}

/// A fresh database name, unique in this process (`teos_test_<pid>_<n>`), for tests sharing a
/// server.
pub fn unique_database_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "teos_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `TEOS_TEST_PG_BIN`, else the directory of an `initdb` on PATH, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps initdb off PATH).
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Hands `dir` to the `postgres` user (it must own its data directory).
fn give_to_postgres(dir: &Path) -> Result<(), KitError> {
    let out = Command::new("chown")
        .arg("postgres:")
        .arg(dir)
        .output()
        .map_err(|e| KitError::io("running chown", e))?;
    if !out.status.success() {
        return Err(KitError::io(
            format!(
                "chown postgres {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
            std::io::Error::other("chown failed"),
        ));
    }
    Ok(())
}
