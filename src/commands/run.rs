//! Running a recorded command: it is started in its own task, serialized per car,
//! sent, followed, and its outcome written with its audit entry and event — by the
//! rules that carry it to an honest outcome: when it counts as
//! sent, what an OEM answer proves, what a lock state proves, and when keyway must say
//! `unknown`.
//!
//! - **Sent** is written just before the request leaves — after the quota slot and the
//!   wake-up — and cleared again when the OEM certainly did not take it (asleep, 401,
//!   429, an open breaker), so a command that never left is sent after a restart.
//! - **Never a second send while the first may still execute.** After an ambiguous
//!   answer (timeout, reset, 5xx) the command is not sent again: keyway watches the car.
//!   A lock state proves something only when it was observed after the send: the OEM's
//!   timestamp is later than the send by more than its clock can run ahead of keyway's
//!   (`upstream::clock`), or the read was issued the OEM's `state_lag` after it. The
//!   effect observed after the send → `succeeded`; otherwise `unknown` — the opposite
//!   read after the OEM's `command_window` only ends the looking, since the car's owner
//!   may have undone the command since (a key fob, the OEM's app).
//! - An async command's OEM handle is persisted when received; a failed poll or an
//!   open breaker never fails it — it stays pending until its deadline, then a last
//!   look at the car decides between `succeeded` and `unknown`.
//! - `failed` only when keyway is sure: the OEM did not take it, refused it, or let it
//!   expire — the OEM's word, never a lock state.
//! - An unlock is not sent while an earlier unlock of the same car is `unknown` and may
//!   still execute (`command_in_doubt`).

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::{
    Capability, Command, Delivered, OemError, OemTiming, Pending, Progress, Sent,
};
use tokio::sync::watch;

