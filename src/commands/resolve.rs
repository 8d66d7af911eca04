//! Watching an `unknown` command until keyway learns what the car did.
//!
//! An `unknown` command may still execute until the OEM's command window after its send
//! ends. Until then (plus one state lag) keyway keeps reading the car's lock state:
//! - a state observed after the send showing the command's effect → `succeeded`;
//! - a state observed after the window showing the opposite → `failed` (the OEM will
//!   not run it any more).
//!
//! Either is recorded with its audit entry and a `command.resolved` event (webhooks
//! too). The watch stops without a verdict when another command is sent to the car —
//! from then on the car's state no longer tells the two apart — and the command stays
//! `unknown`. Watches live in the process that ran the command: after a restart an
//! `unknown` command stays `unknown`.

use std::sync::Arc;
use std::time::Duration;

use super::Commands;
use super::lifecycle::Judged;
use crate::store::{CommandRecord, CommandStatus, now};

impl Commands {
    /// Watches an `unknown` command for the OEM's command window; records what it learns.
    pub(super) async fn resolve(self: &Arc<Self>, mut record: CommandRecord) {
        let Some(sent_at) = record.sent_at else {
            return;
        };
        let Ok(Some(vehicle)) = self.store.vehicle(&record.vehicle_id).await else {
            return;
        };
        let timing = self.timing_of(&vehicle.oem);
        let stop_at = sent_at + timing.command_window + timing.state_lag;
        let pause = self
            .timing
            .max_poll_interval
            .max(timing.state_lag / 4)
            .max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(pause).await;
            if self.others_sent_since(&record).await {
                tracing::info!(command = %record.id,
                    "another command was sent to the car; the outcome stays unknown");
                return;
            }
            let verdict = match self.look(&vehicle).await {
                Some(o) => self.judge(&mut record, &o, &timing),
                None => Judged::Open,
            };
            let status = match verdict {
                Judged::Done => CommandStatus::Succeeded,
                Judged::Dead => CommandStatus::Failed,
                Judged::Open if now() >= stop_at => {
                    tracing::info!(command = %record.id,
                        "the command window passed without a verdict; the outcome stays unknown");
                    return;
                }
                Judged::Open => continue,
            };
            record.status = status;
            record.updated_at = now();
            record.retry_at = None;
            if status == CommandStatus::Succeeded {
                record.error_code = None;
                record.error_detail = None;
            } else {
                record.error_code = Some("command_failed".into());
                record.error_detail = Some(
                    "the OEM's command window passed and the car does not show the command".into(),
                );
            }
            tracing::info!(command = %record.id, status = status.as_str(), "outcome resolved");
            self.write_outcome(
                &record,
                "command.resolved",
                &format!("resolved:{}", status.as_str()),
            )
            .await;
            return;
        }
    }
}
