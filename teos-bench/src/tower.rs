//! The real `teosd` binary as a child process: its config, its log lines (timestamped on arrival),
//! its resident memory, and how to stop it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bitcoind_sim::Simulator;

use crate::error::BenchError;

/// `teos.toml` lines lifting the per-client limits (see [`TowerConfig::new`]).
pub const BENCH_LIMITS: [&str; 4] = [
    "register_rate_limit = 0",
    "add_appointment_rate_limit = 0",
    "max_users = 0",
    "max_appointments = 0",
];

/// Where teosd finds bitcoind-sim and what else goes into its `teos.toml`.
#[derive(Clone, Debug)]
pub struct TowerConfig {
    /// The tower's data directory (`--datadir`); the database is `<datadir>/regtest/teos_db.sql3`.
    pub datadir: PathBuf,
    /// Port of the public HTTP API on 127.0.0.1.
    pub api_port: u16,
    /// Extra `key = value` lines of `teos.toml`.
    pub extra: Vec<String>,
    /// `RUST_LOG` for the child (teosd's own level otherwise comes from `log_level`).
    pub rust_log: String,
}

impl TowerConfig {
    /// A config in `datadir` with a free API port, logging at info (teosd at debug when
    /// `block_logs`, so "block connected … elapsed_ms=" lines are printed).
    ///
    /// The tower's own protections against one client are lifted, because here one process on
    /// 127.0.0.1 plays every user: no per-IP rate limit on `/register` and `/add_appointment`, and no
    /// cap on users or appointments (whose 1,000,000 default a prefilled database reaches).
    pub fn new(datadir: &Path, block_logs: bool) -> Result<TowerConfig, BenchError> {
        let rust_log = if block_logs {
            "warn,teosd=debug,teosd::storage=info".to_owned()
        } else {
            "warn,teosd=info".to_owned()
        };
        Ok(TowerConfig {
            datadir: datadir.to_path_buf(),
            api_port: free_port()?,
            extra: BENCH_LIMITS.iter().map(|l| (*l).to_owned()).collect(),
            rust_log,
        })
    }

    /// The database file teosd opens (regtest network directory).
    pub fn db_path(&self) -> PathBuf {
        self.datadir.join("regtest").join("teos_db.sql3")
    }

    /// `127.0.0.1:<api_port>`.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// Writes `<datadir>/teos.toml` pointing at `sim` (cookie auth, ZMQ `hashblock`, 1 s polling).
    pub fn write(&self, sim: &Simulator) -> Result<(), BenchError> {
        std::fs::create_dir_all(&self.datadir)
            .map_err(|e| BenchError::io(format!("creating {}", self.datadir.display()), e))?;
        let mut config = format!(
            "btc_network = \"regtest\"\nbtc_rpc_connect = \"127.0.0.1\"\nbtc_rpc_port = {}\n\
             btc_rpc_cookie = \"{}\"\napi_bind = \"127.0.0.1\"\napi_port = {}\nrpc_port = {}\n\
             polling_delta = 1\n",
            sim.rpc_port(),
            sim.cookie_path().display(),
            self.api_port,
            free_port()?,
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
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BenchError::io("finding a free port", e))
}

/// One log line of the child with the instant it was read.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// When the line reached this process (stderr is unbuffered in teosd, so this is when it was
    /// written, give or take a pipe hop).
    pub at: Instant,
    /// The text, without the newline.
    pub text: String,
}

/// Log lines shared between the reader thread and the scenario.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<LogLine>>,
    added: Condvar,
}

impl Logs {
    fn lock(&self) -> MutexGuard<'_, Vec<LogLine>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running teosd.
pub struct TowerProcess {
    child: Option<Child>,
    logs: Arc<Logs>,
    /// When the process was spawned.
    pub started: Instant,
    /// Echo the child's log lines to our stderr.
    echo: bool,
}

impl TowerProcess {
    /// Spawns `teosd --datadir <datadir>` (config already written) with stderr captured. Returns at
    /// once; use [`wait_for`](Self::wait_for) for "Tower ready".
    pub fn spawn(
        teosd: &Path,
        config: &TowerConfig,
        echo: bool,
    ) -> Result<TowerProcess, BenchError> {
        let started = Instant::now();
        let mut child = Command::new(teosd)
            .arg("--datadir")
            .arg(&config.datadir)
            .env("RUST_LOG", &config.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", teosd.display()), e))?;
        let logs = Arc::new(Logs::default());
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::Builder::new()
                .name("teosd-log".into())
                .spawn(move || {
                    for text in BufReader::new(stderr).lines().map_while(Result::ok) {
                        if echo {
                            eprintln!("[teosd] {text}");
                        }
                        logs.lock().push(LogLine {
                            at: Instant::now(),
                            text,
                        });
                        logs.added.notify_all();
                    }
                })
                .map_err(|e| BenchError::io("starting the log reader", e))?;
        }
        Ok(TowerProcess {
            child: Some(child),
            logs,
            started,
            echo,
        })
    }

