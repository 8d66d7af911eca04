//! Translation between keyway's unified vocabulary and GM's OnStar API (v3, as
//! onstarjs2 calls it).
//!
//! The garage is a GraphQL query posted to `/mbff/garage/v1` (`{data{vehicles[…]}}`; the
//! v1 account list `{vehicles{vehicle[…]}}` is still read). Every remote operation is a
//! command: `POST /veh/cmd/v3/{lock|unlock|location}/{VIN}` answers `{requestId,
//! requestTime, status: "IN_PROGRESS", url}` (v1: the same under `commandResponse`, in
//! camel case) and the client polls the URL until success or failure (GM's clients poll
//! about every 6 s and give up after about 60 s — keyway's core does the polling). The
//! location arrives in the completed answer as `body.location.{lat, long}`, **as
//! strings**. There is no lock-state read: `Security` is not declared, and keyway reports
//! the state the last confirmed command left. Only the status URL's path is used, joined
//! to the configured base: an answer cannot send keyway's token to another host.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Response, header};
use keyway_adapter::http::{
    body_excerpt, check, fix, invalid, join, no_fix, parse_body, status_error,
};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Delivered, Limits,
    Location, OAuthProfile, OemError, OemVehicle, Pending, Progress, SecurityState, Sent,
    VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;

/// The v3 garage: a GraphQL query posted as plain text.
pub const GARAGE_PATH: &str = "/mbff/garage/v1";
/// The garage query: the fields keyway reads.
pub const GARAGE_QUERY: &str =
    "query getVehiclesMBFF {vehicles {vin vehicleId make model nickName year onstarStatusCode}}";

/// GM's clients poll a command about every 6 s.
pub const POLL_INTERVAL: Duration = Duration::from_secs(6);

/// What the GM adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "gm",
    make: "GM",
    capabilities: &[Capability::Locate, Capability::Lock, Capability::Unlock],
    command_mode: CommandMode::Async,
    location_mode: CommandMode::Async,
    oauth: OAuthProfile {
        authorize_path: "/oauth2/v2.0/authorize",
        token_path: "/oauth2/v2.0/token",
        scopes: &["openid", "offline_access", "onstar"],
        client_auth: ClientAuth::Body,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: false,
        default_access_ttl: Duration::from_secs(1800),
        token_exchange: true,
        linking: keyway_adapter::Linking::Code,
    },
    limits: Limits {
        requests: &[],
        commands: &[],
    },
    api_key_header: None,
    owner_pin: false,
    // GM: OnStar commands to a sleeping car are queued for minutes; status reports lag.
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(120),
        command_window: std::time::Duration::from_secs(600),
        // Which clock writes the state's timestamps is not documented: the car's.
        stamps: keyway_adapter::Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// The OnStar adapter for one base URL.
#[derive(Clone, Debug)]
pub struct GmAdapter {
    base: String,
}

impl GmAdapter {
    /// An adapter calling OnStar at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into() }
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }

    async fn start(
        &self,
        cx: &Call,
        what: &str,
        v: &VehicleRef,
        body: serde_json::Value,
        command: bool,
    ) -> Result<Pending, OemError> {
        let path = format!("/veh/cmd/v3/{what}/{}", v.oem_id);
        let resp = check(
            cx.post_json(&self.url(&path), &body).await?,
            command,
            classify,
        )?;
        parse_accepted(resp.body(), command)
    }

    async fn status(&self, cx: &Call, p: &Pending) -> Result<CommandResponse, OemError> {
        let resp = check(cx.get(&self.url(&p.handle)).await?, false, classify)?;
        command_response(resp.body(), Delivered::No)
    }
}

// === wire types ===

