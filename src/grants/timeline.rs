//! A grant's timeline: everything that happened to one delivery, in order, for the
//! delivery app's notifications — the grant's own events (created, unlocked, moved,
//! completed, relocked …), the commands sent for it (those whose `reference` is the
//! grant: the courier's unlocks and keyway's relocks) and each change of its car while
//! the grant was in use (`vehicle.state_changed`, from its window's start until its
//! relock was confirmed or given up, or until it ended without an unlock).

use time::OffsetDateTime;

use super::{GrantError, Grants, Role};
use crate::auth::Caller;
use crate::events::Kind;
use crate::store::{EventRecord, GrantRecord, RelockState};

/// The most events one timeline holds (a delivery has a few dozen).
const MOST: u32 = 10_000;

/// When the grant stopped being in use, if it has: its relock settled, or it ended
/// (revoked, completed, expired) with nothing to relock.
fn ended(g: &GrantRecord, now: OffsetDateTime) -> Option<OffsetDateTime> {
    match g.relock_state {
        RelockState::Locked | RelockState::Failed => Some(g.relocked_at.unwrap_or(g.updated_at)),
        RelockState::Due | RelockState::Watching => None,
        RelockState::None => [
            g.revoked_at,
            g.completed_at,
            (now >= g.not_after).then_some(g.not_after),
        ]
        .into_iter()
        .flatten()
        .min(),
    }
}

/// Whether `e` belongs to the timeline of `g`, which stopped being in use at `end`.
fn belongs(e: &EventRecord, g: &GrantRecord, end: Option<OffsetDateTime>) -> bool {
    if e.grant_id.as_deref() == Some(g.id.as_str()) {
        return true;
    }
    if e.kind == Kind::VehicleStateChanged {
        return e.created_at >= g.not_before && end.is_none_or(|end| e.created_at <= end);
    }
    e.command_id.is_some()
        && serde_json::from_str::<serde_json::Value>(&e.data)
            .is_ok_and(|d| d["reference"].as_str() == Some(g.id.as_str()))
}

impl Grants {
    /// The grant `id` (one the caller created) and its timeline, oldest first.
    pub async fn timeline(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(GrantRecord, Vec<EventRecord>), GrantError> {
        let g = self.visible(caller, id, &[Role::Creator]).await?;
        let since = g.created_at.min(g.not_before);
        let all = self
            .store
            .vehicle_events_since(&g.tenant, &g.vehicle_id, since, MOST)
            .await?;
        let end = ended(&g, self.clock.now());
        let events = all.into_iter().filter(|e| belongs(e, &g, end)).collect();
        Ok((g, events))
    }
}
