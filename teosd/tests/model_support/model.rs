//! The reference model: what a correct tower must have done, as plain data.
//!
//! It knows nothing of teosd's code. It is fed what the users did (registrations, appointments and
//! the tower's acknowledgements) and what bitcoind's active chain looks like after each step
//! ([`ChainFacts`]: where each dispute and penalty is), and it derives what the tower's API must
//! answer. The rules come from `../shared/spec/PROTOCOL.md` ("Subscriptions", "Appointments",
//! "Triggered appointments", "Responding") plus the lead's rules for the fixed tower:
//! - a late appointment (dispute among the last `cache_blocks` blocks) is answered at once, also
//!   when its penalty is already confirmed (-27): the tracker is confirmed where the penalty is,
//!   completes at 100 confirmations and refunds;
//! - a late appointment whose blob does not decrypt gets a receipt but is not kept (slots charged);
//! - an outdated user (`height >= expiry + expiry_delta`) loses its watched appointments at once and
//!   is deleted once no tracker of it is left (a tracker completed at height `c` is deleted in the
//!   same block, so the user goes at `c + 1` at the earliest);
//! - a penalty lost from bitcoind's mempool is sent again within `retry_blocks` blocks.
//!
//! Heights are block heights; slots are appointment slots (PROTOCOL.md: one per 2048 blob bytes).
#![allow(dead_code)] // the unit tests and the harness each use a part

use std::collections::BTreeMap;

/// A block of the active chain: its height and hash (internal byte order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRef {
    pub height: u32,
    pub hash: [u8; 32],
}

/// Where bitcoind has a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxState {
    /// Neither in the mempool nor on the active chain.
    Absent,
    /// In the mempool.
    Mempool,
    /// In this block of the active chain.
    Confirmed(BlockRef),
}

impl TxState {
    /// The block, when confirmed.
    pub fn block(&self) -> Option<BlockRef> {
        match self {
            TxState::Confirmed(b) => Some(*b),
            _ => None,
        }
    }
}

/// bitcoind's state after a step, for every breach pair made so far (indexed by breach).
#[derive(Clone, Debug, Default)]
pub struct ChainFacts {
    /// Height of bitcoind's best block (the tower has processed it when facts are taken).
    pub tip: u32,
    pub disputes: Vec<TxState>,
    pub penalties: Vec<TxState>,
}

/// The tower's configuration, as far as the model needs it.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Slots per registration (`subscription_slots`).
    pub slots: u32,
    /// Blocks per registration (`subscription_duration`).
    pub duration: u32,
    /// Blocks after expiry before an expired user is deleted (`expiry_delta`).
    pub expiry_delta: u32,
    /// Blocks whose txids are kept for late appointments (`locator_cache_size`).
    pub cache_blocks: u32,
    /// Blocks after which an unconfirmed penalty is sent again (PROTOCOL.md: 6).
    pub retry_blocks: u32,
    /// Confirmations at which a penalty is irrevocably resolved (PROTOCOL.md: 100).
    pub resolved: u32,
}

/// What an appointment's blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blob {
    /// The penalty, encrypted with the dispute's txid.
    Good,
    /// Bytes that do not decrypt with the dispute's txid.
    Garbage,
}

/// Why an acknowledged appointment is no longer retrievable (each a documented rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Its penalty reached `resolved` confirmations; slots refunded.
    Completed,
    /// Triggered, but the blob did not decrypt; no refund.
    Undecryptable,
    /// Late, and the blob did not decrypt: receipt given, not kept; slots charged.
    LateUndecryptable,
    /// Its user was outdated (`height >= expiry + expiry_delta`).
    UserOutdated,
}

/// An appointment's state in a correct tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Stored and watched (`get_appointment`: being_watched).
    Watched,
    /// Its dispute was seen; the tower follows the penalty (`dispute_responded`).
    Tracked,
    /// Removed by a documented rule (`get_appointment`: 404).
    Gone(Removal),
}

/// One user's appointment for one breach.
#[derive(Clone, Copy, Debug)]
pub struct Appt {
    pub blob: Blob,
    pub slots: u32,
    pub status: Status,
    /// The block holding the dispute when the appointment was acknowledged: that block was already
    /// scanned, so only a later block with the dispute triggers it.
    ack_block: Option<BlockRef>,
}

