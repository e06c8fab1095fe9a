//! The daemon's side of a fleet (issue 12, docs/fleet.md): which database, and where this
//! instance's role comes from.
//!
//! * Without `database_url`: the embedded SQLite database in the data dir, and the instance is
//!   alone: leader from start to shutdown ([`terms::sole_leader`]).
//! * With `database_url`: PostgreSQL, shared by every instance with the same URL, and the role comes
//!   from [`Leadership`] (a session advisory lock, a lease, a fencing epoch). The chain pipeline
//!   runs only while the role is `Leader` (`daemon/terms.rs`); the store refuses block commands
//!   unless they carry that leader's epoch ([`Store::set_fence`]).

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::terms;
use crate::config::Config;
use crate::fleet::{LeaderConfig, Leadership, Role};
use crate::shutdown::Shutdown;
use crate::storage::postgres::{PasswordEnv, PgOptions};
use crate::storage::{StorageError, Store};

/// The most one wait between two tries to reach PostgreSQL at startup.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// This instance's name in the fleet (`fleet_leader.holder`, PostgreSQL's `application_name`):
/// host name, process id and public API address.
pub(super) fn instance_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".into());
    format!(
        "teosd {host} pid {} api {}",
        std::process::id(),
        config.api_address()
    )
}

/// Opens the tower's database: SQLite in the data dir, or PostgreSQL at `database_url`, waited for
/// (with backoff up to 10 s between tries, never giving up) while it is unreachable: a fleet
/// instance started before its database, or while it restarts, comes up when the database does.
/// `Ok(None)` when shutdown was requested meanwhile.
///
/// Errors: the SQLite file cannot be opened; PostgreSQL refused the migrations.
pub(super) fn open_store(config: &Config, shutdown: &Shutdown) -> anyhow::Result<Option<Store>> {
    let Some(url) = &config.database_url else {
        let path = config.db_path();
        return Store::open(&path)
            .map(Some)
            .with_context(|| format!("cannot open the database {}", path.display()));
    };
    let options = PgOptions {
        application_name: instance_name(config),
        unavailable_wait: Duration::from_secs(5),
        idle_in_transaction_timeout: idle_in_transaction_limit(config.leader_takeover_seconds),
        ..PgOptions::default()
    };
    let mut backoff = Duration::from_millis(250);
    loop {
        match Store::open_postgres(url, options.clone()) {
            Ok(store) => {
                tracing::info!(database = %url.masked(), event = "database_opened", "PostgreSQL database opened (fleet mode)");
                return Ok(Some(store));
            }
            Err(StorageError::Unavailable(why)) => {
                let reason = format!("waiting for PostgreSQL at {}: {why}", url.masked());
                crate::notify::Notifier::starting(&reason);
                tracing::warn!("{reason}");
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open the database {}", url.masked()));
            }
        }
        if shutdown.wait_timeout(backoff) {
            return Ok(None);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How long the server lets a session of this instance sit idle inside a transaction before it
/// ends it: half the takeover time (`leader_takeover_seconds`, seconds), at least 1 s.
///
/// A leader paused (SIGSTOP, a frozen VM) in the middle of a block's transaction holds `chain_tip`
/// `FOR UPDATE` and `fleet_leader` `FOR SHARE`: every instance's appointment inserts wait for it,
/// and so does a standby's epoch bump, which cannot take over until the transaction ends. Ended
/// before the lease can expire, the paused transaction rolls back (nothing of it is committed) and
/// the takeover is not delayed; the 60 s default let a pause there stall the fleet for a minute.
/// The daemon's transactions send their statements back to back, so this never ends a healthy one.
fn idle_in_transaction_limit(takeover_seconds: u16) -> Duration {
    Duration::from_secs((u64::from(takeover_seconds) / 2).max(1))
}

/// Where the role comes from; kept until shutdown.
pub(super) enum Roles {
    /// Alone on SQLite: the sender of the constant `Leader { epoch: 0 }` (kept so the channel
    /// stays open).
    Sole { _sender: watch::Sender<Role> },
    /// A fleet member: the leadership task on the API runtime.
    Fleet(Leadership),
}

impl Roles {
    /// Starts competing for leadership when the database is PostgreSQL (on `runtime`), else the
    /// sole leader's constant role. Returns the role receiver.
    pub(super) fn start(
        config: &Config,
        runtime: &tokio::runtime::Runtime,
    ) -> (Roles, watch::Receiver<Role>) {
        match &config.database_url {
            None => {
                let (sender, roles) = terms::sole_leader();
                (Roles::Sole { _sender: sender }, roles)
            }
            Some(url) => {
                let (pg, warnings) = url.client_config(&PasswordEnv::from_process());
                for warning in warnings {
                    tracing::warn!(event = "postgres_password_file_ignored", "{warning}");
                }
                let leader = LeaderConfig::new(
                    instance_name(config),
                    u64::from(config.leader_takeover_seconds),
                );
                let _guard = runtime.enter();
                let leadership = Leadership::start(pg, leader);
                let roles = leadership.subscribe();
                (Roles::Fleet(leadership), roles)
            }
        }
    }

    /// At shutdown: a leader shortens its lease and unlocks, so a standby takes over at once.
    pub(super) fn stop(self, runtime: &tokio::runtime::Runtime) {
        if let Roles::Fleet(leadership) = self {
            let stopped = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), leadership.shutdown()).await
            });
            if stopped.is_err() {
                tracing::warn!("the leadership task did not stop within 5 s");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_transaction_ends_before_the_lease() {
        assert_eq!(idle_in_transaction_limit(10), Duration::from_secs(5));
        assert_eq!(idle_in_transaction_limit(3), Duration::from_secs(1));
        assert_eq!(idle_in_transaction_limit(2), Duration::from_secs(1));
    }
}
