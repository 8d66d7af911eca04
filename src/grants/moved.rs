//! A grant's car that leaves the grant's geofence while the grant is in use:
//! `grant.vehicle_moved`, once per departure. The watcher reads the car during every
//! grant in use and tells [`Grants::vehicle_moved`] of each move it emits. Unlocks stay
//! refused while the car is outside, as before: every unlock reads the position fresh.

use super::view::{GrantStatus, status};
use super::{Grants, distance_m};
use crate::events::Kind;
use crate::store::VehicleRecord;

impl Grants {
    /// The grants on `v` (none, with a warning, when the store cannot say: the watcher's
    /// hooks then leave it to the next reading).
    pub(super) async fn car_grants(&self, v: &VehicleRecord) -> Vec<crate::store::GrantRecord> {
        self.store
            .grants_for_vehicle(&v.tenant, &v.id)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(vehicle = %v.id, error = %e, "could not read the car's grants");
                Vec::new()
            })
    }

    /// `v` moved from `from` to `to` (latitude, longitude): each grant in use on it whose
    /// geofence the car has just left emits `grant.vehicle_moved`.
    pub async fn vehicle_moved(&self, v: &VehicleRecord, from: (f64, f64), to: (f64, f64)) {
        let grants = self.car_grants(v).await;
        let now = self.clock.now();
        for g in &grants {
            let in_use = matches!(status(g, now), GrantStatus::Active | GrantStatus::Exhausted);
            let Some(f) = g.geofence.filter(|_| in_use) else {
                continue;
            };
            let inside = |p: (f64, f64)| distance_m((f.latitude, f.longitude), p) <= f.radius_m;
            if inside(from) && !inside(to) {
                tracing::warn!(grant = %g.id, vehicle = %v.id, "the grant's car left its geofence");
                self.event(Kind::GrantVehicleMoved, g, None).await;
            }
        }
    }
}
