//! The JSON view of a command: what `GET /v1/commands/{id}` answers and what a
//! command's `command.*` event carries, built in one place so the two never differ.

use std::time::Duration;

use serde_json::{Value, json};

use crate::clock::timestamp;
use crate::error::Code;
use crate::store::{CommandRecord, CommandStatus};

/// The JSON view of a command.
pub fn view(c: &CommandRecord) -> Value {
    let error = match (&c.error_code, &c.error_detail) {
        (Some(code), detail) => json!({ "code": code, "detail": detail }),
        _ => Value::Null,
    };
    let last_observed = c
        .observed
        .map(|(locked, at)| json!({"locked": locked, "recorded_at": timestamp(at)}));
    let retryable = match c.status {
        CommandStatus::Failed => c
            .error_code
            .as_deref()
            .and_then(Code::parse)
            .is_some_and(Code::retryable),
        _ => false,
    };
    json!({
        "id": c.id,
        "vehicle_id": c.vehicle_id,
        "action": c.action.as_str(),
        "status": c.status.as_str(),
        "reference": c.reference,
        "error": error,
        "retryable": retryable,
        "retry_after_s": retry_after(c).map(|d| d.as_secs()),
        "last_observed": last_observed,
        "created_at": timestamp(c.created_at),
        "sent_at": c.sent_at.map(timestamp),
        "completed_at": c.completed_at.map(timestamp),
    })
}

/// How long until a new command makes sense (failed and unknown commands).
pub fn retry_after(c: &CommandRecord) -> Option<Duration> {
    let at = c.retry_at?;
    let left = at - crate::store::now();
    Some(
        Duration::try_from(left)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
    )
}