/// A user as the tower must hold it.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserState {
    /// Registered and not deleted.
    pub exists: bool,
    pub slots: u32,
    pub expiry: u32,
    /// Height of the block that completed this user's last tracker.
    last_completion: Option<u32>,
}

/// What `add_appointment` must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddAnswer {
    /// Accepted: the user's slots and expiry after it.
    Accepted { available_slots: u32, expiry: u32 },
    /// Refused with this error code.
    Refused(u8),
}

/// What `get_appointment` must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetAnswer {
    BeingWatched(Blob),
    DisputeResponded,
    /// 404, code 36.
    NotFound,
    /// 401, code 7 (unknown, expired or deleted user).
    Unauthorized,
}

/// What `get_subscription_info` must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoAnswer {
    Info {
        available_slots: u32,
        expiry: u32,
        /// Breaches whose appointment is stored (watched or tracked), ascending.
        breaches: Vec<usize>,
    },
    /// 401, code 7.
    Unauthorized,
}

/// Counts as the admin API's `gettowerinfo` must give them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub users: u32,
    pub watched: u32,
    pub trackers: u32,
}

/// The reference tower.
#[derive(Clone, Debug)]
pub struct TowerModel {
    pub params: Params,
    /// The height of the last block processed.
    pub tip: u32,
    pub users: Vec<UserState>,
    /// Keyed by (user, breach).
    pub appts: BTreeMap<(usize, usize), Appt>,
    /// Tip when bitcoind last came back with an empty mempool.
    mempool_lost_at: Option<u32>,
    /// The tower's locator cache holds the blocks above this height (up to the tip): the last
    /// `cache_blocks` blocks it connected that are still on the chain. After a disconnection without
    /// as many blocks connected back it holds fewer than `cache_blocks`.
    cache_floor: u32,
    /// The lowest block the tower has stored (its bootstrap block, or lower after a reorg below it);
    /// a restart refills the cache from stored blocks only.
    first_stored: u32,
    /// Trackers completed so far (for the run's figures).
    pub completed: u64,
}

impl TowerModel {
    /// A tower at `tip` with `users` users, none registered yet.
    pub fn new(params: Params, tip: u32, users: usize) -> TowerModel {
        TowerModel {
            params,
            tip,
            users: vec![UserState::default(); users],
            appts: BTreeMap::new(),
            mempool_lost_at: None,
            cache_floor: tip.saturating_sub(1),
            first_stored: tip,
            completed: 0,
        }
    }

    /// `register`: a new (or deleted) user gets `slots` and `tip + duration`; an existing one (even
    /// expired) gets `slots` more and its expiry extended by `duration` (PROTOCOL.md,
    /// "Subscriptions"). Returns (available_slots, expiry).
    pub fn register(&mut self, user: usize) -> (u32, u32) {
        let p = self.params;
        let u = &mut self.users[user];
        if u.exists {
            u.slots += p.slots;
            u.expiry += p.duration;
        } else {
            *u = UserState {
                exists: true,
                slots: p.slots,
                expiry: self.tip + p.duration,
                last_completion: None,
            };
        }
        (u.slots, u.expiry)
    }

    fn authorized(&self, user: usize) -> bool {
        let u = &self.users[user];
        u.exists && self.tip < u.expiry
    }

    /// `add_appointment` of `user` for `breach` (costing `slots`), with bitcoind as in `facts`.
    pub fn add_appointment(
        &mut self,
        user: usize,
        breach: usize,
        blob: Blob,
        slots: u32,
        facts: &ChainFacts,
    ) -> AddAnswer {
        if !self.authorized(user) {
            return AddAnswer::Refused(7);
        }
        let key = (user, breach);
        let old = match self.appts.get(&key).map(|a| a.status) {
            Some(Status::Tracked) => return AddAnswer::Refused(35),
            Some(Status::Watched) => self.appts[&key].slots,
            _ => 0,
        };
        let u = &mut self.users[user];
        let Some(available) = (u.slots + old).checked_sub(slots) else {
            return AddAnswer::Refused(7);
        };
        u.slots = available;
        let expiry = u.expiry;
        let dispute = facts.disputes.get(breach).and_then(TxState::block);
        let late = dispute.is_some_and(|b| b.height > self.cache_floor);
        let status = match (late, blob) {
            (false, _) => Status::Watched,
            (true, Blob::Good) => Status::Tracked,
            (true, Blob::Garbage) => Status::Gone(Removal::LateUndecryptable),
        };
        self.appts.insert(
            key,
            Appt {
                blob,
                slots,
                status,
                ack_block: dispute,
            },
        );
        AddAnswer::Accepted {
            available_slots: available,
            expiry,
        }
    }

