//! Translation between keyway's unified vocabulary and the Volkswagen Group's EU API for
//! Volkswagen cars (the "Volkswagen" / WeConnect app's backend, CARIAD's BFF at
//! `emea.bff.cariad.digital`), as the public clients use it (CarConnectivity's
//! Volkswagen connector, WeConnect-python; `fixtures/vw/SOURCES.md`).
//!
//! Cars are addressed by VIN. The vehicle list names each car's capabilities: a car
//! without a usable `access` capability (absent, or with a status such as a missing
//! licence) cannot lock or unlock, and keyway says so without sending. Lock state comes
//! from `selectivestatus?jobs=access` (`accessStatus.value.doorLockStatus`, the doors'
//! status lists), stamped with `carCapturedTimestamp` — the car's clock, which the
//! clients see running ahead ([`Stamps::Car`]). The position is the parking position
//! (`204` while the car drives: no fix). Lock and unlock are `POST …/access/lock|unlock`
//! with the owner's S-PIN (`{"spin"}`), answered `{"data": {"requestID"}}`; the
//! outcome appears later in the access job's `requests` (`in_progress`, `successful`,
//! `fail…`). A refused S-PIN is an error naming the tries left ([`classify`]).
//! Owners log in through the app's own login ([`crate::login`]).
//!
//! The same BFF serves Audi (myAudi, `keyway-audi`): a [`Brand`] names what differs —
//! the adapter's declaration (its login) and where the owner's cars are listed.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use keyway_adapter::http::{body_excerpt, check, fix, join, no_fix, parse_body, status_error};
use keyway_adapter::{
    Adapter, AdapterInfo, AppLogin, Call, Capability, ClientAuth, Command, CommandMode, Delivered,
    Door, DoorPosition, Http, Limits, LinkSecrets, Linking, Location, OAuthProfile, OemError,
    OemTiming, OemVehicle, Pending, PerCar, Progress, Secret, SecurityState, Sent, Stamps, Tokens,
    VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How often to read the access job for a command's outcome (WeConnect-python's request
/// tracker reads every 5 s).
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What the Volkswagen adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "vw",
    make: "Volkswagen",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Async,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        // The app login's start at the BFF, which redirects to identity.vwgroup.io.
        authorize_path: "/user-login/v1/authorize",
        // The refresh grant (form: grant_type, refresh_token, client_id).
        token_path: "/login/v1/idk/token",
        scopes: &["openid", "profile", "badge", "cars", "dealers", "vin"],
        client_auth: ClientAuth::Body,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(3600),
        token_exchange: false,
        linking: Linking::App {
            redirect_uri: crate::login::REDIRECT_URI,
        },
    },
    // Volkswagen publishes no limits; the clients meet `429` when they poll more often
    // than every few minutes per car. Conservative defaults an operator may change.
    limits: Limits {
        requests: &[(60, 60)],
        commands: &[(10, 60)],
    },
    api_key_header: None,
    // Lock and unlock take the owner's S-PIN.
    owner_pin: true,
    timing: OemTiming {
        // The backend's status is the car's last upload.
        state_lag: Duration::from_secs(120),
        // The clients track a request for at most 120 s.
        command_window: Duration::from_secs(180),
        stamps: Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// Volkswagen: the BFF's own vehicle list.
pub static VOLKSWAGEN: Brand = Brand {
    info: &INFO,
    list: List {
        path: "/vehicle/v1/vehicles",
        query: None,
        parse: parse_vehicles,
    },
};

/// The Volkswagen Group adapter for one API base URL and brand.
#[derive(Clone, Debug)]
pub struct VwAdapter {
    base: String,
    vehicles_base: String,
    brand: &'static Brand,
    /// What the vehicle list said of each car: lock and unlock usable or not.
    access: PerCar<bool>,
}

impl VwAdapter {
    /// A Volkswagen adapter calling the BFF at `base` (`https://emea.bff.cariad.digital`).
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into();
        Self::brand(&VOLKSWAGEN, base.clone(), base)
    }

    /// An adapter for `brand`, calling the BFF at `base` and listing cars at
    /// `vehicles_base`.
    pub fn brand(
        brand: &'static Brand,
        base: impl Into<String>,
        vehicles_base: impl Into<String>,
    ) -> Self {
        Self {
            base: base.into(),
            vehicles_base: vehicles_base.into(),
            brand,
            access: PerCar::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }

    async fn get(&self, cx: &Call, path: &str) -> Result<Response<Bytes>, OemError> {
        check(cx.get(&self.url(path)).await?, false, classify)
    }
}

// === wire types ===

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    vin: String,
    model: Option<String>,
    nickname: Option<String>,
    #[serde(default)]
    capabilities: Vec<ListedCapability>,
}