/// A vehicle list: the v3 GraphQL garage's `{data{vehicles[…]}, errors?}` or the v1
/// account list's `{vehicles{size, vehicle[…]}}`.
#[derive(Deserialize)]
struct VehiclesEnvelope {
    vehicles: Option<VehicleList>,
    data: Option<GarageData>,
    errors: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct GarageData {
    vehicles: Option<Vec<ListedVehicle>>,
}

/// OnStar's list, converted from XML: `size` and `year` are strings (numbers accepted),
/// and `vehicle` is an array (a lone object accepted).
#[derive(Deserialize)]
struct VehicleList {
    size: Option<serde_json::Value>,
    vehicle: Option<OneOrMany<ListedVehicle>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedVehicle {
    vin: Option<String>,
    model: Option<String>,
    year: Option<serde_json::Value>,
    nick_name: Option<String>,
}

/// A command answer: v3's top-level `{requestId, requestTime, status, url, error}` or
/// v1's `{commandResponse{…}}`.
#[derive(Deserialize)]
struct CommandResponse {
    status: Option<String>,
    url: Option<String>,
    #[serde(rename = "completionTime")]
    completion_time: Option<String>,
    body: Option<CommandBody>,
    error: Option<serde_json::Value>,
}

fn command_response(body: &[u8], delivered: Delivered) -> Result<CommandResponse, OemError> {
    let mut v: serde_json::Value = parse_body(body, delivered)?;
    let doc = match v.get_mut("commandResponse").map(serde_json::Value::take) {
        Some(c) => c,
        None if v.get("status").is_some() => v,
        None => {
            return Err(OemError::InvalidResponse {
                detail: "no commandResponse".into(),
                delivered,
            });
        }
    };
    serde_json::from_value(doc).map_err(|e| OemError::InvalidResponse {
        detail: e.to_string(),
        delivered,
    })
}

#[derive(Deserialize)]
struct CommandBody {
    location: Option<GmLocation>,
    error: Option<serde_json::Value>,
}

/// `body.location`: numbers as strings (or numbers), and the heading as `direction`.
#[derive(Deserialize)]
struct GmLocation {
    lat: Option<serde_json::Value>,
    long: Option<serde_json::Value>,
    direction: Option<serde_json::Value>,
}

fn number(v: &Option<serde_json::Value>) -> Option<f64> {
    v.as_ref().and_then(keyway_adapter::http::lenient_number)
}

/// An error's text: a string, or an object's `description` (or `message`).
fn error_text(e: &serde_json::Value) -> Option<String> {
    match e {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Object(o) => ["description", "message"]
            .iter()
            .find_map(|k| o.get(*k)?.as_str().filter(|s| !s.is_empty()))
            .map(str::to_string),
        _ => None,
    }
}

// === parsing ===

/// Parses the account's vehicles (`year` is a string).
pub fn parse_vehicles(body: &[u8]) -> Result<Vec<OemVehicle>, OemError> {
    let env: VehiclesEnvelope = parse_body(body, Delivered::No)?;
    if let Some(e) = env.errors.as_ref().and_then(|e| e.first()) {
        let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
        return Err(invalid(&format!(
            "the garage answered with errors: {message}"
        )));
    }
    // An unrecognised list is an error, never an empty fleet; OnStar says "none" as
    // `{"vehicles": {"size": "0"}}` or an empty garage array.
    let list = match (env.vehicles, env.data.and_then(|d| d.vehicles)) {
        (_, Some(garage)) => VehicleList {
            size: None,
            vehicle: Some(OneOrMany::Many(garage)),
        },
        (Some(list), None) => list,
        (None, None) => {
            return Err(invalid(
                "not an OnStar vehicle list (no `vehicles` or `data.vehicles`)",
            ));
        }
    };
    let listed = match list.vehicle {
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(v)) => vec![v],
        None if list
            .size
            .as_ref()
            .and_then(keyway_adapter::http::lenient_number)
            == Some(0.0) =>
        {
            Vec::new()
        }
        None => return Err(invalid("an OnStar vehicle list without `vehicle`")),
    };
    Ok(listed
        .into_iter()
        .filter_map(|v| {
            let vin = v.vin.filter(|s| !s.is_empty())?;
            Some(OemVehicle {
                capabilities: None,
                oem_id: vin.clone(),
                vin: Some(vin),
                display_name: v.nick_name.filter(|n| !n.is_empty()),
                model: v.model,
                year: number(&v.year)
                    .filter(|y| (1900.0..3000.0).contains(y))
                    .map(|y| y as u16),
            })
        })
        .collect())
}

/// The path of a status URL (absolute or relative).
fn path_of(url: &str) -> Option<String> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r.find('/').map_or("", |i| &r[i..]));
    rest.starts_with('/').then(|| rest.to_string())
}

