//! Acknowledging an unlock in doubt: an `unknown` unlock (or one `succeeded` only
//! because the car stood unlocked after it) blocks the car's next unlock for the OEM's
//! command window, since it may still execute. Where keyway cannot settle it — an OEM
//! without a lock-state read (GM), a car that stays offline — a caller who knows better
//! (the courier saw the car) lifts the block explicitly; the acknowledgement is kept on
//! the command and in the audit log.

use keyway_adapter::Command;

use super::{CommandError, Commands};
use crate::store::{CommandRecord, CommandStatus};

impl Commands {
    /// `by` acknowledges the unlock in doubt `record`: it no longer blocks the car's
    /// next unlock. Acknowledging twice keeps the first.
    pub async fn acknowledge(
        &self,
        mut record: CommandRecord,
        by: &str,
    ) -> Result<CommandRecord, CommandError> {
        let in_doubt = record.action == Command::Unlock
            && match record.status {
                CommandStatus::Unknown => true,
                CommandStatus::Succeeded => record.observed.is_some(),
                CommandStatus::Pending | CommandStatus::Failed => false,
            };
        if !in_doubt {
            let what = match (record.action, record.status) {
                (Command::Lock, _) => "a lock",
                (_, CommandStatus::Pending) => "still pending",
                (_, CommandStatus::Failed) => "failed",
                _ => "confirmed by the OEM",
            };
            return Err(CommandError::NotInDoubt(what));
        }
        if record.acknowledged.is_some() {
            return Ok(record);
        }
        let t = self.clock.now();
        record.acknowledged = Some((by.to_string(), t));
        record.updated_at = t;
        self.store.update_command(&record).await?;
        let entry = crate::audit::entry(
            &crate::audit::Decision {
                actor: by,
                action: "command.acknowledge",
                decision: "acknowledged",
                vehicle_id: Some(&record.vehicle_id),
                command_id: Some(&record.id),
                detail: Some(record.status.as_str()),
                ..Default::default()
            },
            t,
        );
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(command = %record.id, error = %e,
                "the acknowledgement is stored but its audit entry could not be written");
        }
        tracing::info!(command = %record.id, by, "unlock in doubt acknowledged");
        Ok(record)
    }
}
