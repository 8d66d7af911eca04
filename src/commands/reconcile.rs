//! Reconciling what keyway was told with what the car shows: deciding a command whose
//! answer was lost from lock states observed after its send, and watching an `unknown`
//! command until keyway learns what the car did.
//!
//! Only a lock state observed after the send counts (`observation`).
//!
//! An `unknown` command may still execute until the OEM's command window after its send
//! ends. Until then (plus one state lag) keyway keeps reading the car's lock state: a
//! state observed after the send showing the command's effect → `succeeded`. A state
//! observed after the window showing the opposite ends the watch but proves nothing:
//! the car may have run the command and been locked or unlocked since by its owner (a
//! key fob, the OEM's app), so the command stays `unknown`; only the OEM's own word makes
//! a command `failed`.
//!
//! A verdict is recorded with its audit entry and a `command.resolved` event (webhooks
//! too). Where the OEM gave the command a handle, its own status of the command decides
//! too, whatever else was sent to the car since. Later commands that failed moved
//! nothing and are passed over; after a later command of the same action, only the
//! opposite state (after the window) still decides; once a command that undoes this one
//! may have run, the car's state no longer tells the two apart — the watch stops and
//! the command stays `unknown`. What was sent since is asked after each read returns:
//! a command sent while the read was on its way may be what it shows. A watch is one
//! replica's (a `watch:<id>` lease), and a restarted process resumes the watches whose
//! window has not passed.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::{Capability, Pending, Progress};

use super::CommandError;
use super::Commands;
use super::observation::{Observation, look};
use super::run::Run;
use super::verdict::{Judged, Outcome};
use super::view::CommandEvent;
use crate::events::Kind;
use crate::store::{CommandRecord, CommandStatus, Lease, StoreError, VehicleRecord};

/// When the first look after a send is taken: a state stamped within this of the send
/// rarely proves anything.
const FIRST_LOOK: time::Duration = time::Duration::milliseconds(1_100);

