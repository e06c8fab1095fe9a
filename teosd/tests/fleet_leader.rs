//! Fleet leadership against a real PostgreSQL (docs/fleet.md, "Leadership and fencing").
//!
//! Each test starts its own throwaway cluster (teos_testkit::PgCluster: initdb in a temp dir, a
//! free port, password auth) or uses `TEOS_TEST_DATABASE_URL`, in a fresh database. Without
//! PostgreSQL installed the tests print a SKIPPED line, unless `TEOS_TEST_REQUIRE_POSTGRES` is set
//! (CI), which makes them fail. Every wait has a deadline and follows the role watch channel.

use std::time::{Duration, Instant};

use teos_testkit::PgTarget;
use teosd::fleet::{self, Epoch, FenceError, LeaderConfig, Leadership, Role, check_epoch};
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};

/// A short takeover time keeps the tests quick; the rule under test is "within takeover + 2 s".
const TAKEOVER_SECONDS: u64 = 3;
const TAKEOVER: Duration = Duration::from_secs(TAKEOVER_SECONDS);
const TAKEOVER_BOUND: Duration = Duration::from_secs(TAKEOVER_SECONDS + 2);
/// For things not bounded by the takeover rule (reconnects, a server restart) on a busy machine.
const SOON: Duration = Duration::from_secs(30);

/// A fresh, migrated database on the test's PostgreSQL.
struct Db {
    target: PgTarget,
    config: tokio_postgres::Config,
}

impl Db {
    async fn new(test: &str) -> Option<Db> {
        let target = PgTarget::from_env(test).expect("PostgreSQL for the test")?;
        let base: tokio_postgres::Config = target.url().parse().expect("database URL");
        let admin = connect(&base).await;
        let name = teos_testkit::postgres::unique_database_name();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        let mut config = base;
        config.dbname(&name);
        let mut client = connect(&config).await;
        fleet::migrate(&mut client).await.expect("migrations");
        // Applying them twice is a no-op.
        fleet::migrate(&mut client).await.expect("migrations again");
        client
            .batch_execute("CREATE TABLE blocks (height int PRIMARY KEY)")
            .await
            .expect("blocks table");
        Some(Db { target, config })
    }

    fn candidate(&self, name: &str) -> Leadership {
        Leadership::start(
            self.config.clone(),
            LeaderConfig::new(name, TAKEOVER_SECONDS),
        )
    }

    async fn client(&self) -> Client {
        connect(&self.config).await
    }
}

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A block commit as the pipeline will do it: fenced by `epoch` inside the transaction.
async fn commit_block(client: &mut Client, epoch: Epoch, height: i32) -> Result<(), FenceError> {
    let txn = client.transaction().await?;
    check_epoch(&txn, epoch).await?;
    txn.execute("INSERT INTO blocks (height) VALUES ($1)", &[&height])
        .await?;
    txn.commit().await?;
    Ok(())
}

async fn committed(client: &Client, height: i32) -> bool {
    client
        .query_opt("SELECT 1 FROM blocks WHERE height = $1", &[&height])
        .await
        .expect("query blocks")
        .is_some()
}

/// Waits until `role` satisfies `pred`, at most `timeout`; returns it.
async fn wait_role(
    who: &str,
    rx: &mut watch::Receiver<Role>,
    timeout: Duration,
    pred: impl FnMut(&Role) -> bool,
) -> Role {
    let outcome =
        tokio::time::timeout(timeout, async { rx.wait_for(pred).await.map(|role| *role) }).await;
    match outcome {
        Ok(Ok(role)) => role,
        Ok(Err(_)) => panic!("{who}: leadership task ended"),
        Err(_) => panic!("{who}: role still {:?} after {timeout:?}", *rx.borrow()),
    }
}

fn is_leader(role: &Role) -> bool {
    matches!(role, Role::Leader { .. })
}

fn epoch_of(role: Role) -> Epoch {
    match role {
        Role::Leader { epoch } => epoch,
        Role::Standby => panic!("not a leader"),
    }
}

