//! Translation between keyway's unified vocabulary and Smartcar's vehicle API v2.0
//! (per-owner tokens: Smartcar Connect's authorization code, rotating refresh tokens),
//! or API v3 when the adapter is built with the application's credentials
//! ([`SmartcarAdapter::v3`], the calls in [`crate::v3`]); the operator picks per
//! configuration (`api_version`).
//!
//! Smartcar is an aggregator: one adapter reaches many makes, and its vehicle ids are
//! its own UUIDs (the VIN is a separate read, kept for routing). Lock and unlock are one
//! `POST /security {"action": "LOCK"|"UNLOCK"}` that answers when Smartcar has the
//! make's result: synchronous. Errors are `{type, code, statusCode, …}`; the type and
//! code decide (`VEHICLE_STATE`/`ASLEEP` asleep, `COMPATIBILITY` not capable for this
//! car, `UPSTREAM` the make's cloud: a command's outcome is then open). Reads carry
//! `sc-data-age`, the time the make last recorded the data: that is `recorded_at`, and
//! because it is the car's (or its make's) clock it never proves a state newer than a
//! send ([`Stamps::Car`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Response};
use keyway_adapter::http::{check, fix, join, parse_body};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Delivered, Door,
    DoorPosition, Limits, Linking, Location, OAuthProfile, OemError, OemTiming, OemVehicle,
    Pending, Progress, SecurityState, Sent, Stamps, VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use crate::answers::classify;
use crate::answers::make_name;
use crate::v3::{self, AppCredentials, AppToken};

/// The vehicles asked for per page (Smartcar's maximum).
pub const PAGE: usize = 50;

/// What the Smartcar adapter declares.
pub static INFO: AdapterInfo = DECLARED;