    /// bitcoind lost its mempool (restarted without it) while the tower was at the model's tip.
    pub fn mempool_lost(&mut self) {
        self.mempool_lost_at = Some(self.tip);
    }

    /// Whether a dispute confirmed at `height` is among the last `cache_blocks` blocks (spec) but
    /// possibly not in the tower's cache (a disconnection shrank it): both answers are then
    /// defensible, so the harness does not send such an appointment.
    pub fn late_window_ambiguous(&self, height: u32) -> bool {
        height + self.params.cache_blocks > self.tip && height <= self.cache_floor
    }

    /// The tower restarted: it refills its cache with the last `cache_blocks` stored blocks.
    pub fn tower_restarted(&mut self) {
        let window = self.tip.saturating_sub(self.params.cache_blocks);
        self.cache_floor = window.max(self.first_stored.saturating_sub(1));
    }

    /// The tower has processed bitcoind's chain up to `facts.tip`, having gone back to `fork` (the
    /// highest block its old tip and the new chain share): breaches, completions and expiries, in
    /// the order a block applies them (Watcher, Responder, then Gatekeeper deletions).
    pub fn chain_advanced(&mut self, facts: &ChainFacts, fork: u32) {
        let window = facts.tip.saturating_sub(self.params.cache_blocks);
        self.cache_floor = self.cache_floor.min(fork).max(window);
        self.first_stored = self.first_stored.min(fork + 1);
        self.tip = facts.tip;
        self.trigger_breaches(facts);
        self.complete_trackers(facts);
        self.remove_outdated();
    }

    fn trigger_breaches(&mut self, facts: &ChainFacts) {
        let p = self.params;
        for (&(user, breach), a) in self.appts.iter_mut() {
            if a.status != Status::Watched {
                continue;
            }
            let dispute = facts.disputes.get(breach).and_then(TxState::block);
            match dispute {
                Some(b) if Some(b) == a.ack_block => {}
                Some(b) => {
                    let u = &self.users[user];
                    if b.height < u.expiry + p.expiry_delta {
                        a.status = match a.blob {
                            Blob::Good => Status::Tracked,
                            Blob::Garbage => Status::Gone(Removal::Undecryptable),
                        };
                    }
                    a.ack_block = None;
                }
                None => a.ack_block = None,
            }
        }
    }

    fn complete_trackers(&mut self, facts: &ChainFacts) {
        let p = self.params;
        for (&(user, breach), a) in self.appts.iter_mut() {
            if a.status != Status::Tracked {
                continue;
            }
            let Some(penalty) = facts.penalties.get(breach).and_then(TxState::block) else {
                continue;
            };
            let completion = penalty.height + p.resolved - 1;
            if self.tip >= completion {
                a.status = Status::Gone(Removal::Completed);
                self.completed += 1;
                let u = &mut self.users[user];
                if u.exists {
                    u.slots += a.slots;
                    u.last_completion =
                        Some(u.last_completion.map_or(completion, |c| c.max(completion)));
                }
            }
        }
    }

    fn remove_outdated(&mut self) {
        let p = self.params;
        for (user, u) in self.users.iter_mut().enumerate() {
            if !u.exists || self.tip < u.expiry + p.expiry_delta {
                continue;
            }
            let mut tracked = false;
            for (_, a) in self.appts.range_mut((user, 0)..(user + 1, 0)) {
                match a.status {
                    Status::Watched => a.status = Status::Gone(Removal::UserOutdated),
                    Status::Tracked => tracked = true,
                    Status::Gone(_) => {}
                }
            }
            if !tracked && u.last_completion.is_none_or(|c| self.tip > c) {
                u.exists = false;
            }
        }
    }

    /// What `get_appointment` of `user` for `breach` must answer now.
    pub fn get_appointment(&self, user: usize, breach: usize) -> GetAnswer {
        if !self.authorized(user) {
            return GetAnswer::Unauthorized;
        }
        match self.appts.get(&(user, breach)).map(|a| (a.status, a.blob)) {
            Some((Status::Watched, blob)) => GetAnswer::BeingWatched(blob),
            Some((Status::Tracked, _)) => GetAnswer::DisputeResponded,
            _ => GetAnswer::NotFound,
        }
    }

