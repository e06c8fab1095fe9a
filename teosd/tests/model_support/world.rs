//! The system under test: bitcoind-sim in-process, the real `teosd` binary, users on the public
//! HTTP API, and the admin gRPC API for the tower's tip and counts. [`World::play`] runs one
//! [`Event`]; [`World::settle`] waits until the tower has processed bitcoind's best chain, feeds
//! the chain to the [`TowerModel`] and compares every answer the tower gives with the model's.
//!
//! Every wait has a deadline; nothing sleeps to synchronize; no log line is read.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction, Txid};
use bitcoind_sim::node::{BlockStatus, Node, TxOrTxid};
use bitcoind_sim::wallet::TestWallet;
use teos_common::appointment::{Appointment, Locator};
use teos_common::client::ClientError;
use teos_common::protocol::GetAppointmentResponse;
use teos_common::protos::teos::v2::GetTowerInfoResponse;
use teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::events::{Behind, Event, Outage, Stop};
use super::model::{
    AddAnswer, Blob, BlockRef, ChainFacts, GetAnswer, InfoAnswer, Params, TowerModel, TxState,
};
use crate::common::{Chain, TowerOptions, TowerProcess, User, appointment_for};

/// The tower's configuration in these runs (small, so that slots run out and users expire).
pub const PARAMS: Params = Params {
    slots: 4,
    duration: 100,
    expiry_delta: 6,
    cache_blocks: 6,
    retry_blocks: 6,
    resolved: 100,
};
/// Users of a run.
pub const USERS: usize = 3;
/// Blocks mined on top of the wallet's funding before teosd starts: reorgs below the tower's first
/// block never reach the funding coins' maturity.
const MARGIN: u32 = 10;
/// Most blocks a reorg may go below the tower's first block.
const BELOW_START: u32 = 3;
/// Deadline for the tower to reach bitcoind's tip (a catch-up of 110 blocks in a debug build).
const SYNC_DEADLINE: Duration = Duration::from_secs(90);
/// Deadline for the tower's answers to match the model once it is at the tip (late appointments
/// are answered asynchronously).
const CHECK_DEADLINE: Duration = Duration::from_secs(20);
/// Blocks mined at the end of every sequence.
pub const FINAL_BLOCKS: u8 = 110;
/// Mempool min fee during a fee spike (satoshis per 1000 vbytes): above the wallet's 2 sat/vB.
const SPIKE_FEE: u64 = 10_000;
/// `to_self_delay` of every appointment (`appointment_for`).
const TO_SELF_DELAY: u32 = 42;
/// How long a bitcoind fault lasts.
const FAULT: Duration = Duration::from_millis(700);

/// Figures of all runs in this process (for RELIABILITY.md).
pub struct Figures {
    pub sequences: AtomicU64,
    pub events: AtomicU64,
    pub tower_restarts: AtomicU64,
    pub bitcoind_restarts: AtomicU64,
    pub reorgs: AtomicU64,
    pub blocks: AtomicU64,
    pub completions: AtomicU64,
    pub late: AtomicU64,
    pub acknowledged: AtomicU64,
}

pub static FIGURES: Figures = Figures {
    sequences: AtomicU64::new(0),
    events: AtomicU64::new(0),
    tower_restarts: AtomicU64::new(0),
    bitcoind_restarts: AtomicU64::new(0),
    reorgs: AtomicU64::new(0),
    blocks: AtomicU64::new(0),
    completions: AtomicU64::new(0),
    late: AtomicU64::new(0),
    acknowledged: AtomicU64::new(0),
};

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// One breach pair and the two blobs a user may send for it.
struct Breach {
    dispute: Transaction,
    penalty: Transaction,
    good: Appointment,
    garbage: Appointment,
}

/// A run: one bitcoind-sim, one teosd data dir, [`USERS`] users (registered at the start).
pub struct World {
    chain: Chain,
    tower: Option<TowerProcess>,
    datadir: PathBuf,
    _dir: tempfile::TempDir,
    api_port: u16,
    rpc_port: u16,
    rt: tokio::runtime::Runtime,
    users: Vec<User>,
    breaches: Vec<Breach>,
    pub model: TowerModel,
    /// The tower's first block: reorgs go at most [`BELOW_START`] below it.
    start_height: u32,
    /// The tower's tip when it last matched bitcoind (to find the fork point of the next step).
    tower_tip: BlockHash,
    invalidated: Vec<BlockHash>,
    forks: u64,
    /// Whether reorgs may reach below the tower's first block.
    below_start: bool,
}

