//! How long the disk takes to make a small write durable: the floor under every group commit
//! (`synchronous=FULL` syncs the WAL at each COMMIT). With N clients each waiting for its durable
//! receipt before sending again, at most N appointments can complete per sync, so
//! N / sync latency bounds the throughput whatever the CPU (Little's law).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::error::BenchError;
use crate::stats::Latencies;

/// What the probe measured.
#[derive(Debug)]
pub struct FsyncReport {
    /// `fdatasync` after overwriting a 4 KiB page in place (a reused WAL frame).
    pub overwrite: Latencies,
    /// `fdatasync` after appending 64 KiB (a growing WAL).
    pub append: Latencies,
}

impl FsyncReport {
    /// Prints the percentiles and the throughput bound they imply for 16 connections.
    pub fn print(&self) {
        println!(
            "fdatasync after a 4 KiB overwrite: {}",
            self.overwrite.summary()
        );
        println!(
            "fdatasync after a 64 KiB append:   {}",
            self.append.summary()
        );
        println!(
            "bound for 16 clients waiting for durable receipts: 16 / p50 = {:.0} appointments/s",
            self.bound(16)
        );
    }

    /// `clients` / median overwrite sync latency, in appointments per second.
    pub fn bound(&self, clients: u32) -> f64 {
        f64::from(clients) / self.overwrite.quantile(0.5).as_secs_f64().max(1e-9)
    }
}

/// Times `count` syncs of each kind in a temp file under `dir`.
pub fn run(dir: &Path, count: usize) -> Result<FsyncReport, BenchError> {
    let file = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| BenchError::io(format!("creating a file in {}", dir.display()), e))?;
    let path = file.path().to_path_buf();
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| BenchError::io("opening the probe file", e))?;
    let page = [0x5au8; 4096];
    let chunk = vec![0x5au8; 65536];
    let io = |e| BenchError::io("probing fsync", e);
    // A 40 KiB file first, so overwrites do not change its size.
    for i in 0..10u64 {
        f.write_all_at(&page, i * 4096).map_err(io)?;
    }
    f.sync_all().map_err(io)?;
    let mut overwrite = Latencies::new();
    for i in 0..count {
        f.write_all_at(&page, (i as u64 % 10) * 4096).map_err(io)?;
        let t = Instant::now();
        f.sync_data().map_err(io)?;
        overwrite.record(t.elapsed());
    }
    let mut append = Latencies::new();
    for _ in 0..count {
        f.write_all(&chunk).map_err(io)?;
        let t = Instant::now();
        f.sync_data().map_err(io)?;
        append.record(t.elapsed());
    }
    Ok(FsyncReport { overwrite, append })
}
