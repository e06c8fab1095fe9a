//! The public API of the tower: the interface the tower core offers to it ([`TowerApi`]) and the HTTP
//! server that exposes that interface on the wire ([`http`]).
//!
//! Data flows one way: the HTTP layer parses and validates requests (the codes 1–6 of
//! `shared/spec/PROTOCOL.md` "Errors"), calls the tower, and writes what the tower returns. The tower
//! core does the semantic checks (signatures, subscriptions, blob size, `to_self_delay`) and answers
//! with the protocol types or an [`ApiError`] whose code picks the HTTP status.

pub mod admin;
pub mod http;
pub mod limits;

use std::future::Future;

use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::errors::ApiError;
use teos_common::protocol::{
    AddAppointmentResponse, GetAppointmentResponse, GetSubscriptionInfoResponse, RegisterResponse,
};

/// What the public API needs from the tower core (Gatekeeper + Watcher). One method per endpoint of
/// PROTOCOL.md "Endpoints"; inputs are already parsed and well-formed, outputs are sent as JSON.
///
/// Implementations must not block the async worker (SQLite and bitcoind calls go to their own threads
/// or `spawn_blocking`). The HTTP layer runs each call in its own task (at most `max_connections` at
/// once), so a call runs to completion even if the client disconnects, and a panic inside it becomes
/// a 500 answer (code 255) instead of taking the server down.
///
/// Code 32 means "cannot serve this now" (bitcoind unreachable, tower full, storage failure). The HTTP
/// layer sends it as 503 JSON, except for `add_appointment`, whose connection it closes without an
/// answer instead (also for 255), so that no client takes it as a verdict on the appointment
/// ([`http`], "Held back").
pub trait TowerApi: Send + Sync + 'static {
    /// `POST /register`: create `user_id`'s subscription or extend it (PROTOCOL.md "Subscriptions").
    /// Errors: 65 when the slot count would overflow `u32`; 32 when the tower cannot serve.
    fn register(
        &self,
        user_id: UserId,
    ) -> impl Future<Output = Result<RegisterResponse, ApiError>> + Send;

    /// `POST /add_appointment`: store or update an appointment; `signature` is the user's zbase32
    /// signature of `appointment.to_signed_bytes()`, from which the user is recovered.
    /// Errors: 7 (unknown signer, expired, not enough slots), 33/34 (blob empty or too big,
    /// `to_self_delay` too small), 35 (already triggered), 32 (cannot serve).
    fn add_appointment(
        &self,
        appointment: Appointment,
        signature: String,
    ) -> impl Future<Output = Result<AddAppointmentResponse, ApiError>> + Send;

    /// `POST /get_appointment`: what the tower holds for `locator` for the user who signed
    /// `"get appointment <locator>"`. Errors: 7 (unknown signer, expired), 36 (no such appointment),
    /// 32 (cannot serve).
    fn get_appointment(
        &self,
        locator: Locator,
        signature: String,
    ) -> impl Future<Output = Result<GetAppointmentResponse, ApiError>> + Send;

    /// `POST /get_subscription_info`: the subscription of the user who signed
    /// `"get subscription info"`. Errors: 7 (unknown signer, expired), 32 (cannot serve).
    fn get_subscription_info(
        &self,
        signature: String,
    ) -> impl Future<Output = Result<GetSubscriptionInfoResponse, ApiError>> + Send;
}
