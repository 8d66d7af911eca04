//! A stateful fake of the MySkoda app's backend, served by axum.
//!
//! Behaves as the public clients see it (`fixtures/skoda/SOURCES.md`): every call needs a
//! bearer token; cars are addressed by VIN; the garage lists them and each car's entry
//! names its capabilities — a car in `incapable` lists `ACCESS` with `LICENSE_EXPIRED`
//! and answers lock and unlock `403`; `vehicle-status` answers the backend's lagging view
//! of the lock and doors with `carCapturedTimestamp`; `maps/positions` the car's
//! position (`VEHICLE_IN_MOTION` instead while it drives); `spin/verify` checks the
//! owner's S-PIN (`INCORRECT_SPIN` with the tries left; three wrong in a row lock the
//! owner out, `lockedWaitingTimeInSeconds`); `POST …/vehicle-access/{vin}/lock|unlock
//! {"currentSpin"}` answers `202` with no body, and the car acts after `stage` (three
//! times as long while it sleeps: the backend wakes it) — or never, when it refuses:
//! nothing a client can ask says which. A rate limit is a `429` with `Retry-After`. The
//! login is the app's ([`login`]).
//!
//! Simplified: no MQTT broker (the app's outcome events), no other endpoints; the kit's
//! standard code-flow OAuth, which the app does not use, sits under `/__mock/oauth/`.
//! Controls: `GET /__mock/state`, `/__mock/requests`, `/__mock/faults`.

mod login;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::{Login, Parts};
use keyway_adapter::mock::timeline::{DeliveryFault, rfc3339};
use keyway_adapter::mock::{MockServer, OwnerPins, Rejection, bearer, lock};
use serde_json::{Value, json};

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// How long an owner locked out by wrong S-PINs waits, as the answer says (s).
pub const SPIN_LOCK_S: u64 = 3600;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct SkodaMockConfig {
    /// How long a lock or unlock takes to reach the car.
    pub stage: Duration,
    /// The OAuth side: who logs in by default, the access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
    /// VINs of cars whose `ACCESS` capability is not active (an expired licence).
    pub incapable: Vec<String>,
    /// Each login's S-PIN.
    pub spins: HashMap<String, String>,
}

impl Default for SkodaMockConfig {
    fn default() -> Self {
        Self {
            stage: Duration::from_secs(2),
            login: Login {
                client_id: crate::login::CLIENT_ID.into(),
                client_secret: None,
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(3600),
            },
            cars: Vec::new(),
            incapable: Vec::new(),
            spins: HashMap::new(),
        }
    }
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct SkodaMock {
    parts: Parts,
    stage: Duration,
    incapable: Arc<Vec<String>>,
    spins: Arc<Mutex<OwnerPins>>,
    logins: login::Logins,
}

impl SkodaMock {
    /// A mock with the given cars and settings.
    pub fn new(config: SkodaMockConfig) -> Self {
        let parts = Parts::new(
            &crate::adapter::INFO.oauth,
            config.cars,
            config.login,
            Rejection::invalid_grant(),
        );
        Self {
            logins: login::Logins::new(
                parts.oauth.default_account().to_string(),
                parts.tokens.clone(),
            ),
            parts,
            stage: config.stage,
            incapable: Arc::new(config.incapable),
            spins: Arc::new(Mutex::new(OwnerPins::new(config.spins))),
        }
    }

    /// How many wrong S-PINs `login` sent in a row (three lock it out).
    pub fn wrong_spins(&self, login: &str) -> u32 {
        lock(&self.spins).wrong(login)
    }

