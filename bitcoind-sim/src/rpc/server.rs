//! The RPC listener: its own tokio runtime, one task per connection, the refuse fault, and a
//! graceful stop.
//!
//! In the manner of mini-redis's `server.rs`: the accept loop owns the listener; each connection
//! task watches a shutdown channel and, once it fires, finishes the request in flight (so the
//! answer to `stop` reaches its caller) and closes. A refusal closes the listener *and* aborts
//! open connections, so a client sees "connection refused" as with a dead bitcoind, then the
//! same address is bound again.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::RpcContext;
use super::http::router;

/// How long in-flight requests may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to bind the port again after a refusal, if it is busy.
const REBIND_RETRY: Duration = Duration::from_millis(100);

/// Serves JSON-RPC on `listener` until `shutdown` becomes `true` (or its sender is dropped).
/// Blocks the calling thread, which must not be inside a tokio runtime.
pub fn run(
    listener: std::net::TcpListener,
    ctx: Arc<RpcContext>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bitcoind-sim-rpc")
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(listener, ctx, shutdown));
    runtime.shutdown_timeout(DRAIN_TIMEOUT);
    result
}

/// `Some(until)` while a refusal is active.
fn refusing(refuse: &mut watch::Receiver<Option<Instant>>) -> Option<Instant> {
    refuse
        .borrow_and_update()
        .filter(|until| *until > Instant::now())
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: treat it as a shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve(
    listener: std::net::TcpListener,
    ctx: Arc<RpcContext>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let mut listener = Some(TcpListener::from_std(listener)?);
    let app = router(ctx.clone());
    let mut refuse = ctx.faults.watch_refuse();
    let mut connections = JoinSet::new();
    let (close_connections, connection_shutdown) = watch::channel(false);
    loop {
        if let Some(until) = refusing(&mut refuse) {
            if listener.take().is_some() {
                tracing::info!(%address, "refusing RPC connections (fault)");
            }
            connections.abort_all();
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = refuse.changed() => {}
            }
            continue;
        }
        let Some(active) = listener.as_ref() else {
            match rebind(address) {
                Ok(bound) => {
                    tracing::info!(%address, "accepting RPC connections again");
                    listener = Some(bound);
                }
                Err(e) => {
                    tracing::warn!(%address, error = %e, "cannot bind the RPC port again; retrying");
                    tokio::select! {
                        _ = stopped(&mut shutdown) => break,
                        _ = tokio::time::sleep(REBIND_RETRY) => {}
                    }
                }
            }
            continue;
        };
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = refuse.changed() => {}
            accepted = active.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone(), connection_shutdown.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "RPC accept failed"),
            },
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    close_connections.send_replace(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("RPC connections still open after {DRAIN_TIMEOUT:?}; closing them");
        connections.abort_all();
    }
    Ok(())
}

fn rebind(address: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn serve_connection(stream: TcpStream, app: Router, mut shutdown: watch::Receiver<bool>) {
    let service = TowerToHyperService::new(app);
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "RPC connection ended with an error");
            }
        }
        _ = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::{Condvar, Mutex};

    use base64::Engine;

    use super::*;
    use crate::Simulator;
    use crate::faults::Faults;
    use crate::node::{Node, NodeConfig};
    use crate::rpc::auth::Credentials;

    /// Lets each `getblock` call wait, bounded, until two are running at once.
    #[derive(Default)]
    struct Gate {
        running: Mutex<usize>,
        changed: Condvar,
        /// Per call: whether it saw the other one running before its deadline.
        met: Mutex<Vec<bool>>,
    }

    impl Gate {
        fn meet(&self, timeout: Duration) {
            let mut running = self.running.lock().unwrap();
            *running += 1;
            self.changed.notify_all();
            let (running, _) = self
                .changed
                .wait_timeout_while(running, timeout, |r| *r < 2)
                .unwrap();
            let met = *running >= 2;
            drop(running);
            self.met.lock().unwrap().push(met);
        }
    }

    fn getblock_over_http(port: u16, hash: &bitcoin::BlockHash) -> String {
        let body =
            format!(r#"{{"jsonrpc":"1.0","id":1,"method":"getblock","params":["{hash}",0]}}"#);
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Two `getblock` calls on two connections are in flight at once: each waits in the gate
    /// until the other has entered too. Were requests run one at a time, the first would reach
    /// its deadline alone and record `false`.
    #[test]
    fn getblock_calls_on_two_connections_run_at_the_same_time() {
        let dir = tempfile::tempdir().unwrap();
        let node = Arc::new(
            Node::open(NodeConfig {
                datadir: dir.path().into(),
                txindex: false,
                persist_mempool: false,
            })
            .unwrap(),
        );
        let script = Simulator::mining_address().script_pubkey();
        let hash = node.generate_to_script(1, &script).unwrap()[0];
        let gate = Arc::new(Gate::default());
        let hook_gate = gate.clone();
        let ctx = Arc::new(RpcContext {
            node,
            faults: Arc::new(Faults::new()),
            credentials: Credentials::new("__cookie__:00".into(), Some(("u".into(), "p".into()))),
            started: Instant::now(),
            warmup: Duration::ZERO,
            zmq: Vec::new(),
            on_stop: Box::new(|| {}),
            before_method: Some(Box::new(move |request| {
                if request.method == "getblock" {
                    hook_gate.meet(Duration::from_secs(20));
                }
            })),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stop_rx) = watch::channel(false);
        let server = std::thread::spawn(move || run(listener, ctx, stop_rx));

        let clients: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || getblock_over_http(port, &hash)))
            .collect();
        for client in clients {
            let answer = client.join().unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
            assert!(answer.contains("\"result\":\"0000"), "{answer:.400}");
        }
        assert_eq!(*gate.met.lock().unwrap(), [true, true]);

        stop.send_replace(true);
        server.join().unwrap().unwrap();
    }
}
