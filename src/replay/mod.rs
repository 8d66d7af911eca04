//! `keyway replay`: captured OEM answers through an adapter's own code path — the
//! support tool for "a customer sent us this payload".
//!
//! The adapter is built as keyway builds it and asked for an operation; its HTTP client
//! is a [`stand_in::StandIn`] that answers the operation's own request with the
//! capture and every other request the operation makes with the adapter's own fixture
//! for it (the [`keyway_adapter::Exchanges`] table), unless further captures are given
//! (`--then`, `--capture`, or a whole HAR file, [`har`]). Status handling, error
//! classification, announced waits and parsing all run exactly as against the OEM. The
//! result is the unified value as JSON, or the classified error as the problem document
//! keyway's API would answer; the steps say which answer came from where. A 2xx
//! capture that does not read as the own request's answer is tried, before giving up,
//! as the answer to each other request the operation made (a Volvo car's details given
//! to `vehicles`, a Tesla fleet status given to `command`).

pub mod captured;
pub mod cli;
pub mod har;
pub mod stand_in;

use keyway_adapter::{
    Adapter, Call, Command, CommandMode, OemError, Pending, Progress, Secret, Sent, VehicleRef,
};
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::error::OemFailure;
pub use captured::{Captured, ReplayError};
use stand_in::{Captures, Key, StandIn, Step};

/// What a capture is the answer to.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum Operation {
    /// The vehicle list (and each car's details where the OEM lists them apart).
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
    /// A wake-up's answer.
    Wake,
    /// Whether the car is online, read without waking it (Tesla's vehicle record).
    Power,
    /// A separate locate flow's answer (BMW's vehicle finder position).
    Position,
    /// The OEM's "can the car take a command now" check (Volvo's command accessibility).
    Precheck,
    /// The OAuth token endpoint's answer to a refresh grant.
    Token,
}

impl Operation {
    /// Parses the command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The route table's name for it (an `error` answers a lock-state read).
    fn route_name(self) -> &'static str {
        match self {
            Operation::Error => "security",
            op => op.name(),
        }
    }
}

/// How a replay ended.
#[derive(Debug)]
pub enum Replayed {
    /// The adapter read a value.
    Parsed(Value),
    /// The adapter classified the answer as an error: the problem document.
    Error(Value),
}

/// One replay: how it ended, the requests made and what answered each.
#[derive(Debug)]
pub struct Replay {
    /// How it ended.
    pub outcome: Replayed,
    /// Every request and its answer's source.
    pub steps: Vec<Step>,
    /// Set when the capture read only as the answer to another request than the
    /// operation's own: that request's name.
    pub read_as: Option<&'static str>,
    /// The keyed captures used (indices into [`Captures::keyed`]).
    pub used_keyed: Vec<usize>,
}

/// Runs `op` of `oem`'s adapter against `captures` (every request they do not answer
/// is answered from the adapter's fixtures); `vehicle` is the car's OEM id (default:
/// the one the fixtures describe).
pub async fn replay(
    oem: &str,
    op: Operation,
    captures: Captures,
    vehicle: Option<&str>,
) -> Result<Replay, ReplayError> {
    let known = crate::registry::known_adapter(oem).ok_or_else(|| {
        ReplayError::UnknownOem(oem.to_string(), crate::registry::known().join(", "))
    })?;
    let info = known.info;
    if op == Operation::Token {
        return Ok(token(oem, captures));
    }
    let vehicle = vehicle.unwrap_or(info.exchanges.vehicle).to_string();
    let first = once(known, op, captures.clone(), &vehicle).await;
    let unreadable = matches!(&first.0, Err(OemError::InvalidResponse { .. }));
    let retry = unreadable
        && captures.then.is_empty()
        && captures.keyed.is_empty()
        && captures
            .own
            .as_ref()
            .is_some_and(|c| (200..300).contains(&c.status));
    if retry && let Some(own) = &captures.own {
        // The capture may answer another request of this operation: one it made, then
        // one it would have made had the own answer read.
        let made = first.1.steps();
        let made = made
            .iter()
            .filter_map(|s| info.exchanges.route(&s.method, &s.path));
        let later = info
            .exchanges
            .routes
            .iter()
            .filter(|r| r.supports.contains(&op.route_name()));
        let mut tried: Vec<&'static str> = Vec::new();
        for route in made.chain(later) {
            if route.own.contains(&op.route_name()) || tried.contains(&route.name) {
                continue;
            }
            tried.push(route.name);
            let placed = Captures {
                own: None,
                then: Vec::new(),
                keyed: vec![(Key::Route(route), own.clone())],
            };
            let again = once(known, op, placed, &vehicle).await;
            if again.0.is_ok() && !again.1.used_keyed().is_empty() {
                return Ok(finish(oem, again, Some(route.name)));
            }
        }
    }
    Ok(finish(oem, first, None))
}

fn finish(
    oem: &str,
    (result, stand_in): (Result<Value, OemError>, StandIn),
    read_as: Option<&'static str>,
) -> Replay {
    Replay {
        outcome: match result {
            Ok(value) => Replayed::Parsed(value),
            Err(e) => Replayed::Error(oem_problem(oem, &e)),
        },
        steps: stand_in.steps(),
        read_as,
        used_keyed: stand_in.used_keyed(),
    }
}

