//! Other replicas' changes (cluster mode): for each car another replica announces a
//! change of (the store's [`VehicleChanges`]), drops this replica's cached lock state
//! and record of it; when announcements may have been lost, every cache.

use std::sync::Arc;

use futures_util::StreamExt;

use super::Fleet;
use crate::store::{VehicleChange, VehicleChanges};

/// Applies the changes other replicas announce to this replica's caches, until the
/// stream ends or the task is dropped.
pub async fn follow_changes(mut changes: VehicleChanges, fleet: Arc<Fleet>) {
    while let Some(change) = changes.next().await {
        match change {
            VehicleChange::Changed(id) => {
                fleet.invalidate_security(&id);
                fleet.invalidate_vehicle(&id);
            }
            VehicleChange::Missed => fleet.invalidate_all(),
        }
    }
}
