//! The servers of a running tower: the public HTTP API (and, with `tor_support`, its onion
//! service's listener), the admin gRPC API, the ready announcement and the drain at shutdown.

use super::*;

/// The servers running on the tokio runtime.
pub(super) struct Servers {
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    admin: tokio::task::JoinHandle<Result<(), crate::api::admin::AdminError>>,
    /// The bound address of the public API (the `api` field of the ready event).
    api_local: SocketAddr,
    /// What the tower tells users to connect to (the ready event, `get_tower_info`).
    advertised: Advertised,
    /// With `tor_support`: the task keeping the onion service, and its `<onion>:<port>`.
    onion: Option<(tokio::task::JoinHandle<()>, String)>,
}

impl Servers {
    /// Logs the ready event and returns systemd's STATUS line (see [`announce_ready`]).
    pub(super) fn announce_ready(&self, tower_id: &TowerId) -> String {
        let onion = self.onion.as_ref().map(|(_, address)| address.as_str());
        announce_ready(tower_id, self.api_local, &self.advertised, onion)
    }
}

/// Binds and starts the public HTTP API and the admin gRPC API (mTLS, for teos-cli).
pub(super) fn start_servers(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    shared: &Shared,
    key: TowerKey,
) -> anyhow::Result<Servers> {
    let api_addr = config.api_address();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&api_addr))
        .with_context(|| format!("cannot listen on {api_addr} (api_bind/api_port)"))?;
    let api_local: SocketAddr = listener.local_addr()?;
    let admin_server = runtime
        .block_on(crate::api::admin::AdminServer::bind(
            &config.rpc_address(),
            &config.data_dir,
        ))
        .with_context(|| format!("cannot start the admin API on {}", config.rpc_address()))?;
    let admin_local = admin_server.local_addr();
    let advertised = config.advertised(api_local.port());
    let onion = start_onion(runtime, config)?;
    let onion_address = onion.as_ref().map(|(service, _)| service.address());
    let state = crate::api::admin::AdminState {
        store: shared.store.clone(),
        view: shared.view.clone(),
        tower_id: key.id(),
        bitcoind_reachable: shared.reachable.clone(),
        addresses: match &advertised {
            Advertised::At { host, port } => vec![(host.clone(), *port)],
            Advertised::Nowhere(_) => Vec::new(),
        },
        tower_address: advertised.tower_address(&key.id()),
        shutdown: shared.shutdown.clone(),
        role: shared.role.clone(),
        started: std::time::Instant::now(),
        version: env!("CARGO_PKG_VERSION"),
        data_dir: config.data_dir.clone(),
        onion_address: onion_address.clone(),
    };
    let shutdown = shared.shutdown.clone();
    let admin = runtime.spawn(admin_server.serve(state, async move { shutdown.wait().await }));
    tracing::info!(event = "admin_listening", admin = %admin_local, "admin API listening");

    let tower = Arc::new(
        Tower::new(
            shared.store.clone(),
            shared.view.clone(),
            key,
            shared.params,
            AppointmentRules {
                min_to_self_delay: u32::from(config.min_to_self_delay),
                max_blob_size: config.max_encrypted_blob_size,
                slot_size: teos_common::constants::ENCRYPTED_BLOB_MAX_SIZE,
            },
            shared.reachable.clone(),
            shared.wakeup.clone(),
        )
        .with_capacity(crate::gatekeeper::Capacity::from_config(config))
        .with_mempool_responses(shared.mempool.clone()),
    );
    let mut listeners = vec![ApiListener {
        listener,
        clients: ClientKeying::PeerIp,
    }];
    let mut kept_onion = None;
    if let Some((service, onion_listener)) = onion {
        listeners.push(onion_listener);
        let shutdown = shared.shutdown.clone();
        let keep = runtime.spawn(service.keep(async move { shutdown.wait().await }));
        kept_onion = onion_address.map(|address| (keep, address));
    }
    let shutdown = shared.shutdown.clone();
    let http = runtime.spawn(crate::api::http::serve_listeners(
        listeners,
        tower,
        crate::api::limits::HttpLimits::from_config(config),
        async move { shutdown.wait().await },
    ));
    Ok(Servers {
        http,
        admin,
        api_local,
        advertised,
        onion: kept_onion,
    })
}

