//! An async HTTP client of the tower protocol (feature `client`), for tests, demos and client authors.
//!
//! It builds and signs the requests of `shared/spec/PROTOCOL.md` ("Endpoints"), reads the responses
//! into the [`crate::protocol`] types, turns error bodies into [`ApiError`]s, and — when it knows the
//! tower's id ([`TowerClient::with_tower_id`]) — checks the tower's signatures on the registration and
//! appointment receipts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), teos_common::client::ClientError> {
//! use teos_common::appointment::UserId;
//! use teos_common::client::TowerClient;
//! use teos_common::cryptography::get_random_keypair;
//!
//! let (user_sk, user_pk) = get_random_keypair();
//! let tower = TowerClient::new("http://127.0.0.1:9814");
//! tower.register(&UserId(user_pk)).await?;
//! let info = tower.get_subscription_info(&user_sk).await?;
//! println!("{} slots left", info.available_slots);
//! # Ok(())
//! # }
//! ```

use bitcoin::secp256k1::{PublicKey, SECP256K1, SecretKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::appointment::{Appointment, Locator, TowerId, UserId};
use crate::cryptography;
use crate::errors::{ApiError, ErrorResponse};
use crate::protocol::{
    AddAppointmentRequest, AddAppointmentResponse, GET_SUBSCRIPTION_INFO_MESSAGE,
    GetAppointmentRequest, GetAppointmentResponse, GetSubscriptionInfoRequest,
    GetSubscriptionInfoResponse, RegisterRequest, RegisterResponse, get_appointment_message,
};
use crate::receipts::{AppointmentReceipt, RegistrationReceipt};

/// Why a request to the tower failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The tower answered with an error body (`{"error","error_code"}`) and a non-200 status.
    #[error("tower answered HTTP {status}: {error} (code {})", error.code.as_u8())]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The decoded error.
        error: ApiError,
    },
    /// The request did not complete (connection refused, reset, timeout…).
    #[error("cannot reach the tower: {0}")]
    Transport(#[from] reqwest::Error),
    /// The tower answered something that is not the expected body.
    #[error("unexpected answer from the tower: {0}")]
    Decode(String),
    /// A receipt signature does not verify against the tower id given with
    /// [`TowerClient::with_tower_id`]: the tower is misbehaving (or is another tower).
    #[error("the tower's {0} signature does not verify against its tower id")]
    InvalidTowerSignature(&'static str),
}

/// A client of one tower's public HTTP API.
#[derive(Debug, Clone)]
pub struct TowerClient {
    /// `scheme://host:port` without a trailing slash; paths are appended.
    base_url: String,
    /// Connection pool shared by all requests of this client.
    http: reqwest::Client,
    /// When set, receipts are verified against it.
    tower_id: Option<TowerId>,
}

impl TowerClient {
    /// A client of the tower at `base_url` (e.g. `http://127.0.0.1:9814`; a trailing `/` is ignored).
    /// It does not verify receipts until given the tower id.
    pub fn new(base_url: impl Into<String>) -> TowerClient {
        TowerClient::with_http_client(base_url, reqwest::Client::new())
    }

    /// Like [`TowerClient::new`] with a caller-configured `reqwest::Client` (timeouts, proxy…).
    pub fn with_http_client(base_url: impl Into<String>, http: reqwest::Client) -> TowerClient {
        let mut base_url = base_url.into();
        while base_url.ends_with('/') {
            base_url.pop();
        }
        TowerClient {
            base_url,
            http,
            tower_id: None,
        }
    }

    /// Verify the registration and appointment receipts against `tower_id` from now on; a bad
    /// signature gives [`ClientError::InvalidTowerSignature`].
    pub fn with_tower_id(mut self, tower_id: TowerId) -> TowerClient {
        self.tower_id = Some(tower_id);
        self
    }

    /// The tower id receipts are verified against, if any.
    pub fn tower_id(&self) -> Option<&TowerId> {
        self.tower_id.as_ref()
    }

    /// `POST /register`: registers `user_id` or tops up its subscription. Checks that the answer is for
    /// `user_id` and, with a tower id, the `subscription_signature`.
    pub async fn register(&self, user_id: &UserId) -> Result<RegisterResponse, ClientError> {
        let request = RegisterRequest { user_id: *user_id };
        let response: RegisterResponse = self.post("register", &request).await?;
        if response.user_id != *user_id {
            return Err(ClientError::Decode(format!(
                "registration answer is for user {} instead of {user_id}",
                response.user_id
            )));
        }
        if let Some(tower_id) = &self.tower_id {
            let receipt = RegistrationReceipt {
                user_id: response.user_id,
                available_slots: response.available_slots,
                subscription_start: response.subscription_start,
                subscription_expiry: response.subscription_expiry,
            };
            if !receipt.verify(&response.subscription_signature, tower_id) {
                return Err(ClientError::InvalidTowerSignature("registration receipt"));
            }
        }
        Ok(response)
    }

    /// `POST /add_appointment`: signs `appointment` with `user_sk` and sends it. With a tower id, checks
    /// the appointment receipt signature.
    pub async fn add_appointment(
        &self,
        appointment: &Appointment,
        user_sk: &SecretKey,
    ) -> Result<AddAppointmentResponse, ClientError> {
        let signature = cryptography::sign(&appointment.to_signed_bytes(), user_sk);
        let request = AddAppointmentRequest {
            appointment: appointment.clone(),
            signature: signature.clone(),
        };
        let response: AddAppointmentResponse = self.post("add_appointment", &request).await?;
        if let Some(tower_id) = &self.tower_id {
            let receipt = AppointmentReceipt {
                user_signature: signature,
                start_block: response.start_block,
            };
            if !receipt.verify(&response.signature, tower_id) {
                return Err(ClientError::InvalidTowerSignature("appointment receipt"));
            }
        }
        Ok(response)
    }

    /// `POST /get_appointment`: asks, signed with `user_sk`, what the tower holds for `locator`.
    pub async fn get_appointment(
        &self,
        locator: &Locator,
        user_sk: &SecretKey,
    ) -> Result<GetAppointmentResponse, ClientError> {
        let request = GetAppointmentRequest {
            locator: *locator,
            signature: cryptography::sign(get_appointment_message(locator).as_bytes(), user_sk),
        };
        self.post("get_appointment", &request).await
    }

    /// `POST /get_subscription_info`: asks, signed with `user_sk`, for the user's subscription.
    pub async fn get_subscription_info(
        &self,
        user_sk: &SecretKey,
    ) -> Result<GetSubscriptionInfoResponse, ClientError> {
        let request = GetSubscriptionInfoRequest {
            signature: cryptography::sign(GET_SUBSCRIPTION_INFO_MESSAGE.as_bytes(), user_sk),
        };
        self.post("get_subscription_info", &request).await
    }

    /// `GET /ping`: succeeds when the tower answers 200.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let response = self.http.get(self.url("ping")).send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        if status == 200 {
            Ok(())
        } else {
            Err(error_from(status, &body))
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let response = self.http.post(self.url(path)).json(request).send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        if status != 200 {
            return Err(error_from(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode(format!("/{path} answered 200 with {e}")))
    }
}

/// The user id of a secret key (convenience for client code).
pub fn user_id_of(user_sk: &SecretKey) -> UserId {
    UserId(PublicKey::from_secret_key(SECP256K1, user_sk))
}

fn error_from(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(response) => ClientError::Api {
            status,
            error: ApiError::from_response(response),
        },
        Err(_) => ClientError::Decode(format!(
            "HTTP {status} with body {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}
