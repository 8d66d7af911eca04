//! Serving the API on a socket with a clean shutdown: on SIGINT/SIGTERM the listener
//! stops accepting, in-flight requests finish, and running commands get a grace
//! period to reach a final outcome (any still running stay `pending` in the store and
//! are resumed by the next start, or at once by another replica in cluster mode).
//! In cluster mode it also runs the replica's background work: taking over commands
//! of dead replicas, and following other replicas' change announcements.
//!
//! Requests are served per core by default (`http.workers`): each worker thread runs a
//! single-threaded event loop with its own `SO_REUSEPORT` listener on the same port, so
//! the kernel spreads connections over them and a request, the tasks it spawns and its
//! upstream exchange stay on one thread (no hand-off between threads per request).
//! Shared state (caches, single flight, quotas, breakers, the store) is the one
//! gateway's, behind `Arc`s. A worker's event loop lives until running commands are
//! drained, since the tasks it spawned run on it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::api;
use crate::gateway::Gateway;

/// How long shutdown waits for running commands.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// Resumes commands a previous process left pending, serves until `shutdown`
/// completes, then drains running commands.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match gateway.commands.resume().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(commands = n, "resumed pending commands"),
        Err(e) => tracing::error!(error = %e, "could not resume pending commands"),
    }
    let mut background = vec![
        tokio::spawn(crate::grants::run(gateway.grants.clone())),
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
        if let (Some(channel), Ok(crate::config::StoreUrl::Postgres(url))) =
            (gateway.store.change_channel(), gateway.config.store_url())
        {
            background.push(tokio::spawn(crate::vehicles::follow_changes(
                url.expose().to_string(),
                channel,
                gateway.fleet.clone(),
            )));
        }
    }
    let workers = gateway.config.http.worker_count();
    let app = api::app(gateway.clone());
    let (served, released) = requests(app, listener, workers, shutdown).await;
    for task in background {
        task.abort();
    }
    let left = gateway.commands.drain(DRAIN_GRACE).await;
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
    let (served, released) = requests(app, listener, workers, shutdown).await;
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (std::io::Result<()>, Option<Workers>) {
    if workers <= 1 {
        let served = axum::serve(listener.tap_io(no_delay), app)
            .with_graceful_shutdown(shutdown)
            .await;
        return (served, None);
    }
    match per_core(app, listener, workers, shutdown).await {
        Ok((served, release)) => (served, Some(release)),
        Err(e) => (Err(e), None),
    }
}

/// Binds `addr` for serving with `SO_REUSEPORT` (so each per-core worker can bind its
/// own listener on the same port; Linux lets only the same user share it).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// [`bind`] as a tokio listener of the current runtime.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::from_std(bind(addr)?)
}

/// Answers go out at once, not held back by Nagle's algorithm for the client's ACK
/// of the previous write (as nginx's `tcp_nodelay on`): an event stream writes small
/// pieces one after another.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
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

/// Serves on `workers` threads, each with a current-thread runtime and a listener of
/// its own: `first` and more bound with `SO_REUSEPORT` on its address (or, when `first`
/// was bound without it, copies of `first`, which the workers then share). Returns
/// when every worker has stopped serving after `shutdown`, with the workers still
/// alive for the drain.
async fn per_core(
    app: axum::Router,
    first: TcpListener,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(std::io::Result<()>, Workers)> {
    let addr = first.local_addr()?;
    let first = first.into_std()?;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        match bind(addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                tracing::warn!(error = %e, "per-core listeners: the workers share one socket");
                listeners.push(first.try_clone()?);
            }
        }
    }
    listeners.insert(0, first);
    // One router shared by the workers: the inbound limits it owns hold for the whole
    // process.
    let (stop, stopping) = watch::channel(false);
    let (release, released) = watch::channel(false);
    let mut served = Vec::with_capacity(workers);
    let mut exited = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (app, mut stopping, mut released) = (app.clone(), stopping.clone(), released.clone());
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
                            axum::serve(l.tap_io(no_delay), app)
                                .with_graceful_shutdown(async move {
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

    /// Per-core workers each bind the same port: a second listener on the first one's
    /// address binds and accepts, while a socket without `SO_REUSEPORT` is refused.
    #[tokio::test]
    async fn listeners_share_a_port_through_so_reuseport() {
        let first = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = listen(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        let refused = std::net::TcpListener::bind(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        second.accept().await.unwrap();
    }
}