impl World {
    /// Starts bitcoind-sim (wallet funded for every breach), then teosd on a fresh data dir.
    pub fn start(below_start: bool) -> World {
        let chain = Chain::start(usize::from(super::events::MAX_BREACHES) + 2);
        chain.mine(MARGIN);
        let dir = tempfile::tempdir().unwrap();
        let datadir = dir.path().join("teosd");
        let options = TowerOptions {
            extra: vec![
                format!("subscription_slots = {}", PARAMS.slots),
                format!("subscription_duration = {}", PARAMS.duration),
                format!("expiry_delta = {}", PARAMS.expiry_delta),
                format!("locator_cache_size = {}", PARAMS.cache_blocks),
                "register_rate_limit = 0".into(),
            ],
        };
        let api_port = TowerProcess::configure(&chain, &datadir, &options);
        let rpc_port = crate::common::rpc_port_of(&datadir);
        let start_height = chain.height();
        let url = format!("http://127.0.0.1:{api_port}");
        let users = (0..USERS)
            .map(|i| User::new(&url, 0x30 + i as u8))
            .collect();
        let mut world = World {
            tower_tip: chain.sim().node().best_block_hash(),
            chain,
            tower: None,
            datadir,
            _dir: dir,
            api_port,
            rpc_port,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            users,
            breaches: Vec::new(),
            model: TowerModel::new(PARAMS, start_height, USERS),
            start_height,
            invalidated: Vec::new(),
            forks: 0,
            below_start,
        };
        world.spawn_tower();
        for user in 0..USERS {
            world.register(user);
        }
        count(&FIGURES.sequences, 1);
        world
    }

    fn node(&self) -> std::sync::Arc<Node> {
        self.chain.sim().node()
    }

    fn spawn_tower(&mut self) {
        self.tower = Some(TowerProcess::spawn_with(
            &self.datadir,
            self.api_port,
            &[],
            &[],
            "",
        ));
        self.wait_synced();
    }

    fn tower(&mut self) -> &mut TowerProcess {
        self.tower.as_mut().expect("teosd is not running")
    }

    /// Panics if teosd exited by itself.
    fn assert_alive(&mut self) {
        if let Some(status) = self.tower().exited() {
            panic!("teosd exited by itself ({status})");
        }
    }

    /// The admin API's `gettowerinfo`, `None` while it does not answer.
    fn tower_info(&self) -> Option<GetTowerInfoResponse> {
        let datadir = self.datadir.clone();
        let port = self.rpc_port;
        self.rt.block_on(async move {
            let read = |name: &str| std::fs::read(datadir.join(name)).ok();
            let tls = ClientTlsConfig::new()
                .domain_name("localhost")
                .ca_certificate(Certificate::from_pem(read("ca.pem")?))
                .identity(Identity::from_pem(
                    read("client.pem")?,
                    read("client-key.pem")?,
                ));
            let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
                .ok()?
                .tls_config(tls)
                .ok()?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .connect()
                .await
                .ok()?;
            let mut client = PrivateTowerServicesClient::<Channel>::new(channel);
            client.get_tower_info(()).await.ok().map(|r| r.into_inner())
        })
    }

