//! The in-memory index of watched locators: which of a block's transactions may trigger an appointment.
//!
//! Checking a 4,000-transaction block against 1,000,000 stored appointments costs 4,000 probes of the
//! `appointments_locator` index, about 5 ms (BENCHMARKS.md, "Breach lookup"), on every block and, in
//! catch-up, for every block in turn. This index answers "may any appointment have this locator?" from
//! memory, so the database is only asked about the few locators that can match.
//!
//! It holds the first 4 bytes of each stored locator (locators are the first 16 bytes of a txid, so
//! uniformly distributed), in a hash set seeded per process (users choose their locators, so a fixed
//! hash could be attacked with colliding ones): 5–10 bytes per stored appointment, about 10 MB for a
//! million. A prefix shared by chance only costs a database lookup: with a million stored appointments,
//! about one of a 4,000-transaction block's locators (4,000 × 10⁶ / 2³²) is looked up for nothing.
//!
//! The rule it must keep: **every stored appointment's locator is in the index whenever a block is
//! scanned** (a missing one is a missed breach). So:
//! - it is loaded from the database at startup, before the first block is processed;
//! - an accepted appointment is added inside the storage write op that stores it, on the storage
//!   writer thread, which also runs every block scan (see `chain_view`): no scan falls in between;
//! - it never drops an entry on its own. Entries of deleted appointments (completed, expired users,
//!   refused write ops) stay as harmless false positives until [`WatchedLocators::needs_rebuild`]
//!   says they outnumber the stored appointments, and the block processor reloads it from the
//!   database in a write op of its own.
//!
//! Until loaded ([`WatchedLocators::unloaded`]) it lets every locator through, so code that never loads
//! it (tests that build a chain view by hand) stays correct, only slower.

use std::collections::HashSet;

use teos_common::appointment::Locator;

use crate::storage::{StorageError, Tx};

/// Stale entries tolerated beyond the number of stored appointments before a reload (entries).
pub const REBUILD_SLACK: usize = 100_000;

/// Locator prefixes of the stored appointments (see the module docs).
pub struct WatchedLocators {
    prefixes: Option<HashSet<u32, foldhash::fast::RandomState>>,
}

fn prefix(locator: &Locator) -> u32 {
    let bytes = locator.as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

impl WatchedLocators {
    /// An index that has not been loaded: every locator may be watched.
    pub fn unloaded() -> WatchedLocators {
        WatchedLocators { prefixes: None }
    }

    /// Reads the locator of every stored appointment ([`Tx::for_each_locator`]; on SQLite a scan of
    /// the locator index: ~0.2 s per million appointments).
    ///
    /// Errors: storage errors, or a stored locator that is not 16 bytes.
    pub fn load(tx: &mut dyn Tx) -> Result<WatchedLocators, StorageError> {
        let mut prefixes = HashSet::default();
        tx.for_each_locator(&mut |locator| {
            prefixes.insert(prefix(&locator));
        })?;
        Ok(WatchedLocators {
            prefixes: Some(prefixes),
        })
    }

    /// Records the locator of an appointment being stored.
    pub fn insert(&mut self, locator: &Locator) {
        if let Some(prefixes) = &mut self.prefixes {
            prefixes.insert(prefix(locator));
        }
    }

    /// False only when no stored appointment has `locator`; true when one may have it.
    pub fn may_contain(&self, locator: &Locator) -> bool {
        self.prefixes
            .as_ref()
            .is_none_or(|prefixes| prefixes.contains(&prefix(locator)))
    }

    /// Entries held (0 when unloaded).
    pub fn len(&self) -> usize {
        self.prefixes.as_ref().map_or(0, HashSet::len)
    }

    /// True when the index holds no entry (or is unloaded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the stale entries (more than `stored` appointments' worth) exceed
    /// `stored + REBUILD_SLACK`, i.e. a reload would at least halve the index.
    pub fn needs_rebuild(&self, stored: u64) -> bool {
        let stored = usize::try_from(stored).unwrap_or(usize::MAX);
        self.prefixes.is_some()
            && self.len() > stored.saturating_mul(2).saturating_add(REBUILD_SLACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;
    use crate::storage::records::{AppointmentId, AppointmentRecord, UserId, UserRecord};
    use secp256k1::{PublicKey, SECP256K1, SecretKey};

    fn locator(byte: u8) -> Locator {
        Locator::from_slice(&[byte; 16]).unwrap()
    }

    #[test]
    fn an_unloaded_index_lets_every_locator_through() {
        let index = WatchedLocators::unloaded();
        assert!(index.may_contain(&locator(1)));
        assert!(!index.needs_rebuild(0));
    }

    #[test]
    fn a_loaded_index_holds_every_stored_locator_and_inserted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("teos.db")).unwrap();
        let user = UserId(PublicKey::from_secret_key(
            SECP256K1,
            &SecretKey::from_slice(&[9u8; 32]).unwrap(),
        ));
        let mut index = store
            .write_blocking(move |tx| -> Result<_, StorageError> {
                let record = UserRecord {
                    available_slots: 10,
                    subscription_start: 0,
                    subscription_expiry: 1_000,
                };
                tx.upsert_user(&user, &record)?;
                for byte in [1u8, 2, 3] {
                    let locator = locator(byte);
                    tx.upsert_appointment(&AppointmentRecord {
                        uuid: AppointmentId::new(&locator, &user),
                        locator,
                        user_id: user,
                        encrypted_blob: vec![7u8; 100],
                        to_self_delay: 144,
                        user_signature: "d1fakesignature".into(),
                        start_block: 100,
                        slots: 1,
                    })?;
                }
                WatchedLocators::load(tx)
            })
            .unwrap();
        assert_eq!(index.len(), 3);
        for byte in [1u8, 2, 3] {
            assert!(index.may_contain(&locator(byte)));
        }
        assert!(!index.may_contain(&locator(4)));
        index.insert(&locator(4));
        assert!(index.may_contain(&locator(4)));
    }

    #[test]
    fn stale_entries_ask_for_a_rebuild_once_they_outnumber_the_stored_ones() {
        let mut index = WatchedLocators {
            prefixes: Some(HashSet::default()),
        };
        for i in 0..(REBUILD_SLACK as u32 + 10) {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            index.insert(&Locator::from_slice(&bytes).unwrap());
        }
        assert!(index.needs_rebuild(0));
        assert!(!index.needs_rebuild(10));
    }
}
