//! The copy and its check, written once over two [`Tx`]s: whatever the backends, the same records
//! go across through the same domain-neutral queries.
//!
//! Memory stays bounded: users, trackers and pending breaches are paged ([`PAGE`] at a time) and a
//! user's appointments are copied one by one. Records go across as they are (slots, expiry, start
//! blocks, tracker statuses and heights), never recomputed: the copy is the same tower.

use std::fmt;

use crate::storage::{AppointmentId, StorageError, Tx, UserId};

/// Rows read per page of users, trackers and pending breaches.
pub const PAGE: u32 = 1_000;

/// How many records of each kind were copied (or checked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Registered users.
    pub users: u64,
    /// Appointments (watched, or answered with a tracker).
    pub appointments: u64,
    /// Trackers (breaches being answered).
    pub trackers: u64,
    /// Late appointments whose dispute was already on chain, not answered yet.
    pub pending_breaches: u64,
    /// Remembered blocks (the tip and the blocks below it the tower keeps for reorgs).
    pub blocks: u64,
    /// Tower keys (the newest, which signs: one).
    pub tower_keys: u64,
}

impl fmt::Display for Copied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users, {} appointments, {} trackers, {} pending breaches, {} blocks, {} tower key",
            self.users,
            self.appointments,
            self.trackers,
            self.pending_breaches,
            self.blocks,
            self.tower_keys
        )
    }
}

/// Why a copy was refused, failed or did not check out.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The destination already holds a tower: never merged into, never overwritten.
    #[error("the destination database is not empty ({0}); migrate into a new, empty database")]
    NotEmpty(String),
    /// The source has no tower (no key and no chain state): nothing to migrate.
    #[error("the source database holds no tower (no tower key)")]
    NoTower,
    /// Reading or writing failed.
    #[error("{side}: {source}")]
    Storage {
        /// "reading the source" or "writing the destination".
        side: &'static str,
        /// The backend's error.
        source: StorageError,
    },
    /// The check found the destination different from the source.
    #[error("the copy differs from the source: {0}")]
    Mismatch(String),
}

fn read(source: StorageError) -> CopyError {
    CopyError::Storage {
        side: "reading the source",
        source,
    }
}

fn write(source: StorageError) -> CopyError {
    CopyError::Storage {
        side: "writing the destination",
        source,
    }
}

/// Refuses a destination that holds anything of a tower (users, appointments, trackers, blocks, a
/// key).
pub fn check_empty(dst: &mut dyn Tx) -> Result<(), CopyError> {
    let found = [
        ("users", dst.count_users().map_err(write)?),
        ("appointments", dst.count_appointments().map_err(write)?),
        ("trackers", dst.count_trackers().map_err(write)?),
        ("tower keys", dst.count_tower_keys().map_err(write)?),
        ("blocks", dst.recent_blocks().map_err(write)?.len() as u64),
    ];
    let held: Vec<String> = found
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    if held.is_empty() {
        Ok(())
    } else {
        Err(CopyError::NotEmpty(held.join(", ")))
    }
}

