//! Translation between keyway's unified vocabulary and the Tesla Fleet API.
//!
//! Tesla commands are synchronous: the answer is the outcome. Cars on the Vehicle
//! Command Protocol (every Tesla since 2021) take lock and unlock only as signed
//! `signed_command` messages ([`crate::signing`]); pre-2021 Model S/X take REST
//! `command/door_lock`, whose refusals are `200 {"result": false, "reason": ...}`. A sleeping or offline car
//! answers 408 and must be woken with `wake_up`, which the core repeats until the car
//! reports `online`. Errors map into `OemError` here and nowhere else.

use async_trait::async_trait;
use keyway_adapter::http::{check, fix, invalid, join, parse_body};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, ClientAuth, Command, CommandMode, Connectivity,
    Delivered, Door, DoorPosition, Limits, Location, OAuthProfile, OemError, OemVehicle,
    SecurityState, Sent, VehicleRef, vin_model_year,
};
use serde::Deserialize;
use std::time::Duration;

use crate::errors::classify;
use crate::region::{acceptable_region, region_of};
use crate::signing::{Protocol, Signing, protocol_required};
use crate::vcp::AppKey;
use time::OffsetDateTime;

/// What the Tesla adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "tesla",
    make: "Tesla",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
        Capability::Wake,
    ],
    command_mode: CommandMode::Sync,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        authorize_path: "/oauth2/v3/authorize",
        token_path: "/oauth2/v3/token",
        scopes: &[
            "openid",
            "offline_access",
            "vehicle_device_data",
            "vehicle_location",
            "vehicle_cmds",
        ],
        client_auth: ClientAuth::Body,
        refresh: keyway_adapter::RefreshGrant::Form,
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(8 * 3600),
        token_exchange: false,
        linking: keyway_adapter::Linking::Code,
    },
    // Tesla publishes per-vehicle limits (e.g. 30 commands/min per vehicle); keyway's
    // quotas are per OEM, so none are set by default.
    limits: Limits {
        requests: &[],
        commands: &[],
    },
    api_key_header: None,
    owner_pin: false,
    // Tesla: vehicle_data is read from the online car; signed commands may arrive late (protocol.md).
    timing: keyway_adapter::OemTiming {
        state_lag: std::time::Duration::from_secs(5),
        command_window: std::time::Duration::from_secs(60),
        // Which clock writes the state's timestamps is not documented: the car's.
        stamps: keyway_adapter::Stamps::Car,
    },
    exchanges: &crate::exchanges::EXCHANGES,
};

/// Fleet API pricing: every request is billed by class — the published prices are
/// about 500 data requests, 1,000 commands and 50 wake-ups per dollar.
pub static BILLING: keyway_adapter::Billing = keyway_adapter::Billing {
    classify: billing_class,
    prices: &[("data", 0.002), ("command", 0.001), ("wake", 0.02)],
};

/// The billing class of a Fleet API request (OAuth is not billed).
fn billing_class(_method: &http::Method, path: &str) -> Option<&'static str> {
    if !path.starts_with("/api/1/") {
        None
    } else if path.ends_with("/wake_up") {
        Some("wake")
    } else if path.contains("/command/") || path.ends_with("/signed_command") {
        Some("command")
    } else {
        Some("data")
    }
}

/// The Tesla Fleet API adapter. A Fleet API account lives in one region (NA, EU, CN);
/// a call to another region answers 421 naming the right base URL, which the adapter
/// then keeps for that account (in memory: after a restart the first call learns it
/// again, one extra request) and repeats the call there once — Tesla did not act on it.
#[derive(Clone, Debug)]
pub struct TeslaAdapter {
    base: String,
    signing: std::sync::Arc<Signing>,
    /// Per account: the region a 421 named, and how many calls there failed in a row.
    regions: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, u32)>>>,
    /// Origins besides the configured one a 421 may name (tests' second region).
    allowed_regions: Vec<String>,
    /// When each car was last sent a wake-up (one per [`WAKE_WATCH`]).
    wakes:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>>,
}

/// Calls in a row that fail at an account's remembered region before it is forgotten.
pub const FORGET_REGION_AFTER: u32 = 3;

/// How long after a wake-up keyway only watches the car (a data read) instead of sending
/// another billed wake-up.
pub const WAKE_WATCH: Duration = Duration::from_secs(30);