/// [`INFO`], as a constant API v3's declaration starts from.
const DECLARED: AdapterInfo = AdapterInfo {
    oem: "smartcar",
    make: "Smartcar",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Sync,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        // Connect (connect.smartcar.com) and the token endpoint (auth.smartcar.com).
        authorize_path: "/oauth/authorize",
        token_path: "/oauth/token",
        scopes: &[
            "read_vehicle_info",
            "read_vin",
            "read_location",
            "read_security",
            "control_security",
        ],
        client_auth: ClientAuth::Basic,
        refresh: keyway_adapter::RefreshGrant::Form,
        // "Refresh tokens expire … after 1 minute when used to fetch a new token pair."
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(7200),
        token_exchange: false,
        linking: keyway_adapter::Linking::Code,
    },
    // Smartcar throttles per vehicle (429 `RATE_LIMIT`/`VEHICLE` with `retry-after`) and
    // by plan (430 `BILLING`); it publishes no request rate. These are conservative
    // defaults an operator sets to the plan.
    limits: Limits {
        requests: &[(120, 60)],
        commands: &[(10, 60)],
    },
    api_key_header: None,
    owner_pin: false,
    timing: OemTiming {
        // The makes behind Smartcar lag as the slowest direct OEMs do.
        state_lag: Duration::from_secs(60),
        command_window: Duration::from_secs(120),
        stamps: Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// What the Smartcar adapter declares when it calls API v3: v2.0's, but linked by the
/// owner's id (which does not expire: a century stands for never), tokens at `iam`'s
/// path, and commands that may run on (`202`).
pub static INFO_V3: AdapterInfo = AdapterInfo {
    command_mode: CommandMode::Async,
    oauth: OAuthProfile {
        token_path: "/oauth2/token",
        client_auth: ClientAuth::Body,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: false,
        default_access_ttl: Duration::from_secs(100 * 365 * 24 * 3600),
        linking: Linking::Owner { param: "user_id" },
        ..DECLARED.oauth
    },
    exchanges: &crate::exchanges::EXCHANGES_V3,
    ..DECLARED
};

/// The Smartcar adapter for one API base URL (v2.0: `https://api.smartcar.com`; v3:
/// `https://vehicle.api.smartcar.com`).
#[derive(Clone, Debug)]
pub struct SmartcarAdapter {
    base: String,
    /// The application's token, when calling API v3.
    v3: Option<Arc<AppToken>>,
    /// The application's credentials for the compatibility API (v2.0), when known.
    compatibility: Option<crate::compatibility::Compatibility>,
}

impl SmartcarAdapter {
    /// An adapter calling Smartcar's API v2.0 at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            v3: None,
            compatibility: None,
        }
    }

    /// This adapter, asking Smartcar's compatibility API what each car it lists can do
    /// (as the application `credentials` name).
    pub fn with_compatibility(self, credentials: crate::compatibility::Compatibility) -> Self {
        Self {
            compatibility: Some(credentials),
            ..self
        }
    }

    /// An adapter calling Smartcar's API v3 at `base`, as the application `credentials`
    /// name.
    pub fn v3(base: impl Into<String>, credentials: AppCredentials) -> Self {
        Self {
            base: base.into(),
            v3: Some(Arc::new(AppToken::new(credentials))),
            compatibility: None,
        }
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }

    async fn get(&self, cx: &Call, path: &str) -> Result<Response<Bytes>, OemError> {
        match &self.v3 {
            Some(app) => v3::send(app, cx, Method::GET, &self.url(path), false).await,
            None => check(cx.get(&self.url(path)).await?, false, classify),
        }
    }

    /// The owner's cars through API v3: its connections, then each car's attributes.
    async fn vehicles_v3(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let mut ids: Vec<String> = self
            .connections(cx)
            .await?
            .into_iter()
            .map(|c| c.vehicle_id)
            .collect();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let resp = self.get(cx, &format!("/v3/vehicles/{id}")).await?;
            out.push(v3::parse_vehicle(&id, resp.body())?);
        }
        Ok(out)
    }

    /// The owner's connections, every page up to [`v3::MAX_PAGES`] (only the owner's:
    /// a connection naming another owner is left out, whatever the filter did).
    async fn connections(&self, cx: &Call) -> Result<Vec<v3::Connection>, OemError> {
        let owner = cx.token.expose();
        let mut own = Vec::new();
        for page in 1..=v3::MAX_PAGES {
            let query = serde_urlencoded::to_string([
                ("user_id", owner),
                ("page", &page.to_string()),
                ("pageSize", &v3::PAGE.to_string()),
            ])
            .unwrap_or_default();
            let resp = self.get(cx, &format!("/v3/connections?{query}")).await?;
            let (all, more) = v3::parse_connections(resp.body())?;
            own.extend(
                all.into_iter()
                    .filter(|c| c.user_id.as_deref().is_none_or(|u| u == owner)),
            );
            if !more {
                break;
            }
        }
        Ok(own)
    }
}

// === wire types ===

#[derive(Deserialize)]
struct VehicleList {
    vehicles: Vec<String>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    count: Option<usize>,
}

