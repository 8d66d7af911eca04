//! The rules that carry a recorded command to an honest outcome: when it counts as
//! sent, what an OEM answer proves, what a lock state proves, and when keyway must say
//! `unknown`.
//!
//! - **Sent** is written just before the request leaves — after the quota slot and the
//!   wake-up — and cleared again when the OEM certainly did not take it (asleep, 401,
//!   429, an open breaker), so a command that never left is sent after a restart.
//! - **Never a second send while the first may still execute.** After an ambiguous
//!   answer (timeout, reset, 5xx) the command is not sent again: keyway watches the car.
//!   A lock state proves something only when it was observed after the send: the OEM's
//!   timestamp is later than the send (plus a clock-skew allowance), or the read was
//!   issued the OEM's `state_lag` after it. The effect observed after the send →
//!   `succeeded`; the opposite read a full state lag after the OEM's `command_window`
//!   ended (the OEM will no longer execute it; the OEM's timestamp is not trusted for
//!   this) → `failed`; neither by the command timeout → `unknown`.
//! - An async command's OEM handle is persisted when received; a failed poll or an
//!   open breaker never fails it — it stays pending until its deadline, then a last
//!   look at the car decides between `succeeded` and `unknown`.
//! - `failed` only when keyway is sure: the OEM did not take it, refused it, or let it
//!   expire, or its window passed with the car showing the opposite.
//! - An unlock is not sent while an earlier unlock of the same car is `unknown` and may
//!   still execute (`command_in_doubt`).

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::{
    Adapter, Capability, Command, Delivered, OemError, OemTiming, Pending, Progress, Sent,
    VehicleRef,
};

use super::Commands;
use crate::error::{ApiError, Code};
use crate::store::{CommandRecord, CommandStatus, VehicleRecord, now};
use crate::tokens::CallError;

/// How far an OEM's timestamps may run ahead of keyway's clock.
const CLOCK_SKEW: time::Duration = time::Duration::seconds(1);

/// How a command ended, as far as keyway can tell.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The OEM confirmed it, or a lock state observed after the send shows it.
    Succeeded,
    /// It certainly did not execute and never will.
    Failed(ApiError),
    /// The car may or may not execute it.
    Unknown(ApiError),
}

/// A lock state read from the car.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation {
    /// Locked?
    pub locked: bool,
    /// When the car reported it (the OEM's timestamp), if the OEM says.
    pub reported_at: Option<time::OffsetDateTime>,
    /// When keyway asked.
    pub read_at: time::OffsetDateTime,
}

impl Observation {
    /// Whether this state was certainly observed after `t`.
    pub fn after(&self, t: time::OffsetDateTime, timing: &OemTiming) -> bool {
        self.reported_at.is_some_and(|r| r > t + CLOCK_SKEW) || self.read_at >= t + timing.state_lag
    }

    /// Whether this state was observed after `t` without trusting the OEM's timestamp:
    /// read a full state lag after it. Deciding `failed` rests on this alone, so an
    /// adapter that dates a stale state "now" can never make keyway say `failed` about a
    /// command the car ran.
    pub fn surely_after(&self, t: time::OffsetDateTime, timing: &OemTiming) -> bool {
        self.read_at >= t + timing.state_lag
    }
}

/// Fallback timing for an OEM that is not enabled any more.
const CAUTIOUS: OemTiming = OemTiming {
    state_lag: Duration::from_secs(300),
    command_window: Duration::from_secs(900),
};

impl Commands {
    /// The OEM's timing (declared, with configured overrides).
    pub(crate) fn timing_of(&self, oem: &str) -> OemTiming {
        self.registry.get(oem).map_or(CAUTIOUS, |o| o.timing)
    }

