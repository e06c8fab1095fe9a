//! The `teos.v2.PrivateTowerServices` calls (ADMIN_RPC.md), on live data.
//!
//! Errors: a malformed locator, user id or cursor is `InvalidArgument`; an unknown user `NotFound`;
//! a database failure `Internal` (logged), or `Unavailable` once the database is closing. Nothing here
//! unwraps client input, so no request can make the server panic.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bitcoin::hashes::Hash;
use teos_common::appointment::{Locator, UserId};
use teos_common::protos::common::teos::v2::AppointmentData;
use teos_common::protos::teos::v2::network_address::AddressType;
use teos_common::protos::teos::v2::private_tower_services_server::PrivateTowerServices;
use teos_common::protos::teos::v2::{
    GetAllAppointmentsRequest, GetAllAppointmentsResponse, GetAppointmentsRequest,
    GetAppointmentsResponse, GetTowerInfoResponse, GetUserPagedRequest, GetUserPagedResponse,
    GetUserRequest, GetUserResponse, GetUsersRequest, GetUsersResponse, NetworkAddress,
};
use tonic::{Request, Response, Status};

use super::AdminState;
use super::convert::{self, count32};
use super::paging::{self, AllCursor};
use crate::storage::{StorageError, Tx};

/// The gRPC service: a shared handle on the [`AdminState`].
pub struct AdminService {
    state: Arc<AdminState>,
}

impl AdminService {
    /// Wraps the state for tonic.
    pub fn new(state: AdminState) -> AdminService {
        AdminService {
            state: Arc::new(state),
        }
    }

    /// Runs `op` on a pooled read connection (one consistent snapshot), mapping storage failures.
    async fn read<T, F>(&self, op: F) -> Result<T, Status>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        self.state.store.read(op).await.map_err(storage_status)
    }
}

/// `Unavailable` while the database is closing (shutdown), `Internal` for anything else.
fn storage_status(error: StorageError) -> Status {
    match error {
        StorageError::Closed => Status::unavailable("the tower is shutting down"),
        other => {
            tracing::error!("admin API: database read failed: {other}");
            Status::internal("database error; see the tower's log")
        }
    }
}

