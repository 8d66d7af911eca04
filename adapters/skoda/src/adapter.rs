//! Translation between keyway's unified vocabulary and the backend of the MySkoda app
//! (`mysmob.api.connect.skoda-auto.cz`, paths under `/api`), as the public clients use it
//! (`skodaconnect/myskoda`, CarConnectivity's Škoda connector; `fixtures/skoda/SOURCES.md`).
//!
//! Cars are addressed by VIN. The garage lists them; each car's own entry names its
//! capabilities, and a car without a usable `ACCESS` capability (absent, or with a status
//! such as `LICENSE_EXPIRED`) cannot lock or unlock: keyway says so without sending. The
//! lock state comes from `vehicle-status` (`overall.reliableLockStatus`, else `locked`,
//! else `doorsLocked`), stamped with `carCapturedTimestamp` — the car's clock
//! ([`Stamps::Car`]). The position is the vehicle's entry in `maps/positions` (an
//! `errors` entry such as `VEHICLE_IN_MOTION` instead: no fix).
//!
//! Lock and unlock carry the owner's S-PIN (`{"currentSpin"}`). The adapter first checks
//! it at `spin/verify`, whose answer names a wrong one and the tries left; only a
//! verified S-PIN goes with a command. The backend takes the command with `202` and tells
//! its outcome only to the app, over MQTT (`operation-request/vehicle-access/lock-vehicle`
//! events): there is nothing to ask. The adapter answers [`Sent::Accepted`], and keyway
//! decides from the car's lock state read after the send — `succeeded` when it shows the
//! command's effect, never `failed`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use keyway_adapter::http::{
    body_excerpt, check, fix, invalid, join, no_fix, parse_body, status_error,
};
use keyway_adapter::{
    Adapter, AdapterInfo, AppLogin, Call, Capability, ClientAuth, Command, CommandMode, Delivered,
    Door, DoorPosition, Http, Limits, LinkSecrets, Linking, Location, OAuthProfile, OemError,
    OemTiming, OemVehicle, PerCar, RefreshGrant, Secret, SecurityState, Sent, Stamps, Tokens,
    VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the Škoda adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "skoda",
    make: "Škoda",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Observed,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        // The identity server's authorize (the app's client; see `crate::login`).
        authorize_path: "/oidc/v1/authorize",
        // The backend's refresh: `{"token"}` as JSON.
        token_path: "/api/v1/authentication/refresh-token?tokenType=CONNECT",
        scopes: crate::login::SCOPES,
        client_auth: ClientAuth::Body,
        refresh: RefreshGrant::Json { field: "token" },
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(3600),
        token_exchange: false,
        linking: Linking::App {
            redirect_uri: crate::login::REDIRECT_URI,
        },
    },
    // Škoda publishes no limits; the garage can report a `429` from the service
    // platform behind it. Conservative defaults an operator may change.
    limits: Limits {
        requests: &[(60, 60)],
        commands: &[(10, 60)],
    },
    api_key_header: None,
    // Lock and unlock take the owner's S-PIN.
    owner_pin: true,
    timing: OemTiming {
        // The status is the car's last upload; the car uploads on a change of its lock.
        state_lag: Duration::from_secs(30),
        // The clients wait up to ten minutes for a command's outcome event.
        command_window: Duration::from_secs(600),
        stamps: Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// The query every garage request carries (the app asks for all connectivity
/// generations; without it older cars are left out).
const GENERATIONS: &str = "connectivityGenerations=MOD1&connectivityGenerations=MOD2&connectivityGenerations=MOD3&connectivityGenerations=MOD4";

/// The Škoda adapter for one API base URL.
#[derive(Clone, Debug)]
pub struct SkodaAdapter {
    base: String,
    /// What each car's garage entry said: lock and unlock usable or not.
    access: PerCar<bool>,
}

impl SkodaAdapter {
    /// An adapter calling the backend at `base` (`https://mysmob.api.connect.skoda-auto.cz`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            access: PerCar::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }

    async fn get(&self, cx: &Call, path: &str) -> Result<Response<Bytes>, OemError> {
        check(cx.get(&self.url(path)).await?, false, classify)
    }

    /// One car's garage entry: what it is and whether it can lock and unlock (kept).
    async fn entry(&self, cx: &Call, vin: &str) -> Result<Entry, OemError> {
        let path = format!("/api/v2/garage/vehicles/{vin}?{GENERATIONS}");
        let entry = parse_entry(self.get(cx, &path).await?.body())?;
        // What could not be told is asked again next time.
        if let Some(can) = entry.access {
            self.access.set(vin, can);
        }
        Ok(entry)
    }
}

// === wire types ===

#[derive(Deserialize)]
struct Garage {
    #[serde(default)]
    vehicles: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    vin: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Info {
    vin: String,
    name: Option<String>,
    specification: Option<Specification>,
    capabilities: Option<Capabilities>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Specification {
    model: Option<String>,
    model_year: Option<String>,
}

#[derive(Deserialize)]
struct Capabilities {
    #[serde(default)]
    capabilities: Vec<Listing>,
    /// The service platform behind the garage failed (`UNAVAILABLE_SERVICE_PLATFORM_CAPABILITIES`,
    /// a `429` there): the list is partial.
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Listing {
    id: String,
    #[serde(default)]
    statuses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    overall: Option<Overall>,
    detail: Option<Detail>,
    renders: Option<Renders>,
    car_captured_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Overall {
    reliable_lock_status: Option<String>,
    locked: Option<String>,
    doors_locked: Option<String>,
}

#[derive(Deserialize)]
struct Detail {
    trunk: Option<String>,
    bonnet: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Renders {
    light_mode: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Positions {
    #[serde(default)]
    positions: Vec<Position>,
    #[serde(default)]
    errors: Vec<PositionError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Position {
    #[serde(rename = "type")]
    kind: Option<String>,
    gps_coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct PositionError {
    #[serde(rename = "type")]
    kind: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verified {
    verification_status: Option<String>,
    spin_status: Option<SpinStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpinStatus {
    remaining_tries: Option<u32>,
    locked_waiting_time_in_seconds: Option<u64>,
    state: Option<String>,
}

// === parsing ===

/// One car's garage entry, as keyway needs it.
#[derive(Debug)]
pub struct Entry {
    /// The car.
    pub vehicle: OemVehicle,
    /// Whether it can lock and unlock now: `ACCESS` listed with no status; `None` when
    /// the entry cannot tell (no capability list, or a partial one the garage marks
    /// with an error).
    pub access: Option<bool>,
}

/// Parses the garage: the VINs and names of the owner's cars (the per-car entry says
/// the rest).
pub fn parse_garage(body: &[u8]) -> Result<Vec<(String, Option<String>)>, OemError> {
    let g: Garage = parse_body(body, Delivered::No)?;
    Ok(g.vehicles.into_iter().map(|v| (v.vin, v.name)).collect())
}

/// Parses one car's garage entry: model, model year, name, and whether its `ACCESS`
/// capability is usable (listed with no status; a status — `LICENSE_EXPIRED`,
/// `DEACTIVATED`, `INSUFFICIENT_SPIN`, … — means not now; missing from a list the
/// garage marks partial, or no list: cannot tell).
pub fn parse_entry(body: &[u8]) -> Result<Entry, OemError> {
    let info: Info = parse_body(body, Delivered::No)?;
    let access = info.capabilities.and_then(|c| {
        match c.capabilities.iter().find(|k| k.id == "ACCESS") {
            Some(k) => Some(k.statuses.is_empty()),
            // Not listed: not there, unless the list is partial.
            None => c.errors.is_empty().then_some(false),
        }
    });
    let spec = info.specification;
    let year = spec
        .as_ref()
        .and_then(|s| s.model_year.as_deref()?.parse().ok())
        .or_else(|| keyway_adapter::vin_model_year(&info.vin));
    Ok(Entry {
        vehicle: OemVehicle {
            capabilities: (access == Some(false))
                .then(|| vec![Capability::Locate, Capability::Security]),
            oem_id: info.vin.clone(),
            vin: Some(info.vin),
            display_name: info.name.filter(|n| !n.is_empty()),
            model: spec.and_then(|s| s.model),
            year,
        },
        access,
    })
}

fn car_time(t: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t?, &Rfc3339).ok()
}

/// Parses `vehicle-status`: the lock from `overall.reliableLockStatus` (`LOCKED`,
/// `UNLOCKED`), else `overall.locked`, else `overall.doorsLocked` (`YES`; `NO`,
/// `OPENED`, `TRUNK_OPENED`: unlocked; `UNKNOWN`: unknown); the side doors from the
/// render's `vehicleState` (as myskoda reads it: `1` closed, `2` a window open, `3`
/// the door open, `4` both), trunk and bonnet from `detail`; the time from
/// `carCapturedTimestamp`.
pub fn parse_status(body: &[u8]) -> Result<SecurityState, OemError> {
    let s: Status = parse_body(body, Delivered::No)?;
    let overall = s
        .overall
        .ok_or_else(|| invalid("no overall in the vehicle status"))?;
    let word = |w: Option<&str>| match w {
        Some("LOCKED" | "YES") => Some(true),
        Some("UNLOCKED" | "NO" | "OPENED" | "TRUNK_OPENED") => Some(false),
        _ => None,
    };
    let locked = match overall.reliable_lock_status.as_deref() {
        Some(r) if r != "UNKNOWN" => word(Some(r)),
        _ => word(overall.locked.as_deref()).or_else(|| word(overall.doors_locked.as_deref())),
    };
    let mut doors = side_doors(s.renders.as_ref());
    let detail = |w: Option<&String>| match w.map(String::as_str) {
        Some("OPEN") => Some(true),
        Some("CLOSED") => Some(false),
        _ => None,
    };
    if let Some(d) = &s.detail {
        for (position, open) in [
            (DoorPosition::Trunk, detail(d.trunk.as_ref())),
            (DoorPosition::Frunk, detail(d.bonnet.as_ref())),
        ] {
            if let Some(open) = open {
                doors.push(Door { position, open });
            }
        }
    }
    Ok(SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: car_time(s.car_captured_timestamp.as_deref()),
    })
}

/// The four side doors from the render URL's `vehicleState` (its first four numbers).
fn side_doors(renders: Option<&Renders>) -> Vec<Door> {
    let url = renders
        .and_then(|r| r.light_mode.as_ref())
        .and_then(|m| m.get("oneX"));
    let Some(query) = url.and_then(|u| u.split_once('?')).map(|(_, q)| q) else {
        return Vec::new();
    };
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let Some(state) = keyway_adapter::login::param(&params, "vehicleState") else {
        return Vec::new();
    };
    [
        DoorPosition::FrontLeft,
        DoorPosition::FrontRight,
        DoorPosition::RearLeft,
        DoorPosition::RearRight,
    ]
    .into_iter()
    .zip(state.split('-'))
    .filter_map(|(position, v)| match v {
        "1" | "2" => Some(Door {
            position,
            open: false,
        }),
        "3" | "4" => Some(Door {
            position,
            open: true,
        }),
        _ => None,
    })
    .collect()
}

/// Parses `maps/positions`: the `VEHICLE` entry's coordinates; none, with an error such
/// as `VEHICLE_IN_MOTION` or `VEHICLE_POSITION_UNAVAILABLE`, is no fix. No time is given.
pub fn parse_positions(body: &[u8]) -> Result<Location, OemError> {
    let p: Positions = parse_body(body, Delivered::No)?;
    let Some(gps) = p
        .positions
        .into_iter()
        .find(|p| p.kind.as_deref() == Some("VEHICLE"))
        .and_then(|p| p.gps_coordinates)
    else {
        let why = p
            .errors
            .first()
            .map(|e| {
                let kind = e.kind.as_deref().unwrap_or("an error");
                match &e.description {
                    Some(d) => format!("{kind}: {d}"),
                    None => kind.to_string(),
                }
            })
            .unwrap_or_else(|| "no vehicle position".into());
        return Err(no_fix(&format!("the car reports no position ({why})")));
    };
    let (latitude, longitude) = fix(gps.latitude, gps.longitude)?;
    Ok(Location {
        latitude,
        longitude,
        heading: None,
        accuracy_m: None,
        recorded_at: None,
    })
}

/// Reads `spin/verify`'s answer: `CORRECT_SPIN` passes; `INCORRECT_SPIN` is
/// `PinRejected` with the tries left and any lock-out wait (never the S-PIN itself).
pub fn parse_verified(body: &[u8]) -> Result<(), OemError> {
    let v: Verified = parse_body(body, Delivered::No)?;
    let status = v.spin_status.as_ref();
    let waiting = status
        .and_then(|s| s.locked_waiting_time_in_seconds)
        .filter(|s| *s > 0);
    let locked = status.and_then(|s| s.state.as_deref()) == Some("LOCKED");
    match v.verification_status.as_deref() {
        Some("CORRECT_SPIN") if waiting.is_none() && !locked => Ok(()),
        Some("CORRECT_SPIN" | "INCORRECT_SPIN") => {
            let mut detail = "the S-PIN was refused".to_string();
            if let Some(n) = status.and_then(|s| s.remaining_tries) {
                detail.push_str(&format!("; {n} tries left"));
            }
            if let Some(s) = waiting {
                detail.push_str(&format!("; locked for {s} s"));
            } else if locked {
                detail.push_str("; the S-PIN is locked");
            }
            Err(OemError::PinRejected { detail })
        }
        other => Err(invalid(&format!(
            "the S-PIN check answered {}",
            other.unwrap_or("no verificationStatus")
        ))),
    }
}

/// Maps a non-success answer by its status (no client reads a Škoda error body):
/// `401` the access token, `403` a refusal of access, `404` no such car, `429` the limit
/// (`Retry-After`); `4xx` on a command: the backend did not take it (certain); `5xx`:
/// for a command the outcome is open.
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    status_error(resp, body_excerpt(resp), command)
}

#[async_trait]
impl Adapter for SkodaAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let path = format!("/api/v2/garage?{GENERATIONS}");
        let listed = parse_garage(self.get(cx, &path).await?.body())?;
        let mut out = Vec::with_capacity(listed.len());
        for (vin, name) in listed {
            out.push(match self.entry(cx, &vin).await {
                Ok(e) => e.vehicle,
                // Its entry could not be read now: listed plainly, its access asked
                // again before a command.
                Err(OemError::NotFound) | Err(OemError::Upstream { .. }) => OemVehicle {
                    year: keyway_adapter::vin_model_year(&vin),
                    oem_id: vin.clone(),
                    vin: Some(vin),
                    display_name: name.filter(|n| !n.is_empty()),
                    model: None,
                    capabilities: None,
                },
                Err(e) => return Err(e),
            });
        }
        Ok(out)
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        let path = format!("/api/v1/maps/positions?vin={}", v.oem_id);
        parse_positions(self.get(cx, &path).await?.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let path = format!("/api/v2/vehicle-status/{}", v.oem_id);
        parse_status(self.get(cx, &path).await?.body())
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let can = match self.access.get(&v.oem_id) {
            Some(can) => can,
            // An entry that cannot tell does not stop the command: the backend refuses
            // one the car cannot take (a certain 4xx).
            None => self.entry(cx, &v.oem_id).await?.access.unwrap_or(true),
        };
        if !can {
            return Err(OemError::NotCapable {
                what: "lock and unlock (the car's ACCESS capability is not active)".into(),
            });
        }
        let Some(spin) = &cx.pin else {
            return Err(OemError::PinRequired {
                detail: "Škoda locks and unlocks with the owner's S-PIN".into(),
            });
        };
        let body = serde_json::json!({ "currentSpin": spin.expose() });
        // The S-PIN first: a wrong one is named (with the tries left) and nothing is sent.
        let verify = async {
            let verified = cx
                .post_json(&self.url("/api/v1/spin/verify"), &body)
                .await?;
            parse_verified(check(verified, false, classify)?.body())
        };
        verify.await.map_err(OemError::before_the_command)?;
        let action = match c {
            Command::Lock => "lock",
            Command::Unlock => "unlock",
        };
        let url = self.url(&format!("/api/v1/vehicle-access/{}/{action}", v.oem_id));
        check(cx.post_json(&url, &body).await?, true, classify)?;
        Ok(Sent::Accepted)
    }

    /// The identity server's login page for the app's client, with keyway's `state`
    /// and PKCE challenge.
    async fn app_login(
        &self,
        _http: &Http,
        login_base: &str,
        link: &LinkSecrets,
    ) -> Result<AppLogin, OemError> {
        crate::login::start(login_base, link)
    }

    async fn finish_app_login(
        &self,
        http: &Http,
        auth_base: &str,
        redirect: &[(String, String)],
        verifier: &Secret,
    ) -> Result<Tokens, OemError> {
        crate::login::finish(http, auth_base, redirect, verifier).await
    }
}

#[cfg(test)]
mod tests;