use super::CommandError;
use super::Commands;
use super::verdict::{Judged, Outcome};
use super::view::CommandEvent;
use crate::clock;
use crate::error::{Classify, OemFailure};
use crate::events::{Events, Payload};
use crate::store::{CommandRecord, CommandStatus, StoreError, VehicleRecord, now};
use crate::sync::lock;
use crate::tokens::pin::Pin;
use crate::tokens::{CallError, TokenError};
use crate::vehicles::OemCall;

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
        mut record: CommandRecord,
        vehicle: Option<VehicleRecord>,
    ) -> (CommandRecord, Option<VehicleRecord>) {
        let renewing = self.renew(&record);
        let vehicle = {
            // The car is held until the outcome is written: the next command on it must
            // never see this one still `pending` after its send (that would be an unlock
            // in doubt).
            let _one_per_car = self.vehicle_locks.turn(&record.vehicle_id).await;
            let _car_lease = self.hold_car(&record.vehicle_id).await;
            // The vehicle is read once (a resumed command has none yet) and passed along.
            let read = match vehicle {
                Some(v) => Ok(Some(v)),
                None => self.store.vehicle(&record.vehicle_id).await,
            };
            let outcome = self.execute(&mut record, &read).await;
            let vehicle = read.ok().flatten();
            self.finish(&mut record, outcome, vehicle.as_ref(), renewing)
                .await;
            vehicle
        };
        (record, vehicle)
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
        let t = now();
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
        let event = CommandEvent::ended(record);
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
        let audit = crate::audit::entry(&crate::audit::Decision {
            actor: &record.caller,
            action: &format!("command.{}", record.action.as_str()),
            decision,
            vehicle_id: Some(&record.vehicle_id),
            command_id: Some(&record.id),
            detail: record.error_code.map(|c| c.as_str()),
            ..Default::default()
        });
        let kind = event.kind().as_str();
        let event = Events::record(&event);
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

    /// Drives a recorded command to its outcome.
    async fn execute(
        &self,
        record: &mut CommandRecord,
        vehicle: &Result<Option<VehicleRecord>, StoreError>,
    ) -> Outcome {
        let sent = record.sent_at.is_some();
        let not_sent_or_unknown = |e: CommandError| {
            if sent {
                Outcome::Unknown(e)
            } else {
                Outcome::Failed(e)
            }
        };
        let vehicle = match vehicle {
            Ok(Some(v)) => v,
            Ok(None) => {
                return not_sent_or_unknown(CommandError::VehicleRemoved);
            }
            Err(e) => return not_sent_or_unknown(e.clone().into()),
        };
        if record.oem_handle.is_none() && !sent {
            return match self.fleet.require(vehicle, record.action.capability()) {
                Ok(oem) => self.send(record, &oem).await,
                Err(e) => Outcome::Failed(e.into()),
            };
        }
        let oem = match self.fleet.oem(vehicle) {
            Ok(oem) => oem,
            Err(e) => return Outcome::Unknown(e.into()),
        };
        if let Some(handle) = &record.oem_handle {
            // Accepted before a restart: only poll.
            return match serde_json::from_str::<Pending>(handle) {
                Ok(pending) => self.follow(record, &oem, &pending).await,
                Err(e) => Outcome::Unknown(CommandError::Handle(e.to_string())),
            };
        }
        // Sent before a restart, answer never recorded: never sent again.
        self.observe(record, &oem, "keyway restarted before the OEM answered")
            .await
    }

    /// Takes a quota slot, records the send, sends, and follows the answer.
    async fn send(&self, record: &mut CommandRecord, oem: &OemCall<'_>) -> Outcome {
        let vehicle = oem.vehicle;
        let mut woken = false;
        // The owner's PIN, where the OEM's commands may need one (a refused one is not
        // handed on: the adapter then asks for one, and the answer names the refusal).
        let pin = match oem.pin().await {
            Ok(pin) => pin,
            Err(e) => return Outcome::Failed(e.into()),
        };
        let usable = match &pin {
            Pin::Usable { secret, .. } => Some(secret.clone()),
            _ => None,
        };
        loop {
            if let Some(doubt) = self.in_doubt(record, oem).await {
                return Outcome::Failed(doubt);
            }
            match self.still_ours(&record.id).await {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::Failed(CommandError::TakenOver);
                }
                Err(e) => return Outcome::Failed(e.into()),
            }
            if let Err(e) = self.mark_sent(record, oem).await {
                return Outcome::Failed(e);
            }
            let (action, command_id) = (record.action, record.id.clone());
            let answer = oem
                .call("send", |mut cx, adapter, car| {
                    cx.command_id = Some(command_id.clone());
                    cx.pin = usable.clone();
                    async move { adapter.send(&cx, &car, action).await }
                })
                .await;
            match answer {
                Ok(Sent::Completed) => return Outcome::Succeeded,
                Ok(Sent::Pending(pending)) => {
                    match serde_json::to_string(&pending) {
                        Ok(h) => record.oem_handle = Some(h),
                        Err(e) => return Outcome::Unknown(CommandError::Handle(e.to_string())),
                    }
                    record.updated_at = now();
                    if let Err(e) = self.store.update_command(record).await {
                        tracing::error!(command = %record.id, error = %e,
                            "could not persist the OEM's handle; following it in memory");
                    }
                    return self.follow(record, oem, &pending).await;
                }
                // Asleep: the OEM did not take it. Wake the car, then send once more.
                Err(CallError::Oem(OemError::Asleep)) if !woken => {
                    self.unsend(record).await;
                    if let Err(e) = oem.wake_up().await {
                        return Outcome::Failed(e.at(&vehicle.oem).into());
                    }
                    woken = true;
                }
                // The car never saw it: the OEM wants the owner's PIN, or refused it.
                Err(CallError::Oem(
                    e @ (OemError::PinRequired { .. } | OemError::PinRejected { .. }),
                )) => {
                    self.unsend(record).await;
                    return Outcome::Failed(oem.pin_failure(&pin, &e).await.into());
                }
                // The OEM says this car cannot do it (Smartcar's COMPATIBILITY for a make
                // it cannot command): kept with the car, the next such command is refused
                // before it is made, and the car's capabilities show it.
                Err(CallError::Oem(e @ OemError::NotCapable { .. })) => {
                    self.unsend(record).await;
                    self.cannot(vehicle, record.action.capability()).await;
                    return Outcome::Failed(TokenError::from_oem(&vehicle.oem, e).into());
                }
                Err(CallError::Oem(e)) if e.delivered() == Delivered::Unknown => {
                    tracing::warn!(command = %record.id, error = %e,
                        "outcome ambiguous; watching the car, not sending again");
                    let why = OemFailure::new(&vehicle.oem, e).to_string();
                    return self.observe(record, oem, &why).await;
                }
                Err(CallError::Oem(e)) => {
                    if e.delivered() == Delivered::No {
                        self.unsend(record).await;
                    }
                    return Outcome::Failed(TokenError::from_oem(&vehicle.oem, e).into());
                }
                Err(CallError::Token(e)) => {
                    self.unsend(record).await;
                    return Outcome::Failed(e.into());
                }
            }
        }
    }

    /// Keeps that the OEM says `vehicle` cannot do `c` (best effort: the command's outcome
    /// does not depend on it).
    async fn cannot(&self, vehicle: &VehicleRecord, c: Capability) {
        let mut left = self.fleet.capabilities(vehicle);
        left.retain(|d| *d != c);
        match self.store.set_capabilities(&vehicle.id, Some(&left)).await {
            Ok(()) => {
                self.fleet.invalidate_vehicle(&vehicle.id);
                tracing::info!(vehicle = %vehicle.id, capability = ?c,
                    "the OEM says this car cannot do it; kept with the car");
            }
            Err(e) => tracing::warn!(vehicle = %vehicle.id, error = %e,
                "could not keep what the car cannot do"),
        }
    }

    /// Records the send and takes a command-quota slot right before the request leaves.
    /// The mark comes first (a crash after the send must find it); while the command
    /// waits for a slot it is not marked, so a crash then leaves it to be sent after the
    /// restart. `Err`: not sent (the quota stays spent past the longest wait).
    async fn mark_sent(
        &self,
        record: &mut CommandRecord,
        oem: &OemCall<'_>,
    ) -> Result<(), CommandError> {
        let quota = &oem.oem.commands;
        let started = tokio::time::Instant::now();
        loop {
            record.sent_at = Some(now());
            record.updated_at = now();
            if let Err(e) = self.store.update_command(record).await {
                record.sent_at = None;
                return Err(e.into());
            }
            let reserved = record.reserved && self.may_use_reserve(record, quota);
            let wait = match quota.take(reserved).await {
                Ok(()) => {
                    quota.observe_wait(Some(started.elapsed()));
                    return Ok(());
                }
                Err(wait) => wait,
            };
            self.unsend(record).await;
            if started.elapsed() + wait > quota.max_wait() {
                quota.observe_wait(None);
                return Err(CommandError::QuotaSpent {
                    oem: oem.name().to_string(),
                    retry_after: wait,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether a reserved command may take one of the OEM's reserved slots now: a relock
    /// always; a grant's unlock once per the OEM's command window per tenant, so one
    /// tenant's grant traffic cannot crowd the reserve other tenants' relocks need.
    fn may_use_reserve(
        &self,
        record: &CommandRecord,
        quota: &crate::upstream::quota::Quota,
    ) -> bool {
        if record.action == Command::Lock {
            return true;
        }
        let window = quota.longest_window();
        let now = tokio::time::Instant::now();
        let mut uses = lock(&self.reserve_uses);
        uses.retain(|_, at| now.duration_since(*at) < window);
        let key = (record.tenant.clone(), quota.oem().to_string());
        if uses.contains_key(&key) {
            return false;
        }
        uses.insert(key, now);
        true
    }

    /// The OEM certainly did not take the command: it is not "sent" any more.
    async fn unsend(&self, record: &mut CommandRecord) {
        record.sent_at = None;
        record.updated_at = now();
        if let Err(e) = self.store.update_command(record).await {
            tracing::warn!(command = %record.id, error = %e, "could not clear the send mark");
        }
    }

    /// For an unlock: why it must not be sent now (an earlier unlock of the car may
    /// still execute), if so.
    async fn in_doubt(&self, record: &CommandRecord, oem: &OemCall<'_>) -> Option<CommandError> {
        if record.action != Command::Unlock {
            return None;
        }
        let window = oem.timing().command_window;
        let since = now() - window;
        let earlier = match self.store.commands_sent_since(&oem.vehicle.id, since).await {
            Ok(list) => list,
            // Refusing an unlock is the safe side of not knowing.
            Err(e) => return Some(e.into()),
        };
        // `unknown`; still `pending` after its send (its replica died and no other has
        // taken it over yet); or `succeeded` only because the car stood unlocked after it
        // (no OEM confirmation: it may have been unlocked already, with this one still
        // queued): each may still execute — unless a caller acknowledged it.
        let doubt = earlier.into_iter().find(|c| {
            c.id != record.id
                && c.action == Command::Unlock
                && c.acknowledged.is_none()
                && match c.status {
                    CommandStatus::Unknown | CommandStatus::Pending => true,
                    CommandStatus::Succeeded => c.observed.is_some(),
                    CommandStatus::Failed => false,
                }
        })?;
        let settles = doubt.sent_at.unwrap_or_else(now) + window;
        Some(CommandError::InDoubt {
            earlier: doubt.id,
            retry_after: Duration::try_from(settles - now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
        })
    }

    /// Polls an accepted async command until the OEM says, or its deadline passes.
    async fn follow(
        &self,
        record: &mut CommandRecord,
        oem: &OemCall<'_>,
        pending: &Pending,
    ) -> Outcome {
        let vehicle = oem.vehicle;
        let give_up = record.sent_at.unwrap_or_else(now) + self.timing.timeout;
        let mut delay =
            Duration::from_millis(pending.poll_after_ms).min(self.timing.max_poll_interval);
        loop {
            tokio::time::sleep(delay.min(clock::left(give_up))).await;
            // A hanging OEM does not carry the command past its timeout.
            match clock::within(give_up, oem.poll(record.action, pending)).await {
                Some(Ok(Progress::Succeeded)) => return Outcome::Succeeded,
                Some(Ok(Progress::Failed(e))) => {
                    return Outcome::Failed(TokenError::from_oem(&vehicle.oem, e).into());
                }
                Some(Ok(Progress::Pending { poll_after })) => {
                    delay = poll_after
                        .unwrap_or(delay)
                        .min(self.timing.max_poll_interval);
                }
                // A failed poll (or an open breaker) changes nothing at the car.
                Some(Err(e)) => {
                    let e = e.at(&vehicle.oem);
                    tracing::debug!(command = %record.id, error = %e, "poll failed");
                }
                None => tracing::debug!(command = %record.id, "poll cut off at the timeout"),
            }
            if now() >= give_up {
                // A last look at the car.
                let timing = oem.timing();
                let judged = match clock::within(give_up, self.look(oem)).await.flatten() {
                    Some(_) if self.others_sent_since(record).await => Judged::Open,
                    Some(o) => self.judge(record, &o, &timing),
                    None => Judged::Open,
                };
                return match judged {
                    Judged::Done => Outcome::Succeeded,
                    Judged::Dead => Outcome::Unknown(CommandError::Unconfirmed {
                        oem: vehicle.oem.clone(),
                        detail: "the OEM never confirmed the command; its command window \
                                 passed and the car shows the opposite: it did not run, or ran \
                                 and was undone since by its owner"
                            .into(),
                    }),
                    Judged::Open => Outcome::Unknown(CommandError::Unconfirmed {
                        oem: vehicle.oem.clone(),
                        detail: "the OEM did not confirm the command in time; it may still \
                                 execute"
                            .into(),
                    }),
                };
            }
        }
    }
}