/// Logs the ready event (structured: `event = "ready"`, `tower_id`, `api` = the bound address, and
/// `tower_address` = `tower_id@host:port` when there is one to advertise, `onion` = the onion
/// service's `<onion>:<port>` with `tor_support`) with the line users need; returns the STATUS line
/// for systemd.
fn announce_ready(
    tower_id: &TowerId,
    api: SocketAddr,
    advertised: &Advertised,
    onion: Option<&str>,
) -> String {
    match advertised {
        Advertised::At { .. } => {
            let address = advertised.tower_address(tower_id).unwrap_or_default();
            tracing::info!(
                event = "ready",
                tower_id = %tower_id,
                api = %api,
                tower_address = %address,
                onion,
                "Tower ready; users register it with {address}"
            );
            format!("ready: {address} (serving on {api})")
        }
        Advertised::Nowhere(why) => {
            tracing::info!(
                event = "ready",
                tower_id = %tower_id,
                api = %api,
                onion,
                "Tower ready; no address to advertise: {why}"
            );
            format!("ready: tower {tower_id} serving on {api}, no address to advertise")
        }
    }
}

/// With `tor_support`: loads (or creates) the onion service key, binds the service's loopback
/// listener (its connections are rate limited one by one, see [`crate::tor`]) and publishes the
/// service through Tor's control port. A failure stops startup: the operator asked for Tor.
fn start_onion(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
) -> anyhow::Result<Option<(crate::tor::OnionService, ApiListener)>> {
    if !config.tor_support {
        return Ok(None);
    }
    let key_path = crate::tor::key_path(&config.network_dir());
    let (key, new) = crate::tor::load_or_create_key(&key_path)?;
    if new {
        tracing::info!("onion service key created in {}", key_path.display());
    }
    let loopback = std::net::Ipv4Addr::LOCALHOST;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((loopback, 0)))
        .context("cannot listen on 127.0.0.1 for the onion service")?;
    let target = listener.local_addr()?;
    let settings = crate::tor::OnionSettings {
        control: SocketAddr::from((loopback, config.tor_control_port)),
        port: config.onion_hidden_service_port,
        target,
    };
    let service = runtime
        .block_on(crate::tor::OnionService::start(key, settings))
        .context("cannot publish the onion service (tor_support)")?;
    tracing::info!(event = "onion_service", onion = %service.address(), target = %target, "onion service published");
    let listener = ApiListener {
        listener,
        clients: ClientKeying::PerConnection,
    };
    Ok(Some((service, listener)))
}

/// Lets in-flight HTTP requests and admin calls (e.g. the answer to `stop`) finish, bounded by
/// [`HTTP_DRAIN`] each.
pub(super) fn drain(runtime: &tokio::runtime::Runtime, servers: Servers) {
    runtime.block_on(async {
        match tokio::time::timeout(HTTP_DRAIN, servers.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("HTTP server: {e}"),
            Ok(Err(e)) => tracing::warn!("HTTP server task: {e}"),
            Err(_) => tracing::warn!("in-flight HTTP requests did not finish in {HTTP_DRAIN:?}"),
        }
        match tokio::time::timeout(HTTP_DRAIN, servers.admin).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("admin API: {e}"),
            Ok(Err(e)) => tracing::warn!("admin API task: {e}"),
            Err(_) => tracing::warn!("admin API calls did not finish in {HTTP_DRAIN:?}"),
        }
        if let Some((keep, _)) = servers.onion
            && tokio::time::timeout(HTTP_DRAIN, keep).await.is_err()
        {
            tracing::warn!("the onion service was not removed in {HTTP_DRAIN:?}");
        }
    });
}
