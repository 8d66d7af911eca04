//! One car, several routes. A car linked through several accounts — directly at its
//! make and through an aggregator (Smartcar), say — is one vehicle: the store finds its
//! records by tenant and VIN, the first-linked one is the vehicle callers see, and each
//! record is a route to the car. Reads try the routes in the tenant's preferred OEM order
//! (`[routes]`; by default the first-linked route first, the others in link order) and
//! fall back to the next route when one fails — its OEM down or not enabled, its account
//! needing a relink, its breaker open — and the answer names the route that served.
//! Commands never switch: they go through the first-linked route only, so a command whose
//! answer was lost is never sent again through another route.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use std::time::Duration;

use keyway_adapter::{Location, SecurityState};

use super::{Fleet, Linked, RECORD_KEPT, Source, VehicleError};
use crate::store::VehicleRecord;

/// A reading and the route it came through.
#[derive(Debug)]
pub struct Routed<T> {
    /// The reading.
    pub value: T,
    /// The record it was read through.
    pub route: Arc<VehicleRecord>,
}

/// Whether a read's failure is its route's, so another route may answer: the OEM not
/// enabled or not able to, or the OEM (or keyway's token for the account) failing.
fn route_failed(e: &VehicleError) -> bool {
    matches!(
        e,
        VehicleError::NotEnabled(_) | VehicleError::NotCapable { .. } | VehicleError::Token(_)
    )
}

impl Fleet {
    /// Every record of the car `v` is one of (the same tenant's, with the same VIN), the
    /// first-linked first; kept like records.
    async fn linked(&self, v: &Arc<VehicleRecord>) -> Result<Linked, VehicleError> {
        let Some(vin) = &v.vin else {
            return Ok(Arc::from([v.clone()]));
        };
        let key = format!("{}\u{0}{vin}", v.tenant);
        if let Some((read_at, linked)) = self.routes.get(&key)
            && read_at.elapsed() <= RECORD_KEPT
        {
            return Ok(linked);
        }
        let mut linked: Vec<Arc<VehicleRecord>> = self
            .store
            .routes(&v.tenant, vin)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        if linked.is_empty() {
            linked.push(v.clone());
        }
        let linked: Linked = linked.into();
        self.routes.insert(key, (Instant::now(), linked.clone()));
        Ok(linked)
    }

    /// The car `v` is a record of: its first-linked record (the vehicle callers see, and
    /// the route its commands go through); `v` itself unless it is another route.
    pub async fn car(&self, v: Arc<VehicleRecord>) -> Result<Arc<VehicleRecord>, VehicleError> {
        let first = self.linked(&v).await?.first().map(|f| f.id.clone());
        match first {
            // The record itself, as fresh as the record cache keeps it (a confirmed
            // command's state included), not the copy kept with the routes.
            Some(id) if id != v.id => Ok(self.record(&id).await?.unwrap_or(v)),
            _ => Ok(v),
        }
    }

    /// The car's routes: the vehicle's own record first, then its other records in the
    /// order they were linked.
    pub async fn routes(
        &self,
        v: &Arc<VehicleRecord>,
    ) -> Result<Vec<Arc<VehicleRecord>>, VehicleError> {
        let mut routes = vec![v.clone()];
        let linked = self.linked(v).await?;
        routes.extend(linked.iter().filter(|r| r.id != v.id).cloned());
        Ok(routes)
    }

    /// The routes in the order reads try them: the tenant's preferred OEMs first, in its
    /// order, the rest after them as [`Fleet::routes`] gives them.
    pub fn read_order(
        &self,
        tenant: &str,
        routes: &[Arc<VehicleRecord>],
    ) -> Vec<Arc<VehicleRecord>> {
        let order = self.prefer.order(tenant);
        let rank = |r: &Arc<VehicleRecord>| {
            order
                .iter()
                .position(|o| *o == r.oem)
                .unwrap_or(order.len())
        };
        let mut ordered = routes.to_vec();
        ordered.sort_by_key(rank);
        ordered
    }

    /// A read of the car through its routes, in [`Fleet::read_order`]: the first that
    /// answers serves it; one whose route fails gives way to the next. With one route,
    /// just the read.
    pub async fn routed<T, F, Fut>(
        &self,
        v: &Arc<VehicleRecord>,
        read: F,
    ) -> Result<Routed<T>, VehicleError>
    where
        F: Fn(Arc<VehicleRecord>) -> Fut,
        Fut: Future<Output = Result<T, VehicleError>>,
    {
        let routes = self.routes(v).await?;
        let mut failed = None;
        for route in self.read_order(&v.tenant, &routes) {
            match read(route.clone()).await {
                Ok(value) => return Ok(Routed { value, route }),
                Err(e) if route_failed(&e) && routes.len() > 1 => {
                    tracing::info!(vehicle = %v.id, route = %route.oem, error = %e,
                        "a route failed this read; the next one is tried");
                    failed.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(failed.unwrap_or(VehicleError::Internal("a car without routes")))
    }

    /// [`Fleet::position`] through the car's routes.
    pub async fn position_routed(
        &self,
        v: &Arc<VehicleRecord>,
        max_age: Option<Duration>,
    ) -> Result<Routed<(Location, Source)>, VehicleError> {
        self.routed(
            v,
            |route| async move { self.position(&route, max_age).await },
        )
        .await
    }

    /// [`Fleet::security`] through the car's routes.
    pub async fn security_routed(
        &self,
        v: &Arc<VehicleRecord>,
        max_age: Option<Duration>,
    ) -> Result<Routed<(SecurityState, Source)>, VehicleError> {
        self.routed(v, |route| async move {
            self.security_via(v, &route, max_age).await
        })
        .await
    }
}
