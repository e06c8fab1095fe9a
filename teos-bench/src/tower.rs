//! teosd as the benchmarks run it, on teos-testkit's launcher: the config lifting the per-client
//! limits, the log filter, and what the scenarios measure of the process (resident memory, CPU
//! time per thread).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use teos_testkit::{Launch, TowerConfig};

use crate::error::BenchError;

/// `teos.toml` lines lifting the per-client limits (see [`bench_config`]).
pub const BENCH_LIMITS: [&str; 4] = [
    "register_rate_limit = 0",
    "add_appointment_rate_limit = 0",
    "max_users = 0",
    "max_appointments = 0",
];

/// A tower config in `datadir` (written later with [`TowerConfig::write`]) with `extra` lines.
///
/// The tower's own protections against one client are lifted, because here one process on
/// 127.0.0.1 plays every user: no per-IP rate limit on `/register` and `/add_appointment`, and no
/// cap on users or appointments (whose 1,000,000 default a prefilled database reaches).
pub fn bench_config(datadir: &Path, extra: &[String]) -> TowerConfig {
    let mut config = TowerConfig::new(datadir);
    config.extra = BENCH_LIMITS.iter().map(|l| (*l).to_owned()).collect();
    config.extra.extend_from_slice(extra);
    config
}

/// How the benchmarks run `teosd` on `datadir`: logging at warn, teosd at info (and at debug with
/// `block_logs`, so "block connected" events carry their `elapsed_ms`; teosd's storage stays at
/// info), its lines echoed when `echo`.
pub fn bench_launch(teosd: &Path, datadir: &Path, block_logs: bool, echo: bool) -> Launch {
    let mut launch = Launch::new(teosd, datadir);
    launch.rust_log = if block_logs {
        "warn,teosd=debug,teosd::storage=info".to_owned()
    } else {
        "warn,teosd=info".to_owned()
    };
    if !echo {
        launch.echo = None;
    }
    launch
}

/// Resident set size of process `pid` (`VmRSS` of `/proc/<pid>/status`), in kibibytes.
/// Errors: [`BenchError::Io`], [`BenchError::Check`] (no `VmRSS` line).
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| BenchError::io(format!("reading {path}"), e))?;
    parse_vm_rss(&status).ok_or_else(|| BenchError::Check(format!("no VmRSS in {path}")))
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
    fn own_rss_is_readable() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_vm_rss(&status).unwrap() > 0);
    }
}
