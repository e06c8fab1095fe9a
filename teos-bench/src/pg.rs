//! Towers on PostgreSQL (issue 12): a PostgreSQL server (a throwaway cluster started here with
//! teos-testkit's [`PgCluster`], or one given by URL), a fresh database per run, and 1..N teosd
//! instances on it (a fleet), each with its own data dir and ports.
//!
//! The throwaway cluster is the one the tests use: `fsync=off`, `synchronous_commit=off`,
//! `full_page_writes=off` (see `teos_testkit::postgres`), so its commits are not durable. To measure
//! a durable server, start one and pass its URL (`--database-url`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bitcoind_sim::Simulator;
use teos_testkit::postgres::PgTarget;
use teos_testkit::{Launch, PgCluster, TowerConfig, TowerProcess};

use crate::error::BenchError;
use crate::pg_prefill::prefill_pg;
use crate::prefill::PrefillSpec;
use crate::tower::{bench_config, bench_launch, thread_cpu};

/// How long an instance may take to get ready (a cold start on a big database included).
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Which PostgreSQL server the towers of a run use.
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// An existing server (`postgresql://user:password@host:port/db`, the role may `CREATE
    /// DATABASE`); `None` starts a throwaway cluster (needs PostgreSQL's `initdb`).
    pub database_url: Option<String>,
}

/// The PostgreSQL server of a run; a throwaway cluster is stopped and deleted when dropped, a
/// database created on a given server is dropped then.
pub struct PgServer {
    target: PgTarget,
    /// Databases created on an external server (dropped at the end).
    created: Vec<String>,
}

impl PgServer {
    /// The server of `options`: the given URL, else a new throwaway cluster (about 1–2 s).
    ///
    /// Errors: [`BenchError::Kit`] (the cluster did not start), [`BenchError::Check`] (no
    /// PostgreSQL installed and no URL given).
    pub fn start(options: &PgOptions) -> Result<PgServer, BenchError> {
        let target = match &options.database_url {
            Some(url) => PgTarget::External(url.clone()),
            None => PgTarget::Owned(PgCluster::start()?.ok_or_else(|| {
                BenchError::Check(
                    "no PostgreSQL found (install the `postgresql` package, set TEOS_TEST_PG_BIN, \
                     or pass --database-url)"
                        .into(),
                )
            })?),
        };
        Ok(PgServer {
            target,
            created: Vec::new(),
        })
    }

    /// A server from an existing [`PgTarget`] (the tests' `PgTarget::from_env`).
    pub fn from_target(target: PgTarget) -> PgServer {
        PgServer {
            target,
            created: Vec::new(),
        }
    }

    /// Creates a new, empty database (`teos_bench_<pid>_<n>`) and returns its URL.
    ///
    /// Errors: [`BenchError::Postgres`] (connecting, `CREATE DATABASE`), [`BenchError::Check`] (a
    /// URL without a database path).
    pub fn fresh_database(&mut self) -> Result<String, BenchError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "teos_bench_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = self.target.url();
        let mut admin = postgres::Client::connect(&base, postgres::NoTls)?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        if matches!(self.target, PgTarget::External(_)) {
            self.created.push(name.clone());
        }
        with_database(&base, &name)
    }

    /// CPU time of the server's processes (postmaster and every child: backends, WAL writer,
    /// checkpointer, …) so far, as one entry `postgres`; empty for an external server, whose
    /// processes may be elsewhere. Backends that already exited are not counted.
    pub fn cpu(&self) -> BTreeMap<String, Duration> {
        let mut cpu = BTreeMap::new();
        let PgTarget::Owned(cluster) = &self.target else {
            return cpu;
        };
        let Some(postmaster) = postmaster_pid(cluster.port()) else {
            return cpu;
        };
        let mut total: Duration = thread_cpu(postmaster).values().sum();
        for pid in children(postmaster) {
            total += thread_cpu(pid).values().sum::<Duration>();
        }
        cpu.insert("postgres".to_owned(), total);
        cpu
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let Ok(mut admin) = postgres::Client::connect(&self.target.url(), postgres::NoTls) else {
            return;
        };
        for name in &self.created {
            if let Err(e) =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            {
                eprintln!("teos-bench: dropping database {name}: {e}");
            }
        }
    }
}

