//! A stateful fake of the Volkswagen app's EU backend (CARIAD's BFF), served by axum.
//!
//! Behaves as the public clients see it (`fixtures/vw/SOURCES.md`): every call needs a
//! bearer token; cars are addressed by VIN; the vehicle list names each car's
//! capabilities, and a car in `incapable` lists `access` with a status (`2003`, a missing
//! licence) and answers lock and unlock `403`; `selectivestatus?jobs=access` answers the
//! backend's lagging view of the doors with `carCapturedTimestamp`, and each lock or
//! unlock's request (`in_progress`, then `successful`; `fail` when the car refuses;
//! `fail_vehicle_is_offline` when it slept through its queue); `parkingposition` the
//! car's position; `POST …/access/lock|unlock {"spin"}` checks the owner's S-PIN (a
//! wrong one answers `403` with `remainingTries`; three in a row lock the owner out,
//! `spinLockedWaitingTime`), then answers `{"data": {"requestID"}}` and the car acts
//! after `stage` (three times as long while it sleeps: the backend wakes it). A rate
//! limit is a `429` with `Retry-After`. The login is the app's ([`login`]); tokens
//! refresh at `/login/v1/idk/token` (the kit's token endpoint, rotating).
//!
//! Simplified: only the `access` job is served (others answer nothing); it lists a
//! car's last [`REQUESTS_KEPT`] requests; the kit's standard code-flow authorize, which the app does
//! not use, sits at `/__mock/oauth/authorize`. Controls: `GET /__mock/state`,
//! `/__mock/requests`, `/__mock/faults`.

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
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault, rfc3339};
use keyway_adapter::mock::{Applied, MockServer, OwnerPins, Rejection, bearer, lock, random_token};
use serde_json::{Value, json};

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// How many of a car's requests the access job lists (the oldest go first).
pub const REQUESTS_KEPT: usize = 50;

/// How long an owner locked out by wrong S-PINs waits, as the error says (s).
pub const SPIN_LOCK_S: u64 = 3600;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct VwMockConfig {
    /// How long a lock or unlock takes to reach the car.
    pub stage: Duration,
    /// The OAuth side: the app's client id, default login, access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
    /// VINs of cars whose `access` capability is not active (they cannot lock or
    /// unlock remotely).
    pub incapable: Vec<String>,
    /// Each login's S-PIN.
    pub spins: HashMap<String, String>,
}

