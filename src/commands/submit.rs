//! Submitting a command ([`Commands::submit`], the one entry point for callers, grants
//! and relocks): the admission checks, replay detection, the unlock abuse guard, then the
//! record and its idempotency claim in one transaction, then the start of its run.
//!
//! An idempotency key is claimed in the same transaction as the command: the same key
//! and request return the same command (no second OEM call, even while the first is in
//! flight); the same key with another request is refused. A car with too many commands
//! queued refuses new ones (`vehicle_busy`), never a replay.

use std::sync::Arc;

use keyway_adapter::Command;
use sha2::{Digest, Sha256};

use super::{CommandError, Commands, UnlockGuard};
use crate::ids;
use crate::store::{
    AccountStatus, CommandRecord, CommandStatus, Created, IdempotencyClaim, VehicleRecord,
};
use crate::sync::lock;
use crate::tokens::TokenError;

/// What a caller asks for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The caller's `sub`.
    pub caller: String,
    /// Whose idempotency keys ([`crate::auth::Caller::key_scope`]).
    pub key_scope: String,
    /// The vehicle's tenant, which the command belongs to.
    pub tenant: crate::ids::TenantId,
    /// A relock or a grant's unlock: may use the OEM command quota's reserve and is not
    /// refused by the per-car queue cap.
    pub reserved: bool,
    /// Lock or unlock.
    pub action: Command,
    /// The caller's reference.
    pub reference: Option<String>,
    /// `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// The request id, for the record.
    pub request_id: Option<String>,
}