    /// Drives a recorded command to its outcome.
    pub(super) async fn execute(&self, record: &mut CommandRecord) -> Outcome {
        let sent = record.sent_at.is_some();
        let not_sent_or_unknown = |e: ApiError| {
            if sent {
                Outcome::Unknown(e)
            } else {
                Outcome::Failed(e)
            }
        };
        let vehicle = match self.store.vehicle(&record.vehicle_id).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                return not_sent_or_unknown(ApiError::new(
                    Code::VehicleNotFound,
                    "the vehicle was removed",
                ));
            }
            Err(e) => return not_sent_or_unknown(e.into()),
        };
        if let Some(handle) = &record.oem_handle {
            // Accepted before a restart: only poll.
            return match serde_json::from_str::<Pending>(handle) {
                Ok(pending) => self.follow(record, &vehicle, &pending).await,
                Err(e) => Outcome::Unknown(ApiError::internal(e)),
            };
        }
        if sent {
            // Sent before a restart, answer never recorded: never sent again.
            return self
                .observe(record, &vehicle, "keyway restarted before the OEM answered")
                .await;
        }
        match self.fleet.require(&vehicle, record.action.capability()) {
            Ok(adapter) => self.send(record, &vehicle, &adapter).await,
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Takes a quota slot, records the send, sends, and follows the answer.
    async fn send(
        &self,
        record: &mut CommandRecord,
        vehicle: &VehicleRecord,
        adapter: &Arc<dyn Adapter>,
    ) -> Outcome {
        let r = VehicleRef {
            oem_id: vehicle.oem_id.clone(),
        };
        let mut woken = false;
        loop {
            if let Some(doubt) = self.in_doubt(record, vehicle).await {
                return Outcome::Failed(doubt);
            }
            match self.still_ours(&record.id).await {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::Failed(ApiError::internal(
                        "another replica took this command over before it was sent",
                    ));
                }
                Err(e) => return Outcome::Failed(e),
            }
            if let Err(e) = self.mark_sent(record, vehicle).await {
                return Outcome::Failed(e);
            }
            let (action, command_id) = (record.action, record.id.clone());
            let answer = self
                .fleet
                .call(vehicle, "send", |mut cx| {
                    cx.command_id = Some(command_id.clone());
                    let (adapter, r) = (adapter.clone(), r.clone());
                    async move { adapter.send(&cx, &r, action).await }
                })
                .await;
            match answer {
                Ok(Sent::Completed) => return Outcome::Succeeded,
                Ok(Sent::Pending(pending)) => {
                    match serde_json::to_string(&pending) {
                        Ok(h) => record.oem_handle = Some(h),
                        Err(e) => return Outcome::Unknown(ApiError::internal(e)),
                    }
                    record.updated_at = now();
                    if let Err(e) = self.store.update_command(record).await {
                        tracing::error!(command = %record.id, error = %e,
                            "could not persist the OEM's handle; following it in memory");
                    }
                    return self.follow(record, vehicle, &pending).await;
                }
                // Asleep: the OEM did not take it. Wake the car, then send once more.
                Err(CallError::Oem(OemError::Asleep)) if !woken => {
                    self.unsend(record).await;
                    if let Err(e) = self.fleet.wake_up(vehicle).await {
                        return Outcome::Failed(e.into_api(&vehicle.oem));
                    }
                    woken = true;
                }
                Err(CallError::Oem(e)) if e.delivered() == Delivered::Unknown => {
                    tracing::warn!(command = %record.id, error = %e,
                        "outcome ambiguous; watching the car, not sending again");
                    let why = ApiError::from_oem(&e, &vehicle.oem).detail;
                    return self.observe(record, vehicle, &why).await;
                }
                Err(CallError::Oem(e)) => {
                    if e.delivered() == Delivered::No {
                        self.unsend(record).await;
                    }
                    return Outcome::Failed(ApiError::from_oem(&e, &vehicle.oem));
                }
                Err(CallError::Gateway(e)) => {
                    self.unsend(record).await;
                    return Outcome::Failed(e);
                }
            }
        }
    }

    /// Records the send and takes a command-quota slot right before the request leaves.
    /// The mark comes first (a crash after the send must find it); while the command
    /// waits for a slot it is not marked, so a crash then leaves it to be sent after the
    /// restart. `Err`: not sent (the quota stays spent past the longest wait).
    async fn mark_sent(
        &self,
        record: &mut CommandRecord,
        vehicle: &VehicleRecord,
    ) -> Result<(), ApiError> {
        let quota = self.registry.get(&vehicle.oem).map(|o| o.commands.clone());
        let started = tokio::time::Instant::now();
        loop {
            record.sent_at = Some(now());
            record.updated_at = now();
            if let Err(e) = self.store.update_command(record).await {
                record.sent_at = None;
                return Err(e.into());
            }
            let Some(quota) = &quota else {
                return Ok(());
            };
            let wait = match quota.take(record.reserved).await {
                Ok(()) => {
                    quota.observe_wait(Some(started.elapsed()));
                    return Ok(());
                }
                Err(wait) => wait,
            };
            self.unsend(record).await;
            if started.elapsed() + wait > quota.max_wait() {
                quota.observe_wait(None);
                let mut e = ApiError::new(
                    Code::RateLimited,
                    "the OEM's command quota is spent; the command was not sent",
                )
                .with_oem(&vehicle.oem);
                e.retry_after = Some(wait);
                return Err(e);
            }
            tokio::time::sleep(wait).await;
        }
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
    async fn in_doubt(&self, record: &CommandRecord, vehicle: &VehicleRecord) -> Option<ApiError> {
        if record.action != Command::Unlock {
            return None;
        }
        let window = self.timing_of(&vehicle.oem).command_window;
        let since = now() - window;
        let earlier = match self.store.commands_sent_since(&vehicle.id, since).await {
            Ok(list) => list,
            // Refusing an unlock is the safe side of not knowing.
            Err(e) => return Some(e.into()),
        };
        // `unknown`; still `pending` after its send (its replica died and no other has
        // taken it over yet); or `succeeded` only because the car stood unlocked after it
        // (no OEM confirmation: it may have been unlocked already, with this one still
        // queued): each may still execute.
        let doubt = earlier.into_iter().find(|c| {
            c.id != record.id
                && c.action == Command::Unlock
                && match c.status {
                    CommandStatus::Unknown | CommandStatus::Pending => true,
                    CommandStatus::Succeeded => c.observed.is_some(),
                    CommandStatus::Failed => false,
                }
        })?;
        let settles = doubt.sent_at.unwrap_or_else(now) + window;
        let mut e = ApiError::new(
            Code::CommandInDoubt,
            format!(
                "an earlier unlock of this car ({}) may still execute; keyway sends no second \
                 unlock until the OEM's command window ends",
                doubt.id
            ),
        )
        .with("command_in_doubt", doubt.id.clone());
        e.retry_after = Some(
            Duration::try_from(settles - now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
        );
        Some(e)
    }

    /// Polls an accepted async command until the OEM says, or its deadline passes.
    async fn follow(
        &self,
        record: &mut CommandRecord,
        vehicle: &VehicleRecord,
        pending: &Pending,
    ) -> Outcome {
        let adapter = match self.fleet.adapter(vehicle) {
            Ok(a) => a,
            Err(e) => return Outcome::Unknown(e),
        };
        let r = VehicleRef {
            oem_id: vehicle.oem_id.clone(),
        };
        let give_up = record.sent_at.unwrap_or_else(now) + self.timing.timeout;
        let mut delay =
            Duration::from_millis(pending.poll_after_ms).min(self.timing.max_poll_interval);
        loop {
            tokio::time::sleep(delay).await;
            let action = record.action;
            let progress = self
                .fleet
                .call(vehicle, "poll", |cx| {
                    let (adapter, r, p) = (adapter.clone(), r.clone(), pending.clone());
                    async move { adapter.poll(&cx, &r, action, &p).await }
                })
                .await;
            match progress {
                Ok(Progress::Succeeded) => return Outcome::Succeeded,
                Ok(Progress::Failed(e)) => {
                    return Outcome::Failed(ApiError::from_oem(&e, &vehicle.oem));
                }
                Ok(Progress::Pending { poll_after }) => {
                    delay = poll_after
                        .unwrap_or(delay)
                        .min(self.timing.max_poll_interval);
                }
                // A failed poll (or an open breaker) changes nothing at the car.
                Err(e) => {
                    let e = e.into_api(&vehicle.oem);
                    tracing::debug!(command = %record.id, error = %e.detail, "poll failed");
                }
            }
            if now() >= give_up {
                // A last look at the car.
                let timing = self.timing_of(&vehicle.oem);
                let judged = match self.look(vehicle).await {
                    Some(_) if self.others_sent_since(record).await => Judged::Open,
                    Some(o) => self.judge(record, &o, &timing),
                    None => Judged::Open,
                };
                return match judged {
                    Judged::Done => Outcome::Succeeded,
                    Judged::Dead => Outcome::Failed(
                        ApiError::new(
                            Code::CommandFailed,
                            "the OEM never confirmed the command, its command window passed, \
                             and the car does not show it",
                        )
                        .with_oem(&vehicle.oem),
                    ),
                    Judged::Open => Outcome::Unknown(
                        ApiError::new(
                            Code::OutcomeUnknown,
                            "the OEM did not confirm the command in time; it may still execute",
                        )
                        .with_oem(&vehicle.oem),
                    ),
                };
            }
        }
    }

    /// Decides a command whose answer was lost from lock states observed after the send.
    async fn observe(
        &self,
        record: &mut CommandRecord,
        vehicle: &VehicleRecord,
        why: &str,
    ) -> Outcome {
        let unknown = |detail: String| {
            Outcome::Unknown(ApiError::new(Code::OutcomeUnknown, detail).with_oem(&vehicle.oem))
        };
        let can_read = self
            .fleet
            .adapter(vehicle)
            .is_ok_and(|a| a.info().can(Capability::Security));
        if !can_read {
            return unknown(format!(
                "outcome unknown ({why}); this OEM cannot read the lock state to confirm it"
            ));
        }
        let timing = self.timing_of(&vehicle.oem);
        let sent_at = record.sent_at.unwrap_or_else(now);
        let window_end = sent_at + timing.command_window;
        let give_up = sent_at + self.timing.timeout;
        // Reads cost the OEM's quota: the first when a fresh state can first count, then
        // doubling pauses, and one just after the window ends.
        let mut pause = Duration::from_secs(1);
        let mut next = sent_at + CLOCK_SKEW + time::Duration::milliseconds(100);
        loop {
            let t = now();
            if t < next {
                tokio::time::sleep(Duration::try_from(next - t).unwrap_or(Duration::ZERO)).await;
            }
            if self.others_sent_since(record).await {
                return unknown(format!(
                    "outcome unknown ({why}); another command was sent to the car since, so its \
                     lock state no longer tells whether this one ran"
                ));
            }
            if let Some(o) = self.look(vehicle).await {
                match self.judge(record, &o, &timing) {
                    Judged::Done => return Outcome::Succeeded,
                    Judged::Dead => {
                        return Outcome::Failed(
                            ApiError::new(
                                Code::CommandFailed,
                                format!(
                                    "the OEM's answer was lost ({why}); its command window \
                                     passed and the car does not show the command"
                                ),
                            )
                            .with_oem(&vehicle.oem),
                        );
                    }
                    Judged::Open => {}
                }
            }
            let t = now();
            if t >= give_up {
                return unknown(format!(
                    "outcome unknown ({why}); no lock state observed after the send shows it, \
                     and the OEM may still execute it until {}",
                    rfc3339(window_end)
                ));
            }
            let after_window = window_end + timing.state_lag + time::Duration::milliseconds(100);
            next = (t + pause).min(give_up);
            if t < after_window {
                next = next.min(after_window);
            }
            pause = (pause * 2).min(self.timing.max_poll_interval.max(Duration::from_secs(1)) * 4);
        }
    }

    /// What one observation says about a sent command (and notes it on the record).
    pub(super) fn judge(
        &self,
        record: &mut CommandRecord,
        o: &Observation,
        timing: &OemTiming,
    ) -> Judged {
        let Some(sent_at) = record.sent_at else {
            return Judged::Open;
        };
        if !o.after(sent_at, timing) {
            return Judged::Open;
        }
        record.observed = Some((o.locked, o.reported_at.unwrap_or(o.read_at)));
        if o.locked == record.action.leaves_locked() {
            Judged::Done
        } else if o.surely_after(sent_at + timing.command_window, timing) {
            Judged::Dead
        } else {
            Judged::Open
        }
    }

    /// Whether another command was sent to the car after this one (by any replica): then
    /// the car's state no longer tells whether this one ran. Not knowing counts as yes.
    pub(super) async fn others_sent_since(&self, record: &CommandRecord) -> bool {
        let Some(sent) = record.sent_at else {
            return false;
        };
        match self
            .store
            .commands_sent_since(&record.vehicle_id, sent)
            .await
        {
            Ok(list) => list.iter().any(|c| c.id != record.id),
            Err(_) => true,
        }
    }

    /// Reads the car's lock state now (waking it if needed); `None` if that failed.
    pub(crate) async fn look(&self, vehicle: &VehicleRecord) -> Option<Observation> {
        let adapter = self.fleet.adapter(vehicle).ok()?;
        let read_at = now();
        match self.fleet.read_security(vehicle, &adapter).await {
            // A lock the OEM reports as unknown tells nothing.
            Ok(s) => s.locked.map(|locked| Observation {
                locked,
                reported_at: s.recorded_at,
                read_at,
            }),
            Err(e) => {
                tracing::debug!(vehicle = %vehicle.id, error = %e.into_api(&vehicle.oem).detail,
                    "could not read the lock state");
                None
            }
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What an observation says about a sent command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judged {
    /// Observed after the send, showing the command's effect.
    Done,
    /// Observed after the OEM's command window, showing the opposite: it will not run.
    Dead,
    /// Not decided yet.
    Open,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const TIMING: OemTiming = OemTiming {
        state_lag: Duration::from_secs(60),
        command_window: Duration::from_secs(300),
    };

    #[test]
    fn only_states_observed_after_the_send_count() {
        let sent = datetime!(2026-12-02 12:00:00 UTC);
        let o = |reported: i64, read: i64| Observation {
            locked: true,
            reported_at: Some(sent + time::Duration::seconds(reported)),
            read_at: sent + time::Duration::seconds(read),
        };
        // Reported before the send (the cloud still shows the old state): proves nothing.
        assert!(!o(-10, 1).after(sent, &TIMING));
        // Reported within the clock-skew allowance: proves nothing.
        assert!(!o(1, 1).after(sent, &TIMING));
        // Reported after the send: counts.
        assert!(o(2, 2).after(sent, &TIMING));
        // An old timestamp, but read a full state lag after the send: counts.
        assert!(o(-10, 60).after(sent, &TIMING));
        // `failed` never rests on the OEM's timestamp.
        assert!(!o(30, 30).surely_after(sent, &TIMING));
        assert!(o(-10, 60).surely_after(sent, &TIMING));
    }
}
