//! The `load` scenario: many users send pre-signed appointments over HTTP at a fixed number of
//! connections; prints throughput and latency percentiles, and (when it started the tower itself)
//! checks that every receipt survived a SIGKILL.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use teos_testkit::{Chain, TowerConfig, TowerProcess};

use crate::clients::{BenchUser, presign};
use crate::error::BenchError;
use crate::http::HttpConn;
use crate::pg::{Fleet, FleetSpec, PgOptions, PgServer};
use crate::pg_prefill::count_rows;
use crate::prefill::{PrefillSpec, count_appointments, prefill};
use crate::stats::{Latencies, ms};
use crate::tower::{bench_config, bench_launch, cpu_delta, rss_kib, thread_cpu};

/// Users of the load start at this number, so they never collide with prefilled users (0..).
const LOAD_USER_BASE: u64 = 1 << 40;
/// Slots one registration grants with teosd's default config (`subscription_slots`).
const SLOTS_PER_REGISTRATION: usize = 10_000;

/// How to run the load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Concurrent HTTP connections, each sending one request at a time.
    pub connections: usize,
    /// Appointments sent and timed (after the warm-up).
    pub appointments: usize,
    /// Appointments sent first and not timed.
    pub warmup: usize,
    /// Users the appointments are spread over (raised so nobody runs out of slots).
    pub users: usize,
    /// Encrypted blob size (bytes).
    pub blob_size: usize,
    /// Appointments stored (prefilled) before teosd starts, over 10,000 users.
    pub prefill: u64,
    /// Tokio worker threads of the load generator.
    pub client_threads: usize,
    /// An already running tower to load instead of starting bitcoind-sim + teosd.
    pub url: Option<SocketAddr>,
    /// The teosd binary to start.
    pub teosd: PathBuf,
    /// Echo teosd's log.
    pub echo: bool,
    /// Seed of the random appointments.
    pub seed: u64,
    /// Log teosd's group commits and report their number and size (costs a log line per commit).
    pub commit_stats: bool,
    /// Extra `teos.toml` lines.
    pub tower_options: Vec<String>,
    /// Run the tower on PostgreSQL (a fleet of [`instances`](Self::instances)) instead of SQLite.
    pub postgres: Option<PgOptions>,
    /// Instances of the fleet on PostgreSQL; the connections are spread over their APIs
    /// round-robin (ignored on SQLite: one tower).
    pub instances: usize,
}

/// What one load run measured.
#[derive(Debug)]
pub struct LoadReport {
    /// Timed requests answered 200.
    pub accepted: u64,
    /// Timed requests answered otherwise, by status.
    pub refused: BTreeMap<u16, u64>,
    /// Requests that failed below HTTP (connection errors).
    pub transport_errors: u64,
    /// Wall time of the timed phase.
    pub elapsed: Duration,
    /// Latency of every timed request, request sent to answer read.
    pub latencies: Latencies,
    /// teosd's RSS after the load (KiB), when it was started here.
    pub rss_kib: Option<u64>,
    /// `(receipts given, appointments found after SIGKILL)` when the tower was started here.
    pub durability: Option<(u64, u64)>,
    /// Time to sign every request before the run.
    pub presign: Duration,
    /// teosd's group commits during the timed phase, when it was started here with `commit_stats`.
    pub commits: Option<CommitStats>,
    /// CPU time per thread name during the timed phase: teosd's threads (`teosd:` prefix, when
    /// started here; `teosd<i>:` for instance i of a fleet of several), this process's (`bench:`
    /// prefix), and on a throwaway PostgreSQL cluster its processes (`postgres`).
    pub cpu: BTreeMap<String, Duration>,
}

/// Group commits of the storage writer during the timed phase, from its debug log
/// ("group committed ops=N").
#[derive(Clone, Copy, Debug)]
pub struct CommitStats {
    /// Number of COMMITs (one fsync each with `synchronous=FULL`).
    pub commits: u64,
    /// Write ops in them.
    pub ops: u64,
}

