//! Starting and ending a command: each recorded command runs in its own task,
//! serialized per car (a per-vehicle lock, and in a cluster a `car:` lease, held until
//! its outcome is written), as a [`Run`] once its car is read; its final record is then
//! written in one transaction with its audit entry and event, retried while the store
//! refuses, and handed to whoever waits; an `unknown` one is then watched
//! (`reconcile`).

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::OemTiming;
use tokio::sync::watch;

use super::CommandError;
use super::Commands;
use super::run::Run;
use super::verdict::Outcome;
use super::view::CommandEvent;
use crate::error::Classify;
use crate::events::{Events, Payload};
use crate::store::{CommandRecord, CommandStatus, VehicleRecord};
use crate::sync::lock;

/// The longest pause between two tries to store an outcome.
const MAX_WRITE_PAUSE: Duration = Duration::from_secs(5);

/// Fallback timing for an OEM that is not enabled any more.
const CAUTIOUS: OemTiming = OemTiming {
    state_lag: Duration::from_secs(300),
    command_window: Duration::from_secs(900),
    stamps: keyway_adapter::Stamps::Car,
};

impl Commands {
    /// The OEM's timing (declared, with configured overrides).
    pub(crate) fn timing_of(&self, oem: &str) -> OemTiming {
        self.registry.get(oem).map_or(CAUTIOUS, |o| o.timing)
    }

