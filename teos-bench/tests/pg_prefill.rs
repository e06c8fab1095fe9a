//! The PostgreSQL prefill of the fleet benchmarks (`teos_bench::pg_prefill`) produces a database the
//! real teosd starts on, reporting the prefilled counts through its admin API, and whose users can
//! send appointments.
//!
//! Needs PostgreSQL (a throwaway cluster is started, or `TEOS_TEST_DATABASE_URL`); without it the
//! test prints SKIPPED, unless `TEOS_TEST_REQUIRE_POSTGRES` is set (CI), when it fails. Runs the
//! `teosd` binary of the same build (`cargo build --workspace --bins` first, as scripts/test.sh does).

use std::path::PathBuf;
use std::time::Duration;

use rand::SeedableRng;
use teos_bench::clients::{BenchUser, random_appointment};
use teos_bench::http::HttpConn;
use teos_bench::pg::{PgServer, fleet_config, init_and_prefill, wait_for_leadership};
use teos_bench::pg_prefill::{BATCH, count_rows};
use teos_bench::prefill::PrefillSpec;
use teos_bench::tower::bench_launch;
use teos_testkit::postgres::PgTarget;
use teos_testkit::{Chain, TowerProcess};

/// `target/<profile>/teosd`, next to the directory of this test binary (`target/<profile>/deps`).
fn teosd_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let teosd = profile_dir.join("teosd");
    assert!(
        teosd.is_file(),
        "{} is missing: run `cargo build -p teosd --bins` first",
        teosd.display()
    );
    teosd
}

#[test]
fn a_prefilled_postgres_database_starts_a_tower_reporting_its_counts() {
    let test = "a_prefilled_postgres_database_starts_a_tower_reporting_its_counts";
    let Some(target) = PgTarget::from_env(test).expect("PostgreSQL for the test") else {
        return;
    };
    let teosd = teosd_binary();
    let chain = Chain::start(0).unwrap();
    let mut server = PgServer::from_target(target);
    let url = server.fresh_database().unwrap();
    let datadir = chain.dir.path().join("teosd");
    fleet_config(&datadir, &url, None, &[])
        .write(chain.sim())
        .unwrap();
    let launch = bench_launch(&teosd, &datadir, false, false);

    // More appointments than one COPY batch, so the batching is covered.
    let spec = PrefillSpec {
        users: 7,
        appointments: BATCH + 3,
        blob_size: 50,
        start: chain.height(),
    };
    init_and_prefill(&launch, &url, &spec).unwrap();
    assert_eq!(count_rows(&url).unwrap(), (7, BATCH + 3));

    let mut tower = TowerProcess::start(&launch, Duration::from_secs(120)).unwrap();
    // Alone on its database, it takes the leadership soon after it is ready.
    wait_for_leadership(&tower, Duration::from_secs(60)).unwrap();
    let info = tower.admin().unwrap().tower_info().unwrap();
    assert_eq!(info.role, "leader");
    assert_eq!(info.n_registered_users, 7);
    assert_eq!(u64::from(info.n_watcher_appointments), BATCH + 3);

    // A prefilled user has slots and a live subscription: the tower accepts its appointment.
    let api = tower.wait_ready(Duration::from_secs(1)).unwrap().api;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let body = BenchUser::new(3)
        .add_appointment_body(&random_appointment(&mut rng, 100))
        .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = HttpConn::connect(api).await?;
            conn.post_ok("/add_appointment", body).await
        })
        .unwrap();
    let info = tower.admin().unwrap().tower_info().unwrap();
    assert_eq!(u64::from(info.n_watcher_appointments), BATCH + 4);
    tower.stop(Duration::from_secs(60)).unwrap();
}
