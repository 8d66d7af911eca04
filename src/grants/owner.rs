//! The owner's lock as the relock: after a grant's unlock, the owner locking the car
//! themselves (the OEM's app, a key fob) settles the relock the grant owes — no command
//! is sent. The watcher reads every grant's car while it is in use and tells
//! [`Grants::vehicle_locked`] when it sees the car locked. The evidence is the one
//! keyway's own relock needs: a fresh read showing the car locked, certainly observed
//! after the grant's last unlock was sent. Then the grant watches for a late unlock, as
//! after any relock, and `grant.relocked` says `relocked_by: "owner"`. While it watches,
//! a door, trunk or frunk opened on the relocked car is `grant.opened_after_relock`.

use keyway_adapter::Command;

use super::Grants;
use crate::events::Kind;
use crate::store::{RelockState, VehicleRecord};
use crate::sync::lock;

impl Grants {
    /// `v` was seen locked: each of its grants that still owes a relock counts it as
    /// done when a fresh read shows the car locked after the grant's last unlock.
    pub async fn vehicle_locked(&self, v: &VehicleRecord) {
        let mut owed = self.car_grants(v).await;
        owed.retain(|g| g.relock_state == RelockState::Due);
        let Some(since) = owed.iter().map(|g| g.created_at).min() else {
            return;
        };
        let Some(seen) = self.commands.look_at(v).await.filter(|o| o.locked) else {
            return;
        };
        let timing = self.commands.timing_of(&v.oem);
        let sent = match self.store.commands_sent_since(&v.id, since).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(vehicle = %v.id, error = %e, "could not read the car's commands");
                return;
            }
        };
        for g in owed {
            let last_unlock = sent
                .iter()
                .filter(|c| c.action == Command::Unlock && c.reference.as_deref() == Some(&g.id))
                .filter_map(|c| c.sent_at)
                .max();
            let Some(unlocked) = last_unlock.filter(|u| seen.after(*u, &timing)) else {
                continue;
            };
            // A lock of keyway's own for the grant sent since (whose answer was lost, say)
            // may be what locked it.
            let ours = sent.iter().any(|c| {
                c.action == Command::Lock
                    && c.reference.as_deref() == Some(&g.id)
                    && c.sent_at.is_some_and(|s| s > unlocked)
            });
            // A relock of keyway's own under way settles it itself.
            if !lock(&self.relocking).insert(g.id.clone()) {
                continue;
            }
            self.relocked_seen(&g.id, !ours).await;
            lock(&self.relocking).remove(&g.id);
        }
    }

    /// Records grant `id`'s relock as seen (the owner's lock when `by_owner`), if it is
    /// still owed.
    async fn relocked_seen(&self, id: &str, by_owner: bool) {
        let Ok(Some(mut g)) = self.store.grant(id).await else {
            return;
        };
        if g.relock_state != RelockState::Due {
            return;
        }
        if let Err(e) = self.mark_relocked(&mut g, self.clock.now()).await {
            tracing::error!(grant = %g.id, error = %e, "could not record the relock seen");
            return;
        }
        tracing::info!(grant = %g.id, vehicle = %g.vehicle_id, by_owner, "the car was seen locked: relock settled");
        let detail = "read back locked after the grant's unlock, without a relock of its own";
        self.note_relocked(&g, None, detail, by_owner).await;
    }
}

impl Grants {
    /// The watcher found `opened` newly open on `v`: each of its grants relocked and
    /// still watched tells it (`grant.opened_after_relock`).
    pub async fn vehicle_opened(&self, v: &VehicleRecord, opened: &[keyway_adapter::DoorPosition]) {
        for g in self
            .car_grants(v)
            .await
            .iter()
            .filter(|g| g.relock_state == RelockState::Watching)
        {
            tracing::warn!(grant = %g.id, vehicle = %v.id, ?opened, "opened after the relock");
            let event =
                super::GrantEvent::new(Kind::GrantOpenedAfterRelock, g, None, self.clock.now());
            self.events.emit(&event.opened(opened.to_vec())).await;
        }
    }
}