    /// The router: the backend, the app login, the refresh and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/api/v2/garage", get(garage))
            .route("/api/v2/garage/vehicles/{vin}", get(entry))
            .route("/api/v2/vehicle-status/{vin}", get(status))
            .route("/api/v1/maps/positions", get(positions))
            .route("/api/v1/spin/verify", post(verify))
            .route("/api/v1/vehicle-access/{vin}/{action}", post(access))
            .route("/__mock/state", get(inspect))
            .with_state(self.clone())
            .merge(self.logins.routes());
        self.parts
            .finish(api, "/__mock/oauth/authorize", "/__mock/oauth/token")
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    fn account(&self, headers: &HeaderMap) -> Result<String, StatusCode> {
        bearer(headers)
            .and_then(|t| self.tokens.check(t).ok())
            .ok_or(StatusCode::UNAUTHORIZED)
    }

    /// The owner's car `vin`, if the call carries a valid token.
    fn owned(&self, headers: &HeaderMap, vin: &str) -> Result<(String, MockCar), StatusCode> {
        let account = self.account(headers)?;
        let car = self
            .garage
            .with_owned(&account, vin, |c| c.clone())
            .ok_or(StatusCode::NOT_FOUND)?;
        Ok((account, car))
    }

    /// Checks an S-PIN `account` sent: `None` when right, else the refusal's
    /// `spinStatus`.
    fn check_spin(&self, account: &str, spin: Option<&str>) -> Option<Value> {
        let left = lock(&self.spins).check(account, spin).err()?;
        Some(json!({
            "remainingTries": left,
            "lockedWaitingTimeInSeconds": if left == 0 { SPIN_LOCK_S } else { 0 },
            "state": if left == 0 { "LOCKED" } else { "DEFINED" },
        }))
    }
}

fn current_spin(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("currentSpin")?
        .as_str()
        .map(str::to_string)
}

async fn garage(State(m): State<SkodaMock>, headers: HeaderMap) -> Response {
    let account = match m.account(&headers) {
        Ok(a) => a,
        Err(s) => return s.into_response(),
    };
    let vehicles: Vec<Value> = m
        .garage
        .owned_by(&account)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "vin": c.vin, "name": c.model, "state": "ACTIVATED",
                "title": format!("Škoda {}", c.model), "priority": i + 1,
                "devicePlatform": "WCAR", "systemModelId": "5AZJK2",
                "renders": [], "compositeRenders": [],
            })
        })
        .collect();
    Json(json!({ "vehicles": vehicles, "errors": [] })).into_response()
}

async fn entry(
    State(m): State<SkodaMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    let car = match m.owned(&headers, &vin) {
        Ok((_, car)) => car,
        Err(s) => return s.into_response(),
    };
    let access: Vec<&str> = match m.incapable.contains(&vin) {
        true => vec!["LICENSE_EXPIRED"],
        false => vec![],
    };
    Json(json!({
        "vin": car.vin, "name": car.model, "workshopModeEnabled": false,
        "licensePlate": "KW 1001", "state": "ACTIVATED", "devicePlatform": "WCAR",
        "softwareVersion": "5.4",
        "specification": {
            "title": format!("Škoda {}", car.model), "manufacturingDate": format!("{}-02-12", car.year),
            "model": car.model, "modelYear": car.year.to_string(), "body": "SUV",
            "trimLevel": "Loden", "systemCode": "UNKNOWN", "systemModelId": "5AZJK2",
            "maxChargingPowerInKW": 135, "battery": {"capacityInKWh": 77},
            "engine": {"type": "iV", "powerInKW": 210, "capacityInLiters": 0.0},
            "gearbox": {"type": "E1H"},
        },
        "renders": [], "compositeRenders": [],
        "capabilities": {"capabilities": [
            {"id": "ACCESS", "statuses": access},
            {"id": "PARKING_POSITION", "statuses": []},
            {"id": "STATE", "statuses": []},
        ]},
    }))
    .into_response()
}

