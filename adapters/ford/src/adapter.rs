//! Translation between keyway's unified vocabulary and Ford's API.
//!
//! `POST /v1/command/vehicles/{VIN}/commands` with `{"type": "lock"|"unlock",
//! "wakeUp": true}` answers 201 `{"id"}`. The outcome is read from telemetry
//! (`GET /v1/telemetry/sources/fordpass/vehicles/{VIN}`): `states.lockCommand` (or
//! `unlockCommand`) carries the latest command's id and `toState`, moving through
//! `REQUEST_QUEUED`, `RECEIVED_BY_DEVICE`, `IN_PROGRESS` to `SUCCESS` /
//! `COMMAND_SUCCEEDED_ON_DEVICE`, or `COMMAND_FAILED_ON_DEVICE` / `EXPIRED`. A state
//! naming another command id is not this command's outcome: keep polling. The same
//! telemetry carries position, heading and `doorLockStatus`. A car telemetry does not
//! know (404) is read from FordPass's older status ([`legacy`]).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use keyway_adapter::http::{
    body_excerpt, check, fix, invalid, join, no_fix, parse_body, status_error,
};
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
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(1200),
        token_exchange: true,
        linking: keyway_adapter::Linking::Code,
    },
    limits: Limits {
        requests: &[],
        commands: &[],
    },
    api_key_header: None,
    owner_pin: false,
    // Ford: FordPass status is refreshed by the car on its own schedule.
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(60),
        command_window: std::time::Duration::from_secs(300),
        // Which clock writes the state's timestamps is not documented: the car's.
        stamps: keyway_adapter::Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// The Ford adapter for one base URL.
#[derive(Clone, Debug)]
pub struct FordAdapter {
    base: String,
    /// Cars telemetry does not know and the older status serves: read there directly.
    older: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl FordAdapter {
    /// An adapter calling Ford at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            older: Default::default(),
        }
    }

    fn older(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.older.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn telemetry(&self, cx: &Call, v: &VehicleRef) -> Result<Response<Bytes>, OemError> {
        let url = join(
            &self.base,
            &format!("/v1/telemetry/sources/fordpass/vehicles/{}", v.oem_id),
        );
        check(cx.get(&url).await?, false, classify)
    }

    /// The car's state: telemetry, or — for a car telemetry does not know (404) —
    /// FordPass's older status, which the parsers read too. A car the older status
    /// served is read there from then on (one request per read, not two).
    async fn state(&self, cx: &Call, v: &VehicleRef) -> Result<Response<Bytes>, OemError> {
        let known_older = self.older().contains(&v.oem_id);
        if !known_older {
            match self.telemetry(cx, v).await {
                Err(OemError::NotFound) => {}
                other => return other,
            }
        }
        let url = join(&self.base, &legacy::path(&v.oem_id));
        let resp = check(cx.get(&url).await?, false, classify)?;
        if !known_older {
            self.older().insert(v.oem_id.clone());
        }
        Ok(resp)
    }
}

// === wire types ===

/// A vehicle list: Ford Connect's `{vehicles[…]}` or the FordPass app's
/// `expdashboard/v1/details` answer `{userVehicles{vehicleDetails[…]}, vehicleProfile[…]}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Garage {
    vehicles: Option<Vec<ListedVehicle>>,
    user_vehicles: Option<UserVehicles>,
    vehicle_profile: Option<Vec<Profile>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserVehicles {
    vehicle_details: Option<Vec<ListedVehicle>>,
}

/// FordPass `vehicleProfile` entries: `VIN`, `model`, `year` (a number or a string).
#[derive(Deserialize)]
struct Profile {
    #[serde(rename = "VIN")]
    vin: Option<String>,
    model: Option<String>,
    year: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedVehicle {
    #[serde(alias = "VIN")]
    vin: Option<String>,
    model_name: Option<String>,
    model_year: Option<serde_json::Value>,
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
    vehicle_side: Option<String>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(rename = "DOOR_LATCH_TYPE")]
    door_latch_type: Option<String>,
}

impl DoorMetric {
    /// This entry's lock state: `None` when Ford does not know it, or when the door has
    /// a mechanical latch (its state says nothing about the central locking).
    fn locked(&self) -> Option<bool> {
        if self
            .tags
            .as_ref()
            .and_then(|t| t.door_latch_type.as_deref())
            == Some("MECHANICAL")
        {
            return None;
        }
        match self.value.as_deref() {
            Some("LOCKED" | "DOUBLE_LOCKED") => Some(true),
            Some("UNLOCKED") => Some(false),
            _ => None,
        }
    }

    /// Which door this is: named (`DRIVER`, `TAILGATE`, …) or `UNSPECIFIED_FRONT`/`_REAR`
    /// with a `vehicleSide`.
    fn position(&self) -> Option<DoorPosition> {
        let side = self.vehicle_side.as_deref();
        Some(match (self.vehicle_door.as_deref()?, side) {
            ("DRIVER" | "FRONT_LEFT", _) | ("UNSPECIFIED_FRONT", Some("DRIVER")) => {
                DoorPosition::FrontLeft
            }
            ("PASSENGER" | "FRONT_RIGHT", _) | ("UNSPECIFIED_FRONT", Some("PASSENGER")) => {
                DoorPosition::FrontRight
            }
            ("REAR_LEFT", _) | ("UNSPECIFIED_REAR", Some("DRIVER")) => DoorPosition::RearLeft,
            ("REAR_RIGHT", _) | ("UNSPECIFIED_REAR", Some("PASSENGER")) => DoorPosition::RearRight,
            ("TAILGATE" | "INNER_TAILGATE" | "REAR_HATCH", _) => DoorPosition::Trunk,
            ("HOOD_DOOR" | "FRUNK", _) => DoorPosition::Frunk,
            _ => return None,
        })
    }
}

