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
