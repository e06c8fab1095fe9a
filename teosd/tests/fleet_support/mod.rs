//! A fleet for the end-to-end tests: one throwaway PostgreSQL database, bitcoind-sim, and several
//! real `teosd` processes sharing the database (`database_url`), each with its own data dir and
//! ports. Roles are read through the admin API (`get_tower_info.role`, `leader_epoch`).

#![allow(dead_code)] // each test binary uses part of the harness

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use teos_testkit::PgCluster;
use teos_testkit::postgres::{PgTarget, unique_database_name};

/// Takeover time the fleet tests configure (seconds): short, so failover tests stay quick.
pub const TAKEOVER_SECONDS: u64 = 3;

/// A standby takes over within the takeover time plus a poll; a margin for slow CI machines.
pub const TAKEOVER_DEADLINE: Duration = Duration::from_secs(TAKEOVER_SECONDS + 20);

/// The instances of a fleet on one database.
pub struct Fleet {
    /// The PostgreSQL server (owned cluster, or the external one of TEOS_TEST_DATABASE_URL).
    pub pg: PgTarget,
    /// The fleet's database URL (with the test role's password).
    pub url: String,
    /// Temp dir holding each instance's data dir.
    pub dir: tempfile::TempDir,
    /// The instances, `None` once removed.
    pub towers: Vec<Option<TowerProcess>>,
    /// Each instance's data dir and API port, to start it again.
    pub places: Vec<(PathBuf, u16)>,
    /// Each instance's `/metrics` port (`metrics_bind` on 127.0.0.1).
    pub metrics_ports: Vec<u16>,
    /// The `teos.toml` lines every instance shares (the database, takeover time, extra lines).
    lines: Vec<String>,
}

impl Fleet {
    /// `n` instances on a new database; `None` (after a SKIPPED line) without PostgreSQL, unless
    /// TEOS_TEST_REQUIRE_POSTGRES is set (then it fails). `extra` lines go into every teos.toml.
    pub fn start(test: &str, chain: &Chain, n: usize, extra: &[&str]) -> Option<Fleet> {
        Fleet::start_with(test, chain, n, extra, TAKEOVER_SECONDS)
    }

    /// [`Fleet::start`] with `leader_takeover_seconds = takeover` (seconds).
    pub fn start_with(
        test: &str,
        chain: &Chain,
        n: usize,
        extra: &[&str],
        takeover: u64,
    ) -> Option<Fleet> {
        let pg = PgTarget::from_env(test).expect("PostgreSQL for the test")?;
        let url = fresh_database(&pg);
        let dir = tempfile::tempdir().unwrap();
        let mut lines = vec![
            format!("database_url = \"{url}\""),
            format!("leader_takeover_seconds = {takeover}"),
            "add_appointment_rate_limit = 0".into(),
            "register_rate_limit = 0".into(),
        ];
        lines.extend(extra.iter().map(|l| l.to_string()));
        let mut fleet = Fleet {
            pg,
            url,
            dir,
            towers: Vec::new(),
            places: Vec::new(),
            metrics_ports: Vec::new(),
            lines,
        };
        for _ in 0..n {
            fleet.add(chain, true);
        }
        // A new fleet refuses requests until its first leader committed a chain tip: tests start
        // once every instance follows one.
        fleet.wait_for_one_leader(&(0..n).collect::<Vec<_>>());
        Some(fleet)
    }

    /// Configures and starts one more instance; its index. With `ready` it waits for the ready
    /// event, else only for the process to start (an instance that cannot be ready yet: its
    /// database is down; [`TowerProcess::wait_ready`] later).
    pub fn add(&mut self, chain: &Chain, ready: bool) -> usize {
        let i = self.towers.len();
        let datadir = self.dir.path().join(format!("tower-{i}"));
        let metrics = free_port();
        let mut extra = self.lines.clone();
        extra.push(format!("metrics_bind = \"127.0.0.1:{metrics}\""));
        let options = TowerOptions { extra };
        let api_port = TowerProcess::configure(chain, &datadir, &options);
        self.places.push((datadir.clone(), api_port));
        self.metrics_ports.push(metrics);
        let wait_for = if ready { "Tower ready" } else { "" };
        self.towers.push(Some(TowerProcess::spawn_with(
            &datadir,
            api_port,
            &[],
            &[],
            wait_for,
        )));
        i
    }