#[derive(Deserialize)]
struct ListedCapability {
    id: String,
    #[serde(default)]
    status: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Selective {
    access: Option<Job>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    access_status: Option<Status>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct Status {
    value: Option<AccessValue>,
    error: Option<ApiError>,
    #[serde(default)]
    requests: Vec<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessValue {
    door_lock_status: Option<String>,
    overall_status: Option<String>,
    car_captured_timestamp: Option<String>,
    #[serde(default)]
    doors: Vec<Opening>,
}

#[derive(Deserialize)]
struct Opening {
    name: Option<String>,
    #[serde(default)]
    status: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    request_id: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parking {
    lat: Option<f64>,
    lon: Option<f64>,
    car_captured_timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(rename = "requestID")]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ApiError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiError {
    message: Option<String>,
    info: Option<String>,
    remaining_tries: Option<u32>,
    spin_locked_waiting_time: Option<u64>,
    spin_state: Option<String>,
}

impl ApiError {
    fn detail(&self) -> String {
        match (&self.message, &self.info) {
            (Some(m), Some(i)) => format!("{m}: {i}"),
            (Some(m), None) => m.clone(),
            (None, Some(i)) => i.clone(),
            (None, None) => "no detail".into(),
        }
    }

    /// Whether it is about the S-PIN: the fields WeConnect-python's error element reads,
    /// or words naming it (a refused S-PIN must never be sent again, whatever the shape).
    fn is_spin(&self) -> bool {
        let names = |t: &Option<String>| {
            t.as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().replace('-', "").contains("spin"))
        };
        self.remaining_tries.is_some()
            || self.spin_locked_waiting_time.is_some()
            || self.spin_state.is_some()
            || names(&self.message)
            || names(&self.info)
    }
}

// === parsing ===

fn car_time(t: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t?, &Rfc3339).ok()
}

/// Parses the vehicle list: each car, and whether it can lock and unlock (its `access`
/// capability listed with no status; a status — deactivated, missing licence, … — means
/// it cannot now).
pub fn parse_vehicles(body: &[u8]) -> Result<Vec<(OemVehicle, bool)>, OemError> {
    let list: Data<Vec<Listed>> = parse_body(body, Delivered::No)?;
    Ok(list
        .data
        .into_iter()
        .map(|c| {
            let access = c
                .capabilities
                .iter()
                .any(|k| k.id == "access" && k.status.is_empty());
            let year = keyway_adapter::vin_model_year(&c.vin);
            let vehicle = OemVehicle {
                // Without an active access service it reads but cannot lock or unlock.
                capabilities: (!access).then(|| vec![Capability::Locate, Capability::Security]),
                oem_id: c.vin.clone(),
                vin: Some(c.vin),
                display_name: c.nickname.filter(|n| !n.is_empty()),
                model: c.model,
                year,
            };
            (vehicle, access)
        })
        .collect())
}

fn access_status(body: &[u8]) -> Result<Status, OemError> {
    let s: Selective = parse_body(body, Delivered::No)?;
    let job = s
        .access
        .ok_or_else(|| keyway_adapter::http::invalid("no access job in the status"))?;
    if let Some(e) = job.error {
        return Err(job_error(&e));
    }
    let status = job
        .access_status
        .ok_or_else(|| keyway_adapter::http::invalid("no accessStatus in the access job"))?;
    match &status.error {
        Some(e) => Err(job_error(e)),
        None => Ok(status),
    }
}

/// An error inside a job of a `207` status: the backend could not read it from the car.
fn job_error(e: &ApiError) -> OemError {
    OemError::Upstream {
        status: 207,
        detail: format!("the access status is unavailable: {}", e.detail()),
        delivered: Delivered::No,
    }
}

/// Parses the access job of `selectivestatus`: the lock from `doorLockStatus`
/// (`locked`, `unlocked`; `invalid` or absent: unknown), the doors from their status
/// lists (`open`/`closed`; `unsupported` ones left out), the time from
/// `carCapturedTimestamp`.
pub fn parse_security(body: &[u8]) -> Result<SecurityState, OemError> {
    let status = access_status(body)?;
    let value = status
        .value
        .ok_or_else(|| keyway_adapter::http::invalid("no value in the access status"))?;
    let locked = match value.door_lock_status.as_deref() {
        Some("locked") => Some(true),
        Some("unlocked") => Some(false),
        Some(_) => None,
        // Without `doorLockStatus`: the doors that report a lock say it (any unlocked
        // one: unlocked), else `overallStatus: safe` (locked and closed). `unsafe` may be
        // an open window on a locked car: unknown.
        None => doors_locked(&value.doors)
            .or_else(|| (value.overall_status.as_deref() == Some("safe")).then_some(true)),
    };
    let position = |name: &str| match name {
        "frontLeft" => Some(DoorPosition::FrontLeft),
        "frontRight" => Some(DoorPosition::FrontRight),
        "rearLeft" => Some(DoorPosition::RearLeft),
        "rearRight" => Some(DoorPosition::RearRight),
        "trunk" => Some(DoorPosition::Trunk),
        "bonnet" => Some(DoorPosition::Frunk),
        _ => None,
    };
    let doors: Vec<Door> = value
        .doors
        .iter()
        .filter_map(|d| {
            let position = position(d.name.as_deref()?)?;
            let has = |s: &str| d.status.iter().any(|x| x == s);
            match (has("open"), has("closed")) {
                (true, _) => Some(Door {
                    position,
                    open: true,
                }),
                (false, true) => Some(Door {
                    position,
                    open: false,
                }),
                _ => None,
            }
        })
        .collect();
    Ok(SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: car_time(value.car_captured_timestamp.as_deref()),
    })
}

/// The lock the doors report: unlocked if any says `unlocked`, locked if every door that
/// reports a lock says `locked`, unknown if none reports one.
fn doors_locked(doors: &[Opening]) -> Option<bool> {
    let says = |word: &str| doors.iter().any(|d| d.status.iter().any(|s| s == word));
    match (says("unlocked"), says("locked")) {
        (true, _) => Some(false),
        (false, true) => Some(true),
        (false, false) => None,
    }
}

/// Parses the parking position (`{"data": {"lat", "lon", "carCapturedTimestamp"}}`);
/// `204` (a car on the move has none) is no fix.
pub fn parse_parking(status: u16, body: &[u8]) -> Result<Location, OemError> {
    if status == 204 || body.is_empty() {
        return Err(no_fix(
            "the car reports no parking position (it may be driving)",
        ));
    }
    let p: Data<Option<Parking>> = parse_body(body, Delivered::No)?;
    let p = p
        .data
        .ok_or_else(|| no_fix("the car reports no parking position"))?;
    let (latitude, longitude) = fix(p.lat, p.lon)?;
    Ok(Location {
        latitude,
        longitude,
        heading: None,
        accuracy_m: None,
        recorded_at: car_time(p.car_captured_timestamp.as_deref()),
    })
}

/// Parses a lock or unlock's acceptance: its `requestID`, to find in the access job.
pub fn parse_accepted(body: &[u8]) -> Result<Sent, OemError> {
    let a: Data<Accepted> = parse_body(body, Delivered::Unknown)?;
    let handle = a
        .data
        .request_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| OemError::InvalidResponse {
            detail: "the command was accepted without a requestID".into(),
            delivered: Delivered::Unknown,
        })?;
    Ok(Sent::Pending(Pending {
        handle,
        poll_after_ms: POLL_INTERVAL.as_millis() as u64,
    }))
}