#[tonic::async_trait]
impl PrivateTowerServices for AdminService {
    /// Watched appointments then trackers, in uuid order; paged when `limit > 0`.
    async fn get_all_appointments(
        &self,
        request: Request<GetAllAppointmentsRequest>,
    ) -> Result<Response<GetAllAppointmentsResponse>, Status> {
        let request = request.into_inner();
        let cursor = AllCursor::decode(&request.cursor).map_err(Status::invalid_argument)?;
        let read_page = |cursor, size| self.read(move |tx| all_page(tx, cursor, size));
        let (appointments, next) = if request.limit == 0 {
            // Everything (rust-teos's contract), read in bounded batches.
            let all = collect_all(cursor, paging::ALL_BATCH, read_page).await?;
            (all, None)
        } else {
            read_page(cursor, paging::page_size(request.limit)).await?
        };
        tracing::debug!("admin API: get_all_appointments -> {}", appointments.len());
        Ok(Response::new(GetAllAppointmentsResponse {
            appointments,
            next_cursor: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }

    /// Every appointment filed under the locator (any user): watched ones, then trackers. An unknown
    /// locator gives an empty list (rust-teos behaviour), a malformed one `InvalidArgument`.
    async fn get_appointments(
        &self,
        request: Request<GetAppointmentsRequest>,
    ) -> Result<Response<GetAppointmentsResponse>, Status> {
        let locator = Locator::from_slice(&request.into_inner().locator)
            .map_err(|e| Status::invalid_argument(format!("invalid locator: {e}")))?;
        let appointments = self.read(move |tx| by_locator(tx, &locator)).await?;
        tracing::debug!(
            "admin API: get_appointments {locator} -> {}",
            appointments.len()
        );
        Ok(Response::new(GetAppointmentsResponse { appointments }))
    }

    async fn get_tower_info(
        &self,
        _request: Request<()>,
    ) -> Result<Response<GetTowerInfoResponse>, Status> {
        // Counts and tip from one read transaction: the tip is the last COMMITTED block, consistent
        // with what every other read sees (the chain view moves a moment before its commit).
        let (users, watched, trackers, tip) = self
            .read(|tx| {
                Ok((
                    tx.count_users()?,
                    tx.count_watched_appointments()?,
                    tx.count_trackers()?,
                    tx.chain_tip()?,
                ))
            })
            .await?;
        let state = &self.state;
        let data_dir = state.data_dir.clone();
        let data_dir_bytes =
            tokio::task::spawn_blocking(move || crate::backup::data_dir_size(&data_dir))
                .await
                .unwrap_or(0);
        let (height, hash) = tip.unwrap_or_else(|| state.view.tip());
        let mut addresses: Vec<NetworkAddress> = state
            .addresses
            .iter()
            .map(|(address, port)| NetworkAddress {
                address_type: AddressType::IpV4 as i32,
                address: address.clone(),
                port: u32::from(*port),
            })
            .collect();
        if let Some((host, port)) = state
            .onion_address
            .as_deref()
            .and_then(|onion| onion.rsplit_once(':'))
        {
            addresses.push(NetworkAddress {
                address_type: AddressType::TorV3 as i32,
                address: host.to_owned(),
                port: port.parse().unwrap_or_default(),
            });
        }
        Ok(Response::new(GetTowerInfoResponse {
            tower_id: state.tower_id.to_bytes().to_vec(),
            n_registered_users: count32(users),
            n_watcher_appointments: count32(watched),
            n_responder_trackers: count32(trackers),
            bitcoind_reachable: state.bitcoind_reachable.load(Ordering::SeqCst),
            addresses,
            best_block_height: height,
            best_block_hash: hash.to_byte_array().to_vec(),
            version: state.version.to_owned(),
            uptime_secs: state.started.elapsed().as_secs(),
            data_dir_bytes,
            tower_address: state.tower_address.clone().unwrap_or_default(),
            onion_address: state.onion_address.clone().unwrap_or_default(),
        }))
    }

    /// User ids in byte order; paged when `limit > 0`.
    async fn get_users(
        &self,
        request: Request<GetUsersRequest>,
    ) -> Result<Response<GetUsersResponse>, Status> {
        let request = request.into_inner();
        let after =
            paging::decode_user_cursor(&request.cursor).map_err(Status::invalid_argument)?;
        let size = paging::page_size(request.limit);
        let mut ids = self
            .read(move |tx| tx.user_ids_after(after.as_ref(), size.saturating_add(1)))
            .await?;
        let mut next_cursor = Vec::new();
        if ids.len() as u64 > u64::from(size) {
            ids.truncate(size as usize);
            if let Some(last) = ids.last() {
                next_cursor = last.to_bytes().to_vec();
            }
        }
        Ok(Response::new(GetUsersResponse {
            user_ids: ids.iter().map(|id| id.to_bytes().to_vec()).collect(),
            next_cursor,
        }))
    }

    /// The user's subscription and the uuids of its appointments (rust-teos puts uuids here).
    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let user_id = UserId::from_slice(&request.into_inner().user_id)
            .map_err(|e| Status::invalid_argument(format!("invalid user id: {e}")))?;
        let found = self
            .read(move |tx| {
                let Some(record) = tx.user(&user_id)? else {
                    return Ok(None);
                };
                Ok(Some((record, tx.appointment_ids_of_user(&user_id)?)))
            })
            .await?;
        let Some((record, uuids)) = found else {
            return Err(Status::not_found(format!("user {user_id} not found")));
        };
        Ok(Response::new(GetUserResponse {
            available_slots: record.available_slots,
            subscription_expiry: record.subscription_expiry,
            appointments: uuids.iter().map(|u| u.as_bytes().to_vec()).collect(),
        }))
    }

    /// `get_user` in pages (ours): the subscription, and at most `limit` of the user's appointment
    /// uuids from `cursor` on (storage order), all read in one transaction.
    async fn get_user_paged(
        &self,
        request: Request<GetUserPagedRequest>,
    ) -> Result<Response<GetUserPagedResponse>, Status> {
        let request = request.into_inner();
        let user_id = UserId::from_slice(&request.user_id)
            .map_err(|e| Status::invalid_argument(format!("invalid user id: {e}")))?;
        let after = paging::decode_user_appointments_cursor(&request.cursor)
            .map_err(Status::invalid_argument)?;
        let size = paging::page_size(request.limit);
        let found = self
            .read(move |tx| {
                let Some(record) = tx.user(&user_id)? else {
                    return Ok(None);
                };
                let ids =
                    tx.appointment_ids_of_user_page(&user_id, after, size.saturating_add(1))?;
                Ok(Some((record, ids)))
            })
            .await?;
        let Some((record, mut ids)) = found else {
            return Err(Status::not_found(format!("user {user_id} not found")));
        };
        let mut next_cursor = Vec::new();
        if ids.len() as u64 > u64::from(size) {
            ids.truncate(size as usize);
            if let Some((rowid, _)) = ids.last() {
                next_cursor = paging::encode_user_appointments_cursor(*rowid);
            }
        }
        Ok(Response::new(GetUserPagedResponse {
            available_slots: record.available_slots,
            subscription_expiry: record.subscription_expiry,
            appointments: ids.iter().map(|(_, u)| u.as_bytes().to_vec()).collect(),
            next_cursor,
        }))
    }

    /// Starts the graceful shutdown (as SIGTERM) and answers at once; the tower stops after the
    /// answer is sent (the server drains calls in flight).
    async fn stop(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        tracing::info!("stop requested through the admin API");
        self.state.shutdown.trigger();
        Ok(Response::new(()))
    }
}

/// Every item from `cursor` on, read `batch` items at a time with `read_page(cursor, size)` (each call
/// one read transaction on the shared pool, released between batches): only one batch of decoded rows
/// is in memory besides the answer being built, and a long listing never holds a read connection for
/// long. Items added or changed while it runs may be missed or, for an appointment that becomes a
/// tracker, listed twice (as when a client pages by hand); items present throughout are listed.
async fn collect_all<F, Fut>(
    mut cursor: AllCursor,
    batch: u32,
    mut read_page: F,
) -> Result<Vec<AppointmentData>, Status>
where
    F: FnMut(AllCursor, u32) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<AppointmentData>, Option<AllCursor>), Status>>,
{
    let mut all = Vec::new();
    loop {
        let (page, next) = read_page(cursor, batch).await?;
        all.extend(page);
        match next {
            Some(next) => cursor = next,
            None => return Ok(all),
        }
    }
}

/// One page of `get_all_appointments` starting at `cursor`, at most `size` items, with the cursor of
/// the next page (`None` when nothing follows).
fn all_page(
    tx: &mut dyn Tx,
    cursor: AllCursor,
    size: u32,
) -> Result<(Vec<AppointmentData>, Option<AllCursor>), StorageError> {
    let size = size.max(1);
    let mut items = Vec::new();
    let tracker_after = match cursor {
        AllCursor::Watched(after) => {
            let mut watched =
                tx.watched_appointments_after(after.as_ref(), size.saturating_add(1))?;
            if watched.len() as u64 > u64::from(size) {
                watched.truncate(size as usize);
                let last = watched.last().map(|r| r.uuid);
                items.extend(watched.into_iter().map(convert::watched));
                return Ok((items, Some(AllCursor::Watched(last))));
            }
            items.extend(watched.into_iter().map(convert::watched));
            None
        }
        AllCursor::Trackers(after) => after,
    };
    let room = size - u32::try_from(items.len()).unwrap_or(size);
    let mut tracked = tx.trackers_after(tracker_after.as_ref(), room.saturating_add(1))?;
    let mut next = None;
    if tracked.len() as u64 > u64::from(room) {
        tracked.truncate(room as usize);
        next = Some(AllCursor::Trackers(
            tracked.last().map(|t| t.uuid).or(tracker_after),
        ));
    }
    items.extend(tracked.iter().map(convert::tracker));
    Ok((items, next))
}

/// The appointments filed under `locator`: watched first, then those with a tracker.
fn by_locator(tx: &mut dyn Tx, locator: &Locator) -> Result<Vec<AppointmentData>, StorageError> {
    let mut watched = Vec::new();
    let mut responded = Vec::new();
    for record in tx.appointments_with_locator(locator)? {
        match tx.tracker(&record.uuid)? {
            Some(tracker) => responded.push(convert::tracker(&tracker)),
            None => watched.push(convert::watched(record)),
        }
    }
    watched.extend(responded);
    Ok(watched)
}

#[cfg(test)]
mod tests {
    use teos_common::appointment::AppointmentId;
    use teos_common::protos::common::teos::v2::appointment_data::AppointmentData as Data;
    use teos_common::protos::common::teos::v2::{Appointment, Tracker};

