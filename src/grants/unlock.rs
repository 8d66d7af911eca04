//! Unlocking under a grant: every limit checked, the decision audited and the relock
//! owed before the command is sent, and the outcome followed after it.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::Command;

use crate::audit::Decision;
use crate::auth::Caller;
use crate::clock::timestamp;
use crate::commands::{Request, Submission, UnlockGuard};
use crate::error::Classify;
use crate::events::Kind;
use crate::store::{CommandRecord, CommandStatus, GrantRecord, RelockState};

use super::{GrantError, Grants, Role, distance_m, not_found};

impl Grants {
    async fn refuse(&self, caller: &Caller, g: &GrantRecord, e: GrantError) -> GrantError {
        self.audit
            .note(Decision {
                actor: &caller.sub,
                action: "grant.unlock",
                decision: "refused",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                detail: Some(e.code().as_str()),
                ..Decision::default()
            })
            .await;
        GrantError::Refused {
            grant_id: g.id.clone(),
            reason: Box::new(e),
        }
    }

    /// Unlocks the grant's car for its grantee, if every limit allows it now. Returns
    /// the unlock command as it stands. Requests under one `Idempotency-Key` are taken
    /// one at a time in this process, so concurrent ones all get the first one's
    /// command (not `grant_exhausted` for all but one).
    pub async fn unlock(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        idempotency_key: Option<String>,
        request_id: Option<String>,
        guard: &dyn UnlockGuard,
    ) -> Result<CommandRecord, GrantError> {
        let Some(key) = idempotency_key else {
            return self.unlock_now(caller, id, None, request_id, guard).await;
        };
        let _turn = self.key_locks.scoped(&caller.key_scope(), &key).await;
        match self
            .unlock_now(caller, id, Some(key.clone()), request_id, guard)
            .await
        {
            // Another replica may have taken the unlock under this key a moment ago:
            // its command is the answer once it is recorded.
            Err(GrantError::Refused { reason, .. })
                if matches!(*reason, GrantError::Exhausted(_) | GrantError::NoUnlockLeft)
                    && let Some(c) = self.replayed(caller, id, &key).await? =>
            {
                Ok(c)
            }
            other => other,
        }
    }

    /// The unlock recorded under `key` for this grant, waiting a moment for one that
    /// another replica is recording.
    async fn replayed(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
    ) -> Result<Option<CommandRecord>, GrantError> {
        for _ in 0..20 {
            if let Some((c, ours)) = self.under_key(caller, id, key).await? {
                return Ok(ours.then_some(c));
            }
            self.clock.sleep(Duration::from_millis(50)).await;
        }
        Ok(None)
    }

    /// The command recorded under the caller's `key`, if any, and whether it is an
    /// unlock of grant `id` (the same request) or something else the key was spent on.
    async fn under_key(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
    ) -> Result<Option<(CommandRecord, bool)>, GrantError> {
        let Some(c) = self.commands.under_key(&caller.key_scope(), key).await? else {
            return Ok(None);
        };
        let ours = c.reference.as_deref() == Some(id) && c.action == Command::Unlock;
        Ok(Some((c, ours)))
    }

    async fn unlock_now(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        idempotency_key: Option<String>,
        request_id: Option<String>,
        guard: &dyn UnlockGuard,
    ) -> Result<CommandRecord, GrantError> {
        let g = self.visible(caller, id, &[Role::Grantee]).await?;
        // A replay of an unlock already made returns that command, nothing more.
        if let Some(key) = &idempotency_key
            && let Some((c, ours)) = self.under_key(caller, &g.id, key).await?
        {
            if ours {
                return Ok(c);
            }
            return Err(GrantError::KeyReused {
                command_id: c.id.into(),
            });
        }
        let now = self.clock.now();
        let refusal = if g.revoked_at.is_some() {
            Some(GrantError::Revoked)
        } else if g.completed_at.is_some() {
            Some(GrantError::Completed)
        } else if now < g.not_before || now >= g.not_after {
            Some(GrantError::OutsideWindow {
                not_before: timestamp(g.not_before),
                not_after: timestamp(g.not_after),
            })
        } else if g.unlocks_used >= g.max_unlocks {
            Some(GrantError::Exhausted(g.max_unlocks))
        } else {
            None
        };
        if let Some(e) = refusal {
            return Err(self.refuse(caller, &g, e).await);
        }
        let vehicle = self
            .store
            .vehicle(&g.vehicle_id)
            .await?
            .ok_or(GrantError::VehicleGone)?;
        if let Some(f) = g.geofence {
            // A fresh reading: a cached one could predate the car being moved.
            let at = self.fleet.locate(&vehicle, Some(Duration::ZERO)).await?;
            let d = distance_m((f.latitude, f.longitude), (at.latitude, at.longitude));
            if d > f.radius_m {
                let e = GrantError::OutsideGeofence {
                    distance_m: d,
                    radius_m: f.radius_m,
                };
                return Err(self.refuse(caller, &g, e).await);
            }
        }
        if !self.store.take_grant_unlock(&g.id).await? {
            let e = GrantError::NoUnlockLeft;
            return Err(self.refuse(caller, &g, e).await);
        }
        if let Err(e) = self
            .audit
            .record(Decision {
                actor: &caller.sub,
                action: "grant.unlock",
                decision: "allowed",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                ..Decision::default()
            })
            .await
        {
            let _ = self.store.refund_grant_unlock(&g.id).await;
            return Err(e.into());
        }
        // The relock is owed before the car can open.
        let mut owed = self
            .store
            .grant(&g.id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let relock_at = (now + Duration::from_secs(u64::from(g.relock_after_s))).min(g.not_after);
        // A relock still owed from an earlier unlock keeps its (earlier) time.
        owed.relock_due_at = Some(match owed.relock_due_at {
            Some(earlier) if owed.relock_state == RelockState::Due => earlier.min(relock_at),
            _ => relock_at,
        });
        owed.relock_state = RelockState::Due;
        owed.relock_attempts = 0;
        owed.relocked_at = None;
        owed.updated_at = self.clock.now();
        self.store.update_grant(&owed).await?;
        let command = self
            .commands
            .submit(Submission {
                vehicle: &vehicle,
                request: Request {
                    caller: caller.sub.clone(),
                    key_scope: caller.key_scope(),
                    tenant: g.tenant.clone(),
                    // The courier is owed this unlock: it may use the quota's reserve.
                    reserved: true,
                    action: Command::Unlock,
                    reference: Some(g.id.clone()),
                    idempotency_key,
                    request_id,
                },
                guard,
            })
            .await;
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                let _ = self.store.refund_grant_unlock(&g.id).await;
                return Err(e.into());
            }
        };
        // Follow the outcome whether or not the grantee waits for it.
        let (this, cmd) = (self.clone(), command.id.clone());
        tokio::spawn(async move { this.after_unlock(&cmd).await });
        Ok(command)
    }

    async fn after_unlock(&self, command_id: &str) {
        let Ok(Some(c)) = self
            .commands
            .wait(command_id, Duration::from_secs(3600))
            .await
        else {
            return;
        };
        let Some(grant_id) = c.reference.as_deref() else {
            return;
        };
        let Ok(Some(g)) = self.store.grant(grant_id).await else {
            return;
        };
        match c.status {
            CommandStatus::Succeeded => self.event(Kind::GrantUnlocked, &g, Some(&c.id)).await,
            // `failed` is certain: the car did not open, so the unlock is given back (the
            // owed relock still runs: locking a locked car is harmless).
            CommandStatus::Failed => {
                let _ = self.store.refund_grant_unlock(&g.id).await;
            }
            _ => {}
        }
    }
}
