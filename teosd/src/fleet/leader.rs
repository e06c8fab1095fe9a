//! Leadership of a fleet through PostgreSQL itself (docs/fleet.md, "Leadership and fencing").
//!
//! * A dedicated connection per instance tries the session advisory lock [`LEADER_LOCK_KEY`]
//!   (`pg_try_advisory_lock`) every [`LeaderConfig::poll_every`]. The one that gets it is the
//!   leader: in the row `fleet_leader(id = 1)` it bumps `epoch` (the fencing token it returns),
//!   and writes `holder`, `backend_pid` (its session) and `lease_until = now() + takeover`.
//! * The leader renews `lease_until` every [`LeaderConfig::renew_every`]. A renewal that fails,
//!   times out (after half the takeover time) or finds the epoch moved on, or the connection
//!   closing, makes it a standby at once; it reconnects with backoff and competes again.
//! * A process paused by SIGSTOP (or cut off by a partition that leaves its TCP session open on the
//!   server's side) keeps its session and so its advisory lock for ever. So a standby that cannot
//!   take the lock looks at the lease: once `lease_until` has passed (the database's clock, the only
//!   one used), it ends the holder's session with `pg_terminate_backend(backend_pid)` — only if
//!   that backend still holds the lock — and takes the lock.
//! * Fencing: every block commit calls [`check_epoch`] inside its transaction. The row lock it
//!   takes (`FOR SHARE`) conflicts with the new leader's epoch bump, so a commit either finishes
//!   before the new epoch exists or sees it and fails: a leader that lost leadership never commits
//!   again, even if it still believes it leads (it may still broadcast a penalty: harmless).

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, GenericClient, NoTls};

/// The session advisory lock key of fleet leadership ("teosflt1" in ASCII). Advisory locks are
/// per database, so fleets on different databases of one server do not collide.
pub const LEADER_LOCK_KEY: i64 = 0x7465_6f73_666c_7431;

/// Default `leader_takeover_seconds` (issue 12): a standby takes over at most about this long
/// (plus one poll) after the leader's last lease renewal.
pub const DEFAULT_TAKEOVER_SECONDS: u64 = 10;

/// How long a standby waits for a terminated holder's session to end and free the lock.
const TAKEOVER_LOCK_WAIT: &str = "2s";
/// Reconnection backoff bounds.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The fencing token: the `fleet_leader.epoch` a leader set when it took leadership. Strictly
/// increasing over the fleet's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// This instance's role in the fleet, as far as it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading: serve the APIs, do not run the chain pipeline.
    Standby,
    /// Leading since it set `epoch`: run the chain pipeline, fence every commit with `epoch`.
    Leader {
        /// The fencing token to pass to [`check_epoch`].
        epoch: Epoch,
    },
}

impl Role {
    /// `"leader"` or `"standby"`, as `get_tower_info.role` and the metrics name it.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Leader { .. } => "leader",
            Role::Standby => "standby",
        }
    }
}

/// Parameters of [`Leadership`].
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// This instance's name, written to `fleet_leader.holder` (diagnostics only).
    pub holder: String,
    /// `leader_takeover_seconds`: the lease length. A standby may end a leader whose lease is this
    /// old. Default [`DEFAULT_TAKEOVER_SECONDS`].
    pub takeover: Duration,
    /// How often the leader renews its lease (1 s). Must be well under half of `takeover`.
    pub renew_every: Duration,
    /// How often a standby tries the lock and looks at the lease (1 s).
    pub poll_every: Duration,
}

impl LeaderConfig {
    /// `holder` with a takeover time of `takeover_seconds` (seconds), renewing and polling every
    /// second.
    pub fn new(holder: impl Into<String>, takeover_seconds: u64) -> LeaderConfig {
        LeaderConfig {
            holder: holder.into(),
            takeover: Duration::from_secs(takeover_seconds),
            renew_every: Duration::from_secs(1),
            poll_every: Duration::from_secs(1),
        }
    }

    /// Each statement of the leadership connection must finish within this (half the takeover
    /// time): a leader steps down before its lease can have expired on the database's clock.
    fn statement_timeout(&self) -> Duration {
        (self.takeover / 2).max(Duration::from_millis(100))
    }
}