/// `url` with its database (the last path segment) replaced by `name`; query parameters kept.
///
/// Errors: [`BenchError::Check`] for a URL without a path.
pub fn with_database(url: &str, name: &str) -> Result<String, BenchError> {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let rest = main
        .strip_prefix("postgresql://")
        .or_else(|| main.strip_prefix("postgres://"))
        .ok_or_else(|| BenchError::Check(format!("not a postgresql:// URL: {}", redact(url))))?;
    let scheme_len = main.len() - rest.len();
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    let mut out = format!("{}{authority}/{name}", &main[..scheme_len]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The pid of the postmaster listening on `port` of this machine: the `postgres` process whose
/// command line has `-p <port>` (how teos-testkit starts it).
fn postmaster_pid(port: u16) -> Option<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"postgres"))
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-p" && w[1] == port.as_bytes())
        })
}

/// Pids of the processes whose parent is `parent` (`PPid:` of `/proc/<pid>/status`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let wanted = parent.to_string();
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .is_some_and(|v| v.trim() == wanted)
            })
        })
        .collect()
}

/// A tower config for `datadir` on the database at `database_url` (the bench limits lifted as in
/// [`bench_config`]), with `leader_takeover_seconds` when given (teosd's default otherwise).
pub fn fleet_config(
    datadir: &Path,
    database_url: &str,
    takeover_seconds: Option<u64>,
    extra: &[String],
) -> TowerConfig {
    let mut config = bench_config(datadir, extra);
    config
        .extra
        .push(format!("database_url = \"{database_url}\""));
    if let Some(seconds) = takeover_seconds {
        config
            .extra
            .push(format!("leader_takeover_seconds = {seconds}"));
    }
    config
}

/// Creates teosd's schema, tower key and chain state in an empty database by starting teosd once
/// (`launch`, its config already on the database) until it is ready, and stopping it; then
/// bulk-loads `spec` ([`prefill_pg`]). Returns the time of the bulk load.
///
/// Errors: teosd did not start or stop cleanly; as [`prefill_pg`].
pub fn init_and_prefill(
    launch: &Launch,
    database_url: &str,
    spec: &PrefillSpec,
) -> Result<Duration, BenchError> {
    let tower = TowerProcess::start(launch, READY_TIMEOUT)?;
    // The chain state is written by the leader's first term (a fresh bootstrap at bitcoind's tip),
    // which starts after the instance is ready.
    wait_for_pipeline(&tower, READY_TIMEOUT)?;
    let status = tower.stop(STOP_TIMEOUT)?;
    if !status.success() {
        return Err(BenchError::TowerExited(status.to_string()));
    }
    prefill_pg(database_url, spec)
}

/// Waits for `tower`'s `pipeline_started` event: it leads and its chain pipeline runs, caught up to
/// bitcoind's tip (a fleet instance is ready, as a standby, before it takes the leadership; a fresh
/// database gets its chain state only then).
///
/// Errors: [`BenchError::Kit`] (timeout, teosd exited).
pub fn wait_for_pipeline(tower: &TowerProcess, timeout: Duration) -> Result<(), BenchError> {
    tower.wait_for_line(0, "teosd's pipeline_started event", timeout, |l| {
        l.is("pipeline_started")
    })?;
    Ok(())
}