/// Waits until exactly one of `a`, `b` leads, asserting that both never lead at once.
async fn wait_one_leader(a: &Leadership, b: &Leadership, timeout: Duration) -> (usize, Epoch) {
    let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (x, y) = (*ra.borrow_and_update(), *rb.borrow_and_update());
        assert!(
            !(is_leader(&x) && is_leader(&y)),
            "two leaders at once: {x:?} {y:?}"
        );
        if let Role::Leader { epoch } = x {
            return (0, epoch);
        }
        if let Role::Leader { epoch } = y {
            return (1, epoch);
        }
        tokio::select! {
            _ = ra.changed() => {}
            _ = rb.changed() => {}
            _ = tokio::time::sleep_until(deadline) => panic!("no leader after {timeout:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_leads_and_the_other_takes_over_when_the_leader_dies() {
    let Some(db) = Db::new("one_of_two_leads_and_the_other_takes_over_when_the_leader_dies").await
    else {
        return;
    };
    let started = Instant::now();
    let nodes = [db.candidate("a"), db.candidate("b")];
    let (first, e1) = wait_one_leader(&nodes[0], &nodes[1], SOON).await;
    assert_eq!(nodes[1 - first].role(), Role::Standby);
    assert_eq!(e1, Epoch(1), "the first leader of a fresh database");

    // The leader's session is killed from outside (a DBA, a server-side timeout). The old leader
    // steps down at once; whoever gets the lock first (the old one after reconnecting, or the
    // standby) leads with a new epoch.
    let mut rf = nodes[first].subscribe();
    let admin = db.client().await;
    let killed = Instant::now();
    let ended: bool = admin
        .query_one(
            "SELECT pg_terminate_backend(backend_pid) FROM fleet_leader WHERE id = 1",
            &[],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(ended);
    wait_role("old leader", &mut rf, TAKEOVER_BOUND, |r| {
        *r != Role::Leader { epoch: e1 }
    })
    .await;
    let (leader, e2) = wait_one_leader(&nodes[0], &nodes[1], TAKEOVER_BOUND).await;
    let after_kill = killed.elapsed();
    assert!(e2 > e1, "epoch must increase: {e1} then {e2}");

    // The leader dies (its process gone: task and connection dropped): the other takes over.
    let [a, b] = nodes;
    let (dead, survivor) = if leader == 0 { (a, b) } else { (b, a) };
    let mut rs = survivor.subscribe();
    let died = Instant::now();
    drop(dead);
    let e3 = epoch_of(wait_role("survivor", &mut rs, TAKEOVER_BOUND, is_leader).await);
    let after_death = died.elapsed();
    assert!(e3 > e2, "epoch must increase: {e2} then {e3}");
    survivor.shutdown().await;
    eprintln!(
        "new leader {after_kill:?} after the leader's session was killed, {after_death:?} after \
         the leader died (bound {TAKEOVER_BOUND:?}); test took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_loses_leadership_and_cannot_commit() {
    let Some(db) = Db::new("a_paused_leader_loses_leadership_and_cannot_commit").await else {
        return;
    };
    let started = Instant::now();
    let a = db.candidate("a");
    let mut ra = a.subscribe();
    let e1 = epoch_of(wait_role("a", &mut ra, SOON, is_leader).await);
    let b = db.candidate("b");
    let mut rb = b.subscribe();
    let mut a_store = db.client().await;
    let mut b_store = db.client().await;
    commit_block(&mut a_store, e1, 1)
        .await
        .expect("the leader commits");

    // SIGSTOP in effect: a stops renewing but keeps its session, and so its advisory lock.
    a.freeze_for_tests(true);
    let paused = Instant::now();
    let e2 = epoch_of(wait_role("b", &mut rb, TAKEOVER + TAKEOVER_BOUND, is_leader).await);
    let takeover = paused.elapsed();
    // The lease was renewed at most renew_every (1 s) before the pause.
    assert!(
        takeover <= TAKEOVER_BOUND,
        "b took over {takeover:?} after a paused, bound {TAKEOVER_BOUND:?}"
    );
    assert!(e2 > e1, "epoch must increase: {e1} then {e2}");
    // a still believes it leads (it is paused), yet its commits are refused.
    assert_eq!(a.role(), Role::Leader { epoch: e1 });
    match commit_block(&mut a_store, e1, 2).await {
        Err(FenceError::Superseded { ours, current }) => {
            assert_eq!((ours, current), (e1, e2));
        }
        other => panic!("a stale leader's commit must be refused, got {other:?}"),
    }
    assert!(!committed(&b_store, 2).await, "nothing of the stale commit");
    commit_block(&mut b_store, e2, 2)
        .await
        .expect("the new leader commits");

    // Resumed, a finds its session ended and steps down; b keeps leading.
    a.freeze_for_tests(false);
    wait_role("a", &mut ra, SOON, |r| *r == Role::Standby).await;
    assert_eq!(b.role(), Role::Leader { epoch: e2 });
    a.shutdown().await;
    b.shutdown().await;
    eprintln!(
        "takeover from a paused leader: {takeover:?} (bound {TAKEOVER_BOUND:?}); test took {:?}",
        started.elapsed()
    );
}

/// A commit that locked the row before the takeover holds back the new leader's epoch bump until
/// it ends: fencing cannot be raced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_bump_waits_for_a_commit_in_flight() {
    let Some(db) = Db::new("an_epoch_bump_waits_for_a_commit_in_flight").await else {
        return;
    };
    let a = db.candidate("a");
    let mut ra = a.subscribe();
    let e1 = epoch_of(wait_role("a", &mut ra, SOON, is_leader).await);
    let mut store = db.client().await;
    let txn = store.transaction().await.expect("begin");
    check_epoch(&txn, e1).await.expect("current epoch");

    let b = db.candidate("b");
    let mut rb = b.subscribe();
    a.freeze_for_tests(true);
    // b can end a's session once the lease expires, but its bump waits on our row lock.
    let admin = db.client().await;
    let deadline = Instant::now() + TAKEOVER + SOON;
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE 'UPDATE fleet_leader SET epoch%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "b's epoch bump never started");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling with a deadline
    }
    assert_eq!(b.role(), Role::Standby, "bump held back by the commit");
    txn.execute("INSERT INTO blocks (height) VALUES (1)", &[])
        .await
        .expect("insert");
    txn.commit()
        .await
        .expect("the commit that started first finishes");
    let e2 = epoch_of(wait_role("b", &mut rb, SOON, is_leader).await);
    assert!(e2 > e1);
    assert!(matches!(
        commit_block(&mut store, e1, 2).await,
        Err(FenceError::Superseded { .. })
    ));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_leads_again_after_postgresql_restarts() {
    let test = "someone_leads_again_after_postgresql_restarts";
    let Some(db) = Db::new(test).await else {
        return;
    };
    let PgTarget::Owned(cluster) = &db.target else {
        eprintln!("SKIPPED {test}: needs its own cluster to restart, not TEOS_TEST_DATABASE_URL");
        return;
    };
    let started = Instant::now();
    let nodes = [db.candidate("a"), db.candidate("b")];
    let (_, e1) = wait_one_leader(&nodes[0], &nodes[1], SOON).await;

    let (mut ra, mut rb) = (nodes[0].subscribe(), nodes[1].subscribe());
    tokio::task::block_in_place(|| cluster.restart()).expect("pg_ctl restart");
    // Both sessions died with the server: the leader steps down...
    wait_role("a", &mut ra, SOON, |r| match r {
        Role::Leader { epoch } => *epoch > e1,
        Role::Standby => true,
    })
    .await;
    wait_role("b", &mut rb, SOON, |r| match r {
        Role::Leader { epoch } => *epoch > e1,
        Role::Standby => true,
    })
    .await;
    // ...and after reconnecting, someone leads with a new epoch.
    let (_, e2) = wait_one_leader(&nodes[0], &nodes[1], SOON).await;
    assert!(
        e2 > e1,
        "epoch must increase across the restart: {e1} then {e2}"
    );
    let [a, b] = nodes;
    a.shutdown().await;
    b.shutdown().await;
    eprintln!("restart test took {:?}", started.elapsed());
}
