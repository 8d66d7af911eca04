//! Serving the API on a socket with a clean shutdown: on SIGINT/SIGTERM the listener
//! stops accepting, in-flight requests finish, and running commands get a grace
//! period to reach a final outcome (any still running stay `pending` in the store and
//! are resumed by the next start, or at once by another replica in cluster mode).
//! In cluster mode it also runs the replica's background work: taking over commands
//! of dead replicas, and following other replicas' change announcements.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

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
                url,
                channel,
                gateway.fleet.clone(),
            )));
        }
    }
    let served = axum::serve(listener, api::app(gateway.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    for task in background {
        task.abort();
    }
    served?;
    let left = gateway.commands.drain(DRAIN_GRACE).await;
    if left > 0 {
        tracing::warn!(
            commands = left,
            "shutting down with commands still running; they resume at next start"
        );
    }
    Ok(())
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
