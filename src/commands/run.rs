//! One command on its way to an honest outcome: a [`Run`] holds what is the command's
//! own — its record, its car through its OEM, the OEM's timing — while [`Commands`]
//! keeps only what all commands share. A run sends the command, follows an accepted
//! one, and (`reconcile`) observes the car when the answer was lost, by these rules:
//!
//! - **Sent** is written just before the request leaves — after the quota slot and the
//!   wake-up — and cleared again when the OEM certainly did not take it (asleep, 401,
//!   429, an open breaker), so a command that never left is sent after a restart.
//! - **Never a second send while the first may still execute.** After an ambiguous
//!   answer (timeout, reset, 5xx) the command is not sent again: keyway watches the car,
//!   and only a lock state observed after the send counts (`observation`). The effect
//!   observed → `succeeded`; otherwise `unknown` — the opposite read after the OEM's
//!   `command_window` only ends the looking, since the car's owner may have undone the
//!   command since (a key fob, the OEM's app).
//! - An async command's OEM handle is persisted when received; a failed poll or an
//!   open breaker never fails it — it stays pending until its deadline, then a last
//!   look at the car decides between `succeeded` and `unknown`.
//! - `failed` only when keyway is sure: the OEM did not take it, refused it, or let it
//!   expire — the OEM's word, never a lock state.
//! - An unlock is not sent while an earlier unlock of the same car is `unknown` and may
//!   still execute (`command_in_doubt`).

use std::time::Duration;

use keyway_adapter::{
    Capability, Command, Delivered, OemError, OemTiming, Pending, Progress, Sent,
};

use super::CommandError;
use super::Commands;
use super::observation::look;
use super::verdict::{Judged, Outcome};
use crate::error::OemFailure;
use crate::store::{CommandRecord, CommandStatus};
use crate::sync::lock;
use crate::tokens::pin::Pin;
use crate::tokens::{CallError, TokenError};
use crate::vehicles::OemCall;

/// One command's run: its record as it goes, its car through its OEM, and the OEM's
/// timing. Built once the car is known; what every command shares is `shared`.
pub(super) struct Run<'a> {
    /// What all commands share: the store, the fleet, the locks, the quota reserve.
    pub(super) shared: &'a Commands,
    /// The command as stored, updated as it goes.
    pub(super) record: CommandRecord,
    /// Its car, through its OEM.
    pub(super) oem: OemCall<'a>,
    /// The OEM's timing (declared, with configured overrides).
    pub(super) timing: OemTiming,
}

impl<'a> Run<'a> {
    /// A run of `record` on the car `oem` names.
    pub(super) fn new(shared: &'a Commands, record: CommandRecord, oem: OemCall<'a>) -> Self {
        let timing = oem.timing();
        Self {
            shared,
            record,
            oem,
            timing,
        }
    }

    /// Drives the command to its outcome: a new one is sent; one accepted before a
    /// restart is only polled; one sent before a restart whose answer was never recorded
    /// is never sent again — the car is observed.
    pub(super) async fn execute(&mut self) -> Outcome {
        match (self.record.oem_handle.clone(), self.record.sent_at) {
            (None, None) => self.send().await,
            (Some(pending), _) => self.follow(&pending).await,
            (None, Some(_)) => {
                self.observe("keyway restarted before the OEM answered")
                    .await
            }
        }
    }