    use super::*;

    /// A fake listing of `watched` appointments then `tracked` trackers, numbered in order; records
    /// the size of every page asked for.
    fn item(n: u32, tracker: bool) -> AppointmentData {
        let data = if tracker {
            Data::Tracker(Tracker {
                dispute_txid: n.to_be_bytes().to_vec(),
                ..Tracker::default()
            })
        } else {
            Data::Appointment(Appointment {
                locator: n.to_be_bytes().to_vec(),
                ..Appointment::default()
            })
        };
        AppointmentData {
            appointment_data: Some(data),
        }
    }

    #[tokio::test]
    async fn everything_is_read_in_batches_no_larger_than_the_batch() {
        let (watched, tracked) = (2_500u32, 1_200u32);
        let uuid = |n: u32| {
            let mut bytes = [0u8; 20];
            bytes[16..].copy_from_slice(&n.to_be_bytes());
            AppointmentId::from_slice(&bytes).unwrap()
        };
        let number = |cursor: Option<AppointmentId>| {
            cursor.map_or(0, |u| {
                u32::from_be_bytes(u.as_bytes()[16..].try_into().unwrap()) + 1
            })
        };
        let mut sizes = Vec::new();
        let all = collect_all(AllCursor::Watched(None), 1_000, |cursor, size| {
            sizes.push(size);
            let (tracker, from, end) = match cursor {
                AllCursor::Watched(after) => (false, number(after), watched),
                AllCursor::Trackers(after) => (true, number(after), tracked),
            };
            let to = end.min(from + size);
            let page: Vec<_> = (from..to).map(|n| item(n, tracker)).collect();
            let next = match (tracker, to < end) {
                (false, true) => Some(AllCursor::Watched(Some(uuid(to - 1)))),
                (false, false) => Some(AllCursor::Trackers(None)),
                (true, true) => Some(AllCursor::Trackers(Some(uuid(to - 1)))),
                (true, false) => None,
            };
            std::future::ready(Ok((page, next)))
        })
        .await
        .unwrap();
        let expected: Vec<_> = (0..watched)
            .map(|n| item(n, false))
            .chain((0..tracked).map(|n| item(n, true)))
            .collect();
        assert_eq!(all, expected);
        assert!(sizes.iter().all(|&s| s <= 1_000), "{sizes:?}");
        assert_eq!(sizes.len(), 5, "3 pages of appointments, 2 of trackers");
    }

