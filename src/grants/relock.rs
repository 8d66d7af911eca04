//! The guaranteed relock: due relocks run under a cluster lease, lock the car, confirm
//! it by reading the lock state back, and retry with backoff until settled or failed.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::Command;

use super::GrantError;
use crate::audit::Decision;
use crate::commands::{Request, Submission, Unguarded};
use crate::error::public_detail;
use crate::events::Kind;
use crate::store::{CommandStatus, GrantRecord, RelockState};
use crate::sync::lock;

use super::Grants;

impl Grants {
    /// Runs every relock due now (each at most once at a time, cluster-wide).
    pub async fn relock_due(self: &Arc<Self>) -> usize {
        let due = match self.store.due_relocks(self.clock.now()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read due relocks");
                return 0;
            }
        };
        let mut started = 0;
        for g in due {
            if !lock(&self.relocking).insert(g.id.clone()) {
                continue;
            }
            let lease = format!("relock:{}", g.id);
            if self.cluster.shared
                && !self
                    .store
                    .try_lease(&lease, &self.cluster.lease())
                    .await
                    .unwrap_or(false)
            {
                lock(&self.relocking).remove(&g.id);
                continue;
            }
            started += 1;
            let this = self.clone();
            tokio::spawn(async move {
                let id = g.id.clone();
                let held = this
                    .cluster
                    .shared
                    .then(|| crate::cluster::Held::keep(this.store.clone(), &this.cluster, lease));
                this.relock(g).await;
                drop(held);
                lock(&this.relocking).remove(&id);
            });
        }
        started
    }

    /// One relock attempt: lock, read the lock back, record and emit the outcome.
    async fn relock(&self, g: GrantRecord) {
        // Re-read under the lease: another replica may have finished it.
        let Ok(Some(mut g)) = self.store.grant(&g.id).await else {
            return;
        };
        if g.relock_state == RelockState::Watching && !self.late_unlock(&mut g).await {
            return;
        }
        if g.relock_state != RelockState::Due {
            return;
        }
        g.relock_attempts += 1;
        let outcome = self.lock_and_confirm(&g).await;
        let t = self.clock.now();
        g.updated_at = t;
        match outcome {
            Ok(command) => {
                if let Err(e) = self.mark_relocked(&mut g, t).await {
                    tracing::error!(grant = %g.id, error = %e, "could not record the relock");
                }
                let detail = "locked, and read back locked after the relock";
                self.note_relocked(&g, Some(&command), detail, false).await;
            }
            Err(why) => {
                let last = g.relock_attempts >= self.settings.relock_max_attempts;
                tracing::warn!(grant = %g.id, attempt = g.relock_attempts, error = %why,
                    "relock attempt failed");
                if last {
                    g.relock_state = RelockState::Failed;
                    g.relock_due_at = None;
                } else {
                    let delay = crate::upstream::retry::doubled(
                        self.settings.relock_backoff,
                        g.relock_attempts - 1,
                        Duration::from_secs(60),
                    );
                    g.relock_due_at = Some(self.clock.now() + delay);
                }
                if let Err(e) = self.store.update_grant(&g).await {
                    tracing::error!(grant = %g.id, error = %e, "could not record a relock attempt");
                }
                self.audit
                    .note(Decision {
                        actor: "keyway",
                        action: "grant.relock",
                        decision: "failed",
                        vehicle_id: Some(&g.vehicle_id),
                        grant_id: Some(&g.id),
                        detail: Some(&why),
                        ..Decision::default()
                    })
                    .await;
                if last {
                    tracing::error!(grant = %g.id, vehicle = %g.vehicle_id,
                        "relock failed for good: the car may be open");
                    self.event(Kind::GrantRelockFailed, &g, None).await;
                }
            }
        }
    }

    /// Records `g` relocked at `t` and watched for a late unlock for as long as the OEM
    /// may still run one.
    pub(super) async fn mark_relocked(
        &self,
        g: &mut GrantRecord,
        t: time::OffsetDateTime,
    ) -> Result<(), crate::store::StoreError> {
        g.relock_state = RelockState::Watching;
        g.relock_due_at = Some(self.clock.now() + self.watch_pause(g).await);
        g.relocked_at = Some(t);
        g.updated_at = t;
        self.store.update_grant(g).await
    }

    /// Audits and announces `g`'s relock: by keyway's `command`, or seen without one
    /// (`by_owner`: the owner's own lock).
    pub(super) async fn note_relocked(
        &self,
        g: &GrantRecord,
        command: Option<&str>,
        detail: &str,
        by_owner: bool,
    ) {
        self.audit
            .note(Decision {
                actor: "keyway",
                action: "grant.relock",
                decision: "succeeded",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                command_id: command,
                detail: Some(detail),
            })
            .await;
        let event = super::GrantEvent::new(Kind::GrantRelocked, g, command, self.clock.now());
        let event = if by_owner { event.by_owner() } else { event };
        self.events.emit(&event).await;
    }

    /// Locks the car and reads the lock state back; the lock command's id, or why not.
    async fn lock_and_confirm(&self, g: &GrantRecord) -> Result<String, String> {
        let vehicle = self
            .store
            .vehicle(&g.vehicle_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the vehicle is gone")?;
        let c = self
            .commands
            .submit(Submission {
                vehicle: &vehicle,
                request: Request {
                    caller: "keyway".into(),
                    key_scope: "keyway".into(),
                    tenant: g.tenant.clone(),
                    reserved: true,
                    action: Command::Lock,
                    reference: Some(g.id.clone()),
                    idempotency_key: None,
                    request_id: None,
                },
                // A lock: the unlock guard has nothing to charge.
                guard: &Unguarded,
            })
            .await
            .map_err(|e| public_detail(&e))?;
        let c = self
            .commands
            .wait(&c.id, self.settings.relock_wait)
            .await
            .map_err(|e| public_detail(&e))?
            .ok_or("the lock command vanished")?;
        match c.status {
            CommandStatus::Succeeded => {}
            CommandStatus::Pending => return Err(format!("lock {} not confirmed in time", c.id)),
            CommandStatus::Failed | CommandStatus::Unknown => {
                return Err(format!(
                    "lock {} {}: {}",
                    c.id,
                    c.status.as_str(),
                    c.error_detail.unwrap_or_default()
                ));
            }
        }
        // Confirmed only by a lock state observed after the relock was sent.
        let sent_at = c.sent_at.unwrap_or_else(|| self.clock.now());
        let timing = self.commands.timing_of(&vehicle.oem);
        let deadline = tokio::time::Instant::now() + self.settings.relock_wait;
        loop {
            match self.commands.look_at(&vehicle).await {
                Some(o) if o.after(sent_at, &timing) && o.locked => return Ok(c.id.into()),
                Some(o) if o.after(sent_at, &timing) => {
                    return Err("the car reads unlocked after the relock".into());
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "lock {} succeeded, but no lock state observed after it could be read",
                    c.id
                ));
            }
            self.clock.sleep(self.settings.confirm_poll).await;
        }
    }

    /// How long until a watched grant's car is looked at again.
    async fn watch_pause(&self, g: &GrantRecord) -> Duration {
        let lag = match self.store.vehicle(&g.vehicle_id).await {
            Ok(Some(v)) => self.commands.timing_of(&v.oem).state_lag,
            _ => Duration::from_secs(60),
        };
        (lag / 4).max(self.settings.confirm_poll)
    }

    /// A watched grant: whether a late unlock opened the car after its relock (then the
    /// relock is owed again, and `grant.relock_repeated` emitted). Ends the watch once
    /// the OEM can no longer run an unlock sent before the relock.
    async fn late_unlock(&self, g: &mut GrantRecord) -> bool {
        let Ok(Some(vehicle)) = self.store.vehicle(&g.vehicle_id).await else {
            return false;
        };
        let timing = self.commands.timing_of(&vehicle.oem);
        let relocked_at = g.relocked_at.unwrap_or_else(|| self.clock.now());
        let watch_end = relocked_at + timing.command_window + timing.state_lag;
        let opened = self
            .commands
            .look_at(&vehicle)
            .await
            .filter(|o| o.after(relocked_at, &timing) && !o.locked);
        if let Some(o) = opened {
            tracing::warn!(grant = %g.id, vehicle = %g.vehicle_id,
                "the car opened after its relock (a late unlock); relocking again");
            g.relock_state = RelockState::Due;
            g.relock_due_at = Some(self.clock.now());
            g.relock_attempts = 0;
            g.updated_at = self.clock.now();
            if let Err(e) = self.store.update_grant(g).await {
                tracing::error!(grant = %g.id, error = %e, "could not record the repeated relock");
                return false;
            }
            let seen = format!(
                "read unlocked, reported at {}",
                crate::clock::timestamp(o.reported_at.unwrap_or(o.read_at))
            );
            self.audit
                .note(Decision {
                    actor: "keyway",
                    action: "grant.relock",
                    decision: "repeated",
                    vehicle_id: Some(&g.vehicle_id),
                    grant_id: Some(&g.id),
                    detail: Some(&seen),
                    ..Decision::default()
                })
                .await;
            self.event(Kind::GrantRelockRepeated, g, None).await;
            return true;
        }
        g.relock_due_at = if self.clock.now() >= watch_end {
            g.relock_state = RelockState::Locked;
            None
        } else {
            Some(self.clock.now() + self.watch_pause(g).await)
        };
        g.updated_at = self.clock.now();
        if let Err(e) = self.store.update_grant(g).await {
            tracing::error!(grant = %g.id, error = %e, "could not record the watch");
        }
        false
    }

    /// Waits until the grant's owed relock is settled (locked or failed), up to `max`.
    pub async fn wait_relock(
        &self,
        id: &str,
        max: Duration,
    ) -> Result<Option<GrantRecord>, GrantError> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let g = self.store.grant(id).await?;
            let settled = g
                .as_ref()
                .is_none_or(|g| g.relock_state != RelockState::Due);
            if settled || tokio::time::Instant::now() >= deadline {
                return Ok(g);
            }
            self.clock.sleep(Duration::from_millis(20)).await;
        }
    }
}