    /// One command fewer queued or running for the car (the queue cap's count).
    pub(super) fn leave_queue(&self, vehicle_id: &str) {
        let mut queued = lock(&self.queued);
        if let Some(n) = queued.get_mut(vehicle_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                queued.remove(vehicle_id);
            }
        }
    }

    pub(super) fn start(self: &Arc<Self>, record: CommandRecord, vehicle: Option<VehicleRecord>) {
        let (tx, _) = watch::channel(None);
        lock(&self.running).insert(record.id.clone(), tx);
        *lock(&self.queued)
            .entry(record.vehicle_id.clone())
            .or_default() += 1;
        let this = self.clone();
        tokio::spawn(async move {
            let id = record.id.clone();
            let car = record.vehicle_id.clone();
            let (done, vehicle) = this.run(record, vehicle).await;
            this.leave_queue(&car);
            let unknown = done.status == CommandStatus::Unknown;
            if let Some(tx) = lock(&this.running).remove(&id) {
                let _ = tx.send(Some(done.clone()));
            }
            if unknown {
                this.resolve(done, vehicle).await;
            }
        });
    }

    /// Drives one command to a final record and stores it; returns the record and the
    /// vehicle as read for it.
    async fn run(
        &self,
        record: CommandRecord,
        vehicle: Option<VehicleRecord>,
    ) -> (CommandRecord, Option<VehicleRecord>) {
        let renewing = self.renew(&record);
        // The car is held until the outcome is written: the next command on it must
        // never see this one still `pending` after its send (that would be an unlock in
        // doubt).
        let _one_per_car = self.vehicle_locks.turn(&record.vehicle_id).await;
        let _car_lease = self.hold_car(&record.vehicle_id).await;
        // The vehicle is read once (a resumed command has none yet) and passed along.
        let read = match vehicle {
            Some(v) => Ok(Some(v)),
            None => self.store.vehicle(&record.vehicle_id).await,
        };
        let (mut record, outcome) = match &read {
            Ok(Some(vehicle)) => self.execute(record, vehicle).await,
            Ok(None) => no_run(record, CommandError::VehicleRemoved),
            Err(e) => no_run(record, e.clone().into()),
        };
        let vehicle = read.ok().flatten();
        self.finish(&mut record, outcome, vehicle.as_ref(), renewing)
            .await;
        (record, vehicle)
    }

    /// Runs the command on its car: a new one (no send mark, no OEM handle: what
    /// [`Run::execute`] sends) needs the capability; one that may have reached the OEM
    /// needs only its OEM.
    async fn execute(
        &self,
        record: CommandRecord,
        vehicle: &VehicleRecord,
    ) -> (CommandRecord, Outcome) {
        let fresh = record.oem_handle.is_none() && record.sent_at.is_none();
        let oem = match fresh {
            true => self.fleet.require(vehicle, record.action.capability()),
            false => self.fleet.oem(vehicle),
        };
        match oem {
            Ok(oem) => {
                let mut run = Run::new(self, record, oem);
                let outcome = run.execute().await;
                (run.record, outcome)
            }
            Err(e) if fresh => (record, Outcome::Failed(e.into())),
            Err(e) => (record, Outcome::Unknown(e.into())),
        }
    }

    /// Puts the outcome on the record and stores it (unless another replica took the
    /// command over).
    async fn finish(
        &self,
        record: &mut CommandRecord,
        outcome: Outcome,
        vehicle: Option<&VehicleRecord>,
        renewing: Option<tokio::task::JoinHandle<()>>,
    ) {
        let t = self.clock.now();
        outcome.conclude(record, t);
        record.completed_at = Some(t);
        record.retry_at = match &outcome {
            Outcome::Succeeded => None,
            Outcome::Failed(e) => e.retry_after().map(|d| t + d),
            // A new command makes sense once the OEM can no longer run this one.
            Outcome::Unknown(_) => {
                let oem = vehicle.map_or("", |v| &v.oem);
                Some(record.sent_at.unwrap_or(t) + self.timing_of(oem).command_window)
            }
        };
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
        let event = CommandEvent::ended(record, self.clock.now());
        self.write_outcome(record, vehicle, event, record.status.as_str())
            .await;
        tracing::info!(command = %record.id, status = record.status.as_str(),
            error = record.error_code.map_or("", |c| c.as_str()), "command finished");
    }

    /// Stores a final (or resolved) record in one transaction: the outcome, the lock
    /// state it left, its audit entry, its event `kind`, and (cluster) the notice that
    /// makes every replica drop its cached state.
    ///
    /// A write the store refuses (a full disk, a failover) is tried again, with growing
    /// pauses, until it is stored — or, in a cluster, until another replica took the
    /// command over. Until then nobody is told the outcome: waiters get it only once it
    /// is stored, and the store still says `pending`.
    pub(super) async fn write_outcome(
        &self,
        record: &CommandRecord,
        vehicle: Option<&VehicleRecord>,
        event: CommandEvent<'_>,
        decision: &str,
    ) {
        if let Some(v) = vehicle {
            crate::metrics::command(&v.oem, record.action.as_str(), record.status.as_str());
        }
        // The audit entry and the event stand for one moment.
        let at = self.clock.now();
        let audit = crate::audit::entry(
            &crate::audit::Decision {
                actor: &record.caller,
                action: &format!("command.{}", record.action.as_str()),
                decision,
                vehicle_id: Some(&record.vehicle_id),
                command_id: Some(&record.id),
                detail: record.error_code.map(|c| c.as_str()),
                ..Default::default()
            },
            at,
        );
        let kind = event.kind().as_str();
        let event = Events::record(&event, at);
        let hooks = self.events.hooks_for(&event).await;
        let mut backoff = crate::clock::Backoff::new(Duration::from_millis(100), MAX_WRITE_PAUSE);
        loop {
            match self
                .store
                .finish_command(record, &audit, &event, &hooks)
                .await
            {
                Ok(seq) => {
                    self.events.published(kind, seq, !hooks.is_empty());
                    break;
                }
                Err(e) => {
                    tracing::error!(command = %record.id, error = %e, retry_in_ms =
                        backoff.pause().as_millis() as u64, "could not record the outcome; trying again");
                }
            }
            backoff.wait().await;
            if let Ok(false) = self.still_ours(&record.id).await {
                tracing::error!(command = %record.id,
                    "another replica took this command over while its outcome could not be \
                     written; leaving it to that replica");
                return;
            }
        }
        if record.status == CommandStatus::Succeeded {
            self.fleet.invalidate_vehicle(&record.vehicle_id);
        }
    }
}

/// A command that cannot run (its car is gone or unreadable): `failed` if it was never
/// sent, `unknown` if it may have reached the OEM.
fn no_run(record: CommandRecord, e: CommandError) -> (CommandRecord, Outcome) {
    let outcome = match record.sent_at {
        Some(_) => Outcome::Unknown(e),
        None => Outcome::Failed(e),
    };
    (record, outcome)
}
