//! A blocking client of teosd's admin gRPC API (`teos.v2.PrivateTowerServices`, mutual TLS with the
//! certificates teosd keeps in its data dir), for reading the tower's state: its tip, its counts.

use std::net::SocketAddr;
use std::path::Path;

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use teos_common::protos::teos::v2::GetTowerInfoResponse;
use teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::KitError;

/// Certificate files teosd writes in its data dir (`teosd::tls`): the CA, and the client pair
/// teos-cli presents.
const CA_CERT: &str = "ca.pem";
const CLIENT_CERT: &str = "client.pem";
const CLIENT_KEY: &str = "client-key.pem";

/// A connection to one tower's admin API; calls block the calling thread (not for async code).
pub struct Admin {
    rt: tokio::runtime::Runtime,
    client: PrivateTowerServicesClient<Channel>,
}

impl Admin {
    /// A client of the admin API at `addr`, with the certificates in `datadir` (teosd's `--datadir`).
    /// Connects at the first call.
    ///
    /// Errors: [`KitError::Io`] (certificates unreadable, runtime), [`KitError::Admin`] (bad address).
    pub fn new(datadir: &Path, addr: SocketAddr) -> Result<Admin, KitError> {
        let read = |name: &str| {
            std::fs::read(datadir.join(name))
                .map_err(|e| KitError::io(format!("reading {}", datadir.join(name).display()), e))
        };
        let tls = ClientTlsConfig::new()
            .domain_name("localhost")
            .ca_certificate(Certificate::from_pem(read(CA_CERT)?))
            .identity(Identity::from_pem(read(CLIENT_CERT)?, read(CLIENT_KEY)?));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KitError::io("starting a client runtime", e))?;
        let channel = {
            let _guard = rt.enter();
            Endpoint::from_shared(format!("https://{addr}"))
                .and_then(|e| e.tls_config(tls))
                .map_err(|e| KitError::Admin(e.to_string()))?
                .connect_lazy()
        };
        Ok(Admin {
            rt,
            client: PrivateTowerServicesClient::new(channel),
        })
    }

    /// `get_tower_info`: counts, reachability, addresses, tip, version, uptime.
    ///
    /// Errors: [`KitError::Admin`].
    pub fn tower_info(&self) -> Result<GetTowerInfoResponse, KitError> {
        let mut client = self.client.clone();
        self.rt
            .block_on(client.get_tower_info(()))
            .map(tonic::Response::into_inner)
            .map_err(|status| KitError::Admin(status.to_string()))
    }

    /// Height and hash of the last block the tower processed.
    ///
    /// Errors: [`KitError::Admin`] (also for a hash that is not 32 bytes).
    pub fn tip(&self) -> Result<(u32, BlockHash), KitError> {
        let info = self.tower_info()?;
        let hash = BlockHash::from_slice(&info.best_block_hash)
            .map_err(|e| KitError::Admin(format!("best_block_hash: {e}")))?;
        Ok((info.best_block_height, hash))
    }

    /// Asks the tower to stop (`stop`: the same teardown as SIGTERM).
    ///
    /// Errors: [`KitError::Admin`].
    pub fn stop(&self) -> Result<(), KitError> {
        let mut client = self.client.clone();
        self.rt
            .block_on(client.stop(()))
            .map(|_| ())
            .map_err(|status| KitError::Admin(status.to_string()))
    }
}
