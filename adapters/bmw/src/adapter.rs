//! Translation between keyway's unified vocabulary and the MyBMW API.
//!
//! The endpoints current clients use (bimmer_connected): the vehicle list is
//! `POST /eadrax-vcs/v5/vehicle-list` (`{gcid, mappingInfos}`), the state
//! `GET /eadrax-vcs/v4/vehicles/state` (nested under `state`), commands
//! `POST /eadrax-vrccs/v4/presentation/remote-commands/{door-lock,door-unlock}`, their
//! status `POST /eadrax-vrccs/v3/…/eventStatus`. Vehicles are addressed by VIN in a
//! `bmw-vin` header. Remote commands are asynchronous: the command answers an
//! `eventId`, and `eventStatus?eventId=…` moves PENDING → DELIVERED → EXECUTED (or ERROR). BMW signals
//! limits in text: 429 "Rate limit is exceeded. Try again in 2 seconds." and a daily
//! quota as 403 "Out of call volume quota. Quota will be replenished in HH:MM:SS." —
//! both become `RateLimited` with the time they announce. BMW has no wake-up call: the
//! car's modem takes commands while it sleeps. Model and year come from
//! `GET /eadrax-vcs/v5/vehicle-data/profile`; a car whose state has no position is
//! located with the vehicle finder (`…/remote-commands/vehicle-finder`, then
//! `…/eventPosition?eventId=` once its event is `EXECUTED`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Response, header};
use keyway_adapter::error::parse_retry_after;
use keyway_adapter::http::{
    Idempotent, body_excerpt, check, fix, invalid, join, no_fix, parse_body,
};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Delivered, Door,
    DoorPosition, Limits, Location, OAuthProfile, OemError, OemVehicle, Pending, Progress,
    SecurityState, Sent, VehicleRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// BMW clients poll a command's status about every 3.5 s.
pub const POLL_INTERVAL: Duration = Duration::from_millis(3500);

/// What the BMW adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "bmw",
    make: "BMW",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Async,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        authorize_path: "/gcdm/oauth/authenticate",
        token_path: "/gcdm/oauth/token",
        scopes: &[
            "openid",
            "profile",
            "offline_access",
            "vehicle_data",
            "remote_services",
        ],
        client_auth: ClientAuth::Basic,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(28_799),
        token_exchange: false,
        linking: keyway_adapter::Linking::Code,
    },
    // BMW enforces a daily call quota without publishing its size: keyway learns it
    // from the 403 answer and backs off for the time BMW announces.
    limits: Limits {
        requests: &[],
        commands: &[],
    },
    api_key_header: None,
    owner_pin: false,
    // BMW: the car pushes its state after executing; the app shows it within about a minute.
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(60),
        command_window: std::time::Duration::from_secs(300),
        // Which clock writes the state's timestamps is not documented: the car's.
        stamps: keyway_adapter::Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// A car's model and model year, as its profile names them.
type Profile = (Option<String>, Option<u16>);

/// The MyBMW adapter for one base URL.
#[derive(Clone, Debug)]
pub struct BmwAdapter {
    base: String,
    /// Profiles read so far, by VIN: they do not change, and BMW counts every request
    /// against a daily quota.
    profiles: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Profile>>>,
}

impl BmwAdapter {
    /// An adapter calling MyBMW at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            profiles: Default::default(),
        }
    }

    fn known_profile(&self, vin: &str) -> Option<Profile> {
        let profiles = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
        profiles.get(vin).cloned()
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }
}

// === wire types ===

#[derive(Deserialize)]
struct ListedVehicle {
    vin: Option<String>,
    attributes: Option<Attributes>,
}

/// `POST /eadrax-vcs/v5/vehicle-list`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VehicleList {
    mapping_infos: Vec<MappingInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MappingInfo {
    vin: Option<String>,
    mapping_status: Option<String>,
}

/// The vehicle list in either shape BMW has served.
#[derive(Deserialize)]
#[serde(untagged)]
enum Listed {
    /// Today's `{gcid, mappingInfos[…]}`.
    Current(VehicleList),
    /// The retired v4 list: a bare array with attributes.
    Legacy(Vec<ListedVehicle>),
}