    /// Whether the child's log lines are echoed.
    pub fn echoes(&self) -> bool {
        self.echo
    }

    /// The process id. Errors: the process was already stopped.
    pub fn pid(&self) -> Result<u32, BenchError> {
        self.child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| BenchError::TowerExited("already stopped".into()))
    }

    /// Waits for the first log line at index `>= from` containing `needle`; returns it.
    /// Errors: [`BenchError::Timeout`], [`BenchError::TowerExited`].
    pub fn wait_for_from(
        &mut self,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<LogLine, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let lines = self.logs.lock();
                if let Some(line) = lines.iter().skip(from).find(|l| l.text.contains(needle)) {
                    return Ok(line.clone());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(BenchError::Timeout {
                        what: format!("teosd to log {needle:?}"),
                        after: timeout,
                    });
                }
                // Wake at least every 100 ms to notice an exited child.
                let _ = self
                    .logs
                    .added
                    .wait_timeout(lines, left.min(Duration::from_millis(100)));
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(BenchError::TowerExited(status.to_string()));
            }
        }
    }

    /// [`wait_for_from`](Self::wait_for_from) over all lines so far.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<LogLine, BenchError> {
        self.wait_for_from(0, needle, timeout)
    }

    /// Number of log lines read so far (a cursor for [`wait_for_from`](Self::wait_for_from)).
    pub fn log_len(&self) -> usize {
        self.logs.lock().len()
    }

    /// Every line read so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.logs.lock().clone()
    }

    /// Resident set size (`VmRSS` of `/proc/<pid>/status`), in kibibytes.
    pub fn rss_kib(&self) -> Result<u64, BenchError> {
        let pid = self.pid()?;
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        parse_vm_rss(&status).ok_or_else(|| BenchError::Check(format!("no VmRSS in {path}")))
    }

    /// SIGTERM, then waits (bounded) for a clean exit. Errors: teosd did not exit in `timeout`
    /// (it is then killed).
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus, BenchError> {
        let pid = self.pid()?;
        send_signal(pid, "TERM")?;
        self.wait_exit(timeout)
    }

    /// SIGKILL: the process gets no chance to flush anything (a crash). Returns once it is gone.
    pub fn kill(&mut self) -> Result<(), BenchError> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| BenchError::io("killing teosd", e))?;
            child
                .wait()
                .map_err(|e| BenchError::io("waiting for teosd", e))?;
        }
        Ok(())
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, BenchError> {
        let deadline = Instant::now() + timeout;
        let Some(mut child) = self.child.take() else {
            return Err(BenchError::TowerExited("already stopped".into()));
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(BenchError::Timeout {
                        what: "teosd to exit after SIGTERM".into(),
                        after: timeout,
                    });
                }
                Err(e) => return Err(BenchError::io("waiting for teosd", e)),
            }
        }
    }
}

impl Drop for TowerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends signal `name` (e.g. `"TERM"`) to `pid` with `kill(1)`.
fn send_signal(pid: u32, name: &str) -> Result<(), BenchError> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| BenchError::io("running kill", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::TowerExited(format!(
            "kill -{name} {pid}: {status}"
        )))
    }
}

/// The `VmRSS:   1234 kB` value of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time each thread of process `pid` has run so far, summed by thread name
/// (`/proc/<pid>/task/*/comm` and `schedstat`, nanoseconds). Threads that already exited are not
/// counted.
pub fn thread_cpu(pid: u32) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0u64);
        *by_name
            .entry(name.trim().to_owned())
            .or_insert(Duration::ZERO) += Duration::from_nanos(ns);
    }
    by_name
}

/// `after - before` per thread name (names missing before count from zero).
pub fn cpu_delta(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
) -> BTreeMap<String, Duration> {
    after
        .iter()
        .map(|(name, t)| {
            let base = before.get(name).copied().unwrap_or(Duration::ZERO);
            (name.clone(), t.saturating_sub(base))
        })
        .filter(|(_, d)| !d.is_zero())
        .collect()
}

/// The value of `key=` in a tracing log line (`… key=value …`), e.g. `elapsed_ms`.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("{key}=");
    let start = line.find(&pattern)? + pattern.len();
    line[start..].split_whitespace().next()
}

/// The teosd binary next to the running executable (`target/release/teosd` for
/// `target/release/teos-bench`).
pub fn default_teosd_path() -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("locating teos-bench", e))?;
    Ok(exe.with_file_name("teosd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tteosd\nVmPeak:\t  99999 kB\nVmRSS:\t   23456 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(23456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn log_fields_are_found_by_key() {
        let line = "2026-11-22T05:00:00Z DEBUG teosd::block_processor: block connected height=212 \
                    hash=00ab txs=4000 elapsed_ms=17";
        assert_eq!(log_field(line, "elapsed_ms"), Some("17"));
        assert_eq!(log_field(line, "height"), Some("212"));
        assert_eq!(log_field(line, "missing"), None);
    }

    #[test]
    fn own_rss_is_readable() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_vm_rss(&status).unwrap() > 0);
    }
}