impl Run<'_> {
    /// Decides a command whose answer was lost from lock states observed after the send.
    pub(super) async fn observe(&mut self, why: &str) -> Outcome {
        let (oem, timing) = (self.oem, self.timing);
        let vehicle = oem.vehicle;
        let unknown = |detail: String| {
            Outcome::Unknown(CommandError::Unconfirmed {
                oem: vehicle.oem.to_string(),
                detail,
            })
        };
        if !oem.can(Capability::Security) {
            return unknown(format!(
                "outcome unknown ({why}); this OEM cannot read the lock state to confirm it \
                 (an unlock in doubt can be acknowledged: POST /v1/commands/{}/acknowledge)",
                self.record.id
            ));
        }
        let sent_at = self
            .record
            .sent_at
            .unwrap_or_else(|| self.shared.clock.now());
        let window_end = sent_at + timing.command_window;
        let give_up = sent_at + self.shared.timing.timeout;
        // Reads cost the OEM's quota: the first when a fresh state can first count, then
        // doubling pauses, and one just after the window ends.
        let mut pause = Duration::from_secs(1);
        let mut next = sent_at + FIRST_LOOK;
        loop {
            let t = self.shared.clock.now();
            if t < next {
                self.shared
                    .clock
                    .sleep(Duration::try_from(next - t).unwrap_or(Duration::ZERO))
                    .await;
            }
            let seen = self
                .shared
                .clock
                .within(give_up, look(&oem))
                .await
                .flatten();
            // Asked after the look: a command sent while the read was on its way may be
            // what the read shows.
            if self.others_sent_since().await {
                return unknown(format!(
                    "outcome unknown ({why}); another command was sent to the car since, so its \
                     lock state no longer tells whether this one ran"
                ));
            }
            if let Some(o) = seen {
                match self.judge(&o) {
                    Judged::Done => return Outcome::Succeeded,
                    Judged::Dead => {
                        return unknown(format!(
                            "outcome unknown ({why}); the OEM's command window passed and the \
                             car shows the opposite: the command did not run, or ran and was \
                             undone since (a key fob, the owner's app); only the OEM could \
                             say which"
                        ));
                    }
                    Judged::Open => {}
                }
            }
            let t = self.shared.clock.now();
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
            pause = (pause * 2).min(
                self.shared
                    .timing
                    .max_poll_interval
                    .max(Duration::from_secs(1))
                    * 4,
            );
        }
    }

    /// What one observation says about a sent command (and notes it on the record).
    pub(super) fn judge(&mut self, o: &Observation) -> Judged {
        let (record, timing) = (&mut self.record, &self.timing);
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

    /// What was sent to the car after this one (by any replica) that may have moved it:
    /// a command that failed did not (keyway is sure of that). Not knowing counts as
    /// [`Later::Opposite`].
    async fn later(&self) -> Later {
        let record = &self.record;
        let Some(sent) = record.sent_at else {
            return Later::None;
        };
        let Ok(list) = self
            .shared
            .store
            .commands_sent_since(&record.vehicle_id, sent)
            .await
        else {
            return Later::Opposite;
        };
        let mut later = Later::None;
        for c in list
            .iter()
            .filter(|c| c.id != record.id && c.status != CommandStatus::Failed)
        {
            if c.action.leaves_locked() != record.action.leaves_locked() {
                return Later::Opposite;
            }
            later = Later::Same;
        }
        later
    }

    /// Whether another command was sent to the car after this one (by any replica): then
    /// the car's state no longer tells whether this one ran. Not knowing counts as yes.
    pub(super) async fn others_sent_since(&self) -> bool {
        let record = &self.record;
        let Some(sent) = record.sent_at else {
            return false;
        };
        match self
            .shared
            .store
            .commands_sent_since(&record.vehicle_id, sent)
            .await
        {
            Ok(list) => list.iter().any(|c| c.id != record.id),
            Err(_) => true,
        }
    }

    /// Watches the `unknown` command (see [`Commands::resolve`]) until keyway learns
    /// what the car did; the verdict, if any.
    async fn watch(&mut self, stop_at: time::OffsetDateTime) -> Option<Outcome> {
        let (oem, timing) = (self.oem, self.timing);
        let handle = self.record.oem_handle.clone();
        let pause = self
            .shared
            .timing
            .max_poll_interval
            .max(timing.state_lag / 4)
            .max(Duration::from_millis(100));
        let mut late_tries = 0;
        loop {
            self.shared.clock.sleep(pause).await;
            if let Some(p) = &handle
                && let Some(v) = self.ask(p).await
            {
                return Some(v);
            }
            let seen = look(&oem).await;
            // Asked after the look: a command sent while the read was on its way may be
            // what the read shows.
            let later = self.later().await;
            if later == Later::Opposite {
                if handle.is_some() && self.shared.clock.now() < stop_at {
                    continue;
                }
                tracing::info!(command = %self.record.id,
                    "a command that undoes this one was sent to the car since; the outcome \
                     stays unknown");
                return None;
            }
            match seen.map(|o| self.judge(&o)) {
                // A later command of the same action may have done it.
                Some(Judged::Done) if later == Later::Same => {}
                Some(Judged::Done) => return Some(Outcome::Succeeded),
                Some(Judged::Dead) => {
                    tracing::info!(command = %self.record.id,
                        "the command window passed and the car shows the opposite; the \
                         outcome stays unknown (its owner may have undone it)");
                    return None;
                }
                _ if self.shared.clock.now() >= stop_at => {
                    late_tries += 1;
                    if late_tries >= LATE_TRIES {
                        tracing::info!(command = %self.record.id,
                            "the command window passed without a verdict; the outcome stays unknown");
                        return None;
                    }
                }
                _ => {}
            }
        }
    }

    /// What the OEM says of the command itself (its handle), if it says anything final.
    async fn ask(&self, p: &Pending) -> Option<Outcome> {
        match self.oem.poll(self.record.action, p).await {
            Ok(Progress::Succeeded) => Some(Outcome::Succeeded),
            Ok(Progress::Failed(_)) => Some(Outcome::Failed(CommandError::NotExecuted {
                oem: self.oem.vehicle.oem.to_string(),
                detail: OEM_FAILED.to_string(),
            })),
            _ => None,
        }
    }
}

