//! Translation between keyway's unified vocabulary and Volvo's Connected Vehicle API v2.
//!
//! Commands are synchronous: the answer's `invokeStatus` is the outcome. `COMPLETED`
//! succeeded; `REJECTED`, `CAR_ERROR` and the `NOT_ALLOWED_*` values are refusals;
//! `VEHICLE_IN_SLEEP` means the car did not act (Volvo offers no wake-up);
//! `CONNECTION_FAILURE` means it is unreachable; `RUNNING`, `WAITING`, `UNKNOWN` and
//! `TIMEOUT` leave the outcome open, so keyway reconciles from `doors`. Before a command
//! keyway asks Volvo's `command-accessibility`: a car Volvo says it cannot reach now is
//! not sent the command (a definite "not sent" instead of an open outcome). The location is
//! GeoJSON: `coordinates` are `[longitude, latitude, altitude]`. Every request carries
//! the application's `vcc-api-key`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Response, header};
use keyway_adapter::http::{
    body_excerpt, check, fix, invalid, join, no_fix, parse_body, status_error,
};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Delivered, Door,
    DoorPosition, Limits, Location, OAuthProfile, OemError, OemVehicle, Secret, SecurityState,
    Sent, VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the Volvo adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "volvo",
    make: "Volvo",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Sync,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        authorize_path: "/as/authorization.oauth2",
        token_path: "/as/token.oauth2",
        scopes: &[
            "openid",
            "conve:lock",
            "conve:unlock",
            "conve:lock_status",
            "conve:vehicle_relation",
            "location:read",
        ],
        client_auth: ClientAuth::Basic,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: false,
        default_access_ttl: Duration::from_secs(1799),
        token_exchange: false,
        linking: keyway_adapter::Linking::Code,
    },
    // Volvo's published limits (approx.): 100 requests and 10 commands per minute.
    limits: Limits {
        requests: &[(100, 60)],
        commands: &[(10, 60)],
    },
    api_key_header: Some("vcc-api-key"),
    owner_pin: false,
    // Volvo: the state document is the last one the car uploaded.
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(30),
        command_window: std::time::Duration::from_secs(120),
        // Which clock writes the state's timestamps is not documented: the car's.
        stamps: keyway_adapter::Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// The Volvo adapter for one base URL and application API key.
#[derive(Clone, Debug)]
pub struct VolvoAdapter {
    base: String,
    api_key: Secret,
}

impl VolvoAdapter {
    /// An adapter calling Volvo at `base` with the application's `vcc-api-key`.
    pub fn new(base: impl Into<String>, api_key: Secret) -> Self {
        Self {
            base: base.into(),
            api_key,
        }
    }

    fn request(&self, cx: &Call, method: Method, path: &str) -> http::request::Builder {
        let mut key = http::HeaderValue::try_from(self.api_key.expose())
            .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"));
        key.set_sensitive(true);
        cx.request(method, &join(&self.base, path))
            .header(INFO.api_key_header.unwrap_or("vcc-api-key"), key)
    }

    async fn get(&self, cx: &Call, path: &str) -> Result<Response<Bytes>, OemError> {
        let resp = cx
            .send(self.request(cx, Method::GET, path).body(Bytes::new()))
            .await?;
        check(resp, false, classify)
    }
}

// === wire types ===

/// The document of an answer: under `data` as the API sends it, or the bare document
/// (as clients store and forward it, e.g. ha-volvo-cars' fixtures). `None` for `null`.
fn data<T: serde::de::DeserializeOwned>(
    body: &[u8],
    delivered: Delivered,
) -> Result<Option<T>, OemError> {
    let mut v: serde_json::Value = parse_body(body, delivered)?;
    let doc = match v.as_object_mut() {
        Some(o) if o.contains_key("data") => o.remove("data").unwrap_or_default(),
        _ => v,
    };
    if doc.is_null() {
        return Ok(None);
    }
    serde_json::from_value(doc)
        .map(Some)
        .map_err(|e| OemError::InvalidResponse {
            detail: e.to_string(),
            delivered,
        })
}

#[derive(Deserialize)]
struct ListedVehicle {
    vin: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    model_year: Option<u16>,
    descriptions: Option<Descriptions>,
}

#[derive(Deserialize)]
struct Descriptions {
    model: Option<String>,
}

#[derive(Deserialize)]
struct Feature {
    properties: Option<Properties>,
    geometry: Option<Geometry>,
}

#[derive(Deserialize)]
struct Properties {
    timestamp: Option<String>,
    heading: Option<String>,
}

#[derive(Deserialize)]
struct Geometry {
    coordinates: Option<Vec<f64>>,
}