async fn once(
    known: &crate::registry::Known,
    op: Operation,
    captures: Captures,
    vehicle: &str,
) -> (Result<Value, OemError>, StandIn) {
    let adapter = known.unsigned("https://replay.invalid", "replay");
    let info = adapter.info();
    let stand_in = StandIn::new(info.oem, op.route_name(), info.exchanges, captures);
    let cx = Call {
        http: stand_in.http(),
        token: Secret::new("replay"),
        command_id: Some("cmd_replay".into()),
        account: None,
        // A stand-in PIN for an OEM whose commands take one (it reaches only the
        // replay's stand-in answers).
        pin: info.owner_pin.then(|| Secret::new("1234")),
    };
    let v = VehicleRef {
        oem_id: vehicle.to_string(),
    };
    (run(adapter.as_ref(), op, &cx, &v).await, stand_in)
}

/// How many times an asynchronous read is polled before the replay gives up.
const POLLS: usize = 20;

async fn run(a: &dyn Adapter, op: Operation, cx: &Call, v: &VehicleRef) -> Result<Value, OemError> {
    Ok(match op {
        Operation::Vehicles => json!(a.vehicles(cx).await?),
        Operation::Location if a.info().location_mode == CommandMode::Async => {
            located(a, cx, v).await?
        }
        Operation::Location => json!(a.locate(cx, v).await?),
        Operation::Position => located(a, cx, v).await?,
        Operation::Security | Operation::Error => json!(a.security(cx, v).await?),
        Operation::Command => sent(a.send(cx, v, Command::Lock).await?),
        Operation::Poll => match a.send(cx, v, Command::Lock).await? {
            Sent::Pending(p) => progress(a, a.poll(cx, v, Command::Lock, &p).await?),
            s => sent(s),
        },
        Operation::Wake => {
            a.wake(cx, v).await?;
            json!({"state": "online"})
        }
        Operation::Power => json!({"state": a.connectivity(cx, v).await?}),
        Operation::Precheck => {
            a.precheck(cx, v).await?;
            json!({"available": true})
        }
        // `replay` reads the token endpoint's answer itself: no adapter makes it.
        Operation::Token => {
            return Err(OemError::NotCapable {
                what: "the token endpoint is not an adapter request".into(),
            });
        }
    })
}

/// An asynchronous location read: start it, then poll (without waiting) until the fix.
async fn located(a: &dyn Adapter, cx: &Call, v: &VehicleRef) -> Result<Value, OemError> {
    let pending = a.request_location(cx, v).await?;
    for _ in 0..POLLS {
        if let Some(l) = a.poll_location(cx, v, &pending).await? {
            return Ok(json!(l));
        }
    }
    Ok(json!({"pending": true}))
}

fn sent(s: Sent) -> Value {
    match s {
        Sent::Completed => json!({"sent": "completed"}),
        Sent::Accepted => json!({"sent": "accepted"}),
        Sent::Pending(Pending {
            handle,
            poll_after_ms,
        }) => json!({"sent": "pending", "handle": handle, "poll_after_ms": poll_after_ms}),
    }
}

fn progress(a: &dyn Adapter, p: Progress) -> Value {
    match p {
        Progress::Pending { poll_after } => json!({"progress": "pending",
            "poll_after_ms": poll_after.map(|d| d.as_millis() as u64)}),
        Progress::Succeeded => json!({"progress": "succeeded"}),
        Progress::Failed(e) => json!({"progress": "failed",
            "error": oem_problem(a.info().oem, &e)}),
    }
}

/// The token endpoint's answer, read as keyway reads a refresh's.
fn token(oem: &str, captures: Captures) -> Replay {
    use crate::tokens::{TokenError, oauth::RefreshFailure};
    let Some(c) = captures.own else {
        return Replay {
            outcome: Replayed::Error(json!({"detail": "no capture given"})),
            steps: Vec::new(),
            read_as: None,
            used_keyed: Vec::new(),
        };
    };
    let path = crate::registry::info(oem).map_or("", |i| i.oauth.token_path);
    let step = Step {
        method: "POST".into(),
        path: path.into(),
        route: Some("token endpoint (refresh grant)"),
        status: c.status,
        answered_by: format!("capture {}", c.label),
    };
    let outcome = match crate::tokens::oauth::read_refresh(&stand_in::response(&c)) {
        Ok(g) => Replayed::Parsed(json!({
            "access_token": format!("({} characters)", g.access_token.expose().len()),
            "refresh_token": g.refresh_token.as_ref().map(|t| format!("({} characters)", t.expose().len())),
            "expires_in_s": g.expires_in.map(|d| d.as_secs()),
        })),
        Err(RefreshFailure::Rejected(why)) => {
            Replayed::Error(problem(&ApiError::from(TokenError::Reauthorize {
                account_id: "replay".into(),
                oem: oem.into(),
                why,
            })))
        }
        Err(RefreshFailure::BadClient) => {
            Replayed::Error(problem(&ApiError::from(TokenError::BadClient {
                oem: oem.into(),
            })))
        }
        Err(RefreshFailure::Oem(e)) => Replayed::Error(oem_problem(oem, &e)),
    };
    Replay {
        outcome,
        steps: vec![step],
        read_as: None,
        used_keyed: Vec::new(),
    }
}

fn problem(e: &ApiError) -> Value {
    crate::api::problem::body(e, "replay", "replay")
}

fn oem_problem(oem: &str, cause: &OemError) -> Value {
    let mut body = problem(&ApiError::from(OemFailure::new(oem, cause.clone())));
    body["oem_error"] = json!(cause.kind());
    body["delivered"] = json!(format!("{:?}", cause.delivered()).to_lowercase());
    body
}
