//! Where bitcoind's ZMQ notifications are published: configured (`btc_zmq_hashblock`,
//! `btc_zmq_sequence`), else discovered with `getzmqnotifications` (Bitcoin Core's `-zmqpub<topic>`
//! options); a wildcard or loopback host is replaced by the RPC host, since that is where bitcoind is.

use crate::bitcoind::BitcoindRpc;
use crate::config::Config;

/// The `hashblock` endpoint the chain monitor subscribes to; `None` (polling only, warned) when it is
/// neither configured nor published.
pub(super) fn hashblock_endpoint(rpc: &impl BitcoindRpc, config: &Config) -> Option<String> {
    if let Some(endpoint) = &config.btc_zmq_hashblock {
        return Some(endpoint.clone());
    }
    let found = discover(rpc, "pubhashblock", &config.btc_rpc_connect);
    if found.is_none() {
        tracing::warn!(
            "bitcoind publishes no hashblock notifications (-zmqpubhashblock); polling every {} s only",
            config.polling_delta
        );
    }
    found
}

/// The `sequence` endpoint the mempool watcher subscribes to; `None` when it is neither configured
/// nor published (the watcher then reads the mempool periodically and says so).
pub(super) fn sequence_endpoint(rpc: &impl BitcoindRpc, config: &Config) -> Option<String> {
    if let Some(endpoint) = &config.btc_zmq_sequence {
        return Some(endpoint.clone());
    }
    discover(rpc, "pubsequence", &config.btc_rpc_connect)
}

/// The endpoint of bitcoind's ZMQ notification `kind` (e.g. `pubsequence`) from
/// `getzmqnotifications`, its host mapped as [`map_host`] says; `None` when bitcoind does not
/// publish it or cannot tell.
fn discover(rpc: &impl BitcoindRpc, kind: &str, rpc_host: &str) -> Option<String> {
    let notifications = match rpc.zmq_notifications() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot discover bitcoind's ZMQ endpoints ({e})");
            return None;
        }
    };
    let found = notifications.into_iter().find(|n| n.kind == kind)?;
    Some(map_host(&found.address, rpc_host))
}

/// `address` with a wildcard or loopback host replaced by `rpc_host` (bitcoind binds
/// `tcp://0.0.0.0:28332`; the tower must dial the host it reaches bitcoind's RPC on).
fn map_host(address: &str, rpc_host: &str) -> String {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.to_owned();
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return address.to_owned();
    };
    let local = matches!(
        host,
        "0.0.0.0" | "*" | "127.0.0.1" | "localhost" | "[::]" | "[::1]" | "::"
    );
    if local && !rpc_host.is_empty() {
        format!("{scheme}://{rpc_host}:{port}")
    } else {
        address.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_loopback_zmq_hosts_map_to_the_rpc_host() {
        assert_eq!(
            map_host("tcp://0.0.0.0:28332", "10.0.0.5"),
            "tcp://10.0.0.5:28332"
        );
        assert_eq!(
            map_host("tcp://127.0.0.1:28332", "127.0.0.1"),
            "tcp://127.0.0.1:28332"
        );
        assert_eq!(
            map_host("tcp://192.168.1.2:28332", "10.0.0.5"),
            "tcp://192.168.1.2:28332"
        );
    }
}