/// A command's progress from the access job's `requests`: `successful` executed; a
/// failure the car or backend reported for certain (`fail`, `fail_vehicle_is_offline`,
/// `fail_ignition_on`, `fail_battery_low`, …) failed; `in_progress`, `queued`,
/// `delayed` — and `error`, `timeout`, `polling_timeout`, after which the car may still
/// have acted — pending, so keyway's window and its look at the car decide.
pub fn parse_progress(body: &[u8], request_id: &str) -> Result<Progress, OemError> {
    let pending = Progress::Pending {
        poll_after: Some(POLL_INTERVAL),
    };
    let status = access_status(body)?;
    let Some(r) = status
        .requests
        .iter()
        .find(|r| r.request_id.as_deref() == Some(request_id))
    else {
        return Ok(pending);
    };
    Ok(match r.status.as_deref().unwrap_or_default() {
        "successful" => Progress::Succeeded,
        "fail_vehicle_is_offline" => Progress::Failed(OemError::Unreachable {
            detail: "the car was offline; the command was not carried out".into(),
        }),
        s if s == "fail" || s.starts_with("fail_") => Progress::Failed(OemError::Refused {
            reason: format!("the car did not carry out the command ({s})"),
        }),
        _ => pending,
    })
}

/// Maps a non-success answer (`{"error": {"message", "info", …}}`):
///
/// - `401` the access token; `403` with the S-PIN fields (`remainingTries`,
///   `spinLockedWaitingTime`, `spinState`) a refused S-PIN — never tried again, the tries
///   left and any lock-out wait in the detail; other `403`s a refusal of access.
/// - `404` no such car; `429` the limit (`Retry-After`); `400` (`Bad Request`) a command
///   the backend did not take: certain; `5xx` the backend's failure: for a command the
///   outcome is open.
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    let error = serde_json::from_slice::<ErrorBody>(resp.body())
        .ok()
        .and_then(|b| b.error);
    let _status = resp.status().as_u16();
    if let Some(e) = error.as_ref().filter(|e| e.is_spin()) {
        let mut detail = format!("the S-PIN was refused ({})", e.detail());
        if let Some(n) = e.remaining_tries {
            detail.push_str(&format!("; {n} tries left"));
        }
        if let Some(s) = e.spin_locked_waiting_time {
            detail.push_str(&format!("; locked for {s} s"));
        }
        return OemError::PinRejected { detail };
    }
    let detail = error
        .as_ref()
        .map(ApiError::detail)
        .unwrap_or_else(|| body_excerpt(resp));
    status_error(resp, detail, command)
}

