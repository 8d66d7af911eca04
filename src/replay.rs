//! `keyway replay`: one captured OEM answer through an adapter's own code path — the
//! support tool for "a customer sent us this payload".
//!
//! The adapter is built as keyway builds it and asked for the operation; its HTTP
//! client is a stand-in that answers every request with the captured status, headers and
//! body, so status handling, error classification, announced waits and parsing all run
//! exactly as against the OEM. The result is the unified value as JSON, or the
//! classified error as the problem document keyway's API would answer.

use bytes::Bytes;
use keyway_adapter::{
    Adapter, Call, Command, CommandMode, Http, Location, OemError, Pending, Progress, Secret,
    SecurityState, Sent, VehicleRef,
};
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::error::OemFailure;

/// What the captured answer was the answer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// The vehicle list.
    Vehicles,
    /// A location read (for an OEM whose location is a request to poll: the poll's answer).
    Location,
    /// A lock-state read.
    Security,
    /// The answer to sending a lock/unlock.
    Command,
    /// An async command's status.
    Poll,
    /// Any non-2xx answer (read as the answer to a lock-state read).
    Error,
}

impl Operation {
    /// Parses the command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "vehicles" => Self::Vehicles,
            "location" => Self::Location,
            "security" => Self::Security,
            "command" => Self::Command,
            "poll" => Self::Poll,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// A captured HTTP answer.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its whole body.
    pub body: Bytes,
}

/// How a replay ended.
#[derive(Debug)]
pub enum Replayed {
    /// The adapter read a value.
    Parsed(Value),
    /// The adapter classified the answer as an error: the problem document.
    Error(Value),
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No adapter for that OEM.
    #[error("no adapter for {0:?}; known: {1}")]
    UnknownOem(String, String),
    /// The captured answer cannot be an HTTP response.
    #[error("not a valid HTTP answer: {0}")]
    Invalid(String),
}

/// Runs `captured` through `oem`'s adapter as the answer to `op`.
pub async fn replay(oem: &str, op: Operation, captured: Captured) -> Result<Replayed, ReplayError> {
    let adapter = crate::registry::adapter_for(oem, "https://replay.invalid", "replay")
        .ok_or_else(|| {
            ReplayError::UnknownOem(oem.to_string(), crate::registry::known().join(", "))
        })?;
    let answer = answer(&captured)?;
    let cx = Call {
        http: Http::from_fn(move |_req| {
            let answer = answer.clone();
            async move { Ok(answer) }
        }),
        token: Secret::new("replay"),
        command_id: Some("cmd_replay".into()),
        account: None,
    };
    let v = VehicleRef {
        oem_id: "REPLAY0000000000".into(),
    };
    let pending = Pending {
        handle: "replay".into(),
        poll_after_ms: 0,
    };
    let out = run(adapter.as_ref(), op, &cx, &v, &pending).await;
    Ok(match out {
        Ok(value) => Replayed::Parsed(value),
        Err(e) => Replayed::Error(problem(
            &ApiError::from(OemFailure::new(oem, e.clone())),
            &e,
        )),
    })
}

async fn run(
    a: &dyn Adapter,
    op: Operation,
    cx: &Call,
    v: &VehicleRef,
    pending: &Pending,
) -> Result<Value, OemError> {
    Ok(match op {
        Operation::Vehicles => json!(a.vehicles(cx).await?),
        Operation::Location if a.info().location_mode == CommandMode::Async => {
            match a.poll_location(cx, v, pending).await? {
                Some(l) => location(&l),
                None => json!({"pending": true}),
            }
        }
        Operation::Location => location(&a.locate(cx, v).await?),
        Operation::Security | Operation::Error => security(&a.security(cx, v).await?),
        Operation::Command => match a.send(cx, v, Command::Lock).await? {
            Sent::Completed => json!({"sent": "completed"}),
            Sent::Pending(p) => json!({"sent": "pending", "handle": p.handle,
                "poll_after_ms": p.poll_after_ms}),
        },
        Operation::Poll => match a.poll(cx, v, Command::Lock, pending).await? {
            Progress::Pending { poll_after } => json!({"progress": "pending",
                "poll_after_ms": poll_after.map(|d| d.as_millis() as u64)}),
            Progress::Succeeded => json!({"progress": "succeeded"}),
            Progress::Failed(e) => json!({"progress": "failed",
                "error": problem(&ApiError::from(OemFailure::new(a.info().oem, e.clone())), &e)}),
        },
    })
}

fn location(l: &Location) -> Value {
    json!(l)
}

fn security(s: &SecurityState) -> Value {
    json!(s)
}

fn problem(e: &ApiError, cause: &OemError) -> Value {
    let mut body = crate::api::problem::body(e, "replay", "replay");
    body["oem_error"] = json!(cause.kind());
    body["delivered"] = json!(format!("{:?}", cause.delivered()).to_lowercase());
    body
}

fn answer(c: &Captured) -> Result<http::Response<Bytes>, ReplayError> {
    let mut b = http::Response::builder().status(c.status);
    for (name, value) in &c.headers {
        b = b.header(name.as_str(), value.as_str());
    }
    b.body(c.body.clone())
        .map_err(|e| ReplayError::Invalid(e.to_string()))
}
