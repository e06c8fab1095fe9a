//! The admin API: rust-teos's `teos.v2.PrivateTowerServices` over gRPC with mutual TLS
//! (ADMIN_RPC.md), served on `rpc_bind:rpc_port` (default `127.0.0.1:8814`) for `teos-cli`.
//!
//! Only clients presenting a certificate signed by the tower's CA ([`crate::tls`]) get past the TLS
//! handshake. The calls are read-only views of the database and the chain view, plus `stop`, which
//! starts the same graceful teardown as SIGTERM. Every input is checked (a malformed id is
//! `InvalidArgument`, an unknown user `NotFound`); database reads run on the storage read pool, never
//! on an async worker.
//!
//! Two-step use, so the caller can log the bound address before "Tower ready":
//! ```no_run
//! # async fn demo(state: teosd::api::admin::AdminState, shutdown: std::sync::Arc<teosd::shutdown::Shutdown>)
//! # -> Result<(), teosd::api::admin::AdminError> {
//! use teosd::api::admin::AdminServer;
//! let server = AdminServer::bind("127.0.0.1:8814", std::path::Path::new("/home/me/.teos")).await?;
//! tracing::info!("admin API on {}", server.local_addr());
//! server.serve(state, async move { shutdown.wait().await }).await
//! # }
//! ```

mod convert;
mod paging;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use teos_common::appointment::TowerId;
use teos_common::protos::teos::v2::private_tower_services_server::PrivateTowerServicesServer;
use tokio::net::TcpListener;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::chain_view::SharedChainView;
use crate::shutdown::Shutdown;
use crate::storage::Store;
use crate::tls::{self, TlsError, TlsMaterial};

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a single call may take before it is answered with `Cancelled`.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What the admin calls read. Built by the daemon once the tower is caught up.
pub struct AdminState {
    /// The tower database (users, appointments, trackers).
    pub store: Store,
    /// The tower's tip (best block height and hash in `get_tower_info`).
    pub view: SharedChainView,
    /// The tower's public key (`get_tower_info.tower_id`).
    pub tower_id: TowerId,
    /// Whether bitcoind answered the last call (kept by the chain monitor and the Carrier).
    pub bitcoind_reachable: Arc<AtomicBool>,
    /// Public API addresses to advertise as `(address, port)`, reported as `IpV4` entries: the
    /// advertised address ([`crate::config::Config::advertised`]); empty when there is none.
    pub addresses: Vec<(String, u16)>,
    /// `tower_id@host:port` (`get_tower_info.tower_address`); `None` when there is no address to
    /// advertise (a wildcard `api_bind` without `external_address`).
    pub tower_address: Option<String>,
    /// Triggered by the `stop` call (the same teardown as SIGTERM).
    pub shutdown: Arc<Shutdown>,
    /// When the tower started; `get_tower_info.uptime_secs` counts seconds from here.
    pub started: Instant,
    /// teosd's version string (`get_tower_info.version`), e.g. `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// The data directory, whose size `get_tower_info.data_dir_bytes` reports.
    pub data_dir: std::path::PathBuf,
    /// With `tor_support`: the onion service's `<onion address>:<port>` (`get_tower_info.onion_address`,
    /// and a `TorV3` entry of `addresses`, as rust-teos reports it).
    pub onion_address: Option<String>,
    /// This instance's role (`get_tower_info.role`, `leader_epoch`): always leader alone on SQLite,
    /// from [`crate::fleet::Leadership`] in a fleet.
    pub role: tokio::sync::watch::Receiver<crate::fleet::Role>,
}

/// Why the admin API could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The mTLS files could not be loaded or created.
    #[error("admin API TLS material: {0}")]
    Tls(#[from] TlsError),
    /// Binding `addr` failed (port in use, address not local, bad host name).
    #[error("cannot listen on {addr} (rpc_bind/rpc_port): {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// tonic refused the TLS configuration or the server failed.
    #[error("admin API server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Loading the TLS files on the blocking pool failed to complete (the task panicked).
    #[error("admin API startup task failed: {0}")]
    Task(String),
}

/// A bound, not yet serving admin API: the TLS material is loaded and the port is taken.
pub struct AdminServer {
    listener: TcpListener,
    local: SocketAddr,
    tls: TlsMaterial,
}

impl AdminServer {
    /// Loads or creates the mTLS material in `data_dir` ([`tls::load_or_create`], on the blocking
    /// pool), then binds `addr` (`host:port`; port 0 picks a free port, see [`AdminServer::local_addr`]).
    ///
    /// Errors: [`AdminError::Tls`], [`AdminError::Bind`], [`AdminError::Task`].
    pub async fn bind(addr: &str, data_dir: &Path) -> Result<AdminServer, AdminError> {
        let dir: PathBuf = data_dir.to_path_buf();
        let tls = tokio::task::spawn_blocking(move || tls::load_or_create(&dir))
            .await
            .map_err(|e| AdminError::Task(e.to_string()))??;
        let bind_error = |source| AdminError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(AdminServer {
            listener,
            local,
            tls,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `PrivateTowerServices` with mTLS until `shutdown` resolves, then stops accepting
    /// connections and waits for the calls in flight (bound them with a timeout around this future).
    ///
    /// Errors: [`AdminError::Transport`] (bad TLS material, server failure).
    pub async fn serve(
        self,
        state: AdminState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdminError> {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &self.tls.server_cert,
                &self.tls.server_key,
            ))
            .client_ca_root(Certificate::from_pem(&self.tls.ca_cert))
            .timeout(HANDSHAKE_TIMEOUT);
        let service = PrivateTowerServicesServer::new(service::AdminService::new(state));
        Server::builder()
            .tls_config(tls)?
            .timeout(CALL_TIMEOUT)
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await?;
        Ok(())
    }
}

/// [`AdminServer::bind`] then [`AdminServer::serve`] in one call, for callers that do not need the
/// bound address.
pub async fn serve(
    addr: &str,
    data_dir: &Path,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    AdminServer::bind(addr, data_dir)
        .await?
        .serve(state, shutdown)
        .await
}
