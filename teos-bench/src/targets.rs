//! The targets of issue 7 and the markdown rows comparing measured figures with them.

use std::time::Duration;

use crate::chain::ChainOptions;
use crate::chain_scenario::ChainReport;
use crate::fsync_probe::FsyncReport;
use crate::load::{LoadOptions, LoadReport};
use crate::mempool_scenario::{MempoolOptions, MempoolReport};
use crate::rpc_probe::RpcReport;
use crate::stats::ms;
use crate::takeover::{TakeoverOptions, TakeoverReport};

/// add_appointment throughput target (appointments per second, 16 connections).
pub const THROUGHPUT: f64 = 10_000.0;
/// add_appointment p99 latency target.
pub const P99: Duration = Duration::from_millis(25);
/// Breach-to-broadcast median target.
pub const BREACH: Duration = Duration::from_millis(100);
/// Block processing target (4,000-tx block against 1,000,000 appointments).
pub const BLOCK: Duration = Duration::from_millis(50);
/// Catch-up target (blocks per second).
pub const CATCHUP: f64 = 100.0;
/// Memory target (KiB): 150 MB.
pub const RSS_KIB: u64 = 150 * 1000 * 1000 / 1024;
/// Startup target.
pub const STARTUP: Duration = Duration::from_secs(2);
/// Mempool answer target (issue 13): dispute accepted into the mempool → penalty accepted, median.
pub const MEMPOOL_ANSWER: Duration = Duration::from_millis(20);
/// CPU target of watching a mempool receiving 1,000 unrelated transactions per second (% of one core).
pub const MEMPOOL_CPU_PERCENT: f64 = 5.0;

/// One line of the figures table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// The measured value.
    pub value: String,
    /// The target.
    pub target: String,
    /// Whether the value meets the target; `None` for context figures without a target.
    pub met: Option<bool>,
}

impl Row {
    fn new(figure: impl Into<String>, value: String, target: &str, met: bool) -> Row {
        Row {
            figure: figure.into(),
            value,
            target: target.to_owned(),
            met: Some(met),
        }
    }

    /// `| figure | value | target | met |`
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.figure,
            self.value,
            self.target,
            match self.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "–",
            }
        )
    }
}

/// Rows of a load run.
pub fn load_rows(report: &LoadReport, options: &LoadOptions) -> Vec<Row> {
    let p99 = report.latencies.quantile(0.99);
    let mut rows = vec![
        Row::new(
            format!(
                "add_appointment throughput, {} connections, {} stored before{}",
                options.connections,
                options.prefill,
                match &options.postgres {
                    Some(_) => format!(", PostgreSQL, {} instance(s)", options.instances.max(1)),
                    None => String::new(),
                }
            ),
            format!("{:.0} /s", report.throughput()),
            "≥ 10,000 /s",
            report.throughput() >= THROUGHPUT,
        ),
        Row::new(
            "add_appointment latency p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms(report.latencies.quantile(0.5)),
                ms(p99),
                ms(report.latencies.max())
            ),
            "p99 < 25 ms",
            p99 < P99,
        ),
    ];
    let refused: u64 = report.refused.values().sum();
    if refused > 0 || report.transport_errors > 0 {
        rows.push(Row {
            figure: "add_appointment requests refused (by status) / transport errors".into(),
            value: format!("{:?} / {}", report.refused, report.transport_errors),
            target: "none".into(),
            met: Some(false),
        });
    }
    if !report.cpu.is_empty() {
        let total: f64 = report
            .cpu
            .values()
            .map(|d| d.as_secs_f64() * 1e6 / report.accepted.max(1) as f64)
            .sum();
        rows.push(Row {
            figure: "CPU per accepted appointment (teosd + load generator); 2-core ceiling".into(),
            value: format!("{total:.0} µs; {:.0} /s", 2e6 / total.max(1e-9)),
            target: "–".into(),
            met: None,
        });
    }
    if let Some((receipts, stored)) = report.durability {
        rows.push(Row::new(
            "receipts durable after SIGKILL (receipts / rows found)",
            format!("{receipts} / {stored}"),
            "all",
            stored >= receipts,
        ));
    }
    rows
}

