//! The real `teosd` binary as a child process: its `teos.toml`, its launch, its readiness and bound
//! addresses (read from its structured `ready` and `admin_listening` log events), its state through
//! the admin API, and how it ends (SIGTERM, SIGKILL, any signal, exit status).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoind_sim::Simulator;
use teos_common::appointment::UserId;

use crate::admin::Admin;
use crate::logs::{LogLine, Logs};
use crate::{KitError, free_port, wait_for};

/// What [`TowerConfig::write`] wrote for the two listening ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigPorts {
    /// `api_port` (public HTTP API).
    pub api: u16,
    /// `rpc_port` (admin gRPC API).
    pub admin: u16,
}

/// The `teos.toml` of a tower following a bitcoind-sim on loopback.
#[derive(Clone, Debug)]
pub struct TowerConfig {
    /// The tower's data directory (`--datadir`); the database is `<datadir>/regtest/teos_db.sql3`.
    pub datadir: PathBuf,
    /// Extra `key = value` lines (a key may not repeat one the kit writes: TOML refuses duplicates).
    pub extra: Vec<String>,
}

impl TowerConfig {
    /// A config in `datadir` with no extra lines.
    pub fn new(datadir: &Path) -> TowerConfig {
        TowerConfig {
            datadir: datadir.to_path_buf(),
            extra: Vec::new(),
        }
    }

    /// The database file teosd opens (regtest network directory).
    pub fn db_path(&self) -> PathBuf {
        self.datadir.join("regtest").join("teos_db.sql3")
    }

    /// Creates the data dir and writes `<datadir>/teos.toml` pointing at `sim`: regtest, cookie auth,
    /// ZMQ `hashblock` when the simulator publishes it, 1 s polling, both APIs on 127.0.0.1, then the
    /// extra lines. Returns the ports written.
    ///
    /// teosd's config refuses port 0 (`api_port`, `rpc_port`: "an admin would not find a random
    /// port"), so each port is a free one found here ([`free_port`]); wherever the kit needs them it
    /// reads the bound addresses back from teosd's events, so the day the config accepts 0 only this
    /// function changes.
    ///
    /// Errors: [`KitError::Io`].
    pub fn write(&self, sim: &Simulator) -> Result<ConfigPorts, KitError> {
        std::fs::create_dir_all(&self.datadir)
            .map_err(|e| KitError::io(format!("creating {}", self.datadir.display()), e))?;
        let ports = ConfigPorts {
            api: free_port()?,
            admin: free_port()?,
        };
        let mut config = format!(
            "btc_network = \"regtest\"\nbtc_rpc_connect = \"127.0.0.1\"\nbtc_rpc_port = {}\n\
             btc_rpc_cookie = \"{}\"\napi_bind = \"127.0.0.1\"\napi_port = {}\nrpc_port = {}\n\
             polling_delta = 1\n",
            sim.rpc_port(),
            sim.cookie_path().display(),
            ports.api,
            ports.admin,
        );
        if let Some(zmq) = sim.zmq_endpoint() {
            config.push_str(&format!("btc_zmq_hashblock = \"{zmq}\"\n"));
        }
        for line in &self.extra {
            config.push_str(line);
            config.push('\n');
        }
        let path = self.datadir.join("teos.toml");
        std::fs::write(&path, config)
            .map_err(|e| KitError::io(format!("writing {}", path.display()), e))?;
        Ok(ports)
    }
}

/// How to run teosd: the binary, its data dir, extra flags and environment, log filter and echo.
///
/// The kit always runs teosd with `TEOS_LOG_FORMAT=json` (JSON log lines on stderr) and reads its
/// events from there, so a `log_file` in the config hides readiness from the kit.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `teosd` binary (tests: `env!("CARGO_BIN_EXE_teosd")`; teos-bench and the demo find it
    /// next to their own executable).
    pub teosd: PathBuf,
    /// `--datadir`.
    pub datadir: PathBuf,
    /// Further command-line flags (e.g. `--overwritekey`).
    pub args: Vec<OsString>,
    /// Further environment variables (e.g. `NOTIFY_SOCKET`).
    pub env: Vec<(OsString, OsString)>,
    /// `RUST_LOG` of the child (it overrides teosd's `log_level`).
    pub rust_log: String,
    /// Echo each log line to this process's stderr after this prefix (human-readable form).
    pub echo: Option<String>,
}

impl Launch {
    /// `teosd --datadir <datadir>` at `RUST_LOG=info`, echoed with the prefix `[teosd] `.
    pub fn new(teosd: &Path, datadir: &Path) -> Launch {
        Launch {
            teosd: teosd.to_path_buf(),
            datadir: datadir.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            rust_log: "info".into(),
            echo: Some("[teosd] ".into()),
        }
    }
}

