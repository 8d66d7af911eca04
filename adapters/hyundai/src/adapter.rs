//! Translation between keyway's unified vocabulary and the Hyundai/Kia EU SPA API.
//!
//! Answers come in an envelope: `{"retCode": "S"|"F", "resCode", "resMsg", "msgId"}`.
//! A `retCode "F"` is an error even with HTTP 200: `resCode "5091"` is the rate limit,
//! `"4002"` an invalid access token, `"4017"` a `Stamp` or application id the API no
//! longer accepts (keyway's configuration: `oem_misconfigured`). Cars are addressed by `vehicleId`. Door control
//! (`POST …/control/door` with `{"action": "close"|"open"}`) answers a `msgId`; the
//! outcome arrives later as a notification record (`success`, `fail`, `non-response`).
//! Every call carries the application's `Stamp` header. Times are `YYYYMMDDhhmmss`
//! in UTC. CCS2 cars' door control takes the owner's PIN ([`crate::control`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Response, header};
use keyway_adapter::http::{
    body_excerpt, check, fix, invalid, join, no_fix, parse_body, status_error,
};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Delivered, Door,
    DoorPosition, Limits, Location, OAuthProfile, OemError, OemVehicle, Pending, PerCar, Progress,
    Secret, SecurityState, Sent, VehicleRef,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Kept control tokens: (account, the PIN's fingerprint) → token and when to stop
/// using it.
pub(crate) type ControlTokens = Mutex<HashMap<(String, u64), (Secret, tokio::time::Instant)>>;

/// How often to read notification records for a command's outcome.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What the Hyundai/Kia adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "hyundai",
    make: "Hyundai",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Async,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        authorize_path: "/api/v1/user/oauth2/authorize",
        token_path: "/api/v1/user/oauth2/token",
        scopes: &["url.login"],
        client_auth: ClientAuth::Basic,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: false,
        default_access_ttl: Duration::from_secs(86_400),
        token_exchange: true,
        linking: keyway_adapter::Linking::Code,
    },
    limits: Limits {
        requests: &[],
        commands: &[],
    },
    api_key_header: Some("Stamp"),
    owner_pin: true,
    // Hyundai/Kia: the cached status is the last the car uploaded.
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(60),
        command_window: std::time::Duration::from_secs(300),
        // Which clock writes the state's timestamps is not documented: the car's.
        stamps: keyway_adapter::Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// The Hyundai/Kia adapter for one base URL and application stamp.
#[derive(Clone, Debug)]
pub struct HyundaiAdapter {
    base: String,
    stamp: Secret,
    /// What the vehicle list said of each car: on CCS2 (status at
    /// `ccs2/carstatus/latest`, door control with a control token) or not.
    ccs2: PerCar<bool>,
    /// Control tokens made from owners' PINs ([`crate::control`]).
    pub(crate) controls: Arc<ControlTokens>,
}

impl HyundaiAdapter {
    /// An adapter calling the SPA API at `base`, sending `stamp` as the `Stamp` header.
    pub fn new(base: impl Into<String>, stamp: Secret) -> Self {
        Self {
            base: base.into(),
            stamp,
            ccs2: PerCar::default(),
            controls: Arc::default(),
        }
    }

    /// A request with the bearer token and the `Stamp` header.
    pub(crate) fn request(&self, cx: &Call, method: Method, path: &str) -> http::request::Builder {
        let mut stamp = http::HeaderValue::try_from(self.stamp.expose())
            .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"));
        stamp.set_sensitive(true);
        cx.request(method, &join(&self.base, path))
            .header(INFO.api_key_header.unwrap_or("Stamp"), stamp)
    }

    async fn get(&self, cx: &Call, path: &str) -> Result<Response<Bytes>, OemError> {
        let req = self.request(cx, Method::GET, path).body(Bytes::new());
        check(cx.send(req).await?, false, classify)
    }
}

// === wire types ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    ret_code: Option<String>,
    res_code: Option<String>,
    res_msg: Option<T>,
    msg_id: Option<String>,
}

#[derive(Deserialize)]
struct VehicleList {
    vehicles: Option<Vec<ListedVehicle>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedVehicle {
    vin: Option<String>,
    vehicle_id: Option<String>,
    vehicle_name: Option<String>,
    nickname: Option<String>,
    year: Option<String>,
    /// 0/1 or a boolean.
    #[serde(rename = "ccuCCS2ProtocolSupport")]
    ccs2: Option<serde_json::Value>,
}

/// `location/park`: the fix under `gpsDetail`, or its fields directly in `resMsg`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Park {
    gps_detail: Option<GpsDetail>,
    #[serde(flatten)]
    direct: GpsDetail,
}

#[derive(Deserialize)]
struct GpsDetail {
    coord: Option<Coord>,
    #[serde(default, deserialize_with = "number")]
    head: Option<f64>,
    time: Option<String>,
}

