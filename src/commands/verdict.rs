//! What the command lifecycle concludes, as the rules of `run` and `reconcile` share it:
//! how a command ended ([`Outcome`]) and what one lock state observed after its send says
//! about it ([`Judged`]). Both modules decide with these; neither imports the other.

use time::OffsetDateTime;

use super::CommandError;
use crate::error::{Classify, Code, public_detail};
use crate::store::{CommandRecord, CommandStatus};

/// How a command ended, as far as keyway can tell.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The OEM confirmed it, or a lock state observed after the send shows it.
    Succeeded,
    /// It certainly did not execute and never will.
    Failed(CommandError),
    /// The car may or may not execute it.
    Unknown(CommandError),
}

impl Outcome {
    /// The terminal transition, the one place a record takes its outcome: the status,
    /// and the error as the caller is told it — code, public detail, and the problem's
    /// extension members (none for `internal`) — or no error. `retry_at` is the caller's
    /// to set (it depends on the OEM's command window).
    pub(super) fn conclude(&self, record: &mut CommandRecord, at: OffsetDateTime) {
        let (status, error) = match self {
            Outcome::Succeeded => (CommandStatus::Succeeded, None),
            Outcome::Failed(e) => (CommandStatus::Failed, Some(e)),
            Outcome::Unknown(e) => (CommandStatus::Unknown, Some(e)),
        };
        record.status = status;
        record.updated_at = at;
        record.error_code = error.map(Classify::code);
        record.error_detail = error.map(|e| public_detail(e));
        record.error_members = error
            .filter(|e| e.code() != Code::Internal)
            .map(|e| {
                e.extra()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            })
            .unwrap_or_default();
    }
}

/// What an observation says about a sent command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judged {
    /// Observed after the send, showing the command's effect.
    Done,
    /// Observed after the OEM's command window, showing the opposite: this command will
    /// not run any more, but whether it ran and was undone since (by the owner) no state
    /// can tell. Ends the looking; never a `failed`.
    Dead,
    /// Not decided yet.
    Open,
}