async fn status(
    State(m): State<SkodaMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(s) = m.owned(&headers, &vin) {
        return s.into_response();
    }
    // The backend's view of the car: what it last uploaded.
    let Some((car, reported)) = m.garage.view(&vin) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let o = car.open;
    let openness = |open: bool| if open { "OPEN" } else { "CLOSED" };
    let side = |open: bool| if open { "3" } else { "1" };
    let any_door = o.front_left || o.front_right || o.rear_left || o.rear_right;
    let yes_no = if car.locked { "YES" } else { "NO" };
    let doors_locked = match (car.locked, any_door, o.trunk) {
        (true, _, _) => "YES",
        (false, true, _) => "OPENED",
        (false, false, true) => "TRUNK_OPENED",
        (false, false, false) => "NO",
    };
    let state = [o.front_left, o.front_right, o.rear_left, o.rear_right]
        .map(side)
        .join("-");
    let render = |dimension: &str, theme: &str| {
        format!(
            "https://mysmob.api.connect.skoda-auto.cz/api/v2/vehicle-status/render?carType=SUV&vehicleState={state}-0-0-{}-{}-0&lastModifiedAt={}&dimension={dimension}&theme={theme}",
            side(o.trunk),
            side(o.frunk),
            reported.unix_timestamp(),
        )
    };
    let mode = |theme: &str| {
        json!({
            "oneX": render("1x", theme), "oneAndHalfX": render("1-5x", theme),
            "twoX": render("2x", theme), "threeX": render("3x", theme),
        })
    };
    Json(json!({
        "overall": {
            "doorsLocked": doors_locked, "locked": yes_no,
            "doors": openness(any_door), "windows": "CLOSED", "lights": "OFF",
            "reliableLockStatus": if car.locked { "LOCKED" } else { "UNLOCKED" },
        },
        "detail": {"sunroof": "UNSUPPORTED", "trunk": openness(o.trunk), "bonnet": openness(o.frunk)},
        "renders": {"lightMode": mode("LIGHT"), "darkMode": mode("DARK")},
        "carCapturedTimestamp": rfc3339(reported),
    }))
    .into_response()
}

async fn positions(
    State(m): State<SkodaMock>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let vin = q.get("vin").cloned().unwrap_or_default();
    if let Err(s) = m.owned(&headers, &vin) {
        return s.into_response();
    }
    match m.garage.view(&vin) {
        Some((c, _)) => Json(json!({
            "positions": [{
                "type": "VEHICLE",
                "gpsCoordinates": {"latitude": c.latitude, "longitude": c.longitude},
                "address": {"city": "Mladá Boleslav", "street": "Václava Klementa",
                    "houseNumber": "869", "zipCode": "29301", "countryCode": "CZE"},
            }],
            "errors": [],
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn verify(
    State(m): State<SkodaMock>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let account = match m.account(&headers) {
        Ok(a) => a,
        Err(s) => return s.into_response(),
    };
    match m.check_spin(&account, current_spin(&body).as_deref()) {
        None => Json(json!({"verificationStatus": "CORRECT_SPIN"})).into_response(),
        Some(status) => Json(json!({
            "verificationStatus": "INCORRECT_SPIN",
            "spinStatus": status,
        }))
        .into_response(),
    }
}

async fn access(
    State(m): State<SkodaMock>,
    Path((vin, action)): Path<(String, String)>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (account, car) = match m.owned(&headers, &vin) {
        Ok(found) => found,
        Err(s) => return s.into_response(),
    };
    let lock_to = match action.as_str() {
        "lock" => true,
        "unlock" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if m.incapable.contains(&vin) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(spin) = current_spin(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if m.check_spin(&account, Some(&spin)).is_some() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let fault = fault.map(|f| f.0).unwrap_or_default();
    m.garage.deliver_waking(&car, lock_to, m.stage, fault);
    StatusCode::ACCEPTED.into_response()
}

async fn inspect(State(m): State<SkodaMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for SkodaMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for SkodaMock {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn owner_pin(&self) -> Option<String> {
        lock(&self.spins).of(self.parts.oauth.default_account())
    }

    fn needs_pin(&self, oem_id: &str) -> bool {
        !self.incapable.iter().any(|v| v == oem_id)
    }

    fn limit_next(&self) -> Option<Duration> {
        self.faults.limit_next("/api/", None, 30)
    }
}