    /// Waits until the tower's tip is bitcoind's best block (the lead's rule: a reorg of any depth
    /// is followed; a tower whose branch bitcoind marks invalid follows it down).
    fn wait_synced(&mut self) {
        let deadline = Instant::now() + SYNC_DEADLINE;
        loop {
            self.assert_alive();
            let best = self.node().best_block_hash();
            if let Some(info) = self.tower_info()
                && info.best_block_hash == best.to_byte_array()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the tower did not reach bitcoind's tip {best} within {SYNC_DEADLINE:?} (tower at {:?})",
                self.tower_info().map(|i| i.best_block_height)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn tx_state(node: &Node, txid: &Txid) -> TxState {
        if node.mempool_entry(txid).is_some() {
            return TxState::Mempool;
        }
        let Ok(found) = node.get_transaction(txid, None) else {
            return TxState::Absent;
        };
        match found.block {
            None => TxState::Mempool,
            Some(b) => match node.block_entry(&b.hash) {
                Some(e) if e.status == BlockStatus::Active => TxState::Confirmed(BlockRef {
                    height: e.height,
                    hash: b.hash.to_byte_array(),
                }),
                _ => TxState::Absent,
            },
        }
    }

    fn facts(&self) -> ChainFacts {
        let node = self.node();
        ChainFacts {
            tip: node.block_count(),
            disputes: self
                .breaches
                .iter()
                .map(|b| Self::tx_state(&node, &b.dispute.compute_txid()))
                .collect(),
            penalties: self
                .breaches
                .iter()
                .map(|b| Self::tx_state(&node, &b.penalty.compute_txid()))
                .collect(),
        }
    }

    /// The highest block of bitcoind's active chain that the tower's last tip descends from.
    fn fork_height(&self) -> u32 {
        let node = self.node();
        let mut hash = self.tower_tip;
        loop {
            let entry = node
                .block_entry(&hash)
                .expect("the tower's tip is unknown to bitcoind");
            match (entry.status, entry.previous) {
                (BlockStatus::Active, _) | (_, None) => return entry.height,
                (_, Some(previous)) => hash = previous,
            }
        }
    }

    /// Waits for the tower at bitcoind's tip, advances the model, then compares (see module doc).
    pub fn settle(&mut self) {
        self.wait_synced();
        let facts = self.facts();
        let fork = self.fork_height();
        self.model.chain_advanced(&facts, fork);
        self.tower_tip = self.node().best_block_hash();
        let deadline = Instant::now() + CHECK_DEADLINE;
        loop {
            self.assert_alive();
            let mismatches = self.mismatches(&facts);
            if mismatches.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the tower disagrees with the model at height {}:\n  {}",
                facts.tip,
                mismatches.join("\n  ")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every difference between the tower's answers (and bitcoind's mempool) and the model.
    fn mismatches(&self, facts: &ChainFacts) -> Vec<String> {
        let mut out = Vec::new();
        match self.tower_info() {
            None => out.push("gettowerinfo does not answer".into()),
            Some(info) => {
                let got = (
                    info.n_registered_users,
                    info.n_watcher_appointments,
                    info.n_responder_trackers,
                );
                let c = self.model.counts();
                if got != (c.users, c.watched, c.trackers) {
                    out.push(format!(
                        "gettowerinfo (users, watched, trackers) = {got:?}, model {c:?}"
                    ));
                }
                if info.best_block_hash != self.tower_tip.to_byte_array() {
                    out.push(format!("tower tip moved to {}", info.best_block_height));
                }
            }
        }
        for (u, user) in self.users.iter().enumerate() {
            let expected = self.model.subscription_info(u);
            let got = match user.info() {
                Ok(info) => InfoAnswer::Info {
                    available_slots: info.available_slots,
                    expiry: info.subscription_expiry,
                    breaches: self.breaches_of(&info.locators),
                },
                Err(ClientError::Api { error, .. }) if error.code.as_u8() == 7 => {
                    InfoAnswer::Unauthorized
                }
                Err(e) => {
                    out.push(format!("user {u}: get_subscription_info failed: {e}"));
                    continue;
                }
            };
            if got != expected {
                out.push(format!(
                    "user {u}: get_subscription_info {got:?}, model {expected:?}"
                ));
            }
        }
        for &(u, b) in self.model.appts.keys() {
            let expected = self.model.get_appointment(u, b);
            let breach = &self.breaches[b];
            let got = match self.users[u].get(&breach.good.locator) {
                Ok(GetAppointmentResponse::BeingWatched(a)) if a == breach.good => {
                    GetAnswer::BeingWatched(Blob::Good)
                }
                Ok(GetAppointmentResponse::BeingWatched(a)) if a == breach.garbage => {
                    GetAnswer::BeingWatched(Blob::Garbage)
                }
                Ok(GetAppointmentResponse::DisputeResponded(t))
                    if t.dispute_txid == breach.dispute.compute_txid()
                        && t.penalty_txid == breach.penalty.compute_txid() =>
                {
                    GetAnswer::DisputeResponded
                }
                Ok(other) => {
                    out.push(format!("user {u} breach {b}: unexpected answer {other:?}"));
                    continue;
                }
                Err(ClientError::Api { error, .. }) if error.code.as_u8() == 36 => {
                    GetAnswer::NotFound
                }
                Err(ClientError::Api { error, .. }) if error.code.as_u8() == 7 => {
                    GetAnswer::Unauthorized
                }
                Err(e) => {
                    out.push(format!("user {u} breach {b}: get_appointment failed: {e}"));
                    continue;
                }
            };
            if got != expected {
                out.push(format!(
                    "user {u} breach {b}: get_appointment {got:?}, model {expected:?}"
                ));
            }
        }
        for b in self.model.penalties_due(facts) {
            let penalty = self.breaches[b].penalty.compute_txid();
            if Self::tx_state(&self.node(), &penalty) == TxState::Absent {
                out.push(format!(
                    "breach {b}: dispute confirmed but penalty {penalty} neither in the mempool nor on the chain"
                ));
            }
        }
        out
    }

    fn breaches_of(&self, locators: &[Locator]) -> Vec<usize> {
        let set: BTreeSet<usize> = locators
            .iter()
            .filter_map(|l| self.breaches.iter().position(|b| b.good.locator == *l))
            .collect();
        set.into_iter().collect()
    }

    /// Runs one event, then [`World::settle`].
    pub fn play(&mut self, event: &Event) {
        count(&FIGURES.events, 1);
        match *event {
            Event::Register { user } => self.register(usize::from(user) % USERS),
            Event::NewBreach => {
                self.new_breach();
            }
            Event::Appoint { user, breach, blob } => {
                if let Some(b) = self.pick(breach) {
                    self.appoint(usize::from(user) % USERS, b, blob);
                }
            }
            Event::Dispute { breach } => {
                if let Some(b) = self.pick(breach) {
                    self.broadcast(&self.breaches[b].dispute.clone());
                }
            }
            Event::PenaltyByOther { breach } => {
                if let Some(b) = self.pick(breach) {
                    self.broadcast(&self.breaches[b].penalty.clone());
                }
            }
            Event::DisputeWithPenalty { breach } => {
                if let Some(b) = self.pick(breach) {
                    self.broadcast(&self.breaches[b].dispute.clone());
                    self.broadcast(&self.breaches[b].penalty.clone());
                    self.mine(1);
                }
            }
            Event::LateBreach {
                user,
                blocks_after,
                penalty_first,
                blob,
            } => self.late_breach(usize::from(user) % USERS, blocks_after, penalty_first, blob),
            Event::Mine { blocks } => self.mine(u32::from(blocks)),
            Event::MineEmpty => {
                let script = self.next_script();
                self.node().generate_block(&script, Vec::new()).unwrap();
                count(&FIGURES.blocks, 1);
            }
            Event::MineMany { blocks } => self.mine(u32::from(blocks)),
            Event::Reorg {
                depth,
                extra,
                empty,
            } => self.reorg(u32::from(depth), u32::from(extra), empty),
            Event::Invalidate { depth } => {
                let depth = self.clamp_depth(u32::from(depth));
                if depth > 0 {
                    let node = self.node();
                    let target = node.block_hash(node.block_count() - depth + 1).unwrap();
                    node.invalidate_block(&target).unwrap();
                    self.invalidated.push(target);
                    count(&FIGURES.reorgs, 1);
                }
            }
            Event::Reconsider => {
                if let Some(hash) = self.invalidated.pop() {
                    self.node().reconsider_block(&hash).unwrap();
                    // One more block, so no two branches have equal work.
                    self.mine(1);
                    count(&FIGURES.reorgs, 1);
                }
            }
            Event::RestartBitcoind { keep_mempool } => {
                self.chain.restart(keep_mempool);
                if !keep_mempool {
                    self.model.mempool_lost();
                }
                count(&FIGURES.bitcoind_restarts, 1);
            }
            Event::Outage(kind) => {
                let faults = self.chain.sim().faults();
                match kind {
                    Outage::Refuse => faults.refuse_rpc(FAULT),
                    Outage::Stall => faults.stall_rpc(FAULT),
                    Outage::Warmup => faults.warmup(FAULT),
                    Outage::StallSend => faults.stall_method("sendrawtransaction", FAULT),
                    Outage::FailGetblock => {
                        faults.fail_method("getblock", -5, "Block not found", Some(2))
                    }
                }
                self.mine(1);
            }
            Event::RestartTower(stop) => self.restart_tower(stop),
            Event::BitcoindBehind { blocks, then } => self.bitcoind_behind(u32::from(blocks), then),
            Event::FeeSpike { blocks, dispute } => self.fee_spike(u32::from(blocks), dispute),
            Event::Sighup => {
                let pid = self.tower().pid();
                crate::common::signal(pid, "HUP");
                self.mine(1);
            }
        }
        self.settle();
    }

    fn pick(&self, index: u8) -> Option<usize> {
        (!self.breaches.is_empty()).then(|| usize::from(index) % self.breaches.len())
    }

    /// A miner script not used before: a block rebuilt on the parent of an invalidated block is
    /// then never identical to it (bitcoind refuses a block it marked invalid).
    fn next_script(&mut self) -> bitcoin::ScriptBuf {
        self.forks += 1;
        TestWallet::new(1000 + self.forks).script_pubkey()
    }

    fn mine(&mut self, blocks: u32) {
        let script = self.next_script();
        self.node().generate_to_script(blocks, &script).unwrap();
        count(&FIGURES.blocks, u64::from(blocks));
    }

    fn broadcast(&self, tx: &Transaction) {
        // Refusals (already confirmed, missing inputs) are part of the game.
        let _ = self.node().accept_transaction(tx.clone(), None, false);
    }

    fn new_breach(&mut self) -> Option<usize> {
        if self.breaches.len() >= usize::from(super::events::MAX_BREACHES) {
            return None;
        }
        let (dispute, penalty) = self.chain.breach();
        let good = appointment_for(&dispute, &penalty);
        let garbage = Appointment {
            encrypted_blob: vec![0x5a; good.encrypted_blob.len()],
            ..good.clone()
        };
        self.breaches.push(Breach {
            dispute,
            penalty,
            good,
            garbage,
        });
        Some(self.breaches.len() - 1)
    }

    fn late_breach(&mut self, user: usize, blocks_after: u8, penalty_first: bool, blob: Blob) {
        let Some(b) = self.new_breach() else { return };
        self.broadcast(&self.breaches[b].dispute.clone());
        if penalty_first {
            self.broadcast(&self.breaches[b].penalty.clone());
        }
        self.mine(1 + u32::from(blocks_after));
        self.settle();
        count(&FIGURES.late, 1);
        self.appoint(user, b, blob);
    }

    /// Retries a call while the tower answers 503 (bitcoind unreachable) or cannot be reached.
    fn retried<T>(
        &self,
        mut call: impl FnMut() -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut result = call();
        let deadline = Instant::now() + CHECK_DEADLINE;
        while Instant::now() < deadline
            && matches!(&result, Err(ClientError::Api { error, .. }) if error.code.as_u8() == 32)
        {
            std::thread::sleep(Duration::from_millis(50));
            result = call();
        }
        result
    }

    fn register(&mut self, user: usize) {
        let expected = self.model.register(user);
        let answer = self.retried(|| self.users[user].register());
        let got = answer
            .map(|r| (r.available_slots, r.subscription_expiry))
            .unwrap_or_else(|e| panic!("user {user}: register failed: {e}"));
        assert_eq!(got, expected, "user {user}: register (slots, expiry)");
    }

    fn appoint(&mut self, user: usize, breach: usize, blob: Blob) {
        let facts = self.facts();
        if let Some(d) = facts.disputes[breach].block()
            && self.model.late_window_ambiguous(d.height)
        {
            return;
        }
        let appointment = match blob {
            Blob::Good => self.breaches[breach].good.clone(),
            Blob::Garbage => self.breaches[breach].garbage.clone(),
        };
        let slots = appointment.encrypted_blob.len().div_ceil(2048) as u32;
        let expected = self
            .model
            .add_appointment(user, breach, blob, slots, &facts);
        let got = match self.retried(|| self.users[user].add(&appointment)) {
            Ok(r) => AddAnswer::Accepted {
                available_slots: r.available_slots,
                expiry: r.subscription_expiry,
            },
            Err(ClientError::Api { error, .. }) => AddAnswer::Refused(error.code.as_u8()),
            Err(e) => panic!("user {user}: add_appointment failed: {e}"),
        };
        assert_eq!(
            got, expected,
            "user {user} breach {breach}: add_appointment"
        );
        if matches!(got, AddAnswer::Accepted { .. }) {
            count(&FIGURES.acknowledged, 1);
        }
    }

    /// Reorgs never go below the tower's first block unless enabled, and never more than
    /// [`BELOW_START`] below it.
    fn clamp_depth(&self, depth: u32) -> u32 {
        let floor = if self.below_start {
            self.start_height - BELOW_START
        } else {
            self.start_height
        };
        depth.min(self.chain.height().saturating_sub(floor))
    }

    fn reorg(&mut self, depth: u32, extra: u32, empty: bool) {
        let depth = self.clamp_depth(depth);
        if depth == 0 {
            return;
        }
        let node = self.node();
        let target = node.block_hash(node.block_count() - depth + 1).unwrap();
        node.invalidate_block(&target).unwrap();
        let script = self.next_script();
        for _ in 0..depth + extra {
            if empty {
                node.generate_block(&script, Vec::new()).unwrap();
            } else {
                node.generate_to_script(1, &script).unwrap();
            }
        }
        count(&FIGURES.reorgs, 1);
        count(&FIGURES.blocks, u64::from(depth + extra));
    }

    fn restart_tower(&mut self, stop: Stop) {
        count(&FIGURES.tower_restarts, 1);
        match stop {
            Stop::Term => self.stop_tower(),
            Stop::Kill => self.tower().kill(),
            Stop::KillMidBlock(blocks) => {
                self.mine(u32::from(blocks));
                self.tower().kill();
            }
            Stop::ReorgWhileDown(depth) => {
                self.stop_tower();
                self.reorg(u32::from(depth), 1, false);
            }
        }
        self.tower = None;
        self.spawn_tower();
        self.model.tower_restarted();
    }

    /// bitcoind restarts behind (lower work, empty mempool); the tower must keep its tip while it
    /// looks at bitcoind's (twice, counted on the simulator); then bitcoind gets ahead again.
    fn bitcoind_behind(&mut self, blocks: u32, then: Behind) {
        let tip = self.chain.height();
        let blocks = blocks.min(tip.saturating_sub(self.start_height - BELOW_START));
        if blocks == 0 {
            return;
        }
        if then == Behind::TowerRestart {
            self.stop_tower();
            count(&FIGURES.tower_restarts, 1);
        }
        self.chain.restart_behind(tip - blocks);
        self.model.mempool_lost();
        count(&FIGURES.bitcoind_restarts, 1);
        if then == Behind::TowerRestart {
            self.tower = Some(TowerProcess::spawn_with(
                &self.datadir,
                self.api_port,
                &[],
                &[],
                "",
            ));
            self.model.tower_restarted();
        }
        self.assert_waits();
        if then == Behind::Overtake {
            // More work than the tower's tip; the held-back blocks then come back as a stale branch.
            self.mine(blocks + 1);
        }
        self.node().reconnect_stored(u32::MAX).unwrap();
    }

    /// While bitcoind's tip has less work than the tower's: the tower stays alive and at its tip
    /// (checked after it has asked bitcoind for its best block twice more).
    fn assert_waits(&mut self) {
        let faults = self.chain.sim().faults();
        let before = faults.calls("getbestblockhash");
        let deadline = Instant::now() + CHECK_DEADLINE;
        while self.chain.sim().faults().calls("getbestblockhash") < before + 2 {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "the tower did not look at bitcoind's tip within {CHECK_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.assert_alive();
        if let Some(info) = self.tower_info() {
            assert_eq!(
                info.best_block_hash,
                self.tower_tip.to_byte_array(),
                "the tower left its tip (height {}) for bitcoind's lower-work chain",
                info.best_block_height
            );
        }
    }

    /// A fee spike (see [`Event::FeeSpike`]); skipped when a tracked penalty could reach its last
    /// retry during it (then dropping it would be right, and the model does not follow retries).
    fn fee_spike(&mut self, blocks: u32, dispute: Option<u8>) {
        let facts = self.facts();
        let until = facts.tip + blocks + 6;
        if !self.model.spike_safe(&facts, until, TO_SELF_DELAY) {
            return;
        }
        let node = self.node();
        node.set_mempool_min_fee(SPIKE_FEE);
        self.model.mempool_lost();
        let mut blocks = blocks;
        if let Some(b) = dispute.and_then(|d| self.pick(d))
            && facts.disputes[b].block().is_none()
        {
            // Mined directly: a dispute paying less than the floor still confirms (another miner).
            let script = self.next_script();
            let tx = TxOrTxid::Tx(self.breaches[b].dispute.clone());
            if node.generate_block(&script, vec![tx]).is_ok() {
                blocks -= 1;
                count(&FIGURES.blocks, 1);
            }
        }
        self.mine(blocks);
        self.wait_synced();
        node.set_mempool_min_fee(0);
        self.mine(6);
    }

    fn stop_tower(&mut self) {
        let status = self.tower().stop();
        assert!(status.success(), "teosd exited with {status} on SIGTERM");
    }

    /// Ends a sequence: [`FINAL_BLOCKS`] more blocks, so every penalty confirmed so far reaches 100
    /// confirmations (completion and refund are checked) and most users expire; then adds this run's
    /// completions to the figures.
    pub fn finish(&mut self) {
        self.play(&Event::MineMany {
            blocks: FINAL_BLOCKS,
        });
        count(&FIGURES.completions, self.model.completed);
    }
}