    /// Starts instance `i` again on its data dir (after it was killed or stopped), waiting for its
    /// ready event.
    pub fn respawn(&mut self, i: usize) {
        let (datadir, api_port) = self.places[i].clone();
        if let Some(mut old) = self.towers[i].take() {
            old.kill();
        }
        self.towers[i] = Some(TowerProcess::spawn(&datadir, api_port, &[]));
    }

    /// The PostgreSQL cluster this fleet's test owns (to stop or restart it); `None` on the
    /// external server of TEOS_TEST_DATABASE_URL.
    pub fn cluster(&self) -> Option<&PgCluster> {
        match &self.pg {
            PgTarget::Owned(cluster) => Some(cluster),
            PgTarget::External(_) => None,
        }
    }

    /// A new connection to the fleet's database, for checks of what is committed.
    pub fn db(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    /// Instance `i`'s role as its `/metrics` says once its pipeline has started or stopped
    /// (`teosd_fleet_role`, set after a term's threads are joined): `"leader"`, `"standby"`, or
    /// `None` when unreachable.
    pub fn metrics_role(&self, i: usize) -> Option<&'static str> {
        let port = self.metrics_ports[i];
        let leading = metric(port, "teosd_fleet_role{role=\"leader\"}")?;
        let standing = metric(port, "teosd_fleet_role{role=\"standby\"}")?;
        match (leading == 1.0, standing == 1.0) {
            (true, false) => Some("leader"),
            (false, true) => Some("standby"),
            _ => None,
        }
    }

    /// Instance `i`.
    pub fn tower(&self, i: usize) -> &TowerProcess {
        self.towers[i].as_ref().expect("instance removed")
    }

    /// Instance `i`, mutably.
    pub fn tower_mut(&mut self, i: usize) -> &mut TowerProcess {
        self.towers[i].as_mut().expect("instance removed")
    }

    /// Instance `i`'s role and epoch as its admin API reports them (`None` if it does not answer).
    pub fn role(&self, i: usize) -> Option<(String, u64)> {
        let tower = self.towers[i].as_ref()?;
        let info = tower.admin().tower_info().ok()?;
        Some((info.role, info.leader_epoch))
    }

    /// Waits until exactly one running instance leads, among `among`; returns its index.
    #[track_caller]
    pub fn wait_for_one_leader(&self, among: &[usize]) -> usize {
        let mut leader = None;
        wait_until("exactly one leader", TAKEOVER_DEADLINE, || {
            let leaders: Vec<usize> = among
                .iter()
                .copied()
                .filter(|&i| self.role(i).is_some_and(|(role, _)| role == "leader"))
                .collect();
            leader = (leaders.len() == 1).then(|| leaders[0]);
            leader.is_some()
        });
        // Requests are refused ("retry later") until the fleet has a committed chain tip and each
        // instance's view follows it.
        wait_until(
            "every instance at a committed tip",
            TAKEOVER_DEADLINE,
            || {
                among.iter().all(|&i| {
                    self.towers[i].as_ref().is_none_or(|tower| {
                        tower
                            .admin()
                            .tower_info()
                            .is_ok_and(|info| info.best_block_hash.iter().any(|b| *b != 0))
                    })
                })
            },
        );
        leader.unwrap()
    }
}

/// A new, empty database on the server of `target`; its URL.
pub fn fresh_database(target: &PgTarget) -> String {
    let base = target.url();
    let name = unique_database_name();
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}