/// `states`: the command states at the top, or nested under `commands`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct States {
    lock_command: Option<CommandMetric>,
    unlock_command: Option<CommandMetric>,
    commands: Option<Box<States>>,
}

/// A command's state; its `commandId` beside the value or inside it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommandMetric {
    command_id: Option<String>,
    value: Option<CommandState>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommandState {
    command_id: Option<String>,
    to_state: Option<String>,
}

/// A command answer: the id as `id`, `commandId` or `correlationId`.
#[derive(Deserialize)]
struct Accepted {
    #[serde(alias = "commandId", alias = "correlationId")]
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
    let year = |y: Option<&serde_json::Value>| {
        y.and_then(keyway_adapter::http::lenient_number)
            .filter(|y| (1900.0..3000.0).contains(y))
            .map(|y| y as u16)
    };
    let profiles = g.vehicle_profile.unwrap_or_default();
    // An unrecognised list is an error, never an empty fleet.
    let listed = g
        .vehicles
        .or_else(|| g.user_vehicles.and_then(|u| u.vehicle_details))
        .ok_or_else(|| {
            invalid("not a Ford vehicle list (no `vehicles` or `userVehicles.vehicleDetails`)")
        })?;
    Ok(listed
        .into_iter()
        .filter_map(|v| {
            let vin = v.vin.filter(|s| !s.is_empty())?;
            let profile = profiles.iter().find(|p| p.vin.as_deref() == Some(&vin));
            Some(OemVehicle {
                capabilities: None,
                oem_id: vin.clone(),
                vin: Some(vin),
                display_name: v.nick_name.filter(|n| !n.is_empty()),
                model: v.model_name.or_else(|| profile?.model.clone()),
                year: year(v.model_year.as_ref()).or_else(|| year(profile?.year.as_ref())),
            })
        })
        .collect())
}

/// Parses telemetry for the position (or FordPass's older status, [`legacy`]).
pub fn parse_location(body: &[u8]) -> Result<Location, OemError> {
    if let Some(doc) = legacy::document(body) {
        return legacy::location(&doc?);
    }
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

/// Parses telemetry (or FordPass's older status, [`legacy`]) for the lock state: the `ALL_DOORS` entry of `doorLockStatus` when
/// it says; else the per-door entries combined — unlocked if any known door is unlocked,
/// locked if every known door is locked (the newest entry's time). Entries with
/// `UNKNOWN` values or mechanical latches say nothing. Nothing known: `locked: None`.
pub fn parse_security(body: &[u8]) -> Result<SecurityState, OemError> {
    if let Some(doc) = legacy::document(body) {
        return Ok(legacy::security(&doc?));
    }
    let t: Telemetry = parse_body(body, Delivered::No)?;
    let m = t.metrics.ok_or_else(|| invalid("no metrics"))?;
    let entries = m.door_lock_status.unwrap_or_default();
    let all = entries
        .iter()
        .find(|d| d.vehicle_door.as_deref().is_none_or(|x| x == "ALL_DOORS"))
        .and_then(|d| Some((d.locked()?, d.update_time.clone())));
    let (locked, update_time) = match all {
        Some((l, t)) => (Some(l), t),
        None => {
            let known: Vec<(&DoorMetric, bool)> = entries
                .iter()
                .filter_map(|d| d.locked().map(|l| (d, l)))
                .collect();
            let newest = known
                .iter()
                .filter_map(|(d, _)| d.update_time.clone())
                .max();
            let locked = (!known.is_empty()).then(|| known.iter().all(|(_, l)| *l));
            (locked, newest)
        }
    };
    let doors: Vec<Door> = m
        .door_status
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| {
            let open = match d.value.as_deref()? {
                "OPEN" | "AJAR" => true,
                "CLOSED" => false,
                _ => return None,
            };
            Some(Door {
                position: d.position()?,
                open,
            })
        })
        .collect();
    Ok(SecurityState {
        locked,
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
    let pick = |s: States| match c {
        Command::Lock => s.lock_command,
        Command::Unlock => s.unlock_command,
    };
    let state = t.states.and_then(|mut s| {
        let nested = s.commands.take();
        pick(s).or_else(|| nested.and_then(|n| pick(*n)))
    });
    let pending = Progress::Pending {
        poll_after: Some(POLL_INTERVAL),
    };
    let Some(state) = state else {
        return Ok(pending);
    };
    let Some(value) = state.value else {
        return Ok(pending);
    };
    let id = state.command_id.as_deref().or(value.command_id.as_deref());
    if id != Some(command_id) {
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
    status_error(resp, detail, command)
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
        parse_location(self.state(cx, v).await?.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        parse_security(self.state(cx, v).await?.body())
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
}

pub mod legacy;
#[cfg(test)]
mod tests;