    /// What `get_subscription_info` of `user` must answer now.
    pub fn subscription_info(&self, user: usize) -> InfoAnswer {
        if !self.authorized(user) {
            return InfoAnswer::Unauthorized;
        }
        let u = &self.users[user];
        let breaches = self
            .appts
            .range((user, 0)..(user + 1, 0))
            .filter(|(_, a)| matches!(a.status, Status::Watched | Status::Tracked))
            .map(|(&(_, breach), _)| breach)
            .collect();
        InfoAnswer::Info {
            available_slots: u.slots,
            expiry: u.expiry,
            breaches,
        }
    }

    /// Users, watched appointments and trackers the tower must hold.
    pub fn counts(&self) -> Counts {
        let count = |s: Status| self.appts.values().filter(|a| a.status == s).count() as u32;
        Counts {
            users: self.users.iter().filter(|u| u.exists).count() as u32,
            watched: count(Status::Watched),
            trackers: count(Status::Tracked),
        }
    }

    /// Whether no tracked breach whose penalty is unconfirmed reaches its last retry
    /// (`dispute_height + to_self_delay`) by `until`: a fee spike lasting until then only delays
    /// penalties (the lead's rule: -26 is retried every block until that height, then dropped).
    pub fn spike_safe(&self, facts: &ChainFacts, until: u32, to_self_delay: u32) -> bool {
        self.appts
            .iter()
            .filter(|(_, a)| a.status == Status::Tracked)
            .all(|(&(_, breach), _)| {
                let dispute = facts.disputes.get(breach).and_then(TxState::block);
                let penalty = facts.penalties.get(breach).and_then(TxState::block);
                penalty.is_some() || dispute.is_none_or(|d| d.height + to_self_delay > until)
            })
    }