/// `vehicles/state`: today the state sits under `state`, beside `capabilities`; the
/// older answer carried it at the top level.
#[derive(Deserialize)]
struct StateDocument {
    state: Option<State>,
    #[serde(flatten)]
    top: State,
}

impl StateDocument {
    fn into_state(self) -> State {
        self.state.unwrap_or(self.top)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    last_updated_at: Option<String>,
    last_fetched: Option<String>,
    location: Option<StateLocation>,
    doors_state: Option<DoorsState>,
}

#[derive(Deserialize)]
struct StateLocation {
    coordinates: Option<Coordinates>,
    heading: Option<f64>,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DoorsState {
    combined_security_state: Option<String>,
    left_front: Option<String>,
    right_front: Option<String>,
    left_rear: Option<String>,
    right_rear: Option<String>,
    trunk: Option<String>,
    hood: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    event_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventStatus {
    event_status: String,
    error_details: Option<ErrorDetails>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

// === parsing ===

/// Parses the vehicle list: today's `{gcid, mappingInfos}` (cars whose mapping is
/// not `CONFIRMED` are left out) or the retired bare array. Anything else is an error,
/// never an empty fleet; entries without a VIN are skipped.
pub fn parse_vehicles(body: &[u8]) -> Result<Vec<OemVehicle>, OemError> {
    let list = match parse_body::<Listed>(body, Delivered::No)? {
        Listed::Current(l) => {
            return Ok(l
                .mapping_infos
                .into_iter()
                .filter(|m| m.mapping_status.as_deref().is_none_or(|s| s == "CONFIRMED"))
                .filter_map(|m| m.vin.filter(|v| !v.is_empty()))
                .map(|vin| OemVehicle {
                    capabilities: None,
                    oem_id: vin.clone(),
                    display_name: None,
                    model: None,
                    year: keyway_adapter::vin_model_year(&vin),
                    vin: Some(vin),
                })
                .collect());
        }
        Listed::Legacy(list) => list,
    };
    Ok(list
        .into_iter()
        .filter_map(|v| {
            let vin = v.vin.filter(|s| !s.is_empty())?;
            let attrs = v.attributes;
            Some(OemVehicle {
                capabilities: None,
                oem_id: vin.clone(),
                display_name: None,
                model: attrs.as_ref().and_then(|a| a.model.clone()),
                year: attrs.and_then(|a| a.year),
                vin: Some(vin),
            })
        })
        .collect())
}

/// BMW's time of the state: `lastUpdatedAt`, else `lastFetched` (when BMW's servers
/// last heard from the car). BMW writes `0001-01-01T00:00:00Z` for "none"; with
/// neither, the time is unknown (`None`), never invented.
fn recorded_at(s: &State) -> Option<OffsetDateTime> {
    let real = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .filter(|t| t.year() > 1970)
    };
    real(&s.last_updated_at).or_else(|| real(&s.last_fetched))
}

fn parse_state(body: &[u8]) -> Result<State, OemError> {
    Ok(parse_body::<StateDocument>(body, Delivered::No)?.into_state())
}

/// Parses `vehicles/state` for the position.
pub fn parse_location(body: &[u8]) -> Result<Location, OemError> {
    let s = parse_state(body)?;
    let loc = s
        .location
        .as_ref()
        .ok_or_else(|| no_fix("no location in state"))?;
    let c = loc.coordinates.as_ref();
    let (latitude, longitude) = fix(c.and_then(|c| c.latitude), c.and_then(|c| c.longitude))?;
    Ok(Location {
        latitude,
        longitude,
        heading: loc.heading,
        accuracy_m: None,
        recorded_at: recorded_at(&s),
    })
}

/// Parses `vehicles/state` for the lock state: SECURED and LOCKED are locked. A state
/// without `doorsState` (cars whose state BMW does not report, `vehicleStateSource`
/// `NOT_SUPPORTED`) is a lock state nobody knows, not a broken answer.
pub fn parse_security(body: &[u8]) -> Result<SecurityState, OemError> {
    let s = parse_state(body)?;
    let Some(d) = s.doors_state.as_ref() else {
        return Ok(SecurityState {
            locked: None,
            doors: None,
            recorded_at: recorded_at(&s),
        });
    };
    // Any other value (or none) is BMW saying it does not know.
    let locked = match d.combined_security_state.as_deref() {
        Some("SECURED" | "LOCKED") => Some(true),
        Some("UNLOCKED" | "PARTIALLY_LOCKED" | "SELECTIVE_LOCKED") => Some(false),
        _ => None,
    };
    let doors: Vec<Door> = [
        (DoorPosition::FrontLeft, &d.left_front),
        (DoorPosition::FrontRight, &d.right_front),
        (DoorPosition::RearLeft, &d.left_rear),
        (DoorPosition::RearRight, &d.right_rear),
        (DoorPosition::Trunk, &d.trunk),
        (DoorPosition::Frunk, &d.hood),
    ]
    .into_iter()
    .filter_map(|(position, v)| {
        v.as_deref().map(|v| Door {
            position,
            open: v == "OPEN",
        })
    })
    .collect();
    Ok(SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: recorded_at(&s),
    })
}

/// Parses a command answer: the event to follow.
pub fn parse_accepted(body: &[u8]) -> Result<Sent, OemError> {
    let a: Accepted = parse_body(body, Delivered::Unknown)?;
    Ok(Sent::Pending(Pending {
        handle: a.event_id,
        poll_after_ms: POLL_INTERVAL.as_millis() as u64,
    }))
}

/// Parses `eventStatus`.
pub fn parse_event_status(body: &[u8]) -> Result<Progress, OemError> {
    let e: EventStatus = parse_body(body, Delivered::No)?;
    Ok(match e.event_status.as_str() {
        "PENDING" | "DELIVERED" | "INITIATED" => Progress::Pending {
            poll_after: Some(POLL_INTERVAL),
        },
        "EXECUTED" => Progress::Succeeded,
        "ERROR" => {
            let reason = e
                .error_details
                .and_then(|d| d.description.or(d.title))
                .unwrap_or_else(|| "the vehicle reported an error".into());
            Progress::Failed(OemError::Refused { reason })
        }
        other => return Err(invalid(&format!("unknown eventStatus {other:?}"))),
    })
}

/// Seconds from BMW's "Try again in N seconds".
fn try_again_in(message: &str) -> Option<Duration> {
    keyway_adapter::error::wait_in_text(message)
}

/// The wait from BMW's "Quota will be replenished in HH:MM:SS".
fn replenished_in(message: &str) -> Option<Duration> {
    let rest = message.split("replenished in ").nth(1)?;
    let hms = rest.trim().trim_end_matches('.');
    let parts: Vec<u64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [h, m, s] => Some(Duration::from_secs(h * 3600 + m * 60 + s)),
        _ => None,
    }
}

/// Maps a non-success answer.
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    let message = serde_json::from_slice::<ErrorBody>(resp.body())
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| body_excerpt(resp));
    match resp.status().as_u16() {
        429 => OemError::RateLimited {
            retry_after: parse_retry_after(resp.headers().get(header::RETRY_AFTER))
                .or_else(|| try_again_in(&message)),
        },
        403 if message.contains("quota") => OemError::RateLimited {
            retry_after: replenished_in(&message),
        },
        s => OemError::from_status(s, message, command),
    }
}