/// Why a commit was refused by [`check_epoch`].
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Another instance took leadership after us: this instance must not commit chain state.
    #[error("leadership lost: epoch {current} replaced ours ({ours})")]
    Superseded {
        /// The epoch the caller led with.
        ours: Epoch,
        /// The epoch in the database.
        current: Epoch,
    },
    /// The `fleet_leader` row is missing: the PostgreSQL migrations were not applied.
    #[error("no fleet_leader row (PostgreSQL migrations not applied)")]
    NoRow,
    /// The database failed the check (the transaction cannot commit either).
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// The fencing check of a block commit: locks the `fleet_leader` row `FOR SHARE` until the end of
/// the caller's transaction and refuses if its epoch is no longer `epoch`.
///
/// Call it inside the transaction that commits chain state (a plain client would release the row
/// lock at once). The lock conflicts with a new leader's epoch bump, so either this transaction
/// commits before the new epoch exists, or the check sees the new epoch (READ COMMITTED re-reads
/// the row after waiting) and the caller rolls back. It also makes lease renewals wait for
/// in-flight commits, which are short.
///
/// Errors: [`FenceError::Superseded`] when leadership moved on; [`FenceError::NoRow`];
/// [`FenceError::Db`].
pub async fn check_epoch(txn: &impl GenericClient, epoch: Epoch) -> Result<(), FenceError> {
    let row = txn
        .query_opt("SELECT epoch FROM fleet_leader WHERE id = 1 FOR SHARE", &[])
        .await?
        .ok_or(FenceError::NoRow)?;
    let current = Epoch(row.try_get(0)?);
    if current == epoch {
        Ok(())
    } else {
        Err(FenceError::Superseded {
            ours: epoch,
            current,
        })
    }
}