/// Waits until `tower` reports itself leader through its admin API (`get_tower_info.role`; a
/// fleet instance is ready, as a standby, before it takes the leadership); how long that took.
///
/// Errors: [`BenchError::Check`] after `timeout`, [`BenchError::TowerExited`].
pub fn wait_for_leadership(
    tower: &TowerProcess,
    timeout: Duration,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    loop {
        if !tower.is_running() {
            return Err(BenchError::TowerExited(
                "while waiting for it to lead".into(),
            ));
        }
        let role = tower
            .admin()
            .ok()
            .and_then(|admin| admin.tower_info().ok())
            .map(|info| info.role);
        if role.as_deref() == Some("leader") {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            return Err(BenchError::Check(format!(
                "teosd did not become leader within {} s (role {role:?})",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How a fleet is started.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// Instances.
    pub instances: usize,
    /// The teosd binary.
    pub teosd: PathBuf,
    /// Echo teosd's logs (each instance's lines prefixed with its number).
    pub echo: bool,
    /// Log "block connected" events at debug.
    pub block_logs: bool,
    /// `leader_takeover_seconds` (teosd's default when `None`).
    pub takeover_seconds: Option<u64>,
    /// Extra `teos.toml` lines.
    pub tower_options: Vec<String>,
}

/// 1..N teosd instances on one fresh database of a [`PgServer`] (each with its own data dir and
/// ports under `dir`), following one bitcoind-sim.
pub struct Fleet {
    /// The running instances (`None` while one is down). First field: dropped (killed) before the
    /// server stops.
    pub towers: Vec<Option<TowerProcess>>,
    /// The server (kept alive as long as the fleet).
    pub server: PgServer,
    /// The fleet's database URL.
    pub url: String,
    /// How each instance is started.
    pub launches: Vec<Launch>,
}

impl Fleet {
    /// Creates a fresh database on `server` and writes the config of every instance
    /// (`<dir>/teosd-<i>`), following `sim`; starts nothing.
    ///
    /// Errors: as [`PgServer::fresh_database`], [`TowerConfig::write`].
    pub fn configure(
        mut server: PgServer,
        sim: &Simulator,
        dir: &Path,
        spec: &FleetSpec,
    ) -> Result<Fleet, BenchError> {
        let url = server.fresh_database()?;
        let mut launches = Vec::new();
        for i in 0..spec.instances.max(1) {
            let datadir = dir.join(format!("teosd-{i}"));
            let config = fleet_config(&datadir, &url, spec.takeover_seconds, &spec.tower_options);
            config.write(sim)?;
            let mut launch = bench_launch(&spec.teosd, &datadir, spec.block_logs, spec.echo);
            if spec.echo {
                launch.echo = Some(format!("[teosd-{i}] "));
            }
            launches.push(launch);
        }
        let towers = launches.iter().map(|_| None).collect();
        Ok(Fleet {
            towers,
            server,
            url,
            launches,
        })
    }

    /// Starts instance 0 once on the empty database and bulk-loads `spec` ([`init_and_prefill`]).
    ///
    /// Errors: as [`init_and_prefill`].
    pub fn prefill(&self, spec: &PrefillSpec) -> Result<Duration, BenchError> {
        init_and_prefill(&self.launches[0], &self.url, spec)
    }

    /// Starts every instance that is down, all at once, and waits until each is ready.
    ///
    /// Errors: an instance did not start in time.
    pub fn start_all(&mut self) -> Result<(), BenchError> {
        for (slot, launch) in self.towers.iter_mut().zip(&self.launches) {
            if slot.is_none() {
                *slot = Some(TowerProcess::spawn(launch)?);
            }
        }
        for tower in self.towers.iter_mut().flatten() {
            tower.wait_ready(READY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Starts instance `i` (down) and waits until it is ready; how long that took.
    ///
    /// Errors: it did not start in time.
    pub fn start(&mut self, i: usize) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let tower = TowerProcess::start(&self.launches[i], READY_TIMEOUT)?;
        self.towers[i] = Some(tower);
        Ok(started.elapsed())
    }

    /// The public API addresses of the running instances.
    pub fn apis(&self) -> Vec<SocketAddr> {
        self.towers
            .iter()
            .flatten()
            .filter_map(|t| t.ready().map(|r| r.api))
            .collect()
    }

    /// SIGKILL every instance.
    pub fn kill_all(&mut self) {
        for tower in self.towers.iter_mut() {
            if let Some(t) = tower.take() {
                t.kill();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgresql://u:p@127.0.0.1:5432/teos", "x").unwrap(),
            "postgresql://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/db?sslmode=disable", "x").unwrap(),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://u@h:1", "x").unwrap(),
            "postgresql://u@h:1/x"
        );
        assert!(with_database("mysql://h/db", "x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgresql://u:secret@h:1/db"),
            "postgresql://u:***@h:1/db"
        );
        assert_eq!(redact("postgresql://u@h:1/db"), "postgresql://u@h:1/db");
    }
}