#[derive(Deserialize)]
struct Attributes {
    make: Option<String>,
    model: Option<String>,
    /// A number in v2.0, a string in v3's vehicle attributes.
    year: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Vin {
    vin: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockStatus {
    is_locked: Option<bool>,
    #[serde(default)]
    doors: Vec<Opening>,
    #[serde(default)]
    storage: Vec<Opening>,
}

#[derive(Deserialize)]
struct Opening {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Position {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Action {
    status: Option<String>,
    message: Option<String>,
}

// === parsing ===

/// `sc-data-age`: when the make last recorded the data; `None` when absent or unreadable
/// (never invented).
pub fn data_age(resp: &Response<Bytes>) -> Option<OffsetDateTime> {
    let v = resp.headers().get("sc-data-age")?.to_str().ok()?;
    OffsetDateTime::parse(v, &Rfc3339).ok()
}

/// A page of the vehicle list: Smartcar's ids, and whether more pages follow.
pub fn parse_vehicle_page(body: &[u8], offset: usize) -> Result<(Vec<String>, bool), OemError> {
    // v3 lists JSON:API resources, `{"data": [{"id", "type": "vehicle", …}]}`, unpaged
    // here; its connections list names each car in the connection (a capture of it
    // replays as the vehicle list).
    if let Ok((connections, _)) = v3::parse_connections(body) {
        let mut ids: Vec<String> = connections.into_iter().map(|c| c.vehicle_id).collect();
        ids.dedup();
        return Ok((ids, false));
    }
    let page: VehicleList = parse_body(body, Delivered::No)?;
    let got = page.vehicles.len();
    let total = page.paging.and_then(|p| p.count).unwrap_or(offset + got);
    Ok((page.vehicles, got > 0 && offset + got < total))
}

/// Parses a vehicle's attributes and VIN into the unified vehicle. Smartcar reaches many
/// makes: the model names the make too (`Jaguar I-PACE`).
pub fn parse_vehicle(id: &str, attributes: &[u8], vin: &[u8]) -> Result<OemVehicle, OemError> {
    // v3 wraps the attributes: `{"data": {"id", "type": "vehicle", "attributes"}}`.
    let wrapped: Option<Attributes> = serde_json::from_slice::<serde_json::Value>(attributes)
        .ok()
        .and_then(|v| v.pointer("/data/attributes").cloned())
        .and_then(|a| serde_json::from_value(a).ok());
    let a: Attributes = match wrapped {
        Some(a) => a,
        None => parse_body(attributes, Delivered::No)?,
    };
    let v: Vin = parse_body(vin, Delivered::No)?;
    let model = match (a.make.as_deref(), a.model) {
        (Some(make), Some(model)) => Some(format!("{} {model}", make_name(make))),
        (Some(make), None) => Some(make_name(make)),
        (None, model) => model,
    };
    Ok(OemVehicle {
        capabilities: None,
        oem_id: id.to_string(),
        vin: v.vin.filter(|s| !s.is_empty()),
        display_name: None,
        model,
        year: a.year.and_then(|y| match y {
            serde_json::Value::String(s) => s.parse().ok(),
            n => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        }),
    })
}

/// Parses the lock status: `isLocked`, and each door and storage (`front` is the
/// frunk, `rear` the trunk). An opening whose status is `UNKNOWN` is left out.
pub fn parse_security(
    body: &[u8],
    recorded_at: Option<OffsetDateTime>,
) -> Result<SecurityState, OemError> {
    if let Some(v3) = crate::signals::security(body) {
        return v3.map(|s| SecurityState {
            recorded_at: s.recorded_at.or(recorded_at),
            ..s
        });
    }
    let s: LockStatus = parse_body(body, Delivered::No)?;
    let position = |kind: &str| match kind {
        "frontLeft" => Some(DoorPosition::FrontLeft),
        "frontRight" => Some(DoorPosition::FrontRight),
        "backLeft" => Some(DoorPosition::RearLeft),
        "backRight" => Some(DoorPosition::RearRight),
        "rear" => Some(DoorPosition::Trunk),
        "front" => Some(DoorPosition::Frunk),
        _ => None,
    };
    let doors: Vec<Door> = s
        .doors
        .iter()
        .chain(&s.storage)
        .filter_map(|o| {
            let position = position(o.kind.as_deref()?)?;
            match o.status.as_deref()? {
                "UNKNOWN" => None,
                status => Some(Door {
                    position,
                    open: status == "OPEN",
                }),
            }
        })
        .collect();
    Ok(SecurityState {
        locked: s.is_locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at,
    })
}

/// Parses the location (`latitude`, `longitude`; Smartcar gives no heading).
pub fn parse_location(
    body: &[u8],
    recorded_at: Option<OffsetDateTime>,
) -> Result<Location, OemError> {
    if let Some(v3) = crate::signals::location(body) {
        return v3.map(|l| Location {
            recorded_at: l.recorded_at.or(recorded_at),
            ..l
        });
    }
    let p: Position = parse_body(body, Delivered::No)?;
    let (latitude, longitude) = fix(p.latitude, p.longitude)?;
    Ok(Location {
        latitude,
        longitude,
        heading: None,
        accuracy_m: None,
        recorded_at,
    })
}

/// Parses a command's answer: `status: "success"` is the make's confirmation; anything
/// else in a 200 leaves the outcome open.
pub fn parse_action(body: &[u8]) -> Result<Sent, OemError> {
    // v3's answer is a `command-execution` (a capture of either version replays).
    if serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|d| d.pointer("/data/type")?.as_str().map(str::to_string))
        .is_some_and(|t| t == "command-execution")
    {
        return v3::parse_execution(200, body);
    }
    let a: Action = parse_body(body, Delivered::Unknown)?;
    match a.status.as_deref() {
        Some("success") => Ok(Sent::Completed),
        other => Err(OemError::InvalidResponse {
            detail: format!(
                "command answer status {other:?}: {}",
                a.message.unwrap_or_default()
            ),
            delivered: Delivered::Unknown,
        }),
    }
}

#[async_trait]
impl Adapter for SmartcarAdapter {
    fn info(&self) -> &AdapterInfo {
        match self.v3 {
            Some(_) => &INFO_V3,
            None => &INFO,
        }
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        if self.v3.is_some() {
            return self.vehicles_v3(cx).await;
        }
        let mut ids = Vec::new();
        loop {
            let path = format!("/v2.0/vehicles?limit={PAGE}&offset={}", ids.len());
            let (page, more) = parse_vehicle_page(self.get(cx, &path).await?.body(), ids.len())?;
            ids.extend(page);
            if !more {
                break;
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let attributes = self.get(cx, &format!("/v2.0/vehicles/{id}")).await?;
            let vin = self.get(cx, &format!("/v2.0/vehicles/{id}/vin")).await?;
            let mut vehicle = parse_vehicle(&id, attributes.body(), vin.body())?;
            if let (Some(c), Some(vin)) = (&self.compatibility, &vehicle.vin) {
                vehicle.capabilities = c.ask(cx, &self.base, vin, INFO.capabilities).await;
            }
            out.push(vehicle);
        }
        Ok(out)
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        let path = match self.v3 {
            Some(_) => format!("/v3/vehicles/{}/signals/location-preciselocation", v.oem_id),
            None => format!("/v2.0/vehicles/{}/location", v.oem_id),
        };
        let resp = self.get(cx, &path).await?;
        parse_location(resp.body(), data_age(&resp))
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let path = match self.v3 {
            Some(_) => format!("/v3/vehicles/{}/signals/closure-islocked", v.oem_id),
            None => format!("/v2.0/vehicles/{}/security", v.oem_id),
        };
        let resp = self.get(cx, &path).await?;
        parse_security(resp.body(), data_age(&resp))
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        if let Some(app) = &self.v3 {
            let path = format!(
                "/v3/vehicles/{}/commands/security/{}",
                v.oem_id,
                v3::action(c)
            );
            let resp = v3::send(app, cx, Method::POST, &self.url(&path), true).await?;
            return v3::parse_execution(resp.status().as_u16(), resp.body());
        }
        let action = match c {
            Command::Lock => "LOCK",
            Command::Unlock => "UNLOCK",
        };
        let url = self.url(&format!("/v2.0/vehicles/{}/security", v.oem_id));
        let resp = cx
            .post_json(&url, &serde_json::json!({ "action": action }))
            .await?;
        parse_action(check(resp, true, classify)?.body())
    }

    /// v3: Smartcar documents no status read for a running (`202`) command, only that
    /// its effect shows in the signal; keyway's window and last look decide.
    async fn poll(
        &self,
        _cx: &Call,
        _v: &VehicleRef,
        _c: Command,
        _p: &Pending,
    ) -> Result<Progress, OemError> {
        Ok(Progress::Pending { poll_after: None })
    }

    async fn owner_connected(&self, cx: &Call, since: OffsetDateTime) -> Result<(), OemError> {
        if self.v3.is_none() {
            return Err(OemError::NotCapable {
                what: "link by naming the owner (API v2.0 exchanges a code)".into(),
            });
        }
        let fresh = |c: &v3::Connection| {
            c.connected_at
                .is_some_and(|at| at + v3::CONNECT_SKEW >= since)
        };
        if self.connections(cx).await?.iter().any(fresh) {
            return Ok(());
        }
        Err(OemError::Forbidden {
            detail: "Smartcar has no connection of this owner made during the link".into(),
        })
    }

    fn push(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        secret: &keyway_adapter::Secret,
    ) -> Result<keyway_adapter::Pushed, keyway_adapter::PushError> {
        crate::push::read(headers, body, secret)
    }
}

#[cfg(test)]
mod tests;
