//! The admin gRPC API of the real teosd process, called directly with tonic: mutual TLS (certificates
//! of another CA, or none, are refused, also through the real `teos-cli`), input checks
//! (`InvalidArgument`, `NotFound`), and paging.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use teos_common::appointment::UserId;
use teos_common::protos::common::teos::v2::AppointmentData;
use teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient;
use teos_common::protos::teos::v2::{
    GetAllAppointmentsRequest, GetAppointmentsRequest, GetUserRequest, GetUsersRequest,
};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

type Client = PrivateTowerServicesClient<Channel>;

/// Connects to `port` trusting `ca_dir/ca.pem`, presenting `identity_dir/client{,-key}.pem` if given.
async fn connect(port: u16, ca_dir: &Path, identity_dir: Option<&Path>) -> Client {
    let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).unwrap();
    let mut tls = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(read(ca_dir, "ca.pem")));
    if let Some(dir) = identity_dir {
        tls = tls.identity(Identity::from_pem(
            read(dir, "client.pem"),
            read(dir, "client-key.pem"),
        ));
    }
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    PrivateTowerServicesClient::new(channel)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A directory holding a CA, server and client pair of a different CA than the tower's.
fn foreign_material() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    teosd::tls::load_or_create(dir.path()).unwrap();
    dir
}

fn cli_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_teosd")).with_file_name("teos-cli");
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

#[test]
fn clients_without_a_certificate_of_the_towers_ca_are_refused() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let port = tower.admin_port();
    let foreign = foreign_material();
    let rt = runtime();

    let mut no_cert = rt.block_on(connect(port, dir.path(), None));
    assert!(rt.block_on(no_cert.get_tower_info(())).is_err());
    let mut other_ca = rt.block_on(connect(port, dir.path(), Some(foreign.path())));
    assert!(rt.block_on(other_ca.get_tower_info(())).is_err());
    let mut own = rt.block_on(connect(port, dir.path(), Some(dir.path())));
    assert!(rt.block_on(own.get_tower_info(())).is_ok());

    // The real teos-cli with a client pair from another CA (trusting the tower's CA): exit code 3.
    let cli_dir = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("ca.pem"), cli_dir.path().join("ca.pem")).unwrap();
    for file in ["client.pem", "client-key.pem"] {
        std::fs::copy(foreign.path().join(file), cli_dir.path().join(file)).unwrap();
    }
    let output = Command::new(cli_binary())
        .arg("--datadir")
        .arg(cli_dir.path())
        .args(["--rpcbind", "127.0.0.1", "--rpcport", &port.to_string()])
        .arg("gettowerinfo")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());

    // The same copy with the tower's own client pair works (remote administration, README).
    for file in ["client.pem", "client-key.pem"] {
        std::fs::copy(dir.path().join(file), cli_dir.path().join(file)).unwrap();
    }
    let output = Command::new(cli_binary())
        .arg("--datadir")
        .arg(cli_dir.path())
        .args(["--rpcbind", "127.0.0.1", "--rpcport", &port.to_string()])
        .arg("gettowerinfo")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(tower);
}

#[test]
fn malformed_input_is_invalid_argument_and_unknown_users_not_found() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let rt = runtime();
    let mut client = rt.block_on(connect(tower.admin_port(), dir.path(), Some(dir.path())));

    for locator in [vec![], vec![1; 15], vec![1; 17], vec![0; 32]] {
        let status = rt
            .block_on(client.get_appointments(GetAppointmentsRequest { locator }))
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    for user_id in [vec![], vec![2; 32], vec![7; 33], vec![2; 34]] {
        let status = rt
            .block_on(client.get_user(GetUserRequest { user_id }))
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let unknown = User::new(&tower.url(), 5).id;
    let status = rt
        .block_on(client.get_user(GetUserRequest {
            user_id: unknown.to_bytes().to_vec(),
        }))
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    for cursor in [vec![0], vec![9; 21], vec![1; 3]] {
        let status = rt
            .block_on(client.get_all_appointments(GetAllAppointmentsRequest { limit: 1, cursor }))
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    let status = rt
        .block_on(client.get_users(GetUsersRequest {
            limit: 1,
            cursor: vec![3; 33],
        }))
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // The server survived all of it.
    assert!(rt.block_on(client.get_tower_info(())).is_ok());
    drop(tower);
}

#[test]
fn paged_listings_return_the_same_items_as_unpaged_ones() {
    let chain = Chain::start(3);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let users: Vec<User> = (1..=3).map(|seed| User::new(&tower.url(), seed)).collect();
    for user in &users {
        user.register().unwrap();
    }
    // Two watched appointments and one tracker.
    for user in &users[..2] {
        let (commitment, penalty) = chain.breach();
        user.add(&appointment_for(&commitment, &penalty)).unwrap();
    }
    let (commitment, penalty) = chain.breach();
    users[2]
        .add(&appointment_for(&commitment, &penalty))
        .unwrap();
    chain.broadcast(&commitment);
    chain.mine(1);
    let penalty_txid = penalty.compute_txid();
    wait_until("the penalty broadcast", SOON, || {
        chain.in_mempool(&penalty_txid)
    });

    let rt = runtime();
    let mut client = rt.block_on(connect(tower.admin_port(), dir.path(), Some(dir.path())));
    wait_until("the tracker stored", SOON, || {
        rt.block_on(client.get_tower_info(()))
            .is_ok_and(|r| r.into_inner().n_responder_trackers == 1)
    });

    // rust-teos clients send an empty request: everything in one answer, no cursor.
    let all = rt
        .block_on(client.get_all_appointments(GetAllAppointmentsRequest::default()))
        .unwrap()
        .into_inner();
    assert_eq!(all.appointments.len(), 3);
    assert!(all.next_cursor.is_empty());
    let is_tracker = |a: &AppointmentData| {
        matches!(
            a.appointment_data,
            Some(
                teos_common::protos::common::teos::v2::appointment_data::AppointmentData::Tracker(
                    _
                )
            )
        )
    };
    assert!(!is_tracker(&all.appointments[0]) && !is_tracker(&all.appointments[1]));
    assert!(is_tracker(&all.appointments[2]));

    for limit in [1, 2, 3, 4] {
        let mut paged = Vec::new();
        let mut cursor = Vec::new();
        let mut pages = 0;
        loop {
            let page = rt
                .block_on(client.get_all_appointments(GetAllAppointmentsRequest {
                    limit,
                    cursor: cursor.clone(),
                }))
                .unwrap()
                .into_inner();
            assert!(page.appointments.len() <= limit as usize);
            paged.extend(page.appointments);
            pages += 1;
            assert!(pages <= 4, "paging does not end (limit {limit})");
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        assert_eq!(paged, all.appointments, "limit {limit}");
    }

    let everyone = rt
        .block_on(client.get_users(GetUsersRequest::default()))
        .unwrap()
        .into_inner();
    let mut expected: Vec<Vec<u8>> = users.iter().map(|u| u.id.to_bytes().to_vec()).collect();
    expected.sort();
    assert_eq!(everyone.user_ids, expected);
    let mut paged = Vec::new();
    let mut cursor = Vec::new();
    loop {
        let page = rt
            .block_on(client.get_users(GetUsersRequest {
                limit: 2,
                cursor: cursor.clone(),
            }))
            .unwrap()
            .into_inner();
        paged.extend(page.user_ids);
        if page.next_cursor.is_empty() {
            break;
        }
        assert!(UserId::from_slice(&page.next_cursor).is_ok());
        cursor = page.next_cursor;
    }
    assert_eq!(paged, expected);
    drop(tower);
}
