//! Fleet mode (issue 12, docs/fleet.md): several teosd instances on one PostgreSQL database, one of
//! which (the leader) runs the chain pipeline.
//!
//! Built so far: leadership and fencing ([`leader`]) and the PostgreSQL schema they need
//! ([`migrate`]). The storage backend on PostgreSQL comes later; until then nothing in the daemon
//! uses this module.
//!
//! Transport: connections are plain TCP (`tokio_postgres::NoTls`) for now. TLS to PostgreSQL (with
//! rustls on ring, never OpenSSL or aws-lc: deny.toml) is planned with the storage backend; until
//! then run the database on loopback, a private network or through a tunnel (docs/fleet.md).

pub mod leader;

pub use leader::{
    DEFAULT_TAKEOVER_SECONDS, Epoch, FenceError, LEADER_LOCK_KEY, LeaderConfig, Leadership, Role,
    check_epoch,
};

mod embedded {
    // The PostgreSQL schema: `migrations/postgresql/` at the workspace root, beside the SQLite
    // schema in `migrations/sqlite/` (refinery walks a folder recursively, so the two are siblings).
    refinery::embed_migrations!("../migrations/postgresql");
}

/// Why the PostgreSQL schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL migrations: {0}")]
pub struct MigrateError(#[from] refinery::Error);

/// Applies the PostgreSQL migrations (`migrations/postgresql/`, refinery with its tokio-postgres
/// driver; history in `refinery_schema_history`) to the database `client` is connected to.
/// Idempotent; refuses a database whose applied migrations differ from ours (refinery's defaults).
///
/// Errors: [`MigrateError`] (connection trouble, a failing statement, divergent history).
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), MigrateError> {
    embedded::migrations::runner().run_async(client).await?;
    Ok(())
}