impl BmwAdapter {
    async fn state(&self, cx: &Call, v: &VehicleRef) -> Result<Response<Bytes>, OemError> {
        let req = cx
            .request(Method::GET, &self.url("/eadrax-vcs/v4/vehicles/state"))
            .header("bmw-vin", v.oem_id.as_str())
            .body(Bytes::new());
        check(cx.send(req).await?, false, classify)
    }
}

#[async_trait]
impl Adapter for BmwAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let resp = check(
            // A read: safe to repeat, although BMW wants a POST.
            cx.post_json_idempotent(
                &self.url("/eadrax-vcs/v5/vehicle-list"),
                &serde_json::json!({}),
            )
            .await?,
            false,
            classify,
        )?;
        let mut vehicles = parse_vehicles(resp.body())?;
        // Today's list names only VINs: the profile has model and year (as the MyBMW
        // app reads it), once per car. A profile that fails leaves them unknown, not the
        // list failed.
        for v in vehicles.iter_mut().filter(|v| v.model.is_none()) {
            if let Some((model, year)) = self.known_profile(&v.oem_id) {
                v.model = model;
                v.year = year.or(v.year);
                continue;
            }
            let req = cx
                .request(
                    Method::GET,
                    &self.url("/eadrax-vcs/v5/vehicle-data/profile"),
                )
                .header("bmw-vin", v.oem_id.as_str())
                .body(Bytes::new());
            let profile = match cx.send(req).await {
                Ok(r) => check(r, false, classify).and_then(|r| parse_profile(r.body())),
                Err(e) => Err(e),
            };
            match profile {
                Ok((model, year)) => {
                    self.profiles
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(v.oem_id.clone(), (model.clone(), year));
                    v.model = model;
                    v.year = year.or(v.year);
                }
                // A limit or a dead token is the list's problem too.
                Err(e @ (OemError::RateLimited { .. } | OemError::Unauthorized { .. })) => {
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        Ok(vehicles)
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        parse_location(self.state(cx, v).await?.body())
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        parse_security(self.state(cx, v).await?.body())
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let service = match c {
            Command::Lock => "door-lock",
            Command::Unlock => "door-unlock",
        };
        let path = format!("/eadrax-vrccs/v4/presentation/remote-commands/{service}");
        let req = cx
            .request(Method::POST, &self.url(&path))
            .header("bmw-vin", v.oem_id.as_str())
            .body(Bytes::new());
        let resp = check(cx.send(req).await?, true, classify)?;
        parse_accepted(resp.body())
    }

    async fn poll(
        &self,
        cx: &Call,
        _v: &VehicleRef,
        _c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError> {
        let url = self.url(&format!(
            "/eadrax-vrccs/v3/presentation/remote-commands/eventStatus?eventId={}",
            p.handle
        ));
        let req = cx
            .request(Method::POST, &url)
            .extension(Idempotent)
            .body(Bytes::new());
        let resp = check(cx.send(req).await?, false, classify)?;
        parse_event_status(resp.body())
    }

    /// The vehicle finder, for a car whose state has no position: a remote service
    /// whose event, once `EXECUTED`, has the position the car sent.
    async fn request_location(&self, cx: &Call, v: &VehicleRef) -> Result<Pending, OemError> {
        let req = cx
            .request(
                Method::POST,
                &self.url("/eadrax-vrccs/v4/presentation/remote-commands/vehicle-finder"),
            )
            .header("bmw-vin", v.oem_id.as_str())
            .extension(Idempotent)
            .body(Bytes::new());
        let resp = check(cx.send(req).await?, false, classify)?;
        let a: Accepted = parse_body(resp.body(), Delivered::No)?;
        Ok(Pending {
            handle: a.event_id,
            poll_after_ms: POLL_INTERVAL.as_millis() as u64,
        })
    }

    async fn poll_location(
        &self,
        cx: &Call,
        v: &VehicleRef,
        p: &Pending,
    ) -> Result<Option<Location>, OemError> {
        match self.poll(cx, v, Command::Lock, p).await? {
            Progress::Pending { .. } => Ok(None),
            Progress::Failed(e) => Err(e),
            Progress::Succeeded => {
                let url = self.url(&format!(
                    "/eadrax-vrccs/v4/presentation/remote-commands/eventPosition?eventId={}",
                    p.handle
                ));
                let req = cx
                    .request(Method::POST, &url)
                    .header("bmw-vin", v.oem_id.as_str())
                    .extension(Idempotent)
                    .body(Bytes::new());
                let resp = check(cx.send(req).await?, false, classify)?;
                parse_event_position(resp.body()).map(Some)
            }
        }
    }
}

mod finder;
use finder::{Attributes, ErrorDetails};
pub use finder::{parse_event_position, parse_profile};
#[cfg(test)]
mod tests;