#[async_trait]
impl Adapter for VwAdapter {
    fn info(&self) -> &AdapterInfo {
        self.brand.info
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let list = &self.brand.list;
        let url = join(&self.vehicles_base, list.path);
        let resp = match list.query {
            // A GraphQL read: safe to repeat.
            Some(query) => {
                cx.post_json_idempotent(&url, &serde_json::json!({ "query": query }))
                    .await?
            }
            None => cx.get(&url).await?,
        };
        let listed = (list.parse)(check(resp, false, classify)?.body())?;
        for (v, can) in &listed {
            self.access.set(&v.oem_id, *can);
        }
        Ok(listed.into_iter().map(|(v, _)| v).collect())
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        let path = format!("/vehicle/v1/vehicles/{}/parkingposition", v.oem_id);
        let resp = self.get(cx, &path).await?;
        parse_parking(resp.status().as_u16(), resp.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let path = format!(
            "/vehicle/v1/vehicles/{}/selectivestatus?jobs=access",
            v.oem_id
        );
        parse_security(self.get(cx, &path).await?.body())
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        // A car the vehicle list shows without a usable `access` capability is told no
        // here; one not listed since start is looked up first.
        let can = match self.access.get(&v.oem_id) {
            Some(can) => can,
            None => {
                self.vehicles(cx).await?;
                self.access.get(&v.oem_id).unwrap_or(true)
            }
        };
        if !can {
            return Err(OemError::NotCapable {
                what: "lock and unlock (the car's access capability is not active)".into(),
            });
        }
        let Some(spin) = &cx.pin else {
            return Err(OemError::PinRequired {
                detail: format!(
                    "{} locks and unlocks with the owner's S-PIN",
                    self.brand.info.make
                ),
            });
        };
        let action = match c {
            Command::Lock => "lock",
            Command::Unlock => "unlock",
        };
        let url = self.url(&format!(
            "/vehicle/v1/vehicles/{}/access/{action}",
            v.oem_id
        ));
        let resp = cx
            .post_json(&url, &serde_json::json!({ "spin": spin.expose() }))
            .await?;
        parse_accepted(check(resp, true, classify)?.body())
    }

    async fn poll(
        &self,
        cx: &Call,
        v: &VehicleRef,
        _c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError> {
        let path = format!(
            "/vehicle/v1/vehicles/{}/selectivestatus?jobs=access",
            v.oem_id
        );
        parse_progress(self.get(cx, &path).await?.body(), &p.handle)
    }

    /// The BFF starts the login and picks its `state`; no PKCE (keyway's `_link` unused).
    async fn app_login(
        &self,
        http: &Http,
        login_base: &str,
        _link: &LinkSecrets,
    ) -> Result<AppLogin, OemError> {
        crate::login::start(http, login_base).await
    }

    async fn finish_app_login(
        &self,
        http: &Http,
        auth_base: &str,
        redirect: &[(String, String)],
        _verifier: &Secret,
    ) -> Result<Tokens, OemError> {
        crate::login::finish(http, auth_base, redirect).await
    }
}

mod brand;
#[cfg(test)]
mod tests;

pub use brand::{Brand, List, ListedCars};