impl Default for VwMockConfig {
    fn default() -> Self {
        Self {
            stage: Duration::from_secs(2),
            login: Login {
                client_id: "a24fba63-34b3-4d43-b181-942111e6bda8@apps_vw-dilab_com".into(),
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

#[derive(Debug)]
struct Control {
    vin: String,
    lock_to: bool,
    /// Its delivery to the car (the kit's timeline); `None` when the car refuses.
    delivery: Option<u64>,
    /// When a refused one reports `fail`.
    fails_at: tokio::time::Instant,
    applied: bool,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct VwMock {
    parts: Parts,
    stage: Duration,
    incapable: Arc<Vec<String>>,
    spins: Arc<Mutex<OwnerPins>>,
    controls: Arc<Mutex<Vec<(String, Control)>>>,
    logins: login::Logins,
}

fn error(status: StatusCode, error: Value) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

impl VwMock {
    /// A mock with the given cars and settings.
    pub fn new(config: VwMockConfig) -> Self {
        let client_id = config.login.client_id.clone();
        let parts = Parts::new(
            &crate::adapter::INFO.oauth,
            config.cars,
            config.login,
            Rejection::invalid_grant(),
        );
        Self {
            logins: login::Logins::new(
                client_id,
                parts.oauth.default_account().to_string(),
                parts.tokens.clone(),
            ),
            parts,
            stage: config.stage,
            incapable: Arc::new(config.incapable),
            spins: Arc::new(Mutex::new(OwnerPins::new(config.spins))),
            controls: Arc::default(),
        }
    }

    /// How many wrong S-PINs `login` sent in a row (three lock it out).
    pub fn wrong_spins(&self, login: &str) -> u32 {
        lock(&self.spins).wrong(login)
    }

    /// The router: the BFF, the app login, OAuth refresh and `/__mock/`.
    pub fn router(&self) -> Router {
        self.router_with(self.logins.routes(), "/login/v1/idk/token")
    }

    /// The BFF with another brand's login and other routes (`extra`, journaled and
    /// faulted like the BFF's), its tokens refreshing at `token_path` (myAudi's).
    pub fn router_with(&self, extra: Router, token_path: &str) -> Router {
        let api = Router::new()
            .route("/vehicle/v1/vehicles", get(vehicles))
            .route("/vehicle/v1/vehicles/{vin}/selectivestatus", get(selective))
            .route("/vehicle/v1/vehicles/{vin}/parkingposition", get(parking))
            .route("/vehicle/v1/vehicles/{vin}/access/{action}", post(access))
            .route("/__mock/state", get(inspect))
            .with_state(self.clone())
            .merge(extra);
        self.parts
            .finish(api, "/__mock/oauth/authorize", token_path)
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// The owner's car `vin`, if the call carries a valid token.
    fn owned(&self, headers: &HeaderMap, vin: &str) -> Result<(String, MockCar), StatusCode> {
        let account = bearer(headers)
            .and_then(|t| self.tokens.check(t).ok())
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let car = self
            .garage
            .with_owned(&account, vin, |c| c.clone())
            .ok_or(StatusCode::NOT_FOUND)?;
        Ok((account, car))
    }

    /// A request's status now, applying it on success; and whether this call applied it.
    fn advance(&self, c: &mut Control) -> (&'static str, bool) {
        let Some(delivery) = c.delivery else {
            let failed = tokio::time::Instant::now() >= c.fails_at;
            return (if failed { "fail" } else { "in_progress" }, false);
        };
        match self.garage.delivery(&c.vin, delivery) {
            Some(Delivery::Executed) => {
                let first = !c.applied;
                c.applied = true;
                ("successful", first)
            }
            Some(Delivery::Expired) => ("fail_vehicle_is_offline", false),
            _ => ("in_progress", false),
        }
    }
}

async fn vehicles(State(m): State<VwMock>, headers: HeaderMap) -> Response {
    let Some(account) = bearer(&headers).and_then(|t| m.tokens.check(t).ok()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let list: Vec<Value> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| {
            let access = match m.incapable.contains(&c.vin) {
                true => json!({"id": "access", "status": [2003], "userDisablingAllowed": false}),
                false => json!({"id": "access", "userDisablingAllowed": false}),
            };
            json!({
                "vin": c.vin, "role": "PRIMARY_USER", "userRoleStatus": "ENABLED",
                "enrollmentStatus": "COMPLETED", "brandCode": "V", "model": c.model,
                "nickname": "",
                "capabilities": [access,
                    {"id": "parkingPosition", "userDisablingAllowed": true},
                    {"id": "vehicleWakeUpTrigger", "userDisablingAllowed": false}],
                "images": {}, "coUsers": [], "devicePlatform": "WCAR", "tags": [],
            })
        })
        .collect();
    Json(json!({ "data": list })).into_response()
}

async fn selective(
    State(m): State<VwMock>,
    Path(vin): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(s) = m.owned(&headers, &vin) {
        return s.into_response();
    }
    let jobs = q.get("jobs").map(String::as_str).unwrap_or_default();
    if !jobs.split(',').any(|j| j == "access") {
        return Json(json!({})).into_response();
    }
    let mut requests = Vec::new();
    let mut applied = false;
    for (id, c) in lock(&m.controls).iter_mut().filter(|(_, c)| c.vin == vin) {
        let (status, now) = m.advance(c);
        applied |= now;
        let operation = if c.lock_to { "lock" } else { "unlock" };
        requests.push(json!({"requestId": id, "operation": operation, "status": status}));
    }
    // The backend's view of the car: what it last uploaded.
    let Some((car, reported)) = m.garage.view(&vin) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let lock_word = if car.locked { "locked" } else { "unlocked" };
    let door = |name: &str, open: bool, lockable: bool| {
        let mut status = Vec::new();
        if lockable {
            status.push(lock_word);
        }
        status.push(if open { "open" } else { "closed" });
        json!({"name": name, "status": status})
    };
    let o = car.open;
    let all_closed = !(o.front_left || o.front_right || o.rear_left || o.rear_right || o.trunk);
    let mut resp = Json(json!({"access": {"accessStatus": {
        "value": {
            "overallStatus": if car.locked && all_closed { "safe" } else { "unsafe" },
            "carCapturedTimestamp": rfc3339(reported),
            "doors": [
                door("bonnet", o.frunk, false),
                door("frontLeft", o.front_left, true),
                door("frontRight", o.front_right, true),
                door("rearLeft", o.rear_left, true),
                door("rearRight", o.rear_right, true),
                door("trunk", o.trunk, true),
            ],
            "windows": [
                {"name": "frontLeft", "status": ["closed"]},
                {"name": "frontRight", "status": ["closed"]},
                {"name": "rearLeft", "status": ["closed"]},
                {"name": "rearRight", "status": ["closed"]},
            ],
            "doorLockStatus": lock_word,
        },
        "requests": requests,
    }}}))
    .into_response();
    if applied {
        resp.extensions_mut().insert(Applied);
    }
    resp
}

async fn parking(State(m): State<VwMock>, Path(vin): Path<String>, headers: HeaderMap) -> Response {
    if let Err(s) = m.owned(&headers, &vin) {
        return s.into_response();
    }
    match m.garage.view(&vin) {
        Some((c, reported)) => Json(json!({"data": {
            "lon": c.longitude, "lat": c.latitude, "carCapturedTimestamp": rfc3339(reported),
        }}))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn access(
    State(m): State<VwMock>,
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
        return error(
            StatusCode::FORBIDDEN,
            json!({"message": "Forbidden", "info": "The service is not available for this vehicle", "code": 2003, "retry": false}),
        );
    }
    let spin = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["spin"].as_str().map(str::to_string));
    let Some(spin) = spin else {
        return error(StatusCode::BAD_REQUEST, json!({"message": "Bad Request"}));
    };
    if let Err(left) = lock(&m.spins).check(&account, Some(&spin)) {
        let mut e = json!({
            "message": "Forbidden", "errorTimeStamp": rfc3339(keyway_adapter::mock::timeline::now_utc()),
            "info": "S-PIN verification failed", "code": 4301, "group": 2, "retry": false,
            "remainingTries": left, "spinState": "DEFINED",
        });
        if left == 0 {
            e["spinLockedWaitingTime"] = json!(SPIN_LOCK_S);
        }
        return error(StatusCode::FORBIDDEN, e);
    }
    let fault = fault.map(|f| f.0).unwrap_or_default();
    let delivery = m.garage.deliver_waking(&car, lock_to, m.stage, fault);
    let stage = m.stage * if car.asleep { 3 } else { 1 };
    let id = random_token("");
    let mut controls = lock(&m.controls);
    // The job lists a car's recent requests: the oldest beyond the last
    // `REQUESTS_KEPT` of this car are dropped.
    let mut of_car = controls.iter().filter(|(_, c)| c.vin == vin).count();
    controls.retain(|(_, c)| {
        let drop = c.vin == vin && of_car >= REQUESTS_KEPT;
        of_car -= usize::from(drop);
        !drop
    });
    controls.push((
        id.clone(),
        Control {
            vin,
            lock_to,
            delivery,
            fails_at: tokio::time::Instant::now() + stage,
            applied: false,
        },
    ));
    drop(controls);
    Json(json!({"data": {"requestID": id}})).into_response()
}

async fn inspect(State(m): State<VwMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for VwMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for VwMock {
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
        self.limit_on("/vehicle/v1/")
    }
}

impl VwMock {
    /// Makes the next request whose path contains `path` answer the backend's `429`
    /// with `Retry-After`, as the clients meet it ("too many requests"); the wait.
    pub fn limit_on(&self, path: &str) -> Option<Duration> {
        self.faults.limit_next(
            path,
            Some(json!({"error": {"message": "Too Many Requests"}})),
            30,
        )
    }
}
