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
use std::time::Duration;

use keyway_adapter::{Location, SecurityState};
use tokio::time::Instant;

use super::{Fleet, Linked, RECORD_KEPT, Source, VehicleError};
use crate::auth::Caller;
use crate::store::{VehicleId, VehicleRecord};

/// A car a caller reached: the vehicle (its first-linked record) and, when it has
/// several, all its records.
#[derive(Clone, Debug)]
pub struct Car {
    /// The vehicle.
    pub vehicle: Arc<VehicleRecord>,
    linked: Option<Linked>,
}

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
    /// The vehicle, if the caller may touch it: one of its tenant's (another tenant's
    /// vehicle answers `vehicle_not_found`, exactly like one that does not exist). A
    /// restricted token asking for a vehicle outside its list gets `forbidden` whether
    /// or not the vehicle exists.
    pub async fn find(
        &self,
        caller: &Caller,
        id: &VehicleId,
    ) -> Result<Arc<VehicleRecord>, VehicleError> {
        self.find_car(caller, id).await.map(|car| car.vehicle)
    }

    /// [`Fleet::find`], with the car's routes for a read through them.
    pub async fn find_car(&self, caller: &Caller, id: &VehicleId) -> Result<Car, VehicleError> {
        caller.require_vehicle(id)?;
        // One record per car, answered only to its own tenant.
        let v = self
            .record(id)
            .await?
            .filter(|v| v.tenant == caller.tenant)
            .ok_or_else(|| VehicleError::NotFound(id.to_string()))?;
        // A record that is another route of a car stands for the car: reads, commands
        // and grants all go to the car, whose commands take one route only.
        self.car(v).await
    }

    /// Every record of the car `v` is one of (the same tenant's, with the same VIN),
    /// first-linked first; `None` when `v` is the car's only record (most cars: then
    /// nothing is built). Kept like records, by the record's id.
    async fn linked(&self, v: &Arc<VehicleRecord>) -> Result<Option<Linked>, VehicleError> {
        let Some(vin) = &v.vin else {
            return Ok(None);
        };
        if let Some((read_at, linked)) = self.routes.get(v.id.as_str())
            && read_at.elapsed() <= RECORD_KEPT
        {
            return Ok(linked);
        }
        let all = self.store.routes(&v.tenant, vin).await?;
        let linked: Option<Linked> =
            (all.len() > 1).then(|| all.into_iter().map(Arc::new).collect());
        self.routes
            .insert(v.id.to_string(), (Instant::now(), linked.clone()));
        Ok(linked)
    }

    /// The car `v` is a record of: its first-linked record (the vehicle callers see, and
    /// the route its commands go through) — `v` itself unless it is another route — with
    /// its records.
    pub async fn car(&self, v: Arc<VehicleRecord>) -> Result<Car, VehicleError> {
        let linked = self.linked(&v).await?;
        let first = match &linked {
            Some(linked) if linked[0].id != v.id => linked[0].id.clone(),
            _ => return Ok(Car { vehicle: v, linked }),
        };
        // The record itself, as fresh as the record cache keeps it (a confirmed
        // command's state included), not the copy kept with the routes.
        let vehicle = self.record(&first).await?.unwrap_or(v);
        Ok(Car { vehicle, linked })
    }

    /// The car's routes in the order reads try them: the tenant's preferred OEMs first,
    /// in its order; the rest after them, the vehicle's own record first, then its other
    /// records in the order they were linked.
    pub fn read_order(&self, car: &Car) -> Vec<Arc<VehicleRecord>> {
        let v = &car.vehicle;
        let mut routes = vec![v.clone()];
        if let Some(linked) = &car.linked {
            routes.extend(linked.iter().filter(|r| r.id != v.id).cloned());
        }
        let order = self.prefer.order(&v.tenant);
        routes.sort_by_key(|r| {
            order
                .iter()
                .position(|o| *o == r.oem)
                .unwrap_or(order.len())
        });
        routes
    }

    /// A read of the car through its routes, in [`Fleet::read_order`]: the first that
    /// answers serves it; one whose route fails gives way to the next. With one route,
    /// just the read.
    pub async fn routed<T, F, Fut>(&self, car: &Car, read: F) -> Result<Routed<T>, VehicleError>
    where
        F: Fn(Arc<VehicleRecord>) -> Fut,
        Fut: Future<Output = Result<T, VehicleError>>,
    {
        let v = &car.vehicle;
        // One route (most cars): just the read.
        if car.linked.is_none() {
            let value = read(v.clone()).await?;
            return Ok(Routed {
                value,
                route: v.clone(),
            });
        }
        let mut failed = None;
        for route in self.read_order(car) {
            match read(route.clone()).await {
                Ok(value) => return Ok(Routed { value, route }),
                Err(e) if route_failed(&e) => {
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
        car: &Car,
        max_age: Option<Duration>,
    ) -> Result<Routed<(Location, Source)>, VehicleError> {
        self.routed(
            car,
            |route| async move { self.position(&route, max_age).await },
        )
        .await
    }

    /// [`Fleet::security`] through the car's routes.
    pub async fn security_routed(
        &self,
        car: &Car,
        max_age: Option<Duration>,
    ) -> Result<Routed<(SecurityState, Source)>, VehicleError> {
        let v = &car.vehicle;
        self.routed(car, |route| async move {
            self.security_via(v, &route, max_age).await
        })
        .await
    }
}
