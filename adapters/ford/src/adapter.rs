//! Translation between keyway's unified vocabulary and Ford's API.
//!
//! `POST /v1/command/vehicles/{VIN}/commands` with `{"type": "lock"|"unlock",
//! "wakeUp": true}` answers 201 `{"id"}`. The outcome is read from telemetry
//! (`GET /v1/telemetry/sources/fordpass/vehicles/{VIN}`): `states.lockCommand` (or
//! `unlockCommand`) carries the latest command's id and `toState`, moving through
//! `REQUEST_QUEUED`, `RECEIVED_BY_DEVICE`, `IN_PROGRESS` to `SUCCESS` /
//! `COMMAND_SUCCEEDED_ON_DEVICE`, or `COMMAND_FAILED_ON_DEVICE` / `EXPIRED`. A state
//! naming another command id is not this command's outcome: keep polling. The same
//! telemetry carries position, heading and `doorLockStatus`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Response, header};
use keyway_adapter::error::parse_retry_after;
use keyway_adapter::http::{body_excerpt, check, fix, invalid, join, no_fix, parse_body};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Delivered, Door,
    DoorPosition, Limits, Location, OAuthProfile, OemError, OemVehicle, Pending, Progress,
    SecurityState, Sent, VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How often to read telemetry for a command's outcome.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What the Ford adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "ford",
    make: "Ford",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Async,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        authorize_path: "/oauth2/v2.0/authorize",
        token_path: "/oauth2/v2.0/token",
        scopes: &["openid", "offline_access", "access"],
        client_auth: ClientAuth::Body,
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(1200),
        token_exchange: true,
    },
    limits: Limits {
        requests: &[],
        commands: &[],
    },
    api_key_header: None,
    // Ford: FordPass status is refreshed by the car on its own schedule.
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(60),
        command_window: std::time::Duration::from_secs(300),
    },
};

/// The Ford adapter for one base URL.
#[derive(Clone, Debug)]
pub struct FordAdapter {
    base: String,
}

impl FordAdapter {
    /// An adapter calling Ford at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into() }
    }

    async fn telemetry(&self, cx: &Call, v: &VehicleRef) -> Result<Response<Bytes>, OemError> {
        let url = join(
            &self.base,
            &format!("/v1/telemetry/sources/fordpass/vehicles/{}", v.oem_id),
        );
        check(cx.get(&url).await?, false, classify)
    }
}

// === wire types ===

