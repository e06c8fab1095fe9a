//! A Lightning client of the tower: a blocking wrapper over `teos_common::client::TowerClient`, and
//! the appointment a client sends for a breach.

use bitcoin::Transaction;
use secp256k1::SecretKey;
use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::client::{ClientError, TowerClient};
use teos_common::cryptography;
use teos_common::protocol::{
    AddAppointmentResponse, GetAppointmentResponse, GetSubscriptionInfoResponse, RegisterResponse,
};

/// A user of the tower with its key; calls block the calling thread (not for async code).
pub struct User {
    rt: tokio::runtime::Runtime,
    /// The HTTP client (a new connection per request, see [`User::with_key`]).
    pub client: TowerClient,
    /// The user's secret key (signs requests).
    pub sk: SecretKey,
    /// The user id (the key's compressed public key).
    pub id: UserId,
}

impl User {
    /// A user of the tower at `url` (`http://host:port`) whose key is all bytes `seed` (0 counts
    /// as 1): the same seed is the same user, across restarts too.
    ///
    /// # Panics
    /// If no tokio runtime can be built (the process is out of threads or file descriptors).
    pub fn new(url: &str, seed: u8) -> User {
        let sk = match SecretKey::from_slice(&[seed.max(1); 32]) {
            Ok(sk) => sk,
            Err(_) => unreachable!("[1..=255; 32] is a valid secret key"),
        };
        User::with_key(url, sk)
    }

    /// A user of the tower at `url` with key `sk`.
    ///
    /// # Panics
    /// As [`User::new`].
    pub fn with_key(url: &str, sk: SecretKey) -> User {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("cannot build a client runtime: {e}"),
        };
        // No idle connections are kept: between two calls nothing drives this runtime, so a pooled
        // connection to a tower that was killed or restarted meanwhile would not be seen closed and
        // the next request would fail on it (IncompleteMessage). The CLN plugin also opens a
        // connection per request.
        let http = match reqwest::Client::builder().pool_max_idle_per_host(0).build() {
            Ok(http) => http,
            Err(e) => panic!("cannot build an HTTP client: {e}"),
        };
        User {
            rt,
            client: TowerClient::with_http_client(url, http),
            sk,
            id: UserId(sk.public_key(secp256k1::SECP256K1)),
        }
    }

    /// Verifies the tower's receipts against `tower_id` from now on.
    pub fn verifying(mut self, tower_id: UserId) -> User {
        self.client = self.client.with_tower_id(tower_id);
        self
    }

    /// `POST /register`.
    ///
    /// Errors: as [`TowerClient::register`].
    pub fn register(&self) -> Result<RegisterResponse, ClientError> {
        self.rt.block_on(self.client.register(&self.id))
    }

    /// `POST /add_appointment`, signed with the user's key.
    ///
    /// Errors: as [`TowerClient::add_appointment`].
    pub fn add(&self, appointment: &Appointment) -> Result<AddAppointmentResponse, ClientError> {
        self.rt
            .block_on(self.client.add_appointment(appointment, &self.sk))
    }

    /// `POST /get_appointment`.
    ///
    /// Errors: as [`TowerClient::get_appointment`].
    pub fn get(&self, locator: &Locator) -> Result<GetAppointmentResponse, ClientError> {
        self.rt
            .block_on(self.client.get_appointment(locator, &self.sk))
    }

    /// `POST /get_subscription_info`.
    ///
    /// Errors: as [`TowerClient::get_subscription_info`].
    pub fn info(&self) -> Result<GetSubscriptionInfoResponse, ClientError> {
        self.rt
            .block_on(self.client.get_subscription_info(&self.sk))
    }
}

/// The appointment a client sends for a commitment/penalty pair: locator and encryption key from
/// the commitment's txid (PROTOCOL.md, "Appointments"), `to_self_delay` 42 blocks (the kit's
/// breaches, [`crate::BREACH_TO_SELF_DELAY`]).
pub fn appointment_for(commitment: &Transaction, penalty: &Transaction) -> Appointment {
    let txid = commitment.compute_txid();
    Appointment {
        locator: Locator::new(&txid),
        encrypted_blob: cryptography::encrypt(penalty, &txid),
        to_self_delay: u32::from(crate::BREACH_TO_SELF_DELAY),
    }
}

/// The HTTP status and protocol error code of a refused call, `None` if it did not get an API error.
pub fn api_error<T>(result: &Result<T, ClientError>) -> Option<(u16, u8)> {
    match result {
        Err(ClientError::Api { status, error }) => Some((*status, error.code.as_u8())),
        _ => None,
    }
}
