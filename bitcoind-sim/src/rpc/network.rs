//! Node and network information and control (Core's `src/rpc/net.cpp`, `server.cpp`,
//! `zmq/zmqrpc.cpp`): getnetworkinfo, getzmqnotifications, uptime, stop.

use serde::Serialize;

use super::RpcContext;
use super::envelope::Json;
use super::error::RpcError;
use super::params::Args;
use crate::zmq_pub::DEFAULT_HWM;

/// The Core version the simulator reports (`getnetworkinfo.version`): v31.0.0.
pub const VERSION: u32 = 310_000;
/// `getnetworkinfo.subversion`: Core's user agent with the simulator as a comment.
pub const SUBVERSION: &str = "/Satoshi:31.0.0(bitcoind-sim)/";

#[derive(Serialize)]
struct InvBucket {
    backlog: u64,
    count_tok: u64,
    size_tok: u64,
}

#[derive(Serialize)]
struct InvBuckets {
    inbound: InvBucket,
    outbound: InvBucket,
}

#[derive(Serialize)]
struct NetworkJson {
    name: &'static str,
    limited: bool,
    reachable: bool,
    proxy: &'static str,
    proxy_randomize_credentials: bool,
}

#[derive(Serialize)]
struct NetworkInfo {
    version: u32,
    subversion: &'static str,
    protocolversion: u32,
    localservices: &'static str,
    localservicesnames: [&'static str; 4],
    localrelay: bool,
    timeoffset: i64,
    tx_send_rate: u64,
    inv_buckets: InvBuckets,
    networkactive: bool,
    connections: u32,
    connections_in: u32,
    connections_out: u32,
    networks: Vec<NetworkJson>,
    relayfee: f64,
    incrementalfee: f64,
    localaddresses: [(); 0],
    warnings: [&'static str; 0],
}

fn bucket() -> InvBucket {
    InvBucket {
        backlog: 0,
        count_tok: 420,
        size_tok: 12_000_000,
    }
}

fn network(name: &'static str, reachable: bool) -> NetworkJson {
    NetworkJson {
        name,
        limited: !reachable,
        reachable,
        proxy: "",
        proxy_randomize_credentials: false,
    }
}

/// `getnetworkinfo` (transcript entry 2): a node with no peers (the simulator has no P2P).
pub fn getnetworkinfo(_: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    Ok(Json::of(&NetworkInfo {
        version: VERSION,
        subversion: SUBVERSION,
        protocolversion: 70017,
        localservices: "0000000000000c09",
        localservicesnames: ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"],
        localrelay: true,
        timeoffset: 0,
        tx_send_rate: 14,
        inv_buckets: InvBuckets {
            inbound: bucket(),
            outbound: bucket(),
        },
        networkactive: true,
        connections: 0,
        connections_in: 0,
        connections_out: 0,
        networks: vec![
            network("ipv4", true),
            network("ipv6", true),
            network("onion", false),
            network("i2p", false),
            network("cjdns", false),
        ],
        relayfee: 0.000_001,
        incrementalfee: 0.000_001,
        localaddresses: [],
        warnings: [],
    }))
}

#[derive(Serialize)]
struct Notification {
    #[serde(rename = "type")]
    kind: String,
    address: String,
    hwm: i32,
}

/// `getzmqnotifications` (transcript entry 5): `{"type":"pubhashblock","address":..,"hwm":1000}`
/// per published topic, in Core's order; `[]` when ZMQ is off.
pub fn getzmqnotifications(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    let mut endpoints = ctx.zmq.clone();
    endpoints.sort_by_key(|e| e.topic);
    let list: Vec<Notification> = endpoints
        .into_iter()
        .map(|e| Notification {
            kind: format!("pub{}", e.topic.name()),
            address: e.address,
            hwm: DEFAULT_HWM,
        })
        .collect();
    Ok(Json::of(&list))
}

/// `uptime`: seconds since this instance started.
pub fn uptime(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    Ok(Json::of(&ctx.started.elapsed().as_secs()))
}

/// `stop`: answers "Bitcoin Core stopping", then the instance shuts down gracefully (the answer
/// is delivered first: connections finish their request in flight).
pub fn stop(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    tracing::info!("stop requested over RPC");
    (ctx.on_stop)();
    Ok(Json::of("Bitcoin Core stopping"))
}