    /// Takes a quota slot, records the send, sends, and follows the answer.
    async fn send(&mut self) -> Outcome {
        let oem = self.oem;
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
            if let Some(doubt) = self.in_doubt().await {
                return Outcome::Failed(doubt);
            }
            match self.shared.still_ours(&self.record.id).await {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::Failed(CommandError::TakenOver);
                }
                Err(e) => return Outcome::Failed(e.into()),
            }
            if let Err(e) = self.mark_sent().await {
                return Outcome::Failed(e);
            }
            let (action, command_id) = (self.record.action, self.record.id.clone());
            let answer = oem
                .call("send", |mut cx, adapter, car| {
                    cx.command_id = Some(command_id.to_string());
                    cx.pin = usable.clone();
                    async move { adapter.send(&cx, &car, action).await }
                })
                .await;
            match answer {
                Ok(Sent::Completed) => return Outcome::Succeeded,
                // Taken, and the OEM will say nothing more: the car's lock state decides.
                Ok(Sent::Accepted) => {
                    return self
                        .observe("the OEM took it and reports no outcome of its commands")
                        .await;
                }
                Ok(Sent::Pending(pending)) => {
                    self.record.oem_handle = Some(pending.clone());
                    self.record.updated_at = self.shared.clock.now();
                    if let Err(e) = self.shared.store.update_command(&self.record).await {
                        tracing::error!(command = %self.record.id, error = %e,
                            "could not persist the OEM's handle; following it in memory");
                    }
                    return self.follow(&pending).await;
                }
                // Asleep: the OEM did not take it. Wake the car, then send once more.
                Err(CallError::Oem(OemError::Asleep)) if !woken => {
                    self.unsend().await;
                    if let Err(e) = oem.wake_up().await {
                        return Outcome::Failed(e.at(&vehicle.oem).into());
                    }
                    woken = true;
                }
                // The car never saw it: the OEM wants the owner's PIN, or refused it.
                Err(CallError::Oem(
                    e @ (OemError::PinRequired { .. } | OemError::PinRejected { .. }),
                )) => {
                    self.unsend().await;
                    return Outcome::Failed(oem.pin_failure(&pin, &e).await.into());
                }
                // The OEM says this car cannot do it (Smartcar's COMPATIBILITY for a make
                // it cannot command): kept with the car, the next such command is refused
                // before it is made, and the car's capabilities show it.
                Err(CallError::Oem(e @ OemError::NotCapable { .. })) => {
                    self.unsend().await;
                    self.cannot(self.record.action.capability()).await;
                    return Outcome::Failed(TokenError::from_oem(&vehicle.oem, e).into());
                }
                Err(CallError::Oem(e)) if e.delivered() == Delivered::Unknown => {
                    tracing::warn!(command = %self.record.id, error = %e,
                        "outcome ambiguous; watching the car, not sending again");
                    let why = OemFailure::new(&vehicle.oem, e).to_string();
                    return self.observe(&why).await;
                }
                Err(CallError::Oem(e)) => {
                    if e.delivered() == Delivered::No {
                        self.unsend().await;
                    }
                    return Outcome::Failed(TokenError::from_oem(&vehicle.oem, e).into());
                }
                Err(CallError::Token(e)) => {
                    self.unsend().await;
                    return Outcome::Failed(e.into());
                }
            }
        }
    }

    /// Keeps that the OEM says `vehicle` cannot do `c` (best effort: the command's outcome
    /// does not depend on it).
    async fn cannot(&self, c: Capability) {
        let (vehicle, shared) = (self.oem.vehicle, self.shared);
        let mut left = shared.fleet.capabilities(vehicle);
        left.retain(|d| *d != c);
        match shared
            .store
            .set_capabilities(&vehicle.id, Some(&left))
            .await
        {
            Ok(()) => {
                shared.fleet.invalidate_vehicle(&vehicle.id);
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
    async fn mark_sent(&mut self) -> Result<(), CommandError> {
        let oem = self.oem;
        let quota = &oem.oem.commands;
        let started = tokio::time::Instant::now();
        loop {
            let t = self.shared.clock.now();
            self.record.sent_at = Some(t);
            self.record.updated_at = t;
            if let Err(e) = self.shared.store.update_command(&self.record).await {
                self.record.sent_at = None;
                return Err(e.into());
            }
            let reserved = self.record.reserved && self.may_use_reserve(quota);
            let wait = match quota.take(reserved).await {
                Ok(()) => {
                    quota.observe_wait(Some(started.elapsed()));
                    return Ok(());
                }
                Err(wait) => wait,
            };
            self.unsend().await;
            if started.elapsed() + wait > quota.max_wait() {
                quota.observe_wait(None);
                return Err(CommandError::QuotaSpent {
                    oem: oem.name().to_string(),
                    retry_after: wait,
                });
            }
            self.shared.clock.sleep(wait).await;
        }
    }

    /// Whether a reserved command may take one of the OEM's reserved slots now: a relock
    /// always; a grant's unlock once per the OEM's command window per tenant, so one
    /// tenant's grant traffic cannot crowd the reserve other tenants' relocks need.
    fn may_use_reserve(&self, quota: &crate::upstream::quota::Quota) -> bool {
        if self.record.action == Command::Lock {
            return true;
        }
        let window = quota.longest_window();
        let now = tokio::time::Instant::now();
        let mut uses = lock(&self.shared.reserve_uses);
        uses.retain(|_, at| now.duration_since(*at) < window);
        let key = (self.record.tenant.clone(), quota.oem().to_string());
        if uses.contains_key(&key) {
            return false;
        }
        uses.insert(key, now);
        true
    }

    /// The OEM certainly did not take the command: it is not "sent" any more.
    async fn unsend(&mut self) {
        self.record.sent_at = None;
        self.record.updated_at = self.shared.clock.now();
        if let Err(e) = self.shared.store.update_command(&self.record).await {
            tracing::warn!(command = %self.record.id, error = %e, "could not clear the send mark");
        }
    }

    /// For an unlock: why it must not be sent now (an earlier unlock of the car may
    /// still execute), if so.
    async fn in_doubt(&self) -> Option<CommandError> {
        let record = &self.record;
        if record.action != Command::Unlock {
            return None;
        }
        let window = self.timing.command_window;
        let since = self.shared.clock.now() - window;
        let earlier = match self
            .shared
            .store
            .commands_sent_since(&self.oem.vehicle.id, since)
            .await
        {
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
        let settles = doubt.sent_at.unwrap_or_else(|| self.shared.clock.now()) + window;
        Some(CommandError::InDoubt {
            earlier: doubt.id.into(),
            retry_after: Duration::try_from(settles - self.shared.clock.now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
        })
    }

    /// Polls an accepted async command until the OEM says, or its deadline passes.
    async fn follow(&mut self, pending: &Pending) -> Outcome {
        let (oem, shared) = (self.oem, self.shared);
        let vehicle = oem.vehicle;
        let give_up = self
            .record
            .sent_at
            .unwrap_or_else(|| self.shared.clock.now())
            + shared.timing.timeout;
        let mut delay =
            Duration::from_millis(pending.poll_after_ms).min(shared.timing.max_poll_interval);
        loop {
            self.shared
                .clock
                .sleep(delay.min(self.shared.clock.left(give_up)))
                .await;
            // A hanging OEM does not carry the command past its timeout.
            match self
                .shared
                .clock
                .within(give_up, oem.poll(self.record.action, pending))
                .await
            {
                Some(Ok(Progress::Succeeded)) => return Outcome::Succeeded,
                Some(Ok(Progress::Failed(e))) => {
                    return Outcome::Failed(TokenError::from_oem(&vehicle.oem, e).into());
                }
                Some(Ok(Progress::Pending { poll_after })) => {
                    delay = poll_after
                        .unwrap_or(delay)
                        .min(shared.timing.max_poll_interval);
                }
                // A failed poll (or an open breaker) changes nothing at the car.
                Some(Err(e)) => {
                    let e = e.at(&vehicle.oem);
                    tracing::debug!(command = %self.record.id, error = %e, "poll failed");
                }
                None => tracing::debug!(command = %self.record.id, "poll cut off at the timeout"),
            }
            if self.shared.clock.now() >= give_up {
                // A last look at the car.
                let judged = match self
                    .shared
                    .clock
                    .within(give_up, look(&oem))
                    .await
                    .flatten()
                {
                    Some(_) if self.others_sent_since().await => Judged::Open,
                    Some(o) => self.judge(&o),
                    None => Judged::Open,
                };
                return match judged {
                    Judged::Done => Outcome::Succeeded,
                    Judged::Dead => Outcome::Unknown(CommandError::Unconfirmed {
                        oem: vehicle.oem.to_string(),
                        detail: "the OEM never confirmed the command; its command window \
                                 passed and the car shows the opposite: it did not run, or ran \
                                 and was undone since by its owner"
                            .into(),
                    }),
                    Judged::Open => Outcome::Unknown(CommandError::Unconfirmed {
                        oem: vehicle.oem.to_string(),
                        detail: "the OEM did not confirm the command in time; it may still \
                                 execute"
                            .into(),
                    }),
                };
            }
        }
    }
}