impl Request {
    /// What makes two requests "the same" under one idempotency key.
    fn fingerprint(&self, vehicle_id: &str) -> String {
        let mut h = Sha256::new();
        for part in [
            self.action.as_str(),
            vehicle_id,
            self.reference.as_deref().unwrap_or(""),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// A command to record and run: the car (the caller's, or a grant's), what is asked,
/// and the guard a new unlock passes.
pub struct Submission<'a> {
    /// The car.
    pub vehicle: &'a VehicleRecord,
    /// What is asked.
    pub request: Request,
    /// The unlock abuse guard (the edge's limiter; [`Unguarded`](super::Unguarded) for
    /// keyway's own locks).
    pub guard: &'a dyn UnlockGuard,
}

impl Commands {
    /// The one way a command comes to be, whoever asks (a caller, a grant's unlock, a
    /// relock): admission (the car's OEM can do it, the reference is clean text, the
    /// account needs no relink), replay detection under the idempotency key, the unlock
    /// abuse guard for a new unlock, the car's queue cap, and the record with its
    /// idempotency claim — then its run starts. Returns the record as it stands now
    /// (for a replay, the command the key already made).
    ///
    /// Requests under one idempotency key are submitted one at a time in this process: a
    /// replay then finds the first request's record, is not charged to the guard, and
    /// never takes a place in the car's queue that the first one needs (other replicas'
    /// replays meet the key's claim in the store).
    pub async fn submit(
        self: &Arc<Self>,
        submission: Submission<'_>,
    ) -> Result<CommandRecord, CommandError> {
        let Submission {
            vehicle,
            request: req,
            guard,
        } = submission;
        self.admit(vehicle, &req).await?;
        let _turn = match &req.idempotency_key {
            Some(key) => Some(self.key_locks.scoped(&req.key_scope, key).await),
            None => None,
        };
        let replay = self.is_replay(&req).await?;
        if req.action == Command::Unlock && !replay {
            guard.charge_unlock(&vehicle.id).await?;
        }
        self.submit_now(vehicle, req, replay).await
    }

    /// The checks a command passes before it is recorded: the car's OEM can do it, its
    /// reference is clean text, and — unless it carries an idempotency key, whose replay
    /// gets its stored answer — the car's account does not wait for its owner to relink
    /// (refused early, without a record).
    async fn admit(&self, vehicle: &VehicleRecord, req: &Request) -> Result<(), CommandError> {
        self.fleet.require(vehicle, req.action.capability())?;
        if let Some(r) = &req.reference {
            crate::text::check("reference", r, 200)?;
        }
        if req.idempotency_key.is_none()
            && let Some(account) = self.store.account(&vehicle.account_id).await?
            && account.status == AccountStatus::ReauthorizationRequired
        {
            return Err(TokenError::reauthorize(&account, "its authorization was rejected").into());
        }
        Ok(())
    }

    /// The command an idempotency key (in its caller's scope) already made, if any.
    pub async fn under_key(
        &self,
        key_scope: &str,
        key: &str,
    ) -> Result<Option<CommandRecord>, CommandError> {
        let Some(id) = self.store.command_for_key(key_scope, key).await? else {
            return Ok(None);
        };
        Ok(self.store.command(&id).await?)
    }

    /// Whether the request's idempotency key already made a command.
    async fn is_replay(&self, req: &Request) -> Result<bool, CommandError> {
        Ok(match &req.idempotency_key {
            Some(k) => self
                .store
                .command_for_key(&req.key_scope, k)
                .await?
                .is_some(),
            None => false,
        })
    }

    async fn submit_now(
        self: &Arc<Self>,
        vehicle: &VehicleRecord,
        req: Request,
        replay: bool,
    ) -> Result<CommandRecord, CommandError> {
        let t = self.clock.now();
        let record = CommandRecord {
            id: ids::new("cmd").into(),
            vehicle_id: vehicle.id.clone(),
            action: req.action,
            status: CommandStatus::Pending,
            caller: req.caller.clone(),
            tenant: req.tenant.clone(),
            reserved: req.reserved,
            reference: req.reference.clone(),
            request_id: req.request_id.clone(),
            sent_at: None,
            oem_handle: None,
            error_code: None,
            error_detail: None,
            error_members: serde_json::Map::new(),
            created_at: t,
            updated_at: t,
            completed_at: None,
            observed: None,
            retry_at: None,
            acknowledged: None,
        };
        // The place in the car's queue is taken before the record is written, so callers
        // arriving together cannot all pass the cap. A replay of a key already used
        // still gets its command below.
        let relock = req.reserved && req.action == Command::Lock;
        let _place = match self.take_place(&vehicle.id, relock) {
            Ok(place) => place,
            Err(()) if replay || self.is_replay(&req).await? => None,
            Err(()) => {
                return Err(CommandError::Busy {
                    max: self.timing.max_queued,
                });
            }
        };
        let claim = req.idempotency_key.as_ref().map(|key| IdempotencyClaim {
            caller: req.key_scope.clone(),
            key: key.clone(),
            fingerprint: req.fingerprint(&vehicle.id),
        });
        // The decision is on record, in the command's own transaction, before the OEM
        // can hear of it; a replay writes nothing.
        let accepted = crate::audit::entry(
            &crate::audit::Decision {
                actor: &record.caller,
                action: &format!("command.{}", record.action.as_str()),
                decision: "accepted",
                vehicle_id: Some(&record.vehicle_id),
                command_id: Some(&record.id),
                detail: record.reference.as_deref(),
                ..Default::default()
            },
            t,
        );
        match self
            .store
            .create_command(
                &record,
                claim.as_ref(),
                &self.cluster.lease(),
                Some(&accepted),
            )
            .await?
        {
            Created::New => {
                tracing::info!(command = %record.id, vehicle = %vehicle.id,
                    action = record.action.as_str(), caller = %record.caller, "command recorded");
                self.start(record.clone(), Some(vehicle.clone()));
                Ok(record)
            }
            Created::Existing {
                command,
                fingerprint,
            } => {
                let same = claim.is_some_and(|c| c.fingerprint == fingerprint);
                if same {
                    Ok(*command)
                } else {
                    Err(CommandError::KeyReused {
                        command_id: command.id.to_string(),
                    })
                }
            }
        }
    }

    /// A place in the car's queue for a command (`Err` when the queue is full), or none
    /// needed (a relock: never refused by the cap, it closes the car). A grant's unlock
    /// counts like any caller's. The check and the count are made under one lock.
    fn take_place(&self, vehicle_id: &str, relock: bool) -> Result<Option<Place<'_>>, ()> {
        if relock {
            return Ok(None);
        }
        let mut queued = lock(&self.queued);
        if queued
            .get(vehicle_id)
            .is_some_and(|n| *n >= self.timing.max_queued)
        {
            return Err(());
        }
        *queued.entry(vehicle_id.into()).or_default() += 1;
        Ok(Some(Place {
            commands: self,
            vehicle_id: vehicle_id.to_string(),
        }))
    }
}

/// A place held in a car's queue from the cap's check until the command starts (which
/// counts it again for as long as it runs) or is not made (a replay, an error): dropped,
/// it gives the place back.
struct Place<'a> {
    commands: &'a Commands,
    vehicle_id: String,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.commands.leave_queue(&self.vehicle_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: Command, reference: Option<&str>) -> Request {
        Request {
            caller: "svc".into(),
            key_scope: "svc".into(),
            tenant: "svc".into(),
            reserved: false,
            action,
            reference: reference.map(str::to_string),
            idempotency_key: Some("k".into()),
            request_id: None,
        }
    }

    #[test]
    fn fingerprint_separates_requests() {
        let a = req(Command::Lock, None).fingerprint("veh_1");
        assert_eq!(a, req(Command::Lock, None).fingerprint("veh_1"));
        assert_ne!(a, req(Command::Unlock, None).fingerprint("veh_1"));
        assert_ne!(a, req(Command::Lock, None).fingerprint("veh_2"));
        assert_ne!(a, req(Command::Lock, Some("x")).fingerprint("veh_1"));
        // Length-prefixing keeps field boundaries apart.
        assert_ne!(
            req(Command::Lock, Some("1")).fingerprint("veh_"),
            req(Command::Lock, Some("")).fingerprint("veh_1")
        );
    }
}
