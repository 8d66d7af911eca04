//! The JSON view of a command: what `GET /v1/commands/{id}` answers and what a
//! command's `command.*` event carries, built in one place so the two never differ.

use std::time::Duration;

use serde::Serialize;

use crate::clock::timestamp;
use crate::error::Code;
use crate::events::{Kind, Payload, Subject};
use crate::store::{CommandRecord, CommandStatus};

/// A command: what `GET /v1/commands/{id}` answers and `command.*` events carry.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Command)]
pub struct CommandView {
    /// `cmd_…`.
    pub id: String,
    /// The car.
    pub vehicle_id: String,
    /// What it asks of the car.
    pub action: keyway_adapter::Command,
    /// Where it stands: `pending` until final; `unknown` when the car may or may not
    /// have run it (keyway keeps watching and emits `command.resolved` if it learns).
    pub status: CommandStatus,
    /// The caller's reference.
    pub reference: Option<String>,
    /// Why it failed or is unknown.
    pub error: Option<ErrorView>,
    /// Whether the same command may succeed if sent again later.
    pub retryable: bool,
    /// How long until a new command makes sense.
    pub retry_after_s: Option<u64>,
    /// A lock state observed after the send, if one decided the outcome.
    pub last_observed: Option<Observed>,
    /// When it was recorded.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was handed to the OEM.
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    /// When it ended.
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// When a caller acknowledged this unlock in doubt (it no longer blocks the next).
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
}

/// A command's error.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CommandError)]
pub struct ErrorView {
    /// The stable code.
    pub code: Code,
    /// What happened.
    pub detail: Option<String>,
}

/// A lock state observed after a command's send.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Observed {
    /// Locked?
    pub locked: bool,
    /// When the car reported it.
    #[schema(format = DateTime)]
    pub recorded_at: String,
}

/// The JSON view of a command.
pub fn view(c: &CommandRecord, now: time::OffsetDateTime) -> CommandView {
    let retryable = match c.status {
        CommandStatus::Failed => c.error_code.is_some_and(Code::retryable),
        _ => false,
    };
    CommandView {
        id: c.id.to_string(),
        vehicle_id: c.vehicle_id.to_string(),
        action: c.action,
        status: c.status,
        reference: c.reference.clone(),
        error: c.error_code.map(|code| ErrorView {
            code,
            detail: c.error_detail.clone(),
        }),
        retryable,
        retry_after_s: retry_after(c, now).map(|d| d.as_secs()),
        last_observed: c.observed.map(|(locked, at)| Observed {
            locked,
            recorded_at: timestamp(at),
        }),
        created_at: timestamp(c.created_at),
        sent_at: c.sent_at.map(timestamp),
        completed_at: c.completed_at.map(timestamp),
        acknowledged_at: c.acknowledged.as_ref().map(|(_, at)| timestamp(*at)),
    }
}

/// A command's `command.*` event: its view, about its tenant, car and itself.
#[derive(Debug, Serialize)]
pub struct CommandEvent<'a> {
    #[serde(skip)]
    kind: Kind,
    #[serde(skip)]
    record: &'a CommandRecord,
    #[serde(flatten)]
    view: CommandView,
}

impl<'a> CommandEvent<'a> {
    /// The event of a command that just ended: `command.succeeded`, `.failed` or
    /// `.unknown` by its status.
    pub fn ended(record: &'a CommandRecord, now: time::OffsetDateTime) -> Self {
        let kind = match record.status {
            CommandStatus::Succeeded => Kind::CommandSucceeded,
            CommandStatus::Failed => Kind::CommandFailed,
            CommandStatus::Unknown | CommandStatus::Pending => Kind::CommandUnknown,
        };
        Self::new(kind, record, now)
    }

    /// The `kind` event of `record` as it stands.
    pub fn new(kind: Kind, record: &'a CommandRecord, now: time::OffsetDateTime) -> Self {
        Self {
            kind,
            record,
            view: view(record, now),
        }
    }
}

impl Payload for CommandEvent<'_> {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            tenant: &self.record.tenant,
            vehicle_id: Some(&self.record.vehicle_id),
            grant_id: None,
            command_id: Some(&self.record.id),
        }
    }
}

/// How long until a new command makes sense (failed and unknown commands).
pub fn retry_after(c: &CommandRecord, now: time::OffsetDateTime) -> Option<Duration> {
    let at = c.retry_at?;
    let left = at - now;
    Some(
        Duration::try_from(left)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
    )
}