/// Rows of a chain run.
pub fn chain_rows(report: &ChainReport, options: &ChainOptions) -> Vec<Row> {
    let stored = format!(
        "{} appointments, {} users, {}-tx blocks{}",
        options.appointments,
        options.users,
        options.block_txs,
        if options.postgres.is_some() {
            ", PostgreSQL"
        } else {
            ""
        }
    );
    let mut rows = Vec::new();
    if let Some(m) = report.breach_median() {
        rows.push(Row::new(
            format!(
                "breach-to-broadcast median ({stored}, {} blocks)",
                report.rounds.len()
            ),
            ms(m),
            "< 100 ms",
            m < BREACH,
        ));
    }
    if let Some(p99) = report.breach_p99() {
        rows.push(Row {
            figure: format!(
                "breach-to-broadcast p99 (nearest rank; {stored}, {} blocks)",
                report.rounds.len()
            ),
            value: ms(p99),
            target: "–".into(),
            met: None,
        });
    }
    if let Some(m) = report.connect_median() {
        rows.push(Row::new(
            format!("block processing median, teosd connect_block ({stored})"),
            ms(m),
            "< 50 ms",
            m < BLOCK,
        ));
    }
    if let Some(c) = &report.catchup {
        rows.push(Row::new(
            format!("catch-up after downtime ({} blocks, {stored})", c.blocks),
            format!("{:.1} blocks/s", c.rate()),
            "≥ 100 blocks/s",
            c.rate() >= CATCHUP,
        ));
    }
    let peak = [
        Some(report.rss_ready_kib),
        Some(report.rss_after_breaches_kib),
        report.rss_after_catchup_kib,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    rows.push(Row::new(
        format!("teosd RSS, highest sample ({stored})"),
        format!("{:.1} MB", peak as f64 * 1024.0 / 1e6),
        "< 150 MB",
        peak < RSS_KIB,
    ));
    if let Some(m) = report.restart_median() {
        rows.push(Row::new(
            format!("restart to \"Tower ready\" median ({stored})"),
            ms(m),
            "< 2 s",
            m < STARTUP,
        ));
    }
    rows
}

/// Rows of the `takeover` scenario.
pub fn takeover_rows(report: &TakeoverReport, options: &TakeoverOptions) -> Vec<Row> {
    let mut rows = Vec::new();
    let limit = Duration::from_secs(report.takeover_seconds + 2);
    if let Some((median, max)) = report.to_block() {
        rows.push(Row::new(
            format!(
                "takeover: leader SIGKILL → next block processed, median / max ({} trials, {} instances, leader_takeover_seconds = {})",
                report.trials.len(),
                options.instances,
                report.takeover_seconds
            ),
            format!("{} / {}", ms(median), ms(max)),
            &format!("≤ {} s", report.takeover_seconds + 2),
            max <= limit,
        ));
    }
    rows
}

/// Rows of the `mempool` scenario.
pub fn mempool_rows(report: &MempoolReport, options: &MempoolOptions) -> Vec<Row> {
    let mut rows = Vec::new();
    if report.latencies.count() > 0 {
        let median = report.latencies.quantile(0.5);
        rows.push(Row::new(
            format!(
                "mempool answer: dispute broadcast → penalty accepted, median / p99 ({} appointments, {} disputes)",
                options.appointments,
                report.latencies.count()
            ),
            format!("{} / {}", ms(median), ms(report.latencies.quantile(0.99))),
            "< 20 ms median",
            median < MEMPOOL_ANSWER,
        ));
    }
    if let Some(cpu) = &report.cpu {
        let percent = cpu.percent(cpu.process);
        rows.push(Row::new(
            format!(
                "teosd CPU watching a mempool receiving {:.0} unrelated tx/s ({} s; mempool-watch thread {:.2} %)",
                cpu.rate(),
                cpu.wall.as_secs(),
                cpu.percent(cpu.watcher)
            ),
            format!("{percent:.2} % of one core"),
            "< 5 % (1,000 tx/s)",
            percent < MEMPOOL_CPU_PERCENT,
        ));
    }
    rows
}

/// Rows of an fsync probe (no target: context for the throughput figure).
pub fn fsync_rows(report: &FsyncReport) -> Vec<Row> {
    vec![Row {
        figure: "disk fdatasync latency p50 / p99 (4 KiB overwrite); bound 16 / p50".into(),
        value: format!(
            "{} / {}; {:.0} /s",
            ms(report.overwrite.quantile(0.5)),
            ms(report.overwrite.quantile(0.99)),
            report.bound(16)
        ),
        target: "–".into(),
        met: None,
    }]
}

/// Rows of an RPC probe (context for the block figures).
pub fn rpc_rows(report: &RpcReport) -> Vec<Row> {
    vec![Row {
        figure: format!(
            "getblock of a {}-tx block ({} bytes): teosd's client / whole-body read, median",
            report.txs, report.block_bytes
        ),
        value: format!(
            "{} / {}",
            ms(report.teosd_client.quantile(0.5)),
            ms(report.whole_body.quantile(0.5))
        ),
        target: "–".into(),
        met: None,
    }]
}
