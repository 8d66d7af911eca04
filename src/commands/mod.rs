//! The command lifecycle: record → send → (poll) → final outcome, with the rules that
//! make a remote unlock safe.
//!
//! - A command is written to the store *before* the OEM hears of it, and marked `sent`
//!   just before each hand-over, so after a crash keyway knows whether it may have
//!   reached the car.
//! - An idempotency key is claimed in the same transaction as the command: the same
//!   key and request return the same command (no second OEM call, even while the first
//!   is in flight); the same key with another request is refused.
//! - One command at a time per vehicle (a per-vehicle async lock, held for the command's
//!   whole life).
//! - How a recorded command reaches an honest outcome — `succeeded`, `failed` only when
//!   certain, otherwise `unknown` — is [`lifecycle`]'s job: never a second send while
//!   the first may still execute. An `unknown` command is watched for the OEM's
//!   command window ([`resolve`]); what keyway learns is recorded as `command.resolved`.
//! - Pending commands found at start-up are resumed: never-sent ones are sent, accepted
//!   async ones are polled, sent-but-unanswered ones are watched, never sent again.
//!
//! In cluster mode (a shared store) each command is leased to the replica running it
//! and renewed while it runs; a replica that dies stops renewing, and another takes the
//! command over once the lease lapses ([`Commands::take_over`]), resuming it by the
//! rules above. The lease is checked just before the command is handed to the OEM and
//! before its outcome is written, so a replica that lost it neither sends nor records.
//! The per-car rule holds across replicas through a `car:<id>` lease, and a finished
//! command tells every replica to drop its cached state of the car.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_adapter::Command;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

mod lease;
mod lifecycle;
mod resolve;
mod view;

pub use lease::sweep;
pub use view::{retry_after, view};

use lifecycle::Outcome;

use crate::cluster::Cluster;
use crate::error::{ApiError, Code};
use crate::ids;
use crate::store::{
    CommandRecord, CommandStatus, Created, IdempotencyClaim, Store, VehicleRecord, now,
};
use crate::sync::lock;
use crate::vehicles::Fleet;

/// Timing of async commands.
#[derive(Clone, Copy, Debug)]
pub struct CommandTiming {
    /// A sent command whose outcome keyway could not learn becomes `unknown` this long
    /// after it was sent.
    pub timeout: Duration,
    /// Longest pause between polls.
    pub max_poll_interval: Duration,
    /// Callers' commands queued or running per car before `vehicle_busy`.
    pub max_queued: usize,
}

/// What a caller asks for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The caller's `sub`.
    pub caller: String,
    /// Whose idempotency keys ([`crate::auth::Caller::key_scope`]).
    pub key_scope: String,
    /// The vehicle's tenant, which the command belongs to.
    pub tenant: String,
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

type Finals = Mutex<HashMap<String, watch::Sender<Option<CommandRecord>>>>;

/// Runs commands.
pub struct Commands {
    store: Arc<dyn Store>,
    fleet: Arc<Fleet>,
    registry: Arc<crate::registry::Registry>,
    timing: CommandTiming,
    /// Commands running in this process, each with a channel carrying its final record.
    running: Finals,
    /// One lock per vehicle: at most one command in flight per car.
    vehicle_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Commands queued or running in this process, per vehicle (the queue cap).
    queued: Mutex<HashMap<String, usize>>,
    /// This replica's leases.
    cluster: Arc<Cluster>,
    /// `command.succeeded` / `command.failed`.
    events: Arc<crate::events::Events>,
}