impl Commands {
    /// Watches an `unknown` command until keyway learns what the car did; records what
    /// it learns. The OEM's own status of the command (where it gave a handle) tells it
    /// apart from any later command, so that is asked for the whole window; the car's
    /// lock state only while no other command was sent to the car. After the window
    /// (plus a state lag) a few more reads are tried, not one, before it stays
    /// `unknown`. One replica watches a command (a `watch:` lease), and the watches of a
    /// stopped process are resumed ([`Commands::resume_watches`]).
    pub(super) async fn resolve(
        self: &Arc<Self>,
        record: CommandRecord,
        vehicle: Option<VehicleRecord>,
    ) {
        let Some(sent_at) = record.sent_at else {
            return;
        };
        let vehicle = match vehicle {
            Some(v) => v,
            None => match self.store.vehicle(&record.vehicle_id).await {
                Ok(Some(v)) => v,
                _ => return,
            },
        };
        let Ok(oem) = self.fleet.oem(&vehicle) else {
            return;
        };
        let timing = oem.timing();
        let stop_at = sent_at + timing.command_window + timing.state_lag;
        if !self.watching(&record.id, stop_at).await {
            return;
        }
        let mut run = Run::new(self, record, oem);
        let Some(verdict) = run.watch(stop_at).await else {
            return;
        };
        let mut record = run.record;
        let t = self.clock.now();
        verdict.conclude(&mut record, t);
        record.retry_at = None;
        let status = record.status;
        tracing::info!(command = %record.id, status = status.as_str(), "outcome resolved");
        self.write_outcome(
            &record,
            Some(&vehicle),
            CommandEvent::new(Kind::CommandResolved, &record, t),
            &format!("resolved:{}", status.as_str()),
        )
        .await;
    }

    /// Reads a car's lock state now (waking it if needed); `None` if that failed or its
    /// OEM is not enabled.
    pub(crate) async fn look_at(&self, vehicle: &VehicleRecord) -> Option<Observation> {
        look(&self.fleet.oem(vehicle).ok()?).await
    }

    /// Takes the watch of command `id` until `until` (cluster: one replica watches it).
    async fn watching(&self, id: &str, until: time::OffsetDateTime) -> bool {
        if !self.cluster.shared {
            return true;
        }
        let lease = Lease {
            holder: self.cluster.replica.clone(),
            until: until + time::Duration::minutes(1),
        };
        self.store
            .try_lease(&format!("watch:{id}"), &lease)
            .await
            .unwrap_or(false)
    }

    /// Resumes the watches of `unknown` commands whose window may not have passed (a
    /// process that watched them stopped); returns how many.
    pub async fn resume_watches(self: &Arc<Self>) -> Result<usize, StoreError> {
        let longest = self.registry.longest_window();
        let since = self.clock.now() - longest - time::Duration::minutes(1);
        let mut n = 0;
        for record in self.store.unknown_commands(since).await? {
            let Some(sent_at) = record.sent_at else {
                continue;
            };
            // The vehicle is read once, here, and handed to the watch.
            let Ok(Some(vehicle)) = self.store.vehicle(&record.vehicle_id).await else {
                continue;
            };
            let timing = self.timing_of(&vehicle.oem);
            if self.clock.now() >= sent_at + timing.command_window + timing.state_lag {
                continue;
            }
            n += 1;
            let this = self.clone();
            tokio::spawn(async move { this.resolve(record, Some(vehicle)).await });
        }
        Ok(n)
    }
}

/// Reads tried after the window before a command stays `unknown`.
const LATE_TRIES: u32 = 5;
const OEM_FAILED: &str = "the OEM reports that the command did not execute";

/// Commands sent to a car after an `unknown` one, as they bear on it.
#[derive(Debug, PartialEq, Eq)]
enum Later {
    /// None that may have moved the car.
    None,
    /// Only the same action: a state showing it proves nothing of this one, the
    /// opposite after the window still does.
    Same,
    /// One that undoes it may have run: the car's state tells nothing any more.
    Opposite,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