/// Copies the whole tower from `src` into the empty `dst` (see [`check_empty`]): the newest tower
/// key, users, appointments, trackers, pending breaches, remembered blocks with their work and
/// txids. Older tower keys stay behind (the tower signs with the newest only).
///
/// Errors: [`CopyError::NotEmpty`], [`CopyError::NoTower`], storage errors on either side. Nothing
/// is committed by this function: the caller commits `dst` only after [`verify`] passed.
pub fn copy(src: &mut dyn Tx, dst: &mut dyn Tx) -> Result<Copied, CopyError> {
    check_empty(dst)?;
    let mut copied = Copied::default();
    let key = src
        .latest_tower_key()
        .map_err(read)?
        .ok_or(CopyError::NoTower)?;
    dst.insert_tower_key(&key).map_err(write)?;
    copied.tower_keys = 1;

    // Blocks first, ascending, each kept (`keep` = their number): the tip is the highest.
    let mut blocks = src.recent_blocks().map_err(read)?;
    blocks.reverse();
    let keep = u32::try_from(blocks.len()).unwrap_or(u32::MAX);
    for (height, hash) in &blocks {
        let work = src.block_work(hash).map_err(read)?;
        dst.push_block(*height, hash, work, keep).map_err(write)?;
        if let Some(txids) = src.block_txids(*height).map_err(read)? {
            dst.set_block_txids(*height, hash, &txids).map_err(write)?;
        }
        copied.blocks += 1;
    }

    let mut after: Option<UserId> = None;
    loop {
        let page = src.user_ids_after(after.as_ref(), PAGE).map_err(read)?;
        let Some(last) = page.last().copied() else {
            break;
        };
        for user_id in &page {
            let Some(user) = src.user(user_id).map_err(read)? else {
                continue; // deleted between the two reads: impossible inside one transaction
            };
            dst.upsert_user(user_id, &user).map_err(write)?;
            copied.users += 1;
            for uuid in src.appointment_ids_of_user(user_id).map_err(read)? {
                if let Some(appointment) = src.appointment(&uuid).map_err(read)? {
                    dst.upsert_appointment(&appointment).map_err(write)?;
                    copied.appointments += 1;
                }
            }
        }
        after = Some(last);
    }

    let mut after: Option<AppointmentId> = None;
    loop {
        let page = src.trackers_after(after.as_ref(), PAGE).map_err(read)?;
        let Some(last) = page.last().map(|t| t.uuid) else {
            break;
        };
        for tracker in &page {
            dst.insert_tracker(tracker).map_err(write)?;
            copied.trackers += 1;
        }
        after = Some(last);
    }

    let mut after: Option<AppointmentId> = None;
    loop {
        let page = src
            .pending_breaches_after(after.as_ref(), PAGE)
            .map_err(read)?;
        let Some(last) = page.last().map(|p| p.uuid) else {
            break;
        };
        for pending in &page {
            // Rows written before the SQLite schema V4 have no height: the remembered block's, or 0
            // (then only its block hash ties it to a reorg, as on the source).
            let height = match pending.block_height {
                Some(height) => height,
                None => src
                    .block_height(&pending.block_hash)
                    .map_err(read)?
                    .unwrap_or(0),
            };
            dst.upsert_pending_breach(
                &pending.uuid,
                &pending.dispute_txid,
                &pending.block_hash,
                height,
            )
            .map_err(write)?;
            copied.pending_breaches += 1;
        }
        after = Some(last);
    }
    Ok(copied)
}