#[derive(Deserialize)]
struct Garage {
    vehicles: Option<Vec<ListedVehicle>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedVehicle {
    vin: Option<String>,
    model_name: Option<String>,
    model_year: Option<String>,
    nick_name: Option<String>,
}

#[derive(Deserialize)]
struct Telemetry {
    metrics: Option<Metrics>,
    states: Option<States>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    position: Option<Metric<Position>>,
    heading: Option<Metric<f64>>,
    door_lock_status: Option<Vec<DoorMetric>>,
    door_status: Option<Vec<DoorMetric>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metric<T> {
    update_time: Option<String>,
    value: Option<T>,
}

#[derive(Deserialize)]
struct Position {
    location: Option<LatLon>,
}

#[derive(Deserialize)]
struct LatLon {
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DoorMetric {
    update_time: Option<String>,
    value: Option<String>,
    vehicle_door: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct States {
    lock_command: Option<Metric<CommandState>>,
    unlock_command: Option<Metric<CommandState>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommandState {
    command_id: Option<String>,
    to_state: Option<String>,
}

#[derive(Deserialize)]
struct Accepted {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    message: Option<String>,
    reference_id: Option<String>,
}

// === parsing ===

/// An `updateTime`; `None` when absent or unreadable (never invented).
fn time(t: Option<&str>) -> Option<OffsetDateTime> {
    t.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// Parses the garage.
pub fn parse_vehicles(body: &[u8]) -> Result<Vec<OemVehicle>, OemError> {
    let g: Garage = parse_body(body, Delivered::No)?;
    // An unrecognised list is an error, never an empty fleet.
    Ok(g.vehicles
        .ok_or_else(|| invalid("not a Ford vehicle list (no `vehicles`)"))?
        .into_iter()
        .filter_map(|v| {
            let vin = v.vin.filter(|s| !s.is_empty())?;
            Some(OemVehicle {
                oem_id: vin.clone(),
                vin: Some(vin),
                display_name: v.nick_name,
                model: v.model_name,
                year: v.model_year.and_then(|y| y.parse().ok()),
            })
        })
        .collect())
}

/// Parses telemetry for the position.
pub fn parse_location(body: &[u8]) -> Result<Location, OemError> {
    let t: Telemetry = parse_body(body, Delivered::No)?;
    let m = t.metrics.ok_or_else(|| invalid("no metrics"))?;
    let p = m.position.ok_or_else(|| no_fix("no position"))?;
    let l = p
        .value
        .and_then(|v| v.location)
        .ok_or_else(|| no_fix("no location"))?;
    let (latitude, longitude) = fix(l.lat, l.lon)?;
    Ok(Location {
        latitude,
        longitude,
        heading: m.heading.and_then(|h| h.value),
        accuracy_m: None,
        recorded_at: time(p.update_time.as_deref()),
    })
}

/// Parses telemetry for the lock state: the `ALL_DOORS` entry of `doorLockStatus` when
/// there is one; else the per-door entries combined — unlocked if any known door is
/// unlocked, locked if every known door is locked (the newest entry's time).
pub fn parse_security(body: &[u8]) -> Result<SecurityState, OemError> {
    let t: Telemetry = parse_body(body, Delivered::No)?;
    let m = t.metrics.ok_or_else(|| invalid("no metrics"))?;
    let entries = m.door_lock_status.unwrap_or_default();
    let lock_of = |d: &DoorMetric| match d.value.as_deref() {
        Some("LOCKED" | "DOUBLE_LOCKED") => Some(true),
        Some("UNLOCKED") => Some(false),
        _ => None,
    };
    let (locked, update_time) = match entries
        .iter()
        .find(|d| d.vehicle_door.as_deref().is_none_or(|x| x == "ALL_DOORS"))
    {
        Some(all) => match lock_of(all) {
            Some(l) => (l, all.update_time.clone()),
            None => {
                return Err(invalid(&format!("unknown doorLockStatus {:?}", all.value)));
            }
        },
        None => {
            let known: Vec<(&DoorMetric, bool)> = entries
                .iter()
                .filter_map(|d| lock_of(d).map(|l| (d, l)))
                .collect();
            if known.is_empty() {
                return Err(invalid("no doorLockStatus"));
            }
            let newest = known
                .iter()
                .filter_map(|(d, _)| d.update_time.clone())
                .max();
            (known.iter().all(|(_, l)| *l), newest)
        }
    };
    let doors: Vec<Door> = m
        .door_status
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| {
            let position = match d.vehicle_door.as_deref()? {
                "DRIVER" => DoorPosition::FrontLeft,
                "PASSENGER" => DoorPosition::FrontRight,
                "REAR_LEFT" => DoorPosition::RearLeft,
                "REAR_RIGHT" => DoorPosition::RearRight,
                "TAILGATE" => DoorPosition::Trunk,
                "HOOD_DOOR" => DoorPosition::Frunk,
                _ => return None,
            };
            Some(Door {
                position,
                open: d.value.as_deref() == Some("OPEN"),
            })
        })
        .collect();
    Ok(SecurityState {
        locked: Some(locked),
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: time(update_time.as_deref()),
    })
}

/// Parses a command answer (`{"id"}`).
pub fn parse_accepted(body: &[u8]) -> Result<Sent, OemError> {
    let a: Accepted = parse_body(body, Delivered::Unknown)?;
    let id =
        a.id.filter(|s| !s.is_empty())
            .ok_or(OemError::InvalidResponse {
                detail: "command answer has no id".into(),
                delivered: Delivered::Unknown,
            })?;
    Ok(Sent::Pending(Pending {
        handle: id,
        poll_after_ms: POLL_INTERVAL.as_millis() as u64,
    }))
}

/// Reads a command's progress from telemetry `states`.
pub fn parse_progress(body: &[u8], c: Command, command_id: &str) -> Result<Progress, OemError> {
    let t: Telemetry = parse_body(body, Delivered::No)?;
    let states = t.states.unwrap_or(States {
        lock_command: None,
        unlock_command: None,
    });
    let state = match c {
        Command::Lock => states.lock_command,
        Command::Unlock => states.unlock_command,
    };
    let pending = Progress::Pending {
        poll_after: Some(POLL_INTERVAL),
    };
    let Some(value) = state.and_then(|s| s.value) else {
        return Ok(pending);
    };
    if value.command_id.as_deref() != Some(command_id) {
        return Ok(pending);
    }
    Ok(match value.to_state.as_deref() {
        Some("SUCCESS" | "COMMAND_SUCCEEDED_ON_DEVICE") => Progress::Succeeded,
        Some("COMMAND_FAILED_ON_DEVICE") => Progress::Failed(OemError::Refused {
            reason: "the vehicle could not complete the command".into(),
        }),
        Some("EXPIRED") => Progress::Failed(OemError::Expired),
        _ => pending,
    })
}

/// Maps a non-success answer (502 bodies carry a `referenceId`).
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    let body = serde_json::from_slice::<ErrorBody>(resp.body()).ok();
    let detail = body
        .map(|b| {
            let msg = b.message.unwrap_or_default();
            match b.reference_id {
                Some(r) => format!("{msg} (reference {r})"),
                None => msg,
            }
        })
        .unwrap_or_else(|| body_excerpt(resp));
    match resp.status().as_u16() {
        429 => OemError::RateLimited {
            retry_after: parse_retry_after(resp.headers().get(header::RETRY_AFTER)),
        },
        s => OemError::from_status(s, detail, command),
    }
}

#[async_trait]
impl Adapter for FordAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let resp = check(
            cx.get(&join(&self.base, "/v1/vehicles")).await?,
            false,
            classify,
        )?;
        parse_vehicles(resp.body())
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        parse_location(self.telemetry(cx, v).await?.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        parse_security(self.telemetry(cx, v).await?.body())
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let url = join(
            &self.base,
            &format!("/v1/command/vehicles/{}/commands", v.oem_id),
        );
        let body = serde_json::json!({"type": c.as_str(), "wakeUp": true});
        let resp = check(cx.post_json(&url, &body).await?, true, classify)?;
        parse_accepted(resp.body())
    }

    async fn poll(
        &self,
        cx: &Call,
        v: &VehicleRef,
        c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError> {
        parse_progress(self.telemetry(cx, v).await?.body(), c, &p.handle)
    }

    async fn wake(&self, _cx: &Call, _v: &VehicleRef) -> Result<(), OemError> {
        Err(OemError::NotCapable {
            what: "wake a vehicle (Ford commands carry wakeUp: true)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../fixtures/ford/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn per_door_lock_entries_combine() {
        // No ALL_DOORS entry: one unlocked door makes the car unlocked.
        let s = parse_security(&fixture("telemetry_per_door.json")).unwrap();
        assert_eq!(s.locked, Some(false));
        assert_eq!(
            s.recorded_at.map(|t| t.second()),
            Some(41),
            "the newest entry's time"
        );
        let all_locked = String::from_utf8(fixture("telemetry_per_door.json"))
            .unwrap()
            .replace("\"UNLOCKED\"", "\"LOCKED\"");
        assert_eq!(
            parse_security(all_locked.as_bytes()).unwrap().locked,
            Some(true)
        );
    }

    #[test]
    fn fixtures_parse() {
        let v = parse_vehicles(&fixture("vehicles.json")).unwrap();
        assert_eq!(v[0].model.as_deref(), Some("Mustang Mach-E"));
        assert_eq!(v[0].year, Some(2023));
        let l = parse_location(&fixture("telemetry.json")).unwrap();
        assert!((l.latitude - 42.300650).abs() < 1e-9);
        assert_eq!(l.heading, Some(135.0));
        let s = parse_security(&fixture("telemetry.json")).unwrap();
        assert_eq!(s.locked, Some(true));
        assert!(
            s.doors
                .unwrap()
                .iter()
                .any(|d| d.position == DoorPosition::Trunk && d.open)
        );
        let id = "cmd-5c7a1c2e-0000-4000-8000-000000000001";
        assert!(
            matches!(parse_accepted(&fixture("command_accepted.json")), Ok(Sent::Pending(p)) if p.handle == id)
        );
        let t = fixture("telemetry.json");
        assert_eq!(
            parse_progress(&t, Command::Lock, id),
            Ok(Progress::Succeeded)
        );
        assert!(
            matches!(
                parse_progress(&t, Command::Lock, "another"),
                Ok(Progress::Pending { .. })
            ),
            "another command's state is not ours"
        );
        assert!(matches!(
            parse_progress(&t, Command::Unlock, id),
            Ok(Progress::Pending { .. })
        ));
        let r = Response::builder()
            .status(502)
            .body(Bytes::from(fixture("error_502.json")))
            .unwrap();
        assert!(classify(&r, true).to_string().contains("ref-0b7a-4f0e"));
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_mutated_fixtures(
            name in prop::sample::select(vec!["vehicles.json", "telemetry.json", "command_accepted.json"]),
            cut in 0usize..3000,
            flips in prop::collection::vec((0usize..3000, any::<u8>()), 0..4),
        ) {
            let mut body = fixture(name);
            for (at, byte) in flips {
                if !body.is_empty() {
                    let i = at % body.len();
                    body[i] = byte;
                }
            }
            body.truncate(cut.min(body.len()));
            let _ = parse_vehicles(&body);
            let _ = parse_location(&body);
            let _ = parse_security(&body);
            let _ = parse_accepted(&body);
            let _ = parse_progress(&body, Command::Lock, "x");
        }
    }
}