/// Parses an accepted command: the status URL to poll.
pub fn parse_accepted(body: &[u8], command: bool) -> Result<Pending, OemError> {
    let delivered = if command {
        Delivered::Unknown
    } else {
        Delivered::No
    };
    let url = command_response(body, delivered)?
        .url
        .and_then(|u| path_of(&u))
        .ok_or(OemError::InvalidResponse {
            detail: "no status url in commandResponse".into(),
            delivered,
        })?;
    Ok(Pending {
        handle: url,
        poll_after_ms: POLL_INTERVAL.as_millis() as u64,
    })
}

/// A command's status, in v1's camel case (`inProgress`) or v3's capitals
/// (`IN_PROGRESS`, `SUCCESS`, `COMPLETED`, `FAILED`).
fn progress(c: &CommandResponse) -> Result<Progress, OemError> {
    let status = c
        .status
        .as_deref()
        .map(|s| s.to_ascii_lowercase().replace('_', ""));
    match status.as_deref() {
        Some("inprogress" | "queued" | "pending" | "submitted") => Ok(Progress::Pending {
            poll_after: Some(POLL_INTERVAL),
        }),
        Some("success" | "completed" | "complete") => Ok(Progress::Succeeded),
        Some("failure" | "failed" | "error") => Ok(Progress::Failed(OemError::Refused {
            reason: c
                .error
                .as_ref()
                .or_else(|| c.body.as_ref()?.error.as_ref())
                .and_then(error_text)
                .unwrap_or_else(|| "the vehicle could not complete the request".into()),
        })),
        _ => Err(invalid(&format!("unknown command status {:?}", c.status))),
    }
}

/// Parses a command status answer.
pub fn parse_progress(body: &[u8]) -> Result<Progress, OemError> {
    progress(&command_response(body, Delivered::No)?)
}

fn location_of(c: &CommandResponse) -> Result<Option<Location>, OemError> {
    match progress(c)? {
        Progress::Pending { .. } => Ok(None),
        Progress::Failed(e) => Err(e),
        Progress::Succeeded => {
            let l = c
                .body
                .as_ref()
                .and_then(|b| b.location.as_ref())
                .ok_or_else(|| no_fix("no location in the completed answer"))?;
            let (latitude, longitude) = fix(number(&l.lat), number(&l.long))?;
            let recorded_at = c.completion_time.as_deref().and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
            Ok(Some(Location {
                latitude,
                longitude,
                heading: number(&l.direction).filter(|d| (0.0..=360.0).contains(d)),
                accuracy_m: None,
                recorded_at,
            }))
        }
    }
}

/// Parses a location command's status answer: `None` while it runs. The v3 digital
/// twin's answer (`GET /veh/datadelivery/digitaltwin/v1/vehicles/{vin}`, as onstarjs2
/// reads it) is understood too: `telemetry.data.position{lat, lng}`, pending while
/// `session.updatePending` is `PENDING`.
///
/// An EV's charging metrics (`getVehicleChargingMetrics`, as OnStarJS's
/// `getEVChargingMetrics` fetches it) carry a position too: `results[]`, each with
/// its `getVehicleChargingMetricsResponse` fields, `lat`/`lng` (numbers or strings) or
/// `loc` as `"lat,lng"`, heading `dir`.
pub fn parse_location_status(body: &[u8]) -> Result<Option<Location>, OemError> {
    let v: serde_json::Value = parse_body(body, Delivered::No)?;
    if let Some(data) = v.get("telemetry").and_then(|t| t.get("data")) {
        return digital_twin_location(data);
    }
    if let Some(results) = v.get("results").and_then(|r| r.as_array()) {
        return charging_metrics_location(results).map(Some);
    }
    location_of(&command_response(body, Delivered::No)?)
}