impl Commands {
    /// A command runner.
    pub fn new(
        store: Arc<dyn Store>,
        fleet: Arc<Fleet>,
        registry: Arc<crate::registry::Registry>,
        timing: CommandTiming,
        cluster: Arc<Cluster>,
        events: Arc<crate::events::Events>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            fleet,
            registry,
            timing,
            running: Mutex::default(),
            vehicle_locks: Mutex::default(),
            queued: Mutex::default(),
            cluster,
            events,
        })
    }

    /// Records a command (or finds the one its idempotency key already made) and starts
    /// it. Returns the record as it stands now.
    pub async fn submit(
        self: &Arc<Self>,
        vehicle: &VehicleRecord,
        req: Request,
    ) -> Result<CommandRecord, ApiError> {
        let t = now();
        let record = CommandRecord {
            id: ids::new("cmd"),
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
            created_at: t,
            updated_at: t,
            completed_at: None,
            observed: None,
            retry_at: None,
        };
        if !req.reserved && self.queue_full(&vehicle.id) {
            // A replay of a key already used still gets its command below.
            let replay = match &req.idempotency_key {
                Some(k) => self
                    .store
                    .command_for_key(&req.key_scope, k)
                    .await?
                    .is_some(),
                None => false,
            };
            if !replay {
                let mut e = ApiError::new(
                    Code::VehicleBusy,
                    format!(
                        "{} commands are already queued for this vehicle; try again later",
                        self.timing.max_queued
                    ),
                );
                e.retry_after = Some(Duration::from_secs(5));
                return Err(e);
            }
        }
        let claim = req.idempotency_key.as_ref().map(|key| IdempotencyClaim {
            caller: req.key_scope.clone(),
            key: key.clone(),
            fingerprint: req.fingerprint(&vehicle.id),
        });
        // The decision is on record, in the command's own transaction, before the OEM
        // can hear of it; a replay writes nothing.
        let accepted = crate::audit::entry(&crate::audit::Decision {
            actor: &record.caller,
            action: &format!("command.{}", record.action.as_str()),
            decision: "accepted",
            vehicle_id: Some(&record.vehicle_id),
            command_id: Some(&record.id),
            detail: record.reference.as_deref(),
            ..Default::default()
        });
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
                self.start(record.clone());
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
                    Err(ApiError::new(
                        Code::IdempotencyKeyReused,
                        "this Idempotency-Key was already used with a different request",
                    )
                    .with("command_id", command.id.clone()))
                }
            }
        }
    }

    fn queue_full(&self, vehicle_id: &str) -> bool {
        lock(&self.queued)
            .get(vehicle_id)
            .is_some_and(|n| *n >= self.timing.max_queued)
    }

    fn start(self: &Arc<Self>, record: CommandRecord) {
        let (tx, _) = watch::channel(None);
        lock(&self.running).insert(record.id.clone(), tx);
        *lock(&self.queued)
            .entry(record.vehicle_id.clone())
            .or_default() += 1;
        let this = self.clone();
        tokio::spawn(async move {
            let id = record.id.clone();
            let vehicle = record.vehicle_id.clone();
            let done = this.run(record).await;
            {
                let mut queued = lock(&this.queued);
                if let Some(n) = queued.get_mut(&vehicle) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        queued.remove(&vehicle);
                    }
                }
            }
            let unknown = done.status == CommandStatus::Unknown;
            if let Some(tx) = lock(&this.running).remove(&id) {
                let _ = tx.send(Some(done.clone()));
            }
            if unknown {
                this.resolve(done).await;
            }
        });
    }

    /// The command's record once it is final, or as it stands after `max` — whichever
    /// comes first.
    pub async fn wait(&self, id: &str, max: Duration) -> Result<Option<CommandRecord>, ApiError> {
        let deadline = Instant::now() + max;
        let rx = lock(&self.running).get(id).map(watch::Sender::subscribe);
        if let Some(mut rx) = rx {
            let waited = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|done| done.clone());
            return match waited {
                Some(done) => Ok(Some(done)),
                None => Ok(self.store.command(id).await?),
            };
        }
        // Not running here (finished, or run by another process): read the store.
        loop {
            let record = self.store.command(id).await?;
            let pending = record
                .as_ref()
                .is_some_and(|r| r.status == CommandStatus::Pending);
            if !pending || Instant::now() >= deadline {
                return Ok(record);
            }
            tokio::time::sleep((deadline - Instant::now()).min(Duration::from_millis(50))).await;
        }
    }

    /// Waits until no command runs in this process, or `max` passes; returns how many
    /// are still running (they stay `pending` in the store and resume at next start).
    /// Then gives up every lease this replica holds (cars, relocks, commands), so in a
    /// cluster another replica takes over at once instead of after the lease lapses.
    pub async fn drain(&self, max: Duration) -> usize {
        let deadline = Instant::now() + max;
        let left = loop {
            let running = lock(&self.running).len();
            if running == 0 || Instant::now() >= deadline {
                break running;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if self.cluster.shared
            && let Err(e) = self.store.release_all(&self.cluster.replica).await
        {
            tracing::warn!(error = %e, "could not release this replica's leases");
        }
        left
    }

    fn vehicle_lock(&self, vehicle_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.vehicle_locks)
            .entry(vehicle_id.to_string())
            .or_default()
            .clone()
    }

    /// Drives one command to a final record and stores it.
    async fn run(&self, mut record: CommandRecord) -> CommandRecord {
        let renewing = self.renew(&record);
        let car = self.vehicle_lock(&record.vehicle_id);
        {
            // The car is held until the outcome is written: the next command on it must
            // never see this one still `pending` after its send (that would be an unlock
            // in doubt).
            let _one_per_car = car.lock().await;
            let _car_lease = self.hold_car(&record.vehicle_id).await;
            let outcome = self.execute(&mut record).await;
            self.finish(&mut record, outcome, renewing).await;
        }
        drop(car);
        lock(&self.vehicle_locks).retain(|_, l| Arc::strong_count(l) > 1);
        record
    }

    /// Puts the outcome on the record and stores it (unless another replica took the
    /// command over).
    async fn finish(
        &self,
        record: &mut CommandRecord,
        outcome: Outcome,
        renewing: Option<tokio::task::JoinHandle<()>>,
    ) {
        let t = now();
        record.updated_at = t;
        record.completed_at = Some(t);
        record.error_code = None;
        record.error_detail = None;
        record.retry_at = None;
        match outcome {
            Outcome::Succeeded => record.status = CommandStatus::Succeeded,
            Outcome::Failed(e) => {
                record.status = CommandStatus::Failed;
                record.retry_at = e.retry_after.map(|d| t + d);
                record.error_code = Some(e.code.as_str().to_string());
                record.error_detail = Some(e.detail);
            }
            Outcome::Unknown(e) => {
                record.status = CommandStatus::Unknown;
                // A new command makes sense once the OEM can no longer run this one.
                let window = self
                    .timing_of_vehicle(&record.vehicle_id)
                    .await
                    .command_window;
                record.retry_at = Some(record.sent_at.unwrap_or(t) + window);
                record.error_code = Some(e.code.as_str().to_string());
                record.error_detail = Some(e.detail);
            }
        }
        self.fleet.invalidate_security(&record.vehicle_id);
        let ours = self.still_ours(&record.id).await.unwrap_or(true);
        if let Some(task) = renewing {
            task.abort();
        }
        if !ours {
            tracing::error!(command = %record.id,
                "another replica took this command over; leaving its outcome to it");
            return;
        }
        let kind = format!("command.{}", record.status.as_str());
        self.write_outcome(record, &kind, record.status.as_str())
            .await;
        tracing::info!(command = %record.id, status = record.status.as_str(),
            error = record.error_code.as_deref().unwrap_or(""), "command finished");
    }

    /// The OEM timing of a vehicle's OEM.
    async fn timing_of_vehicle(&self, vehicle_id: &str) -> keyway_adapter::OemTiming {
        match self.store.vehicle(vehicle_id).await {
            Ok(Some(v)) => self.timing_of(&v.oem),
            _ => self.timing_of(""),
        }
    }

    /// Stores a final (or resolved) record in one transaction: the outcome, the lock
    /// state it left, its audit entry, its event `kind`, and (cluster) the notice that
    /// makes every replica drop its cached state.
    async fn write_outcome(&self, record: &CommandRecord, kind: &str, decision: &str) {
        if let Some(v) = self.store.vehicle(&record.vehicle_id).await.ok().flatten() {
            crate::metrics::command(&v.oem, record.action.as_str(), record.status.as_str());
        }
        let audit = crate::audit::entry(&crate::audit::Decision {
            actor: &record.caller,
            action: &format!("command.{}", record.action.as_str()),
            decision,
            vehicle_id: Some(&record.vehicle_id),
            command_id: Some(&record.id),
            detail: record.error_code.as_deref(),
            ..Default::default()
        });
        let event = crate::events::Events::record(
            kind,
            crate::events::Subject {
                tenant: &record.tenant,
                vehicle_id: Some(&record.vehicle_id),
                grant_id: None,
                command_id: Some(&record.id),
            },
            &view(record),
        );
        let hooks = self.events.hooks_for(&event).await;
        match self
            .store
            .finish_command(record, &audit, &event, &hooks)
            .await
        {
            Ok(seq) => self.events.published(kind, seq, !hooks.is_empty()),
            // The record stays as it was in the store (`pending` is reconciled at start).
            Err(e) => {
                tracing::error!(command = %record.id, error = %e, "could not record the outcome")
            }
        }
        if record.status == CommandStatus::Succeeded {
            self.fleet.invalidate_vehicle(&record.vehicle_id);
        }
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
