//! A fleet for the end-to-end tests: one throwaway PostgreSQL database, bitcoind-sim, and several
//! real `teosd` processes sharing the database (`database_url`), each with its own data dir and
//! ports. Roles are read through the admin API (`get_tower_info.role`, `leader_epoch`).

#![allow(dead_code)] // each test binary uses part of the harness

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
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
}

impl Fleet {
    /// `n` instances on a new database; `None` (after a SKIPPED line) without PostgreSQL, unless
    /// TEOS_TEST_REQUIRE_POSTGRES is set (then it fails). `extra` lines go into every teos.toml.
    pub fn start(test: &str, chain: &Chain, n: usize, extra: &[&str]) -> Option<Fleet> {
        let pg = PgTarget::from_env(test).expect("PostgreSQL for the test")?;
        let url = fresh_database(&pg);
        let dir = tempfile::tempdir().unwrap();
        let mut fleet = Fleet {
            pg,
            url,
            dir,
            towers: Vec::new(),
            places: Vec::new(),
        };
        for i in 0..n {
            let datadir = fleet.dir.path().join(format!("tower-{i}"));
            let mut lines = vec![
                format!("database_url = \"{}\"", fleet.url),
                format!("leader_takeover_seconds = {TAKEOVER_SECONDS}"),
                "add_appointment_rate_limit = 0".into(),
                "register_rate_limit = 0".into(),
            ];
            lines.extend(extra.iter().map(|l| l.to_string()));
            let options = TowerOptions { extra: lines };
            let api_port = TowerProcess::configure(chain, &datadir, &options);
            fleet.places.push((datadir.clone(), api_port));
            fleet
                .towers
                .push(Some(TowerProcess::spawn(&datadir, api_port, &[])));
        }
        Some(fleet)
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
