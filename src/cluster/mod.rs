//! Cluster mode: what lets several keyway replicas on one PostgreSQL (and optionally
//! one Redis) behave as one gateway. This module holds the replica's identity and
//! lease settings, lease renewal, and the Redis-backed limits ([`limits`], over
//! [`redis`]). The background work every replica runs lives with what it serves:
//! taking over commands whose replica died in `commands::sweep`, dropping cached car
//! state when another replica announces a change in `vehicles::follow_changes`.
//!
//! The rules themselves live where the work is: leases for token refresh in
//! `tokens`, command leases and per-car leases in `commands`, quotas in
//! `upstream::quota`, caller limits in `api::limits`.

pub mod limits;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{Lease, LeaseStore};

/// This replica's place in the cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The gateway's clock (leases run by it).
    pub clock: Clock,
    /// This process's id (holder of its leases), new each start.
    pub replica: String,
    /// How long a lease lasts unless renewed (renewed every third of it).
    pub lease: Duration,
    /// How often to look for commands whose lease lapsed.
    pub sweep: Duration,
    /// Whether several processes share the store (leases are needed at all).
    pub shared: bool,
    /// Cluster-wide limits, when Redis is configured.
    pub limits: Option<Arc<limits::SharedLimits>>,
}

impl Cluster {
    /// A lease held by this replica from now on.
    pub fn lease(&self) -> Lease {
        Lease {
            holder: self.replica.clone(),
            until: self.clock.now() + self.lease,
        }
    }
}

/// Runs `renew` every third of the lease until it answers false (the lease is gone) or
/// the returned task is aborted. `what` names the lease in logs.
pub fn renewing<F, Fut>(
    cluster: &Arc<Cluster>,
    what: String,
    renew: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Lease) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, crate::store::StoreError>> + Send,
{
    let cluster = cluster.clone();
    tokio::spawn(async move {
        loop {
            cluster.clock.sleep(cluster.lease / 3).await;
            match renew(cluster.lease()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(lease = %what, "lease taken by another replica");
                    return;
                }
                Err(e) => tracing::warn!(lease = %what, error = %e, "could not renew a lease"),
            }
        }
    })
}

/// Releases a lease when dropped, and keeps it renewed until then.
pub struct Held {
    renew: tokio::task::JoinHandle<()>,
    release: Option<(Arc<dyn LeaseStore>, String, String)>,
}

impl Held {
    /// Keeps `name` (already taken) renewed every third of the lease until dropped.
    pub fn keep(store: Arc<dyn LeaseStore>, cluster: &Arc<Cluster>, name: String) -> Self {
        let (s, n) = (store.clone(), name.clone());
        let renew = renewing(cluster, name.clone(), move |lease| {
            let (s, n) = (s.clone(), n.clone());
            async move { s.try_lease(&n, &lease).await }
        });
        Self {
            renew,
            release: Some((store, name, cluster.replica.clone())),
        }
    }

    /// Takes `name`, waiting (10 ms, doubling to 100 ms between tries) while another
    /// replica holds it, then keeps it as [`Held::keep`] does.
    pub async fn take(store: Arc<dyn LeaseStore>, cluster: &Arc<Cluster>, name: String) -> Self {
        let mut backoff =
            crate::clock::Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        loop {
            match store.try_lease(&name, &cluster.lease()).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %name, error = %e, "could not take a lease"),
            }
            backoff.wait().await;
        }
        Self::keep(store, cluster, name)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renew.abort();
        // Outside a runtime (it is shutting down) the lease simply lapses.
        if let (Some((store, name, holder)), Ok(rt)) =
            (self.release.take(), tokio::runtime::Handle::try_current())
        {
            rt.spawn(async move {
                let _ = store.release_lease(&name, &holder).await;
            });
        }
    }
}