impl LoadReport {
    /// Accepted appointments per second of the timed phase.
    pub fn throughput(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Human-readable lines.
    pub fn print(&self, options: &LoadOptions) {
        println!(
            "add_appointment: {} accepted in {:.2} s with {} connections = {:.0} appointments/s",
            self.accepted,
            self.elapsed.as_secs_f64(),
            options.connections,
            self.throughput()
        );
        println!("latency: {}", self.latencies.summary());
        if !self.refused.is_empty() || self.transport_errors > 0 {
            println!(
                "refused: {:?}, transport errors: {}",
                self.refused, self.transport_errors
            );
        }
        if let Some(rss) = self.rss_kib {
            println!("teosd RSS after the load: {:.1} MiB", rss as f64 / 1024.0);
        }
        if let Some((receipts, stored)) = self.durability {
            println!(
                "durability: {receipts} receipts given (incl. warm-up and prefill), {stored} appointments in the database after SIGKILL"
            );
        }
        if !self.cpu.is_empty() {
            let per = |d: &Duration| d.as_secs_f64() * 1e6 / self.accepted.max(1) as f64;
            let total: f64 = self.cpu.values().map(per).sum();
            let parts: Vec<String> = self
                .cpu
                .iter()
                .filter(|(_, d)| per(d) >= 0.5)
                .map(|(name, d)| format!("{name} {:.1}", per(d)))
                .collect();
            println!(
                "CPU per accepted appointment: {total:.1} µs = {} (µs; {} cores give {:.0} /s at most)",
                parts.join(" + "),
                cores(),
                cores() as f64 * 1e6 / total.max(1e-9)
            );
        }
        if let Some(c) = self.commits {
            println!(
                "group commits: {} for {} write ops = {:.1} ops per commit, one commit every {}",
                c.commits,
                c.ops,
                c.ops as f64 / c.commits.max(1) as f64,
                ms(self.elapsed / u32::try_from(c.commits.max(1)).unwrap_or(u32::MAX))
            );
        }
        println!(
            "(pre-signing {} requests took {})",
            options.appointments + options.warmup,
            ms(self.presign)
        );
    }
}

/// Runs the scenario: start bitcoind-sim + teosd (unless `url`), register users, pre-sign, warm up,
/// time the load, then SIGKILL teosd and count what it stored.
pub fn run(options: &LoadOptions) -> Result<LoadReport, BenchError> {
    let total = options.appointments + options.warmup;
    let users_needed = total
        .div_ceil(SLOTS_PER_REGISTRATION)
        .max(options.users)
        .max(1);
    let users: Vec<BenchUser> = (0..users_needed as u64)
        .map(|n| BenchUser::new(LOAD_USER_BASE + n))
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let signing = Instant::now();
    let bodies = Arc::new(presign(
        &users,
        total,
        options.blob_size,
        options.seed,
        threads,
    )?);
    let presign_time = signing.elapsed();

    let mut env = match options.url {
        Some(addr) => Env::External(addr),
        None => Env::start(options)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting the client runtime", e))?;
    let addrs = env.addrs()?;
    let (warm_accepted, conns) = runtime.block_on(async {
        // Users are registered on one instance: a fleet shares them through its database.
        register(addrs[0], &users).await?;
        let mut conns = Vec::with_capacity(options.connections);
        for i in 0..options.connections.max(1) {
            conns.push(HttpConn::connect(addrs[i % addrs.len()]).await?);
        }
        let (warm, conns) = run_phase(conns, bodies.clone(), 0..options.warmup).await;
        Ok::<_, BenchError>((warm.accepted, conns))
    })?;
    let cursor = env.log_cursor();
    let cpu_before = env.cpu();
    let (phase, mut conns) =
        runtime.block_on(run_phase(conns, bodies.clone(), options.warmup..total));
    let cpu = cpu_delta(&cpu_before, &env.cpu());
    let commits = env.commit_stats(cursor);
    conns.clear();
    drop(runtime);

    let mut report = LoadReport {
        accepted: phase.accepted,
        refused: phase.refused,
        transport_errors: phase.transport_errors,
        elapsed: phase.elapsed,
        latencies: phase.latencies,
        rss_kib: None,
        durability: None,
        presign: presign_time,
        commits,
        cpu,
    };
    if let Env::Own { tower, config, .. } = &mut env {
        report.rss_kib = Some(rss_kib(tower.pid())?);
        // A crash right after the last receipt: everything acknowledged must be on disk.
        tower.kill();
        let stored = count_appointments(&config.db_path())?;
        // Every receipt of both phases, plus the prefill.
        let receipts = warm_accepted + phase.accepted + options.prefill;
        report.durability = Some((receipts, stored));
    }
    if let Env::Fleet { fleet, .. } = &mut env {
        report.rss_kib = fleet
            .towers
            .iter()
            .flatten()
            .map(|t| rss_kib(t.pid()))
            .sum::<Result<u64, _>>()
            .ok();
        // A crash of every instance right after the last receipt.
        fleet.kill_all();
        let (_, stored) = count_rows(&fleet.url)?;
        let receipts = warm_accepted + phase.accepted + options.prefill;
        report.durability = Some((receipts, stored));
    }
    Ok(report)
}

/// Registers every user once (sequentially, on one connection).
async fn register(addr: SocketAddr, users: &[BenchUser]) -> Result<(), BenchError> {
    let mut conn = HttpConn::connect(addr).await?;
    for user in users {
        conn.post_ok("/register", user.register_body()?).await?;
    }
    Ok(())
}

/// Counters of one phase.
struct Phase {
    accepted: u64,
    refused: BTreeMap<u16, u64>,
    transport_errors: u64,
    elapsed: Duration,
    latencies: Latencies,
}

/// Sends `bodies[range]` over `conns`, each connection taking the next unsent request as soon as its
/// previous answer arrived. Returns the counters and the connections still usable.
async fn run_phase(
    conns: Vec<HttpConn>,
    bodies: Arc<Vec<Bytes>>,
    range: std::ops::Range<usize>,
) -> (Phase, Vec<HttpConn>) {
    let next = Arc::new(AtomicUsize::new(range.start));
    let end = range.end;
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, bodies) = (next.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut latencies = Latencies::new();
                let mut refused: BTreeMap<u16, u64> = BTreeMap::new();
                let (mut accepted, mut errors) = (0u64, 0u64);
                let mut alive = true;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    let sent = Instant::now();
                    match conn.post_json("/add_appointment", bodies[i].clone()).await {
                        Ok(answer) if answer.status == 200 => {
                            latencies.record(sent.elapsed());
                            accepted += 1;
                        }
                        Ok(answer) => {
                            latencies.record(sent.elapsed());
                            *refused.entry(answer.status).or_default() += 1;
                        }
                        Err(_) => {
                            errors += 1;
                            alive = false;
                            break;
                        }
                    }
                }
                (latencies, refused, accepted, errors, alive.then_some(conn))
            })
        })
        .collect();
    let mut phase = Phase {
        accepted: 0,
        refused: BTreeMap::new(),
        transport_errors: 0,
        elapsed: Duration::ZERO,
        latencies: Latencies::new(),
    };
    let mut conns = Vec::new();
    for task in tasks {
        match task.await {
            Ok((latencies, refused, accepted, errors, conn)) => {
                phase.latencies.merge(&latencies);
                for (status, n) in refused {
                    *phase.refused.entry(status).or_default() += n;
                }
                phase.accepted += accepted;
                phase.transport_errors += errors;
                conns.extend(conn);
            }
            Err(_) => phase.transport_errors += 1,
        }
    }
    phase.elapsed = started.elapsed();
    (phase, conns)
}