/// What teosd reported when it became ready: its `admin_listening` and `ready` events.
#[derive(Clone, Debug)]
pub struct Ready {
    /// Bound address of the public HTTP API.
    pub api: SocketAddr,
    /// Bound address of the admin gRPC API.
    pub admin: SocketAddr,
    /// The tower id (its public key).
    pub tower_id: UserId,
    /// When the `ready` line reached the kit.
    pub at: Instant,
}

impl Ready {
    /// `http://<api>`, the base URL of the public API.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }
}

/// A teosd child process. Killed (SIGKILL) on drop if still running.
pub struct TowerProcess {
    launch: Launch,
    /// The child; `None` once it was reaped (its status is then in `exit`).
    child: Mutex<Option<Child>>,
    exit: Mutex<Option<ExitStatus>>,
    /// Its pid, kept after it exited for error messages.
    pid: u32,
    logs: Arc<Logs>,
    /// When the process was spawned.
    pub started: Instant,
    ready: Option<Ready>,
    admin: OnceLock<Admin>,
}

impl TowerProcess {
    /// Spawns teosd (config already written) with stderr captured; returns at once.
    ///
    /// Errors: [`KitError::Io`] (the binary cannot be started).
    pub fn spawn(launch: &Launch) -> Result<TowerProcess, KitError> {
        let started = Instant::now();
        let mut child = Command::new(&launch.teosd)
            .arg("--datadir")
            .arg(&launch.datadir)
            .args(&launch.args)
            .env("RUST_LOG", &launch.rust_log)
            .env("TEOS_LOG_FORMAT", "json")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| KitError::io(format!("starting {}", launch.teosd.display()), e))?;
        let logs = match child.stderr.take() {
            Some(stderr) => Logs::capture(stderr, launch.echo.clone())
                .map_err(|e| KitError::io("starting the log reader", e))?,
            None => Arc::new(Logs::default()),
        };
        Ok(TowerProcess {
            launch: launch.clone(),
            pid: child.id(),
            child: Mutex::new(Some(child)),
            exit: Mutex::new(None),
            logs,
            started,
            ready: None,
            admin: OnceLock::new(),
        })
    }

    /// [`spawn`](Self::spawn), then [`wait_ready`](Self::wait_ready).
    ///
    /// Errors: as both.
    pub fn start(launch: &Launch, timeout: Duration) -> Result<TowerProcess, KitError> {
        let mut tower = TowerProcess::spawn(launch)?;
        tower.wait_ready(timeout)?;
        Ok(tower)
    }

    /// Another teosd with the same launch (data dir, flags, environment); this one should have been
    /// stopped first. Returns at once.
    ///
    /// Errors: as [`spawn`](Self::spawn).
    pub fn respawn(&self) -> Result<TowerProcess, KitError> {
        TowerProcess::spawn(&self.launch)
    }

    /// The launch this process was started with.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    /// Waits for the `ready` event and reads the bound addresses and tower id from it and from the
    /// `admin_listening` event before it.
    ///
    /// Errors: [`KitError::Timeout`]; [`KitError::Exited`] when teosd exits first (a config error,
    /// bitcoind on the wrong network); [`KitError::Io`] if the events lack their fields.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<&Ready, KitError> {
        if self.ready.is_none() {
            let line = self.wait_for_line(0, "teosd's ready event", timeout, |l| l.is("ready"))?;
            let admin = self
                .logs
                .find(0, |l| l.is("admin_listening"))
                .and_then(|l| l.event?.text("admin"));
            let event = line.event.unwrap_or_default();
            let bad = |what: &str| {
                KitError::io(
                    "reading teosd's ready event",
                    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
                )
            };
            self.ready = Some(Ready {
                api: event
                    .text("api")
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| bad("no api address"))?,
                admin: admin
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| bad("no admin address"))?,
                tower_id: event
                    .text("tower_id")
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| bad("no tower id"))?,
                at: line.at,
            });
        }
        Ok(self.ready.as_ref().unwrap_or_else(|| unreachable!()))
    }

    /// What the `ready` event said, once [`wait_ready`](Self::wait_ready) saw it.
    pub fn ready(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// The process id (also after it exited).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        let mut exit = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if exit.is_none() {
            let mut child = self.child();
            if let Some(running) = child.as_mut()
                && let Ok(Some(status)) = running.try_wait()
            {
                *exit = Some(status);
                *child = None;
            }
        }
        *exit
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Sends signal `name` (`TERM`, `INT`, `HUP`, `KILL`, …) without waiting.
    ///
    /// Errors: [`KitError::NotRunning`], [`KitError::Io`].
    pub fn signal(&self, name: &str) -> Result<(), KitError> {
        if !self.is_running() {
            return Err(KitError::NotRunning);
        }
        send_signal(self.pid, name)
    }

    /// Waits (bounded) for the process to exit by itself (after a signal, the admin `stop`, or an
    /// error) and for its stderr to be read to the end; its exit status. On timeout the process is left running (drop kills it).
    ///
    /// Errors: [`KitError::Timeout`].
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, KitError> {
        // Exited, and its last log lines read: a test may then look for the error it logged.
        wait_for("teosd to exit", timeout, || {
            Ok(self.try_exit_status().filter(|_| self.logs.closed()))
        })
    }

    /// SIGTERM, then [`wait_exit`](Self::wait_exit); on timeout the process is killed.
    ///
    /// Errors: [`KitError::NotRunning`], [`KitError::Timeout`], [`KitError::Io`].
    pub fn stop(&self, timeout: Duration) -> Result<ExitStatus, KitError> {
        self.signal("TERM")?;
        self.wait_exit(timeout).inspect_err(|_| self.kill())
    }

    /// SIGKILL: the process gets no chance to clean up (a crash). Returns once it is gone; nothing
    /// happens if it already exited.
    pub fn kill(&self) {
        let mut child = self.child();
        if let Some(mut running) = child.take() {
            let _ = running.kill();
            if let Ok(status) = running.wait() {
                *self.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
            }
        }
    }

    /// Every line read so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.logs.lock().clone()
    }

    /// Number of lines read so far (a cursor for [`wait_for_line`](Self::wait_for_line)).
    pub fn log_len(&self) -> usize {
        self.logs.lock().len()
    }

    /// Whether any line read so far `matches`.
    pub fn any_line(&self, matches: impl Fn(&LogLine) -> bool) -> bool {
        self.logs.find(0, matches).is_some()
    }

    /// Waits for the first line at index `>= from` that `matches` (usually an event by its fields:
    /// `|l| l.is("ready")`); returns it.
    ///
    /// Errors: [`KitError::Timeout`] naming `what`; [`KitError::Exited`] when teosd's log ends first.
    pub fn wait_for_line(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&LogLine) -> bool,
    ) -> Result<LogLine, KitError> {
        wait_for(what, timeout, || {
            // Read `closed` first: a line found after it was set cannot be missed.
            let closed = self.logs.closed();
            if let Some(line) = self.logs.find(from, &matches) {
                return Ok(Some(line));
            }
            if closed {
                let status = match self.wait_exit(Duration::from_secs(5)) {
                    Ok(status) => status.to_string(),
                    Err(_) => "its log closed".into(),
                };
                return Err(KitError::Exited {
                    what: what.to_owned(),
                    status,
                });
            }
            Ok(None)
        })
    }

    /// A client of this tower's admin API (connected at the first call).
    ///
    /// Errors: [`KitError::NotRunning`] before [`wait_ready`](Self::wait_ready); as [`Admin::new`].
    pub fn admin(&self) -> Result<&Admin, KitError> {
        if let Some(admin) = self.admin.get() {
            return Ok(admin);
        }
        let ready = self.ready.as_ref().ok_or(KitError::NotRunning)?;
        let admin = Admin::new(&self.launch.datadir, ready.admin)?;
        Ok(self.admin.get_or_init(|| admin))
    }

    /// Height and hash of the last block the tower processed (admin `get_tower_info`).
    ///
    /// Errors: as [`admin`](Self::admin) and [`Admin::tip`].
    pub fn tip(&self) -> Result<(u32, BlockHash), KitError> {
        self.admin()?.tip()
    }

    /// Waits until the tower's last processed block is `tip` (height and hash).
    ///
    /// Errors: [`KitError::Timeout`] (with the tower's last tip), [`KitError::Exited`].
    pub fn wait_for_tip(&self, tip: (u32, BlockHash), timeout: Duration) -> Result<(), KitError> {
        let mut last = None;
        let result = wait_for("the tower at the tip", timeout, || {
            if !self.is_running() {
                return Err(KitError::Exited {
                    what: format!("reaching block {} ({})", tip.0, tip.1),
                    status: self
                        .try_exit_status()
                        .map_or(String::new(), |s| s.to_string()),
                });
            }
            // A refused call (the admin server still starting) is retried like a wrong tip.
            last = self.tip().ok();
            Ok((last == Some(tip)).then_some(()))
        });
        result.map_err(|e| match e {
            KitError::Timeout { after, .. } => KitError::Timeout {
                what: format!(
                    "the tower at block {} ({}); it is at {last:?}",
                    tip.0, tip.1
                ),
                after,
            },
            other => other,
        })
    }
}

impl Drop for TowerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends signal `name` (e.g. `"TERM"`) to `pid` with `kill(1)`.
///
/// Errors: [`KitError::Io`] (kill cannot run or fails: no such process).
pub fn send_signal(pid: u32, name: &str) -> Result<(), KitError> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| KitError::io("running kill", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(KitError::io(
            format!("kill -{name} {pid}"),
            std::io::Error::other(status.to_string()),
        ))
    }
}
