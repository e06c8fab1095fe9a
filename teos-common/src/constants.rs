//! Protocol constants and defaults shared by the tower and its clients.
//!
//! Values come from `shared/spec/PROTOCOL.md` and from rust-teos 0.2 (`shared/research/rust-teos.md` §2.6),
//! whose clients expect them.

/// Confirmations (blocks) after which a penalty is irrevocably resolved: its tracker is completed and
/// its slots refunded (PROTOCOL.md "Subscriptions"/"Responding").
pub const IRREVOCABLY_RESOLVED: u32 = 100;

/// Slot unit and default maximum size of an `encrypted_blob`, in bytes. A blob costs
/// `ceil(len / ENCRYPTED_BLOB_MAX_SIZE)` slots (PROTOCOL.md "Appointments").
pub const ENCRYPTED_BLOB_MAX_SIZE: usize = 2048;

/// Body limit of `POST /register`, in bytes (PROTOCOL.md "Endpoints").
pub const REGISTER_BODY_LIMIT: usize = 87;
/// Body limit of `POST /add_appointment`, in bytes (PROTOCOL.md "Endpoints").
pub const ADD_APPOINTMENT_BODY_LIMIT: usize = 2048;
/// Body limit of `POST /get_appointment`, in bytes (PROTOCOL.md "Endpoints").
pub const GET_APPOINTMENT_BODY_LIMIT: usize = 178;
/// Body limit of `POST /get_subscription_info`, in bytes (PROTOCOL.md "Endpoints").
pub const GET_SUBSCRIPTION_INFO_BODY_LIMIT: usize = 127;

/// Default TCP port of the public HTTP API (PROTOCOL.md "Endpoints": `127.0.0.1:9814`).
pub const DEFAULT_API_PORT: u16 = 9814;
/// Default TCP port of the admin gRPC API (`shared/spec/ADMIN_RPC.md`: `127.0.0.1:8814`).
pub const DEFAULT_RPC_PORT: u16 = 8814;

/// Default slots granted per registration (PROTOCOL.md "Subscriptions").
pub const DEFAULT_SUBSCRIPTION_SLOTS: u32 = 10_000;
/// Default subscription length per registration, in blocks (about 30 days; PROTOCOL.md "Subscriptions").
pub const DEFAULT_SUBSCRIPTION_DURATION: u32 = 4320;
/// Default grace period after expiry before a user is deleted, in blocks (PROTOCOL.md "Subscriptions").
pub const DEFAULT_EXPIRY_DELTA: u32 = 6;
/// Default minimum accepted `to_self_delay`, in blocks (PROTOCOL.md "Appointments", **(ours)**).
pub const DEFAULT_MIN_TO_SELF_DELAY: u32 = 20;

/// Number of most recent blocks whose txids the tower keeps to answer already-triggered appointments
/// (PROTOCOL.md "Triggered appointments").
pub const LOCATOR_CACHE_SIZE: usize = 6;

/// Blocks a penalty may stay unconfirmed before it is rebroadcast (PROTOCOL.md "Responding").
pub const CONFIRMATIONS_BEFORE_RETRY: u32 = 6;

/// Length of a locator, in bytes (PROTOCOL.md "Appointments").
pub const LOCATOR_LEN: usize = 16;
/// Length of a user id / tower id (compressed secp256k1 public key), in bytes.
pub const USER_ID_LEN: usize = 33;
/// Length of an appointment id (RIPEMD160), in bytes.
pub const APPOINTMENT_ID_LEN: usize = 20;