#[derive(Deserialize)]
struct Coord {
    #[serde(default, deserialize_with = "number")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    lon: Option<f64>,
}

/// A number that may come as a numeric string.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<serde_json::Value>::deserialize(d)?
        .as_ref()
        .and_then(keyway_adapter::http::lenient_number))
}

/// The truth of a 0/1, "0"/"1" or boolean flag.
fn flag(v: Option<&serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(serde_json::Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusMsg {
    vehicle_status_info: Option<StatusInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusInfo {
    vehicle_status: Option<VehicleStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VehicleStatus {
    time: Option<String>,
    door_lock: Option<bool>,
    door_open: Option<DoorOpen>,
    trunk_open: Option<bool>,
    hood_open: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DoorOpen {
    front_left: Option<u8>,
    front_right: Option<u8>,
    back_left: Option<u8>,
    back_right: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    record_id: Option<String>,
    result: Option<String>,
}

// === parsing ===

/// The envelope's `resMsg`, or the error its codes mean.
fn unwrap_envelope<T: DeserializeOwned>(body: &[u8], command: bool) -> Result<T, OemError> {
    let delivered = if command {
        Delivered::Unknown
    } else {
        Delivered::No
    };
    let env: Envelope<serde_json::Value> = parse_body(body, delivered)?;
    // Only an explicit failure is an error: `retCode` other than "S", or a known error
    // `resCode`. A body with `resMsg` and no `retCode` is an answer.
    let failed = env.ret_code.as_deref().is_some_and(|c| c != "S");
    if let Some(e) = env
        .res_code
        .as_deref()
        .and_then(|c| known_code(c, env.res_msg.as_ref()))
    {
        return Err(e);
    }
    match (env.ret_code.as_deref(), env.res_code.as_deref()) {
        (ret, code) if failed => {
            return Err(OemError::Upstream {
                status: 200,
                detail: format!(
                    "retCode {}, resCode {}",
                    ret.unwrap_or("?"),
                    code.unwrap_or("?")
                ),
                delivered: Delivered::No,
            });
        }
        (None, _) if env.res_msg.is_none() => {
            return Err(invalid("neither retCode nor resMsg"));
        }
        _ => {}
    }
    serde_json::from_value(env.res_msg.unwrap_or(serde_json::Value::Null)).map_err(|e| {
        OemError::InvalidResponse {
            detail: e.to_string(),
            delivered,
        }
    })
}

/// The error a `resCode` names, whatever the HTTP status: `5091` the rate limit, `4002`
/// an invalid access token, `4017` ("Invalid request value - Invalid Application Id",
/// what the API answers a `Stamp` or application id it no longer accepts, as
/// hyundai_kia_connect_api and kia_uvo users report) keyway's own credentials.
fn known_code(code: &str, message: Option<&serde_json::Value>) -> Option<OemError> {
    let text = message.and_then(|m| m.as_str()).unwrap_or_default();
    Some(match code {
        "5091" => OemError::RateLimited { retry_after: None },
        "4002" => OemError::Unauthorized {
            detail: "invalid access token (4002)".into(),
        },
        "4017" => OemError::ClientRejected {
            detail: format!("the API rejects keyway's Stamp or application id (4017): {text}"),
        },
        // hyundai_kia_connect_api: `UnsupportedControlError` (a CCS2 car asked on the
        // older door-control path, say): nothing was done.
        "4005" => OemError::NotCapable {
            what: format!("this remote control for this car (4005: {text})"),
        },
        _ => return None,
    })
}

/// The error an envelope names by a known `resCode` (a rate limit, a rejected token…).
pub(crate) fn envelope_error(body: &[u8]) -> Option<OemError> {
    let env = serde_json::from_slice::<Envelope<serde_json::Value>>(body).ok()?;
    known_code(env.res_code.as_deref()?, env.res_msg.as_ref())
}

/// `YYYYMMDDhhmmss` in UTC.
fn spa_time(t: Option<&str>) -> Result<OffsetDateTime, OemError> {
    let t = t.filter(|t| t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()));
    let t = t.ok_or_else(|| invalid("missing or bad time"))?;
    let n = |a: usize, b: usize| t[a..b].parse::<u32>().unwrap_or(0);
    let month = Month::try_from(n(4, 6) as u8).map_err(|_| invalid("bad month"))?;
    let date = Date::from_calendar_date(n(0, 4) as i32, month, n(6, 8) as u8)
        .map_err(|_| invalid("bad date"))?;
    let time = Time::from_hms(n(8, 10) as u8, n(10, 12) as u8, n(12, 14) as u8)
        .map_err(|_| invalid("bad time of day"))?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses the vehicle list (addressed by `vehicleId`).
pub fn parse_vehicles(body: &[u8]) -> Result<Vec<OemVehicle>, OemError> {
    Ok(parse_listed(body)?.into_iter().map(|(v, _)| v).collect())
}

/// The vehicle list with each car's CCS2 flag. A list without `vehicles` is an error,
/// never an empty fleet.
fn parse_listed(body: &[u8]) -> Result<Vec<(OemVehicle, bool)>, OemError> {
    let list: VehicleList = unwrap_envelope(body, false)?;
    Ok(list
        .vehicles
        .ok_or_else(|| invalid("no vehicles in the list"))?
        .into_iter()
        .filter_map(|v| {
            let ccs2 = flag(v.ccs2.as_ref());
            let id = v.vehicle_id.filter(|s| !s.is_empty())?;
            Some((
                OemVehicle {
                    capabilities: None,
                    oem_id: id,
                    vin: v.vin,
                    display_name: v.nickname,
                    model: v.vehicle_name,
                    year: v.year.and_then(|y| y.parse().ok()),
                },
                ccs2,
            ))
        })
        .collect())
}

/// Parses the parked location.
pub fn parse_location(body: &[u8]) -> Result<Location, OemError> {
    let park: Park = unwrap_envelope(body, false)?;
    let g = park.gps_detail.unwrap_or(park.direct);
    let c = g.coord.ok_or_else(|| no_fix("no coord"))?;
    let (latitude, longitude) = fix(c.lat, c.lon)?;
    Ok(Location {
        latitude,
        longitude,
        heading: g.head,
        accuracy_m: None,
        recorded_at: spa_time(g.time.as_deref()).ok(),
    })
}

/// Parses the latest status's lock state: `status/latest` (`vehicleStatusInfo`) or a
/// CCS2 car's `ccs2/carstatus/latest` (`state.Vehicle`).
pub fn parse_security(body: &[u8]) -> Result<SecurityState, OemError> {
    let msg: serde_json::Value = unwrap_envelope(body, false)?;
    if let Some(vehicle) = msg.pointer("/state/Vehicle") {
        return ccs2_security(vehicle, &msg);
    }
    let msg: StatusMsg = serde_json::from_value(msg).map_err(|e| invalid(&e.to_string()))?;
    let s = msg
        .vehicle_status_info
        .and_then(|i| i.vehicle_status)
        .ok_or_else(|| invalid("no vehicleStatus"))?;
    // No `doorLock`: the OEM does not say (unknown, not an error).
    let locked = s.door_lock;
    let mut doors = Vec::new();
    if let Some(d) = &s.door_open {
        for (position, v) in [
            (DoorPosition::FrontLeft, d.front_left),
            (DoorPosition::FrontRight, d.front_right),
            (DoorPosition::RearLeft, d.back_left),
            (DoorPosition::RearRight, d.back_right),
        ] {
            if let Some(v) = v {
                doors.push(Door {
                    position,
                    open: v != 0,
                });
            }
        }
    }
    for (position, v) in [
        (DoorPosition::Trunk, s.trunk_open),
        (DoorPosition::Frunk, s.hood_open),
    ] {
        if let Some(open) = v {
            doors.push(Door { position, open });
        }
    }
    Ok(SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: spa_time(s.time.as_deref()).ok(),
    })
}

/// A CCS2 status: `Cabin.Door.Row{1,2}.{Driver,Passenger,Left,Right}.Lock` is 0 when
/// that door is locked (1 open); the car is locked when every reported door is; `.Open`
/// is 1 when a door stands open, as `Body.Trunk.Open` and `Body.Hood.Open` are for the
/// boot and the bonnet. The time is `Vehicle.Date` (`YYYYMMDDhhmmss[.fff]`,
/// UTC) or `resMsg.lastUpdateTime`.
fn ccs2_security(
    v: &serde_json::Value,
    msg: &serde_json::Value,
) -> Result<SecurityState, OemError> {
    let doors_at = [
        ("/Cabin/Door/Row1/Driver", DoorPosition::FrontLeft),
        ("/Cabin/Door/Row1/Passenger", DoorPosition::FrontRight),
        ("/Cabin/Door/Row2/Left", DoorPosition::RearLeft),
        ("/Cabin/Door/Row2/Right", DoorPosition::RearRight),
    ];
    let int = |p: &str| {
        v.pointer(p).and_then(|x| {
            x.as_i64()
                .or_else(|| x.as_bool().map(i64::from))
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let locks: Vec<i64> = doors_at
        .iter()
        .filter_map(|(at, _)| int(&format!("{at}/Lock")))
        .collect();
    if locks.is_empty() {
        return Err(invalid("CCS2 state without door locks"));
    }
    let openings = [
        ("/Body/Trunk", DoorPosition::Trunk),
        ("/Body/Hood", DoorPosition::Frunk),
    ];
    let doors: Vec<Door> = doors_at
        .iter()
        .chain(&openings)
        .filter_map(|(at, position)| {
            int(&format!("{at}/Open")).map(|o| Door {
                position: *position,
                open: o != 0,
            })
        })
        .collect();
    let time = v
        .get("Date")
        .and_then(|d| d.as_str())
        .or_else(|| msg.get("lastUpdateTime").and_then(|d| d.as_str()))
        .map(|t| t.split('.').next().unwrap_or(t));
    Ok(SecurityState {
        locked: Some(locks.iter().all(|l| *l == 0)),
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: spa_time(time).ok(),
    })
}

/// Parses a control answer: the `msgId` to look for in the records.
pub fn parse_accepted(body: &[u8]) -> Result<Sent, OemError> {
    let env: Envelope<serde_json::Value> = parse_body(body, Delivered::Unknown)?;
    let msg_id = env.msg_id.clone();
    unwrap_envelope::<serde_json::Value>(body, true)?;
    let handle = msg_id
        .filter(|m| !m.is_empty())
        .ok_or(OemError::InvalidResponse {
            detail: "control answer has no msgId".into(),
            delivered: Delivered::Unknown,
        })?;
    Ok(Sent::Pending(Pending {
        handle,
        poll_after_ms: POLL_INTERVAL.as_millis() as u64,
    }))
}

/// Finds a command's outcome among the notification records.
pub fn parse_records(body: &[u8], msg_id: &str) -> Result<Progress, OemError> {
    let records: Vec<Record> = unwrap_envelope(body, false)?;
    let Some(r) = records
        .iter()
        .find(|r| r.record_id.as_deref() == Some(msg_id))
    else {
        return Ok(Progress::Pending {
            poll_after: Some(POLL_INTERVAL),
        });
    };
    Ok(match r.result.as_deref() {
        Some("success") => Progress::Succeeded,
        Some("fail") => Progress::Failed(OemError::Refused {
            reason: "the vehicle refused the command".into(),
        }),
        Some("non-response") => Progress::Failed(OemError::Expired),
        _ => Progress::Pending {
            poll_after: Some(POLL_INTERVAL),
        },
    })
}

/// Maps a non-success HTTP answer.
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    if let Some(e) = envelope_error(resp.body()) {
        return e;
    }
    status_error(resp, body_excerpt(resp), command)
}

#[async_trait]
impl Adapter for HyundaiAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let listed = parse_listed(self.get(cx, "/api/v1/spa/vehicles").await?.body())?;
        for (v, is) in &listed {
            self.ccs2.set(&v.oem_id, *is);
        }
        Ok(listed.into_iter().map(|(v, _)| v).collect())
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        let path = format!("/api/v1/spa/vehicles/{}/location/park", v.oem_id);
        parse_location(self.get(cx, &path).await?.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let ccs2 = format!("/api/v1/spa/vehicles/{}/ccs2/carstatus/latest", v.oem_id);
        if self.ccs2.get(&v.oem_id) == Some(true) {
            return parse_security(self.get(cx, &ccs2).await?.body());
        }
        let legacy = format!("/api/v1/spa/vehicles/{}/status/latest", v.oem_id);
        let first = match self.get(cx, &legacy).await {
            Ok(resp) => parse_security(resp.body()),
            Err(e) => Err(e),
        };
        match first {
            // Not known as CCS2 (no vehicle list seen since start) and the old status
            // failed: a CCS2 car answers at its own path.
            Err(OemError::Upstream { .. } | OemError::InvalidResponse { .. }) => {
                let s = parse_security(self.get(cx, &ccs2).await?.body())?;
                self.ccs2.set(&v.oem_id, true);
                Ok(s)
            }
            other => other,
        }
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let action = match c {
            Command::Lock => "close",
            Command::Unlock => "open",
        };
        // A CCS2 car takes door commands only on its own path, with a control token; a car
        // no vehicle list has named since start is looked up first.
        let ccs2 = match self.ccs2.get(&v.oem_id) {
            Some(is) => is,
            None => {
                self.vehicles(cx).await?;
                self.ccs2.get(&v.oem_id).unwrap_or(false)
            }
        };
        if ccs2 {
            return self.ccs2_door(cx, v, action).await;
        }
        let path = format!("/api/v1/spa/vehicles/{}/control/door", v.oem_id);
        let body = serde_json::to_vec(&serde_json::json!({"action": action})).unwrap_or_default();
        let req = self
            .request(cx, Method::POST, &path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body));
        let resp = check(cx.send(req).await?, true, classify)?;
        parse_accepted(resp.body())
    }

    async fn poll(
        &self,
        cx: &Call,
        v: &VehicleRef,
        _c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError> {
        let path = format!("/api/v1/spa/notifications/{}/records", v.oem_id);
        parse_records(self.get(cx, &path).await?.body(), &p.handle)
    }
}

#[cfg(test)]
mod tests;