/// A running leadership candidate: a task on the current tokio runtime with its own PostgreSQL
/// connection. Dropping it stops the task (the connection closes, releasing the lock);
/// [`Leadership::shutdown`] also shortens the lease so a standby takes over at once.
pub struct Leadership {
    role: watch::Receiver<Role>,
    freeze: watch::Sender<bool>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Leadership {
    /// Starts competing for leadership of the database `pg` points to (its `fleet_leader` table
    /// must exist: [`crate::fleet::migrate`]). Starts as [`Role::Standby`].
    ///
    /// Must be called within a tokio runtime.
    pub fn start(mut pg: tokio_postgres::Config, config: LeaderConfig) -> Leadership {
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.statement_timeout());
        }
        // Notice a dead peer without waiting for the kernel's two-hour default.
        pg.keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        if pg.get_application_name().is_none() {
            pg.application_name("teosd-leadership");
        }
        let (role_tx, role) = watch::channel(Role::Standby);
        let (freeze, freeze_rx) = watch::channel(false);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(run(pg, config, role_tx, shutdown_rx, freeze_rx));
        Leadership {
            role,
            freeze,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// A receiver of role changes (the pipeline starts on `Leader`, stops on `Standby`).
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Stops competing: a leader shortens its lease to now and unlocks, then the connection
    /// closes. Waits for the task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(event = "fleet_leadership_task_failed", error = %e);
        }
    }

    /// Test hook: `true` freezes the task as SIGSTOP would freeze the process — no renewals, no
    /// reaction to a closed connection, no role change, the connection kept open; `false` thaws
    /// it, and what happened meanwhile is then handled.
    pub fn freeze_for_tests(&self, frozen: bool) {
        self.freeze.send_replace(frozen);
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// How a session ended.
enum Exit {
    Shutdown,
    Lost(String),
}

/// The leadership task: connect, compete, lead; on any trouble become a standby and reconnect.
async fn run(
    pg: tokio_postgres::Config,
    config: LeaderConfig,
    role: watch::Sender<Role>,
    mut shutdown: oneshot::Receiver<()>,
    mut freeze: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected = tokio::select! {
            _ = &mut shutdown => return,
            r = pg.connect(NoTls) => r,
        };
        let exit = match connected {
            Ok((client, connection)) => {
                backoff = MIN_BACKOFF;
                let connection = tokio::spawn(connection);
                let exit = session(
                    client,
                    connection,
                    &config,
                    &role,
                    &mut shutdown,
                    &mut freeze,
                )
                .await;
                role.send_replace(Role::Standby);
                exit
            }
            Err(e) => Exit::Lost(format!("connecting: {e}")),
        };
        match exit {
            Exit::Shutdown => return,
            Exit::Lost(reason) => {
                tracing::warn!(event = "fleet_standby", reason = %reason, retry_in_ms = backoff.as_millis() as u64);
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: standby polling, then leading until something goes wrong.
async fn session(
    mut client: Client,
    mut connection: JoinHandle<Result<(), tokio_postgres::Error>>,
    config: &LeaderConfig,
    role: &watch::Sender<Role>,
    shutdown: &mut oneshot::Receiver<()>,
    freeze: &mut watch::Receiver<bool>,
) -> Exit {
    let limit = config.statement_timeout();
    let mut poll = tokio::time::interval(config.poll_every);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let epoch = loop {
        tokio::select! {
            _ = &mut *shutdown => return Exit::Shutdown,
            r = &mut connection => {
                if !thawed(freeze, shutdown).await { return Exit::Shutdown; }
                return Exit::Lost(format!("connection closed: {}", describe(r)));
            }
            _ = poll.tick() => {}
        }
        if !thawed(freeze, shutdown).await {
            return Exit::Shutdown;
        }
        match tokio::time::timeout(limit, try_acquire(&mut client, config)).await {
            Ok(Ok(Some(epoch))) => break epoch,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Exit::Lost(format!("standby poll: {e}")),
            Err(_) => return Exit::Lost("standby poll timed out".into()),
        }
    };
    tracing::info!(event = "fleet_leader", epoch = epoch.0, holder = %config.holder);
    role.send_replace(Role::Leader { epoch });

    let mut renew = tokio::time::interval_at(
        tokio::time::Instant::now() + config.renew_every,
        config.renew_every,
    );
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut *shutdown => {
                // Best effort: a failure leaves the lease to expire and the session end to unlock.
                let _ = tokio::time::timeout(limit, release(&client, epoch)).await;
                return Exit::Shutdown;
            }
            r = &mut connection => {
                if !thawed(freeze, shutdown).await { return Exit::Shutdown; }
                return Exit::Lost(format!("connection closed: {}", describe(r)));
            }
            _ = renew.tick() => {}
        }
        if !thawed(freeze, shutdown).await {
            return Exit::Shutdown;
        }
        match tokio::time::timeout(limit, renew_lease(&client, epoch, config.takeover)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Exit::Lost(format!("epoch {epoch} superseded")),
            Ok(Err(e)) => return Exit::Lost(format!("lease renewal: {e}")),
            Err(_) => return Exit::Lost("lease renewal timed out".into()),
        }
    }
}

/// Waits while the test hook holds the task frozen. False if shutdown was asked meanwhile.
async fn thawed(freeze: &mut watch::Receiver<bool>, shutdown: &mut oneshot::Receiver<()>) -> bool {
    if !*freeze.borrow() {
        return true;
    }
    tokio::select! {
        _ = shutdown => false,
        _ = freeze.wait_for(|frozen| !*frozen) => true,
    }
}

fn describe(r: Result<Result<(), tokio_postgres::Error>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(())) => "by the server".into(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

/// One standby poll: the lock if free (then the epoch bump), else end an expired holder's
/// session and wait briefly for its lock. `Some(epoch)` when this instance now leads.
async fn try_acquire(
    client: &mut Client,
    config: &LeaderConfig,
) -> Result<Option<Epoch>, tokio_postgres::Error> {
    let mut locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK_KEY])
        .await?
        .try_get(0)?;
    if !locked {
        // The lease is judged on the database's clock. Only the recorded holder's backend, and
        // only while it still holds the lock (pg_locks), is ended: never a reused pid.
        let ended = client
            .query_opt(
                "SELECT l.pid, pg_terminate_backend(l.pid) \
                 FROM pg_locks l JOIN fleet_leader f ON f.id = 1 AND f.backend_pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1 \
                   AND f.lease_until < now()",
                &[&lock_classid(), &lock_objid()],
            )
            .await?;
        let Some(row) = ended else {
            return Ok(None);
        };
        let pid: i32 = row.try_get(0)?;
        tracing::warn!(
            event = "fleet_leader_terminated",
            backend_pid = pid,
            reason = "lease expired"
        );
        // The ended session frees the lock when its backend exits: wait for it, briefly.
        let txn = client.transaction().await?;
        txn.batch_execute(&format!("SET LOCAL lock_timeout = '{TAKEOVER_LOCK_WAIT}'"))
            .await?;
        match txn
            .query_one("SELECT pg_advisory_lock($1)", &[&LEADER_LOCK_KEY])
            .await
        {
            Ok(_) => {
                txn.commit().await?;
                locked = true;
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    debug_assert!(locked);
    let takeover = config.takeover.as_secs_f64();
    let row = client
        .query_one(
            "UPDATE fleet_leader SET epoch = epoch + 1, holder = $1, backend_pid = pg_backend_pid(), \
             lease_until = now() + $2::float8 * interval '1 second' WHERE id = 1 RETURNING epoch",
            &[&config.holder, &takeover],
        )
        .await?;
    Ok(Some(Epoch(row.try_get(0)?)))
}

/// Pushes the lease to now + takeover. False if the row is no longer ours (epoch or session).
async fn renew_lease(
    client: &Client,
    epoch: Epoch,
    takeover: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let updated = client
        .execute(
            "UPDATE fleet_leader SET lease_until = now() + $2::float8 * interval '1 second' \
             WHERE id = 1 AND epoch = $1 AND backend_pid = pg_backend_pid()",
            &[&epoch.0, &takeover.as_secs_f64()],
        )
        .await?;
    Ok(updated == 1)
}

/// Ends the lease now and unlocks, so a standby takes over at its next poll.
async fn release(client: &Client, epoch: Epoch) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE fleet_leader SET lease_until = now() \
             WHERE id = 1 AND epoch = $1 AND backend_pid = pg_backend_pid()",
            &[&epoch.0],
        )
        .await?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK_KEY])
        .await?;
    Ok(())
}

