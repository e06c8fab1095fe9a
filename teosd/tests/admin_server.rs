//! The admin server in-process: certificates re-issued by a reloaded CA still chain to it, and the
//! `stop` call triggers the tower's shutdown and ends `serve`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use secp256k1::SecretKey;
use teos_common::appointment::UserId;
use teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient;
use teosd::api::admin::{AdminServer, AdminState};
use teosd::chain_view::SharedChainView;
use teosd::shutdown::Shutdown;
use teosd::storage::Store;
use teosd::tls;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

fn state(store: Store, shutdown: Arc<Shutdown>) -> AdminState {
    let key = SecretKey::from_slice(&[3; 32]).unwrap();
    // The store is <data_dir>/regtest/teos_db.sql3.
    let data_dir = store
        .path()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    AdminState {
        data_dir,
        store,
        view: SharedChainView::new(101, BlockHash::all_zeros(), 6),
        tower_id: UserId(key.public_key(secp256k1::SECP256K1)),
        bitcoind_reachable: Arc::new(AtomicBool::new(false)),
        addresses: vec![],
        tower_address: None,
        shutdown,
        started: Instant::now(),
        version: "test",
        onion_address: None,
        role: tokio::sync::watch::channel(teosd::fleet::Role::Leader {
            epoch: teosd::fleet::Epoch(0),
        })
        .1,
    }
}

async fn client(dir: &Path, port: u16) -> PrivateTowerServicesClient<Channel> {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(
            read("client.pem"),
            read("client-key.pem"),
        ));
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    PrivateTowerServicesClient::new(channel)
}

#[tokio::test]
async fn reissued_pairs_chain_to_the_kept_ca_and_stop_ends_serving() {
    let dir = tempfile::tempdir().unwrap();
    let first = tls::load_or_create(dir.path()).unwrap();
    // Both leaf pairs go missing; the CA stays. bind() re-issues them with the reloaded CA.
    std::fs::remove_file(dir.path().join(tls::SERVER_KEY)).unwrap();
    std::fs::remove_file(dir.path().join(tls::CLIENT_CERT)).unwrap();

    let store = Store::open(&dir.path().join("regtest").join("teos_db.sql3")).unwrap();
    let shutdown = Arc::new(Shutdown::new());
    let server = AdminServer::bind("127.0.0.1:0", dir.path()).await.unwrap();
    let port = server.local_addr().port();
    let reissued = std::fs::read_to_string(dir.path().join(tls::SERVER_CERT)).unwrap();
    assert_ne!(reissued, first.server_cert);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(tls::CA_CERT)).unwrap(),
        first.ca_cert
    );
    let serving = {
        let shutdown = shutdown.clone();
        tokio::spawn(
            server.serve(state(store.clone(), shutdown.clone()), async move {
                shutdown.wait().await
            }),
        )
    };

    let mut client = client(dir.path(), port).await;
    let info = client.get_tower_info(()).await.unwrap().into_inner();
    assert_eq!(info.best_block_height, 101);
    assert!(!info.bitcoind_reachable);
    assert_eq!(info.version, "test");
    // The database and the TLS files, at least.
    let tls_bytes: u64 = [tls::CA_CERT, tls::SERVER_CERT, tls::CLIENT_CERT]
        .iter()
        .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
        .sum();
    assert!(info.data_dir_bytes > tls_bytes, "{}", info.data_dir_bytes);
    assert_eq!((info.role.as_str(), info.leader_epoch), ("leader", 0));

    client.stop(()).await.unwrap();
    assert!(shutdown.is_triggered());
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("serve did not end after stop")
        .unwrap()
        .unwrap();
    store.close().unwrap();
}