/// Checks that `dst` holds exactly what `src` holds: every user, appointment, tracker and pending
/// breach equal field by field, the same remembered blocks with the same work and txids, the same
/// newest tower key, and no record more. Returns the counts checked.
///
/// Errors: [`CopyError::Mismatch`] naming the first difference; storage errors on either side.
pub fn verify(src: &mut dyn Tx, dst: &mut dyn Tx) -> Result<Copied, CopyError> {
    let mut checked = Copied::default();
    let key = src.latest_tower_key().map_err(read)?;
    if key.map(|k| k.secret_bytes())
        != dst
            .latest_tower_key()
            .map_err(write)?
            .map(|k| k.secret_bytes())
    {
        return Err(CopyError::Mismatch("the tower key".into()));
    }
    checked.tower_keys = u64::from(key.is_some());

    let blocks = src.recent_blocks().map_err(read)?;
    if blocks != dst.recent_blocks().map_err(write)? {
        return Err(CopyError::Mismatch("the remembered blocks".into()));
    }
    for (height, hash) in &blocks {
        if src.block_work(hash).map_err(read)? != dst.block_work(hash).map_err(write)? {
            return Err(CopyError::Mismatch(format!("the work of block {height}")));
        }
        if src.block_txids(*height).map_err(read)? != dst.block_txids(*height).map_err(write)? {
            return Err(CopyError::Mismatch(format!("the txids of block {height}")));
        }
        checked.blocks += 1;
    }

    let mut after: Option<UserId> = None;
    loop {
        let page = src.user_ids_after(after.as_ref(), PAGE).map_err(read)?;
        if page != dst.user_ids_after(after.as_ref(), PAGE).map_err(write)? {
            return Err(CopyError::Mismatch("the list of users".into()));
        }
        let Some(last) = page.last().copied() else {
            break;
        };
        for user_id in &page {
            if src.user(user_id).map_err(read)? != dst.user(user_id).map_err(write)? {
                return Err(CopyError::Mismatch(format!("user {user_id}")));
            }
            checked.users += 1;
            // Both in byte order (Tx::appointment_ids_of_user).
            let ids = src.appointment_ids_of_user(user_id).map_err(read)?;
            if ids != dst.appointment_ids_of_user(user_id).map_err(write)? {
                return Err(CopyError::Mismatch(format!(
                    "the appointments of user {user_id}"
                )));
            }
            for uuid in &ids {
                if src.appointment(uuid).map_err(read)? != dst.appointment(uuid).map_err(write)? {
                    return Err(CopyError::Mismatch(format!("appointment {uuid}")));
                }
                checked.appointments += 1;
            }
        }
        after = Some(last);
    }

    let mut after: Option<AppointmentId> = None;
    loop {
        let page = src.trackers_after(after.as_ref(), PAGE).map_err(read)?;
        if page != dst.trackers_after(after.as_ref(), PAGE).map_err(write)? {
            return Err(CopyError::Mismatch("the trackers".into()));
        }
        let Some(last) = page.last().map(|t| t.uuid) else {
            break;
        };
        checked.trackers += page.len() as u64;
        after = Some(last);
    }

    let mut after: Option<AppointmentId> = None;
    loop {
        let page = src
            .pending_breaches_after(after.as_ref(), PAGE)
            .map_err(read)?;
        let copied = dst
            .pending_breaches_after(after.as_ref(), PAGE)
            .map_err(write)?;
        let same = page.len() == copied.len()
            && page.iter().zip(&copied).all(|(a, b)| {
                a.uuid == b.uuid
                    && a.dispute_txid == b.dispute_txid
                    && a.block_hash == b.block_hash
                    && (a.block_height.is_none() || a.block_height == b.block_height)
            });
        if !same {
            return Err(CopyError::Mismatch("the pending breaches".into()));
        }
        let Some(last) = page.last().map(|p| p.uuid) else {
            break;
        };
        checked.pending_breaches += page.len() as u64;
        after = Some(last);
    }

    let counts = [
        (
            "users",
            src.count_users().map_err(read)?,
            dst.count_users().map_err(write)?,
        ),
        (
            "appointments",
            src.count_appointments().map_err(read)?,
            dst.count_appointments().map_err(write)?,
        ),
        (
            "trackers",
            src.count_trackers().map_err(read)?,
            dst.count_trackers().map_err(write)?,
        ),
    ];
    for (what, a, b) in counts {
        if a != b {
            return Err(CopyError::Mismatch(format!(
                "{what}: {a} in the source, {b} copied"
            )));
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;
    use bitcoin::{BlockHash, Txid, Work};
    use rusqlite::Connection;
    use teos_common::appointment::Locator;

    use super::*;
    use crate::storage::{AppointmentRecord, SqliteTx, TrackerRecord, TrackerStatus, UserRecord};
    use crate::test_fixtures::tx;

    fn user(n: u8) -> UserId {
        let sk = secp256k1::SecretKey::from_slice(&[n; 32]).expect("a valid secret key");
        UserId(sk.public_key(secp256k1::SECP256K1))
    }

    fn open(dir: &tempfile::TempDir, name: &str) -> Connection {
        crate::storage::open_sqlite(&dir.path().join(name)).expect("open")
    }

    fn hash(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    /// A tower with 3 users (300 appointments over them, more than one page of... a user's list),
    /// trackers in every status, a pending breach, 5 blocks with work and txids, 2 keys.
    fn seed(tx_: &mut dyn Tx) {
        tx_.insert_tower_key(&secp256k1::SecretKey::from_slice(&[7; 32]).unwrap())
            .unwrap();
        tx_.insert_tower_key(&secp256k1::SecretKey::from_slice(&[8; 32]).unwrap())
            .unwrap();
        for h in 100..105u32 {
            let work = Work::from_be_bytes([h as u8; 32]);
            tx_.push_block(h, &hash(h as u8), Some(work), 288).unwrap();
            let txids: Vec<Txid> = (0..3).map(|i| tx(h * 10 + i).compute_txid()).collect();
            tx_.set_block_txids(h, &hash(h as u8), &txids).unwrap();
        }
        let statuses = [
            TrackerStatus::InMempool,
            TrackerStatus::Confirmed,
            TrackerStatus::Reorged,
            TrackerStatus::Rejected,
        ];
        for u in 1..=3u8 {
            let id = user(u);
            let record = UserRecord {
                available_slots: 1000 + u32::from(u),
                subscription_start: 100,
                subscription_expiry: 5000 + u32::from(u),
            };
            tx_.upsert_user(&id, &record).unwrap();
            for n in 0..100u32 {
                let dispute = tx(u32::from(u) * 1000 + n);
                let locator = Locator::new(&dispute.compute_txid());
                let uuid = AppointmentId::new(&locator, &id);
                tx_.upsert_appointment(&AppointmentRecord {
                    uuid,
                    locator,
                    user_id: id,
                    encrypted_blob: vec![u8::try_from(n % 251).unwrap(); 100 + n as usize],
                    to_self_delay: 42 + n,
                    user_signature: format!("sig-{u}-{n}"),
                    start_block: 100 + n,
                    slots: 1 + n % 3,
                })
                .unwrap();
                if n % 10 == 0 {
                    let penalty = tx(900_000 + u32::from(u) * 1000 + n);
                    tx_.insert_tracker(&TrackerRecord {
                        uuid,
                        dispute_txid: dispute.compute_txid(),
                        dispute_tx: dispute.clone(),
                        penalty_txid: penalty.compute_txid(),
                        penalty_tx: penalty,
                        dispute_height: (n % 20 == 0).then_some(101),
                        status: statuses[(n / 10) as usize % 4],
                        status_height: 102,
                        to_self_delay: 42 + n,
                    })
                    .unwrap();
                } else if n == 5 {
                    tx_.upsert_pending_breach(&uuid, &dispute.compute_txid(), &hash(103), 103)
                        .unwrap();
                }
            }
        }
    }

    fn in_transaction<T>(conn: &Connection, f: impl FnOnce(&mut dyn Tx) -> T) -> T {
        conn.execute_batch("BEGIN").unwrap();
        let out = f(&mut SqliteTx::new(conn));
        conn.execute_batch("COMMIT").unwrap();
        out
    }

    #[test]
    fn a_copy_holds_every_record_and_checks_out_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (open(&dir, "src.sql3"), open(&dir, "dst.sql3"));
        in_transaction(&src, seed);
        let copied = copy(&mut SqliteTx::new(&src), &mut SqliteTx::new(&dst)).unwrap();
        assert_eq!(
            copied,
            Copied {
                users: 3,
                appointments: 300,
                trackers: 30,
                pending_breaches: 3,
                blocks: 5,
                tower_keys: 1,
            }
        );
        let checked = verify(&mut SqliteTx::new(&src), &mut SqliteTx::new(&dst)).unwrap();
        assert_eq!(checked, copied);
        let mut d = SqliteTx::new(&dst);
        assert_eq!(d.chain_tip().unwrap(), Some((104, hash(104))));
        assert_eq!(
            d.latest_tower_key().unwrap().map(|k| k.secret_bytes()),
            Some([8; 32]),
            "the newest key signs"
        );
        // The copy is a tower, not only rows: the slot counter and the counters behave.
        assert_eq!(d.stored_users().unwrap(), 3);
        assert_eq!(d.add_slots(&user(1), -1).unwrap(), 1000);
    }

    #[test]
    fn a_destination_holding_anything_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (open(&dir, "src.sql3"), open(&dir, "dst.sql3"));
        in_transaction(&src, seed);
        let record = UserRecord {
            available_slots: 1,
            subscription_start: 1,
            subscription_expiry: 2,
        };
        SqliteTx::new(&dst).upsert_user(&user(9), &record).unwrap();
        let refused = copy(&mut SqliteTx::new(&src), &mut SqliteTx::new(&dst));
        assert!(
            matches!(refused, Err(CopyError::NotEmpty(ref what)) if what == "1 users"),
            "{refused:?}"
        );
        let mut d = SqliteTx::new(&dst);
        assert_eq!(d.count_users().unwrap(), 1);
        assert_eq!(d.count_tower_keys().unwrap(), 0);
    }

    #[test]
    fn an_empty_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (open(&dir, "src.sql3"), open(&dir, "dst.sql3"));
        let refused = copy(&mut SqliteTx::new(&src), &mut SqliteTx::new(&dst));
        assert!(matches!(refused, Err(CopyError::NoTower)), "{refused:?}");
    }

    #[test]
    fn the_check_finds_any_difference() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (open(&dir, "src.sql3"), open(&dir, "dst.sql3"));
        in_transaction(&src, seed);
        copy(&mut SqliteTx::new(&src), &mut SqliteTx::new(&dst)).unwrap();
        // One slot, one tracker status, one missing appointment, one block's txids: each is found.
        let id = user(2);
        let uuid = SqliteTx::new(&dst).appointment_ids_of_user(&id).unwrap()[7];
        let tracked = SqliteTx::new(&dst).trackers_after(None, 1).unwrap()[0].uuid;
        type Change = Box<dyn Fn(&mut dyn Tx)>;
        let changes: Vec<Change> = vec![
            Box::new(|d| {
                d.add_slots(&user(3), 1).unwrap();
            }),
            Box::new(move |d| {
                d.set_tracker_status(&tracked, TrackerStatus::Reorged, 999)
                    .unwrap();
            }),
            Box::new(move |d| {
                d.delete_appointment(&uuid).unwrap();
            }),
            Box::new(|d| {
                d.set_block_txids(102, &hash(102), &[]).unwrap();
            }),
        ];
        for change in changes {
            let dir2 = tempfile::tempdir().unwrap();
            let copy_conn = open(&dir2, "dst.sql3");
            copy(&mut SqliteTx::new(&src), &mut SqliteTx::new(&copy_conn)).unwrap();
            change(&mut SqliteTx::new(&copy_conn));
            let found = verify(&mut SqliteTx::new(&src), &mut SqliteTx::new(&copy_conn));
            assert!(matches!(found, Err(CopyError::Mismatch(_))), "{found:?}");
        }
    }
}