/// `pg_locks.classid` of a bigint advisory key: its high 32 bits.
fn lock_classid() -> u32 {
    (LEADER_LOCK_KEY >> 32) as u32
}

/// `pg_locks.objid` of a bigint advisory key: its low 32 bits.
fn lock_objid() -> u32 {
    LEADER_LOCK_KEY as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_key_splits_as_pg_locks_shows_it() {
        assert_eq!(lock_classid(), 0x7465_6f73);
        assert_eq!(lock_objid(), 0x666c_7431);
        assert_eq!(
            ((lock_classid() as i64) << 32) | lock_objid() as i64,
            LEADER_LOCK_KEY
        );
    }

    #[test]
    fn statements_time_out_before_the_lease_ends() {
        let config = LeaderConfig::new("a", DEFAULT_TAKEOVER_SECONDS);
        assert_eq!(config.statement_timeout(), Duration::from_secs(5));
        assert!(config.renew_every < config.statement_timeout());
    }

    /// check_epoch against real PostgreSQL: accepted with the current epoch, refused with an old
    /// one, and refused without the row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_epoch_refuses_an_old_epoch() {
        let Some(target) = teos_testkit::PgTarget::from_env("check_epoch_refuses_an_old_epoch")
            .expect("PostgreSQL")
        else {
            return;
        };
        let base: tokio_postgres::Config = target.url().parse().expect("url");
        let (admin, conn) = base.connect(NoTls).await.expect("connect");
        tokio::spawn(conn);
        let name = teos_testkit::postgres::unique_database_name();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create db");
        let mut pg = base.clone();
        pg.dbname(&name);
        let (mut client, conn) = pg.connect(NoTls).await.expect("connect");
        tokio::spawn(conn);
        let txn = client.transaction().await.expect("txn");
        txn.batch_execute("CREATE TABLE fleet_leader (id int PRIMARY KEY, epoch bigint NOT NULL)")
            .await
            .expect("table");
        assert!(matches!(
            check_epoch(&txn, Epoch(1)).await,
            Err(FenceError::NoRow)
        ));
        txn.rollback().await.expect("rollback");
        crate::fleet::migrate(&mut client).await.expect("migrate");
        client
            .execute("UPDATE fleet_leader SET epoch = 7 WHERE id = 1", &[])
            .await
            .expect("epoch");
        let txn = client.transaction().await.expect("txn");
        check_epoch(&txn, Epoch(7)).await.expect("current epoch");
        match check_epoch(&txn, Epoch(6)).await {
            Err(FenceError::Superseded { ours, current }) => {
                assert_eq!((ours, current), (Epoch(6), Epoch(7)));
            }
            other => panic!("expected Superseded, got {other:?}"),
        }
    }
}