    /// Breaches whose penalty must be in bitcoind's mempool or chain now: tracked, dispute on the
    /// active chain, and no mempool loss in the last `retry_blocks` blocks.
    pub fn penalties_due(&self, facts: &ChainFacts) -> Vec<usize> {
        if self
            .mempool_lost_at
            .is_some_and(|lost| self.tip < lost + self.params.retry_blocks)
        {
            return Vec::new();
        }
        let mut due: Vec<usize> = self
            .appts
            .iter()
            .filter(|(_, a)| a.status == Status::Tracked)
            .map(|(&(_, breach), _)| breach)
            .filter(|&b| facts.disputes.get(b).and_then(TxState::block).is_some())
            .collect();
        due.dedup();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params {
        slots: 3,
        duration: 50,
        expiry_delta: 6,
        cache_blocks: 6,
        retry_blocks: 6,
        resolved: 100,
    };

    fn block(height: u32) -> BlockRef {
        BlockRef {
            height,
            hash: [height as u8; 32],
        }
    }

    fn facts(tip: u32, disputes: Vec<TxState>, penalties: Vec<TxState>) -> ChainFacts {
        ChainFacts {
            tip,
            disputes,
            penalties,
        }
    }

    /// The tower moved to `f.tip` from the block below it.
    fn advance(m: &mut TowerModel, f: ChainFacts) {
        let fork = f.tip - 1;
        m.chain_advanced(&f, fork);
    }

    fn accepted(slots: u32, expiry: u32) -> AddAnswer {
        AddAnswer::Accepted {
            available_slots: slots,
            expiry,
        }
    }

    #[test]
    fn registration_then_renewal_adds_slots_and_extends_from_the_old_expiry() {
        let mut m = TowerModel::new(P, 100, 1);
        assert_eq!(m.register(0), (3, 150));
        m.tip = 120;
        assert_eq!(m.register(0), (6, 200));
    }

    #[test]
    fn appointments_charge_slots_updates_cost_the_difference_and_slots_run_out() {
        let mut m = TowerModel::new(P, 100, 1);
        m.register(0);
        let f = facts(100, vec![TxState::Absent; 4], vec![TxState::Absent; 4]);
        assert_eq!(m.add_appointment(0, 0, Blob::Good, 1, &f), accepted(2, 150));
        assert_eq!(
            m.add_appointment(0, 0, Blob::Garbage, 1, &f),
            accepted(2, 150)
        );
        assert_eq!(m.add_appointment(0, 1, Blob::Good, 1, &f), accepted(1, 150));
        assert_eq!(m.add_appointment(0, 2, Blob::Good, 1, &f), accepted(0, 150));
        assert_eq!(
            m.add_appointment(0, 3, Blob::Good, 1, &f),
            AddAnswer::Refused(7)
        );
        assert_eq!(
            m.get_appointment(0, 0),
            GetAnswer::BeingWatched(Blob::Garbage)
        );
        assert_eq!(m.get_appointment(0, 3), GetAnswer::NotFound);
        assert_eq!(
            m.subscription_info(0),
            InfoAnswer::Info {
                available_slots: 0,
                expiry: 150,
                breaches: vec![0, 1, 2]
            }
        );
    }

    #[test]
    fn a_dispute_triggers_the_appointment_and_completion_refunds_once() {
        let mut m = TowerModel::new(P, 100, 1);
        m.register(0);
        let f = facts(100, vec![TxState::Absent], vec![TxState::Absent]);
        m.add_appointment(0, 0, Blob::Good, 1, &f);
        let f = facts(
            101,
            vec![TxState::Confirmed(block(101))],
            vec![TxState::Mempool],
        );
        m.chain_advanced(&f, f.tip - 1);
        assert_eq!(m.get_appointment(0, 0), GetAnswer::DisputeResponded);
        assert_eq!(m.penalties_due(&f), vec![0]);
        assert_eq!(
            m.add_appointment(0, 0, Blob::Good, 1, &f),
            AddAnswer::Refused(35)
        );
        let confirmed = TxState::Confirmed(block(102));
        advance(
            &mut m,
            facts(200, vec![TxState::Confirmed(block(101))], vec![confirmed]),
        );
        assert_eq!(m.counts().trackers, 1, "99 confirmations are not enough");
        let f = facts(201, vec![TxState::Confirmed(block(101))], vec![confirmed]);
        m.chain_advanced(&f, f.tip - 1);
        m.chain_advanced(&f, f.tip - 1);
        assert_eq!(
            m.get_appointment(0, 0),
            GetAnswer::Unauthorized,
            "expired at 150"
        );
        m.tip = 140;
        assert_eq!(m.get_appointment(0, 0), GetAnswer::NotFound);
        assert_eq!(m.completed, 1);
        assert_eq!(m.users[0].slots, 3, "refunded exactly once");
    }

    #[test]
    fn a_late_appointment_is_answered_only_within_the_cache_window() {
        let mut m = TowerModel::new(P, 110, 1);
        m.register(0);
        let d = TxState::Confirmed(block(105));
        let f = facts(110, vec![d, d], vec![TxState::Absent, TxState::Absent]);
        m.chain_advanced(&f, 100);
        assert!(!m.late_window_ambiguous(105));
        m.add_appointment(0, 0, Blob::Good, 1, &f);
        assert_eq!(m.get_appointment(0, 0), GetAnswer::DisputeResponded);
        m.add_appointment(0, 1, Blob::Garbage, 1, &f);
        assert_eq!(m.get_appointment(0, 1), GetAnswer::NotFound);
        assert_eq!(m.users[0].slots, 1, "a late undecryptable blob is charged");
        let f = facts(111, vec![d, d, d], vec![TxState::Absent; 3]);
        m.chain_advanced(&f, f.tip - 1);
        m.add_appointment(0, 2, Blob::Good, 1, &f);
        m.chain_advanced(&f, f.tip);
        assert_eq!(m.get_appointment(0, 2), GetAnswer::BeingWatched(Blob::Good));
    }

    #[test]
    fn after_a_disconnection_the_cache_holds_fewer_blocks_until_a_restart_refills_it() {
        let mut m = TowerModel::new(P, 90, 1);
        m.chain_advanced(&facts(110, vec![], vec![]), 100);
        // Two blocks invalidated: the tower drops them from its cache, 103 and 104 stay evicted.
        m.chain_advanced(&facts(108, vec![], vec![]), 108);
        assert!(m.late_window_ambiguous(104));
        assert!(!m.late_window_ambiguous(105));
        m.tower_restarted();
        assert!(!m.late_window_ambiguous(103));
    }

    #[test]
    fn a_dispute_re_mined_after_a_reorg_triggers_a_watched_appointment() {
        let mut m = TowerModel::new(P, 120, 1);
        m.register(0);
        let old = TxState::Confirmed(block(100));
        let f = facts(120, vec![old], vec![TxState::Absent]);
        m.add_appointment(0, 0, Blob::Good, 1, &f);
        m.chain_advanced(&f, f.tip - 1);
        assert_eq!(m.get_appointment(0, 0), GetAnswer::BeingWatched(Blob::Good));
        let mut new = block(100);
        new.hash = [0xee; 32];
        advance(
            &mut m,
            facts(121, vec![TxState::Confirmed(new)], vec![TxState::Absent]),
        );
        assert_eq!(m.get_appointment(0, 0), GetAnswer::DisputeResponded);
    }

    #[test]
    fn an_undecryptable_blob_is_dropped_without_refund_when_its_dispute_is_mined() {
        let mut m = TowerModel::new(P, 100, 1);
        m.register(0);
        m.add_appointment(0, 0, Blob::Garbage, 1, &facts(100, vec![], vec![]));
        advance(
            &mut m,
            facts(101, vec![TxState::Confirmed(block(101))], vec![]),
        );
        assert_eq!(m.get_appointment(0, 0), GetAnswer::NotFound);
        assert_eq!(m.users[0].slots, 2);
    }

    #[test]
    fn an_outdated_user_loses_watched_appointments_but_is_kept_while_a_tracker_lives() {
        let mut m = TowerModel::new(P, 100, 1);
        m.register(0);
        let none = facts(100, vec![TxState::Absent; 2], vec![TxState::Absent; 2]);
        m.add_appointment(0, 0, Blob::Good, 1, &none);
        m.add_appointment(0, 1, Blob::Good, 1, &none);
        let d = TxState::Confirmed(block(140));
        let p = TxState::Confirmed(block(141));
        advance(
            &mut m,
            facts(141, vec![d, TxState::Absent], vec![p, TxState::Absent]),
        );
        advance(
            &mut m,
            facts(156, vec![d, TxState::Absent], vec![p, TxState::Absent]),
        );
        assert_eq!(
            m.counts(),
            Counts {
                users: 1,
                watched: 0,
                trackers: 1
            }
        );
        assert_eq!(m.get_appointment(0, 0), GetAnswer::Unauthorized);
        advance(
            &mut m,
            facts(240, vec![d, TxState::Absent], vec![p, TxState::Absent]),
        );
        assert_eq!(
            m.counts(),
            Counts {
                users: 1,
                watched: 0,
                trackers: 0
            },
            "deleted one block later"
        );
        advance(
            &mut m,
            facts(241, vec![d, TxState::Absent], vec![p, TxState::Absent]),
        );
        assert_eq!(m.counts().users, 0);
        assert_eq!(m.register(0), (3, 291), "a deleted user registers afresh");
    }

    #[test]
    fn a_dispute_after_the_user_is_outdated_triggers_nothing() {
        let mut m = TowerModel::new(P, 100, 1);
        m.register(0);
        m.add_appointment(
            0,
            0,
            Blob::Good,
            1,
            &facts(100, vec![TxState::Absent], vec![]),
        );
        advance(
            &mut m,
            facts(156, vec![TxState::Confirmed(block(156))], vec![]),
        );
        assert_eq!(
            m.counts(),
            Counts {
                users: 0,
                watched: 0,
                trackers: 0
            }
        );
    }

    #[test]
    fn a_lost_mempool_excuses_a_missing_penalty_for_the_retry_window_only() {
        let mut m = TowerModel::new(P, 100, 1);
        m.register(0);
        m.add_appointment(
            0,
            0,
            Blob::Good,
            1,
            &facts(100, vec![TxState::Absent], vec![]),
        );
        let d = vec![TxState::Confirmed(block(101))];
        advance(&mut m, facts(101, d.clone(), vec![TxState::Mempool]));
        m.mempool_lost();
        let f = facts(106, d.clone(), vec![TxState::Absent]);
        m.chain_advanced(&f, f.tip - 1);
        assert!(m.penalties_due(&f).is_empty());
        let f = facts(107, d, vec![TxState::Absent]);
        m.chain_advanced(&f, f.tip - 1);
        assert_eq!(m.penalties_due(&f), vec![0]);
    }
}