    #[tokio::test]
    async fn batched_reads_of_a_real_store_list_the_same_as_one_read() {
        use crate::storage::Store;
        use crate::storage::records::{
            AppointmentRecord, TrackerRecord, TrackerStatus, UserRecord,
        };

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("teos_db.sql3")).unwrap();
        let user = UserId(
            secp256k1::SecretKey::from_slice(&[9; 32])
                .unwrap()
                .public_key(secp256k1::SECP256K1),
        );
        store
            .write(move |tx| -> Result<(), StorageError> {
                let record = UserRecord {
                    available_slots: 100,
                    subscription_start: 1,
                    subscription_expiry: 1000,
                };
                tx.upsert_user(&user, &record)?;
                for n in 0..12u8 {
                    let locator = Locator::from_slice(&[n; 16]).unwrap();
                    let uuid = AppointmentId::new(&locator, &user);
                    tx.upsert_appointment(&AppointmentRecord {
                        uuid,
                        locator,
                        user_id: user,
                        encrypted_blob: vec![n; 10],
                        to_self_delay: 42,
                        user_signature: "sig".into(),
                        start_block: 1,
                        slots: 1,
                    })?;
                    if n % 3 == 0 {
                        let transaction = |lock: u32| bitcoin::Transaction {
                            version: bitcoin::transaction::Version::TWO,
                            lock_time: bitcoin::absolute::LockTime::from_consensus(lock),
                            input: vec![bitcoin::TxIn::default()],
                            output: vec![],
                        };
                        let (dispute, penalty) =
                            (transaction(u32::from(n)), transaction(1000 + u32::from(n)));
                        tx.insert_tracker(&TrackerRecord {
                            uuid,
                            dispute_txid: dispute.compute_txid(),
                            dispute_tx: dispute,
                            penalty_txid: penalty.compute_txid(),
                            penalty_tx: penalty,
                            dispute_height: Some(5),
                            status: TrackerStatus::InMempool,
                            status_height: 5,
                            to_self_delay: 42,
                        })?;
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
        let read_page = |cursor, size| {
            let store = store.clone();
            async move {
                store
                    .read(move |tx| all_page(tx, cursor, size))
                    .await
                    .map_err(storage_status)
            }
        };
        let (at_once, next) = read_page(AllCursor::Watched(None), u32::MAX).await.unwrap();
        assert_eq!((at_once.len(), next), (12, None));
        for batch in [1, 3, 5, 8, 11, 12, 13] {
            let batched = collect_all(AllCursor::Watched(None), batch, read_page)
                .await
                .unwrap();
            assert_eq!(batched, at_once, "batch {batch}");
        }
    }
}