/// Where the load goes.
enum Env {
    /// A tower someone else runs.
    External(SocketAddr),
    /// bitcoind-sim and teosd started here (kept alive until the end of the run).
    /// (Boxed: both are large, an `External` env is an address.)
    Own {
        _chain: Box<Chain>,
        tower: Box<TowerProcess>,
        config: TowerConfig,
    },
    /// bitcoind-sim, a PostgreSQL server and 1..N teosd instances on one database, started here.
    Fleet {
        // Dropped after the fleet's instances (field order), so they never lose their bitcoind.
        fleet: Box<Fleet>,
        _chain: Box<Chain>,
    },
}

impl Env {
    /// Starts bitcoind-sim and teosd in a temp dir, prefilled as asked.
    fn start(options: &LoadOptions) -> Result<Env, BenchError> {
        if let Some(pg) = &options.postgres {
            return Env::start_fleet(options, pg);
        }
        let chain = Chain::start(0)?;
        let height = chain.height();
        let datadir = chain.dir.path().join("teosd");
        let config = bench_config(&datadir, &options.tower_options);
        config.write(chain.sim())?;
        let mut launch = bench_launch(&options.teosd, &datadir, false, options.echo);
        if options.commit_stats {
            launch.rust_log.push_str(",teosd::storage::writer=debug");
        }
        if options.prefill > 0 {
            let spec = PrefillSpec {
                users: 10_000,
                appointments: options.prefill,
                blob_size: options.blob_size,
                start: height,
            };
            let took = prefill(&config.db_path(), &spec)?;
            println!(
                "prefilled {} appointments of 10000 users in {:.1} s",
                options.prefill,
                took.as_secs_f64()
            );
        }
        let tower = TowerProcess::start(&launch, Duration::from_secs(300))?;
        Ok(Env::Own {
            _chain: Box::new(chain),
            tower: Box::new(tower),
            config,
        })
    }