fn charging_metrics_location(results: &[serde_json::Value]) -> Result<Location, OemError> {
    let rows = results.iter().map(|r| {
        r.get("getVehicleChargingMetricsResponse")
            .filter(|m| m.is_object())
            .unwrap_or(r)
    });
    for row in rows {
        let n = |k: &str| row.get(k).and_then(keyway_adapter::http::lenient_number);
        let (lat, lng) = match (n("lat"), n("lng")) {
            (Some(lat), Some(lng)) => (Some(lat), Some(lng)),
            _ => {
                let loc = row.get("loc").and_then(|l| l.as_str()).unwrap_or_default();
                let mut parts = loc.split(',').map(|p| p.trim().parse::<f64>().ok());
                (parts.next().flatten(), parts.next().flatten())
            }
        };
        if lat.is_none() || lng.is_none() {
            continue;
        }
        let (latitude, longitude) = fix(lat, lng)?;
        return Ok(Location {
            latitude,
            longitude,
            heading: n("dir").filter(|d| (0.0..=360.0).contains(d)),
            accuracy_m: None,
            recorded_at: None,
        });
    }
    Err(no_fix("the charging metrics carry no position"))
}

fn digital_twin_location(data: &serde_json::Value) -> Result<Option<Location>, OemError> {
    let pending = data
        .pointer("/session/updatePending")
        .and_then(|p| p.as_str())
        == Some("PENDING");
    let Some(p) = data.get("position").filter(|p| !p.is_null()) else {
        return if pending {
            Ok(None)
        } else {
            Err(no_fix("the digital twin has no position"))
        };
    };
    let lenient = |k: &str| p.get(k).and_then(keyway_adapter::http::lenient_number);
    let (latitude, longitude) = fix(lenient("lat"), lenient("lng").or_else(|| lenient("long")))?;
    Ok(Some(Location {
        latitude,
        longitude,
        heading: lenient("heading").filter(|d| (0.0..=360.0).contains(d)),
        accuracy_m: None,
        recorded_at: None,
    }))
}

/// Maps a non-success answer (GM's error bodies are often empty).
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    status_error(resp, body_excerpt(resp), command)
}

#[async_trait]
impl Adapter for GmAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let req = cx
            .request(http::Method::POST, &self.url(GARAGE_PATH))
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Bytes::from_static(GARAGE_QUERY.as_bytes()));
        let resp = check(cx.send(req).await?, false, classify)?;
        parse_vehicles(resp.body())
    }

    async fn locate(&self, _cx: &Call, _v: &VehicleRef) -> Result<Location, OemError> {
        Err(OemError::NotCapable {
            what: "read the location synchronously (it is an OnStar command)".into(),
        })
    }

    async fn security(&self, _cx: &Call, _v: &VehicleRef) -> Result<SecurityState, OemError> {
        Err(OemError::NotCapable {
            what: "read the lock state".into(),
        })
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let (what, body) = match c {
            Command::Lock => ("lock", serde_json::json!({"lockDoorRequest": {"delay": 0}})),
            Command::Unlock => (
                "unlock",
                serde_json::json!({"unlockDoorRequest": {"delay": 0}}),
            ),
        };
        self.start(cx, what, v, body, true).await.map(Sent::Pending)
    }

    async fn poll(
        &self,
        cx: &Call,
        _v: &VehicleRef,
        _c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError> {
        progress(&self.status(cx, p).await?)
    }

    async fn request_location(&self, cx: &Call, v: &VehicleRef) -> Result<Pending, OemError> {
        self.start(cx, "location", v, serde_json::json!({}), false)
            .await
    }

    async fn poll_location(
        &self,
        cx: &Call,
        _v: &VehicleRef,
        p: &Pending,
    ) -> Result<Option<Location>, OemError> {
        let resp = check(cx.get(&self.url(&p.handle)).await?, false, classify)?;
        parse_location_status(resp.body())
    }
}

#[cfg(test)]
mod tests;