#[derive(Deserialize)]
struct Valued {
    value: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doors {
    central_lock: Option<Valued>,
    front_left_door: Option<Valued>,
    front_right_door: Option<Valued>,
    rear_left_door: Option<Valued>,
    rear_right_door: Option<Valued>,
    tailgate: Option<Valued>,
    hood: Option<Valued>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invoked {
    invoke_status: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    description: Option<String>,
}

// === parsing ===

/// A timestamp; `None` when absent or unreadable (a location without one is still a
/// location; no time is invented).
fn time(t: Option<&str>) -> Option<OffsetDateTime> {
    t.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// Parses the vehicle list: VINs only (details come from one call per car).
pub fn parse_vehicle_list(body: &[u8]) -> Result<Vec<String>, OemError> {
    let list: Option<Vec<ListedVehicle>> = data(body, Delivered::No)?;
    Ok(list
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.vin.filter(|s| !s.is_empty()))
        .collect())
}

/// Parses a vehicle's details into the unified vehicle.
pub fn parse_details(vin: &str, body: &[u8]) -> Result<OemVehicle, OemError> {
    let d: Option<Details> = data(body, Delivered::No)?;
    Ok(OemVehicle {
        capabilities: None,
        oem_id: vin.to_string(),
        vin: Some(vin.to_string()),
        display_name: None,
        model: d
            .as_ref()
            .and_then(|d| d.descriptions.as_ref()?.model.clone()),
        year: d.and_then(|d| d.model_year),
    })
}

/// Parses the GeoJSON location: `coordinates` are `[longitude, latitude, …]`.
pub fn parse_location(body: &[u8]) -> Result<Location, OemError> {
    let f: Feature = data(body, Delivered::No)?.ok_or_else(|| no_fix("no location data"))?;
    let coords = f.geometry.and_then(|g| g.coordinates).unwrap_or_default();
    let (latitude, longitude) = fix(coords.get(1).copied(), coords.first().copied())?;
    let props = f.properties;
    Ok(Location {
        latitude,
        longitude,
        heading: props
            .as_ref()
            .and_then(|p| p.heading.as_deref()?.trim().parse().ok()),
        accuracy_m: None,
        recorded_at: time(props.as_ref().and_then(|p| p.timestamp.as_deref())),
    })
}

/// Parses `doors`: `centralLock` is the lock state.
pub fn parse_doors(body: &[u8]) -> Result<SecurityState, OemError> {
    let d: Doors = data(body, Delivered::No)?.ok_or_else(|| invalid("no doors data"))?;
    // No `centralLock`, or Volvo's "UNSPECIFIED" (or anything else): it does not know.
    let central = d.central_lock.as_ref();
    let locked = match central.and_then(|c| c.value.as_deref()) {
        Some("LOCKED") => Some(true),
        Some("UNLOCKED") => Some(false),
        _ => None,
    };
    let doors: Vec<Door> = [
        (DoorPosition::FrontLeft, &d.front_left_door),
        (DoorPosition::FrontRight, &d.front_right_door),
        (DoorPosition::RearLeft, &d.rear_left_door),
        (DoorPosition::RearRight, &d.rear_right_door),
        (DoorPosition::Trunk, &d.tailgate),
        (DoorPosition::Frunk, &d.hood),
    ]
    .into_iter()
    .filter_map(|(position, v)| {
        v.as_ref()?.value.as_deref().map(|v| Door {
            position,
            open: v == "OPEN" || v == "AJAR",
        })
    })
    .collect();
    Ok(SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: time(central.and_then(|c| c.timestamp.as_deref())),
    })
}

/// Parses a command answer's `invokeStatus`.
pub fn parse_invoked(body: &[u8]) -> Result<Sent, OemError> {
    let i: Invoked = data(body, Delivered::Unknown)?.ok_or(OemError::InvalidResponse {
        detail: "command answer has no data".into(),
        delivered: Delivered::Unknown,
    })?;
    let status = i.invoke_status.unwrap_or_default();
    let message = i.message.filter(|m| !m.is_empty());
    match status.as_str() {
        "COMPLETED" => Ok(Sent::Completed),
        "VEHICLE_IN_SLEEP" => Err(OemError::Asleep),
        "CONNECTION_FAILURE" => Err(OemError::Unreachable {
            detail: "the vehicle could not be reached".into(),
        }),
        "REJECTED"
        | "CAR_ERROR"
        | "NOT_ALLOWED_PRIVACY_ENABLED"
        | "NOT_ALLOWED_WRONG_USAGE_MODE" => Err(OemError::Refused {
            reason: message.unwrap_or(status),
        }),
        "RUNNING" | "WAITING" | "UNKNOWN" | "TIMEOUT" => Err(OemError::Timeout {
            delivered: Delivered::Unknown,
        }),
        other => Err(OemError::InvalidResponse {
            detail: format!("unknown invokeStatus {other:?}"),
            delivered: Delivered::Unknown,
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accessibility {
    availability_status: Option<Availability>,
    /// Also seen beside the status rather than inside it.
    unavailable_reason: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Availability {
    value: Option<String>,
    unavailable_reason: Option<serde_json::Value>,
}

/// A reason given as a string or as `{value}`.
fn reason_text(v: &serde_json::Value) -> Option<String> {
    v.as_str()
        .or_else(|| v.get("value").and_then(|v| v.as_str()))
        .map(str::to_string)
}

/// Parses `command-accessibility`: `Ok(())` when the car takes commands now (or Volvo
/// does not say it cannot); an undelivered error naming Volvo's reason when it says
/// `UNAVAILABLE` — `NO_INTERNET` (and an unspecified reason) is unreachable,
/// `POWER_SAVING_MODE` asleep, `CAR_IN_USE` and `OTA_INSTALLATION_IN_PROGRESS` a
/// refusal. The values follow ha-volvo-cars' availability sensor.
pub fn parse_accessibility(body: &[u8]) -> Result<(), OemError> {
    let Some(a) = data::<Accessibility>(body, Delivered::No)? else {
        return Ok(());
    };
    let Some(status) = a.availability_status else {
        return Ok(());
    };
    if status.value.as_deref() != Some("UNAVAILABLE") {
        return Ok(());
    }
    let reason = status
        .unavailable_reason
        .as_ref()
        .or(a.unavailable_reason.as_ref())
        .and_then(reason_text)
        .unwrap_or_else(|| "UNSPECIFIED".into());
    Err(match reason.as_str() {
        "POWER_SAVING_MODE" => OemError::Asleep,
        "CAR_IN_USE" | "OTA_INSTALLATION_IN_PROGRESS" => OemError::Refused {
            reason: format!("Volvo says the car cannot take commands now ({reason})"),
        },
        _ => OemError::Unreachable {
            detail: format!("Volvo says the car cannot take commands now ({reason})"),
        },
    })
}

fn blames_api_key(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase().replace(['-', '_'], " ");
    d.contains("api key") || d.contains("apikey")
}

/// Maps a non-success answer. A 401 that blames the API key is keyway's configuration
/// (`ClientRejected`), not an expired token nor the owner's authorization.
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    let body = serde_json::from_slice::<ErrorEnvelope>(resp.body())
        .ok()
        .and_then(|e| e.error);
    let detail = body
        .as_ref()
        .and_then(|b| b.description.clone().or(b.message.clone()))
        .unwrap_or_else(|| body_excerpt(resp));
    match resp.status().as_u16() {
        // Volvo names its header: "Invalid VCC-API-KEY" (also "api key", "apikey").
        401 if blames_api_key(&detail) => OemError::ClientRejected { detail },
        _ => status_error(resp, detail, command),
    }
}

#[async_trait]
impl Adapter for VolvoAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let list = self.get(cx, "/connected-vehicle/v2/vehicles").await?;
        let mut out = Vec::new();
        for vin in parse_vehicle_list(list.body())? {
            let details = self
                .get(cx, &format!("/connected-vehicle/v2/vehicles/{vin}"))
                .await?;
            out.push(parse_details(&vin, details.body())?);
        }
        Ok(out)
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        let resp = self
            .get(cx, &format!("/location/v1/vehicles/{}/location", v.oem_id))
            .await?;
        parse_location(resp.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let resp = self
            .get(
                cx,
                &format!("/connected-vehicle/v2/vehicles/{}/doors", v.oem_id),
            )
            .await?;
        parse_doors(resp.body())
    }

    async fn precheck(&self, cx: &Call, v: &VehicleRef) -> Result<(), OemError> {
        let path = format!(
            "/connected-vehicle/v2/vehicles/{}/command-accessibility",
            v.oem_id
        );
        parse_accessibility(self.get(cx, &path).await?.body())
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        // Volvo's own check first: a car it says it cannot reach is not sent a command
        // whose answer would only be a timeout (an outcome nobody knows).
        // Volvo's no, or what the command would meet too (a token to refresh, a limit, a
        // key keyway must fix), ends it here. Anything else of the check — no such
        // endpoint, no scope for it, an outage, an unreadable answer — is advice
        // missing: the command goes ahead.
        if let Err(
            e @ (OemError::Asleep
            | OemError::Unreachable { .. }
            | OemError::Refused { .. }
            | OemError::Unauthorized { .. }
            | OemError::RateLimited { .. }
            | OemError::ClientRejected { .. }
            | OemError::ReauthorizationRequired { .. }),
        ) = self.precheck(cx, v).await
        {
            return Err(e);
        }
        let path = format!(
            "/connected-vehicle/v2/vehicles/{}/commands/{}",
            v.oem_id,
            c.as_str()
        );
        let req = self
            .request(cx, Method::POST, &path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from_static(b"{}"));
        let resp = check(cx.send(req).await?, true, classify)?;
        parse_invoked(resp.body())
    }
}

#[cfg(test)]
mod tests;