    /// Starts bitcoind-sim, a PostgreSQL server with a fresh database (prefilled as asked) and
    /// `instances` teosd instances on it.
    fn start_fleet(options: &LoadOptions, pg: &PgOptions) -> Result<Env, BenchError> {
        let chain = Chain::start(0)?;
        let height = chain.height();
        let server = PgServer::start(pg)?;
        let spec = FleetSpec {
            instances: options.instances.max(1),
            teosd: options.teosd.clone(),
            echo: options.echo,
            block_logs: false,
            takeover_seconds: None,
            tower_options: options.tower_options.clone(),
        };
        let mut fleet = Fleet::configure(server, chain.sim(), chain.dir.path(), &spec)?;
        if options.prefill > 0 {
            let took = fleet.prefill(&PrefillSpec {
                users: 10_000,
                appointments: options.prefill,
                blob_size: options.blob_size,
                start: height,
            })?;
            println!(
                "prefilled {} appointments of 10000 users in {:.1} s (COPY into PostgreSQL)",
                options.prefill,
                took.as_secs_f64()
            );
        }
        fleet.start_all()?;
        println!(
            "tower on PostgreSQL: {} instance(s) on one database, connections spread over their APIs",
            spec.instances
        );
        Ok(Env::Fleet {
            fleet: Box::new(fleet),
            _chain: Box::new(chain),
        })
    }

    /// CPU time per thread name of teosd (when started here) and of this process, prefixed
    /// `teosd:` (`teosd<i>:` for the instances of a fleet of several) / `bench:`, and of the
    /// PostgreSQL server's processes when it is a throwaway cluster (`postgres`).
    fn cpu(&self) -> BTreeMap<String, Duration> {
        let mut all = BTreeMap::new();
        if let Env::Own { tower, .. } = self {
            for (name, d) in thread_cpu(tower.pid()) {
                all.insert(format!("teosd:{name}"), d);
            }
        }
        if let Env::Fleet { fleet, .. } = self {
            let several = fleet.towers.len() > 1;
            for (i, tower) in fleet.towers.iter().enumerate() {
                let Some(tower) = tower else { continue };
                let prefix = if several {
                    format!("teosd{i}")
                } else {
                    "teosd".to_owned()
                };
                for (name, d) in thread_cpu(tower.pid()) {
                    all.insert(format!("{prefix}:{name}"), d);
                }
            }
            all.extend(fleet.server.cpu());
        }
        for (name, d) in thread_cpu(std::process::id()) {
            all.insert(format!("bench:{name}"), d);
        }
        all
    }

    /// Number of teosd log lines so far (0 for an external tower).
    fn log_cursor(&self) -> usize {
        match self {
            Env::External(_) | Env::Fleet { .. } => 0,
            Env::Own { tower, .. } => tower.log_len(),
        }
    }

    /// Group commits logged since `cursor`, if teosd logs them.
    fn commit_stats(&self, cursor: usize) -> Option<CommitStats> {
        let Env::Own { tower, .. } = self else {
            return None;
        };
        let mut stats = CommitStats { commits: 0, ops: 0 };
        // The storage writer's debug event has no `event` name: known by its target and constant
        // message, its op count read from its field.
        let groups = tower
            .lines()
            .into_iter()
            .skip(cursor)
            .filter_map(|l| l.event);
        for event in groups {
            if event.target == "teosd::storage::writer" && event.message() == "group committed" {
                stats.commits += 1;
                stats.ops += event.u64("ops").unwrap_or(0);
            }
        }
        (stats.commits > 0).then_some(stats)
    }

    /// The public API's addresses (the bound ones, for towers started here; one per instance of
    /// a fleet).
    fn addrs(&self) -> Result<Vec<SocketAddr>, BenchError> {
        match self {
            Env::External(addr) => Ok(vec![*addr]),
            Env::Own { tower, .. } => Ok(vec![
                tower.ready().ok_or(teos_testkit::KitError::NotRunning)?.api,
            ]),
            Env::Fleet { fleet, .. } => {
                let apis = fleet.apis();
                if apis.is_empty() {
                    return Err(teos_testkit::KitError::NotRunning.into());
                }
                Ok(apis)
            }
        }
    }
}

/// CPUs of this machine (2 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