impl TeslaAdapter {
    /// An adapter calling the Fleet API at `base` (e.g. the mock's URL), without an
    /// application key: it can command only cars that take REST commands.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            signing: std::sync::Arc::new(Signing::new(None, None)),
            regions: std::sync::Arc::default(),
            allowed_regions: Vec::new(),
            wakes: std::sync::Arc::default(),
        }
    }

    /// The same adapter following a 421 also to these origins (scheme, host and port
    /// exactly), besides Tesla's own HTTPS hosts and the configured one.
    pub fn with_regions(mut self, origins: Vec<String>) -> Self {
        self.allowed_regions = origins;
        self
    }

    /// The same adapter signing commands with `key`; `app_domain` (where Tesla fetches
    /// the public key) makes the pairing links.
    pub fn with_signing(mut self, key: AppKey, app_domain: Option<String>) -> Self {
        self.signing = std::sync::Arc::new(Signing::new(Some(key), app_domain));
        self
    }

    /// The base URL for the call's account: its region's, once learned.
    fn base_for(&self, cx: &Call) -> String {
        cx.account
            .as_ref()
            .and_then(|a| lock(&self.regions).get(a).map(|(url, _)| url.clone()))
            .unwrap_or_else(|| self.base.clone())
    }

    /// Runs `f` against the account's base URL; after a 421 naming another region (an
    /// acceptable origin: Tesla's own, the configured one or an allowed one), remembers
    /// it for the account and runs `f` there once more. A remembered region that fails
    /// [`FORGET_REGION_AFTER`] calls in a row (unreachable, 5xx) is forgotten: the next
    /// call starts at the configured base again.
    async fn regional<T, F, Fut>(&self, cx: &Call, f: F) -> Result<T, OemError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, OemError>>,
    {
        let answer = f(self.base_for(cx)).await;
        if let Some(a) = &cx.account {
            let mut regions = lock(&self.regions);
            if let Some((url, failures)) = regions.get_mut(a) {
                let failed = matches!(
                    &answer,
                    Err(OemError::Transport { .. } | OemError::Timeout { .. })
                ) || matches!(&answer, Err(OemError::Upstream { status, .. }) if *status >= 500);
                *failures = if failed { *failures + 1 } else { 0 };
                if *failures >= FORGET_REGION_AFTER {
                    tracing::warn!(oem = "tesla", region = %url,
                        "the account's region keeps failing; starting at the configured base again");
                    regions.remove(a);
                }
            }
        }
        match answer {
            Err(e) => match region_of(&e)
                .filter(|u| acceptable_region(&self.base, &self.allowed_regions, u))
            {
                Some(url) => {
                    tracing::info!(oem = "tesla", region = %url, "the account lives in another region");
                    if let Some(a) = &cx.account {
                        lock(&self.regions).insert(a.clone(), (url.clone(), 0));
                    }
                    f(url).await
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// A REST lock or unlock (pre-2021 Model S/X).
    async fn send_rest(
        &self,
        cx: &Call,
        base: &str,
        v: &VehicleRef,
        c: Command,
    ) -> Result<Sent, OemError> {
        let verb = match c {
            Command::Lock => "door_lock",
            Command::Unlock => "door_unlock",
        };
        let path = format!("/api/1/vehicles/{}/command/{verb}", v.oem_id);
        let resp = check(
            cx.post_json(&join(base, &path), &serde_json::json!({}))
                .await?,
            true,
            classify,
        )?;
        parse_command(resp.body())
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// === wire types (only the fields keyway reads; everything else is ignored) ===

#[derive(Deserialize)]
struct Envelope<T> {
    response: Option<T>,
}

#[derive(Deserialize)]
struct ListedVehicle {
    vin: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct VehicleData {
    drive_state: Option<DriveState>,
    vehicle_state: Option<VehicleState>,
}

#[derive(Deserialize)]
struct DriveState {
    latitude: Option<f64>,
    longitude: Option<f64>,
    heading: Option<f64>,
    gps_as_of: Option<i64>,
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct VehicleState {
    locked: Option<bool>,
    timestamp: Option<i64>,
    df: Option<i64>,
    pf: Option<i64>,
    dr: Option<i64>,
    pr: Option<i64>,
    ft: Option<i64>,
    rt: Option<i64>,
}

#[derive(Deserialize)]
struct CommandResult {
    result: bool,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct WakeState {
    state: Option<String>,
}

// === parsing (pure functions over bodies, tested against fixtures) ===

/// Model name from a Tesla VIN's 4th character.
fn model_from_vin(vin: &str) -> Option<String> {
    let name = match vin.chars().nth(3)? {
        'S' => "Model S",
        '3' => "Model 3",
        'X' => "Model X",
        'Y' => "Model Y",
        'C' => "Cybertruck",
        _ => return None,
    };
    Some(name.to_string())
}

/// Parses `/api/1/vehicles` (or `/api/1/products`): entries without a VIN are energy
/// products, not vehicles, and are skipped.
pub fn parse_vehicles(body: &[u8]) -> Result<Vec<OemVehicle>, OemError> {
    let env: Envelope<Vec<ListedVehicle>> = parse_body(body, Delivered::No)?;
    Ok(env
        .response
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            let vin = v.vin.filter(|s| !s.is_empty())?;
            Some(OemVehicle {
                capabilities: None,
                oem_id: vin.clone(),
                model: model_from_vin(&vin),
                year: vin_model_year(&vin),
                display_name: v.display_name,
                vin: Some(vin),
            })
        })
        .collect())
}

/// Parses `vehicle_data?endpoints=location_data`.
pub fn parse_location(body: &[u8]) -> Result<Location, OemError> {
    let env: Envelope<VehicleData> = parse_body(body, Delivered::No)?;
    let ds = env
        .response
        .and_then(|r| r.drive_state)
        .ok_or_else(|| invalid("no drive_state in vehicle_data"))?;
    let (latitude, longitude) = fix(ds.latitude, ds.longitude)?;
    let recorded_at = ds
        .gps_as_of
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .or_else(|| ds.timestamp.and_then(from_millis));
    Ok(Location {
        latitude,
        longitude,
        heading: ds.heading,
        accuracy_m: None,
        recorded_at,
    })
}

/// Parses `vehicle_data?endpoints=vehicle_state`. Tesla names doors by driver and
/// passenger side; keyway reports them for a left-hand-drive car.
pub fn parse_security(body: &[u8]) -> Result<SecurityState, OemError> {
    let env: Envelope<VehicleData> = parse_body(body, Delivered::No)?;
    let vs = env
        .response
        .and_then(|r| r.vehicle_state)
        .ok_or_else(|| invalid("no vehicle_state in vehicle_data"))?;
    // Absent: Tesla does not say (unknown, not an error); no time is invented either.
    let locked = vs.locked;
    let recorded_at = vs.timestamp.and_then(from_millis);
    let doors: Vec<Door> = [
        (DoorPosition::FrontLeft, vs.df),
        (DoorPosition::FrontRight, vs.pf),
        (DoorPosition::RearLeft, vs.dr),
        (DoorPosition::RearRight, vs.pr),
        (DoorPosition::Frunk, vs.ft),
        (DoorPosition::Trunk, vs.rt),
    ]
    .into_iter()
    .filter_map(|(position, v)| {
        v.map(|v| Door {
            position,
            open: v != 0,
        })
    })
    .collect();
    Ok(SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at,
    })
}

/// Parses the vehicle record (`GET /api/1/vehicles/{id}`, also the wake-up's answer):
/// its `state` — `online`, `asleep` (also `waking`), `offline`; any other or none is
/// asleep, so the core asks again rather than giving up.
pub fn parse_power(body: &[u8]) -> Result<Connectivity, OemError> {
    let env: Envelope<WakeState> = parse_body(body, Delivered::No)?;
    let state = env
        .response
        .ok_or_else(|| invalid("the vehicle answer has no response"))?
        .state;
    Ok(match state.as_deref() {
        Some("online") => Connectivity::Online,
        Some("offline") => Connectivity::Offline,
        _ => Connectivity::Asleep,
    })
}

/// Parses a command answer: `result: false` is a refusal with Tesla's reason.
pub fn parse_command(body: &[u8]) -> Result<Sent, OemError> {
    let env: Envelope<CommandResult> = parse_body(body, Delivered::Unknown)?;
    let r = env.response.ok_or(OemError::InvalidResponse {
        detail: "command answer has no response".into(),
        delivered: Delivered::Unknown,
    })?;
    if r.result {
        Ok(Sent::Completed)
    } else {
        Err(refusal(r.reason))
    }
}

fn refusal(reason: String) -> OemError {
    // Tesla reports a car that dropped off mid-command as a refusal reason.
    if reason.contains("vehicle unavailable") {
        OemError::Asleep
    } else {
        OemError::Refused { reason }
    }
}

fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

#[async_trait]
impl Adapter for TeslaAdapter {
    fn info(&self) -> &AdapterInfo {
        &INFO
    }

    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        let vehicles = self
            .regional(cx, |base| async move {
                let url = join(&base, "/api/1/vehicles");
                parse_vehicles(check(cx.get(&url).await?, false, classify)?.body())
            })
            .await?;
        // Which cars need signed commands, learned with the list (one data request);
        // a failure here only leaves it to the first command.
        let vins: Vec<&str> = vehicles.iter().map(|v| v.oem_id.as_str()).collect();
        if !vins.is_empty() {
            let _ = self
                .signing
                .fleet_status(cx, &self.base_for(cx), &vins)
                .await;
        }
        Ok(vehicles)
    }

    fn billing(&self) -> Option<&'static keyway_adapter::Billing> {
        Some(&BILLING)
    }

    fn command_path(&self, oem_id: &str) -> Option<keyway_adapter::CommandPath> {
        let s = self.signing.status(oem_id);
        Some(keyway_adapter::CommandPath {
            protocol: s.map(|s| match s.protocol {
                Protocol::Signed => "signed",
                Protocol::Rest => "rest",
            }),
            key_paired: s.and_then(|s| s.key_paired),
        })
    }

    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        let path = [
            "/api/1/vehicles/",
            v.oem_id.as_str(),
            "/vehicle_data?endpoints=location_data",
        ]
        .concat();
        self.regional(cx, |base| {
            let url = join(&base, &path);
            async move { parse_location(check(cx.get(&url).await?, false, classify)?.body()) }
        })
        .await
    }

    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let path = [
            "/api/1/vehicles/",
            v.oem_id.as_str(),
            "/vehicle_data?endpoints=vehicle_state",
        ]
        .concat();
        self.regional(cx, |base| {
            let url = join(&base, &path);
            async move { parse_security(check(cx.get(&url).await?, false, classify)?.body()) }
        })
        .await
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let vin = v.oem_id.as_str();
        let lock_to = c == Command::Lock;
        // A 421 means Tesla did not act: the command is sent once more, in the right region.
        self.regional(cx, |base| async move {
            match self.signing.path(cx, &base, vin).await? {
                Protocol::Signed => self.signing.send(cx, &base, vin, lock_to).await,
                Protocol::Rest => match self.send_rest(cx, &base, v, c).await {
                    // Tesla refused the unsigned command before it reached the car: the
                    // car is signed from now on, and the signed command is its first one.
                    Err(e) if protocol_required(&e) => {
                        self.signing.learned_signed(vin);
                        self.signing.send(cx, &base, vin, lock_to).await
                    }
                    r => r,
                },
            }
        })
        .await
    }

    async fn wake(&self, cx: &Call, v: &VehicleRef) -> Result<(), OemError> {
        // A wake-up is billed like ~20 commands: send one, then watch the car come online
        // with the (data-priced) vehicle read until that wake-up has had its time.
        let recent = lock(&self.wakes)
            .get(&v.oem_id)
            .is_some_and(|t| t.elapsed() < WAKE_WATCH);
        let path = if recent {
            format!("/api/1/vehicles/{}", v.oem_id)
        } else {
            lock(&self.wakes).insert(v.oem_id.clone(), tokio::time::Instant::now());
            format!("/api/1/vehicles/{}/wake_up", v.oem_id)
        };
        let resp = self
            .regional(cx, |base| {
                let url = join(&base, &path);
                async move {
                    let resp = if recent {
                        cx.get(&url).await?
                    } else {
                        cx.post_json_idempotent(&url, &serde_json::json!({}))
                            .await?
                    };
                    check(resp, false, classify)
                }
            })
            .await?;
        match parse_power(resp.body())? {
            Connectivity::Online => {
                lock(&self.wakes).remove(&v.oem_id);
                Ok(())
            }
            Connectivity::Offline => Err(OemError::Unreachable {
                detail: "the vehicle is offline".into(),
            }),
            Connectivity::Asleep => Err(OemError::Asleep),
        }
    }

    async fn connectivity(&self, cx: &Call, v: &VehicleRef) -> Result<Connectivity, OemError> {
        // The vehicle record: answered without waking the car, billed as a data request.
        let path = format!("/api/1/vehicles/{}", v.oem_id);
        self.regional(cx, |base| {
            let url = join(&base, &path);
            async move { parse_power(check(cx.get(&url).await?, false, classify)?.body()) }
        })
        .await
    }
}

#[cfg(test)]
mod tests;
