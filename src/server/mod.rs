//! Serving the API on a socket with a clean shutdown: on SIGINT/SIGTERM the listener
//! stops accepting, in-flight requests finish, and running commands get a grace
//! period to reach a final outcome (any still running stay `pending` in the store and
//! are resumed by the next start, or at once by another replica in cluster mode).
//! In cluster mode it also runs the replica's background work: taking over commands
//! of dead replicas, and following other replicas' change announcements.
//!
//! Requests are served per core by default (`http.workers`): each worker thread runs a
//! single-threaded event loop accepting on the one listening socket, so a request, the
//! tasks it spawns and its upstream exchange stay on one thread (no hand-off between
//! threads per request). The socket is bound without `SO_REUSEPORT`: another process
//! cannot bind the gateway's port beside it, and a second `keyway serve` on the same
//! port fails with "address in use". Connections are served under the budgets of
//! [`conns`] (header timeout, connection cap).
//! Shared state (caches, single flight, quotas, breakers, the store) is the one
//! gateway's, behind `Arc`s. A worker's event loop lives until running commands are
//! drained, since the tasks it spawned run on it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::api;
use crate::gateway::Gateway;

pub mod conns;

use conns::{Budget, Conns};

/// How long shutdown takes at most: requests in progress get [`conns::HTTP_GRACE`],
/// running commands the rest; then this replica's leases are given up.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// Resumes commands a previous process left pending, serves until `shutdown`
/// completes, then drains running commands.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match gateway.commands.resume_retrying().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(commands = n, "resumed pending commands"),
        // Logged, and tried again in the background.
        Err(_) => {}
    }
    let mut background = vec![
        tokio::spawn(crate::grants::run(gateway.grants.clone())),
        tokio::spawn(crate::watch::run(gateway.watches.clone())),
        tokio::spawn(crate::events::webhooks::run(
            gateway.webhooks.clone(),
            gateway.events.deliveries.clone(),
        )),
    ];
    if gateway.cluster.shared {
        tracing::info!(replica = %gateway.cluster.replica, "cluster mode: sharing the store with other replicas");
        background.push(tokio::spawn(crate::commands::sweep(
            gateway.cluster.clone(),
            gateway.commands.clone(),
        )));
        if let Some(changes) = gateway.store.vehicle_changes() {
            background.push(tokio::spawn(crate::vehicles::follow_changes(
                changes,
                gateway.fleet.clone(),
            )));
        }
    }
    let workers = gateway.config.http.worker_count();
    conns::raise_open_files();
    let budget = Budget::from_config(&gateway.config.http);
    tracing::info!(
        max_connections = budget.max_connections,
        header_timeout_ms = budget.header_timeout.as_millis() as u64,
        "connection budgets"
    );
    let app = api::app(gateway.clone());
    let (served, released) = requests(app, listener, workers, budget, shutdown).await;
    for task in background {
        task.abort();
    }
    let left = gateway
        .commands
        .drain(DRAIN_GRACE.saturating_sub(conns::HTTP_GRACE))
        .await;
    if left > 0 {
        tracing::warn!(
            commands = left,
            "shutting down with commands still running; they resume at next start"
        );
    }
    if let Some(workers) = released {
        workers.release().await;
    }
    served
}

/// Serves `app` alone (no background work, no drain) on `workers` threads as
/// [`serve`] serves the API: a benchmark serves one gateway in two modes side by side,
/// and the bare HTTP stack (a router answering from memory) as the floor beside them.
pub async fn serve_http(
    app: axum::Router,
    listener: TcpListener,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let budget = Budget::from_config(&crate::config::HttpConfig::default());
    let (served, released) = requests(app, listener, workers, budget, shutdown).await;
    if let Some(workers) = released {
        workers.release().await;
    }
    served
}

/// Serves requests until `shutdown`: on the ambient runtime when `workers` is 1 or
/// less, else per core — then with the workers still alive, to be released.
async fn requests(
    app: axum::Router,
    listener: TcpListener,
    workers: usize,
    budget: Budget,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (std::io::Result<()>, Option<Workers>) {
    let conns = Conns::new(budget);
    if workers <= 1 {
        return (conns::serve(listener, app, conns, shutdown).await, None);
    }
    match per_core(app, listener, workers, conns, shutdown).await {
        Ok((served, release)) => (served, Some(release)),
        Err(e) => (Err(e), None),
    }
}

/// Binds `addr` for serving (`SO_REUSEADDR`, not `SO_REUSEPORT`: the port is this
/// process's alone).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// [`bind`] as a tokio listener of the current runtime.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::from_std(bind(addr)?)
}

/// The running workers: each keeps its event loop until released.
struct Workers {
    release: watch::Sender<bool>,
    exited: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Lets every worker's event loop end (after the drain) and waits for it.
    async fn release(self) {
        let _ = self.release.send(true);
        for exited in self.exited {
            let _ = exited.await;
        }
    }
}

/// Serves on `workers` threads, each with a current-thread runtime accepting on a copy
/// of `first` (one socket: the kernel hands each connection to one waiting worker).
/// Connections count against one cap for the whole process. Returns when every worker
/// has stopped serving after `shutdown`, with the workers still alive for the drain.
async fn per_core(
    app: axum::Router,
    first: TcpListener,
    workers: usize,
    conns: Arc<Conns>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(std::io::Result<()>, Workers)> {
    let addr = first.local_addr()?;
    let first = first.into_std()?;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        listeners.push(first.try_clone()?);
    }
    listeners.insert(0, first);
    // One router shared by the workers: the inbound limits it owns hold for the whole
    // process.
    let (stop, stopping) = watch::channel(false);
    let (release, released) = watch::channel(false);
    let mut served = Vec::with_capacity(workers);
    let mut exited = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (app, conns) = (app.clone(), conns.clone());
        let (mut stopping, mut released) = (stopping.clone(), released.clone());
        let (served_tx, served_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("keyway-worker-{i}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = served_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    keyway_adapter::transport::set_worker(i);
                    let result = match TcpListener::from_std(listener) {
                        Ok(l) => {
                            conns::serve(l, app, conns, async move {
                                let _ = stopping.wait_for(|s| *s).await;
                            })
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    let _ = served_tx.send(result);
                    let _ = released.wait_for(|r| *r).await;
                });
                let _ = exit_tx.send(());
            })?;
        served.push(served_rx);
        exited.push(exit_rx);
    }
    tracing::info!(workers, %addr, "serving per core");
    shutdown.await;
    let _ = stop.send(true);
    let mut result = Ok(());
    for s in served {
        if let Ok(Err(e)) = s.await {
            result = Err(e);
        }
    }
    Ok((result, Workers { release, exited }))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port is this process's alone: a second listener on the same address (another
    /// process of the same user, a second `keyway serve`) is refused.
    #[tokio::test]
    async fn a_second_listener_on_the_port_is_refused() {
        let first = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let refused = listen(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse);
        let reuse_port = {
            use socket2::{Domain, Socket, Type};
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_reuse_port(true).unwrap();
            s.bind(&addr.into())
        };
        assert!(reuse_port.is_err(), "SO_REUSEPORT does not share the port");
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        first.accept().await.unwrap();
    }
}
