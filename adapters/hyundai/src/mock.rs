//! A stateful fake of the Hyundai/Kia EU SPA API, served by axum.
//!
//! Behaves as OEM-REFERENCE.md describes: every call needs the application's `Stamp`
//! header and a bearer token; answers come in the `{"retCode", "resCode", "resMsg",
//! "msgId"}` envelope; door control answers `retCode "S"` with a `msgId` and the outcome
//! appears later in the notification records (`success` — the lock changes then — or
//! `fail` when the car refuses), after `stage` (three times as long while it sleeps).
//! A rate limit is HTTP 200 with `retCode "F"`, `resCode "5091"` (injected with
//! `limit_next`). OAuth is the kit's with this profile: login, then a token exchange.
//!
//! CCS2 cars take door commands only with a control token made from the owner's PIN
//! ([`ccs2`]).
//!
//! Simplified: the mock uses the VIN as the `vehicleId`; the `Stamp` is a fixed
//! application value (the real one is derived per app); the PIN's `deviceId` is not
//! checked against a registration.

mod ccs2;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::{Login, Parts};
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault, now_utc};
use keyway_adapter::mock::{
    Action, Applied, Fault, MockServer, OwnerPins, Rejection, bearer, lock, random_token,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct HyundaiMockConfig {
    /// The `Stamp` every call must carry.
    pub stamp: String,
    /// How long a command takes to reach a record.
    pub stage: Duration,
    /// The OAuth side: client, secret, default login, access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
    /// VINs of cars on the newer CCS2 protocol: flagged in the list, their status at
    /// `ccs2/carstatus/latest` (door `Lock` 0 = locked), door control with a PIN.
    pub ccs2: Vec<String>,
    /// Each login's PIN (as the owner set it in the app).
    pub pins: HashMap<String, String>,
}

impl Default for HyundaiMockConfig {
    fn default() -> Self {
        Self {
            stamp: "spa-demo-stamp".into(),
            stage: Duration::from_secs(2),
            login: Login {
                client_id: "keyway".into(),
                client_secret: Some("secret".into()),
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(86_400),
            },
            cars: Vec::new(),
            ccs2: Vec::new(),
            pins: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Control {
    vin: String,
    lock_to: bool,
    created: Instant,
    stage: Duration,
    refused: bool,
    /// `success` was reported.
    applied: bool,
    /// Its delivery to the car (the kit's timeline); `None` when refused.
    delivery: Option<u64>,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct HyundaiMock {
    parts: Parts,
    controls: Arc<Mutex<HashMap<String, Control>>>,
    stamp: Arc<String>,
    stage: Duration,
    ccs2: Arc<Vec<String>>,
    pins: Arc<Mutex<Pins>>,
}

fn spa_now() -> String {
    spa_time(now_utc())
}

fn spa_time(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn ok(msg: Value) -> Response {
    Json(json!({"retCode": "S", "resCode": "0000", "resMsg": msg, "msgId": random_token("")}))
        .into_response()
}

impl HyundaiMock {
    /// A mock with the given cars and settings.
    pub fn new(config: HyundaiMockConfig) -> Self {
        Self {
            parts: Parts::new(
                &crate::adapter::INFO.oauth,
                config.cars,
                config.login,
                Rejection::invalid_grant(),
            ),
            controls: Arc::default(),
            stamp: Arc::new(config.stamp),
            stage: config.stage,
            ccs2: Arc::new(config.ccs2),
            pins: Arc::new(Mutex::new(Pins {
                owners: OwnerPins::new(config.pins),
                ..Default::default()
            })),
        }
    }

    /// How many wrong PINs `login` sent in a row (three lock it out).
    pub fn wrong_pins(&self, login: &str) -> u32 {
        lock(&self.pins).owners.wrong(login)
    }

    /// The router: the SPA API, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/api/v1/spa/vehicles", get(vehicles))
            .route("/api/v1/spa/vehicles/{id}/location/park", get(location))
            .route("/api/v1/spa/vehicles/{id}/status/latest", get(status))
            .route(
                "/api/v1/spa/vehicles/{id}/ccs2/carstatus/latest",
                get(ccs2_status),
            )
            .route("/api/v1/spa/vehicles/{id}/control/door", post(control))
            .merge(self.ccs2_routes())
            .route("/api/v1/spa/notifications/{id}/records", get(records))
            .route("/__mock/state", get(inspect))
            .with_state(self.clone());
        self.parts.finish(
            api,
            "/api/v1/user/oauth2/authorize",
            "/api/v1/user/oauth2/token",
        )
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car (controls that are due applied first).
    pub fn car(&self, vin: &str) -> Option<MockCar> {
        self.garage.car(vin)
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut MockCar)) {
        self.garage.update(vin, f);
    }

    /// The owned car `id`, if the call carries the stamp and a valid token.
    fn owned(&self, headers: &HeaderMap, id: &str) -> Result<MockCar, StatusCode> {
        let account = self.account(headers)?;
        self.garage
            .with_owned(&account, id, |c| c.clone())
            .ok_or(StatusCode::NOT_FOUND)
    }

    fn stamped(&self, headers: &HeaderMap) -> Result<(), StatusCode> {
        let stamp_ok = headers
            .get("stamp")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s == self.stamp.as_str());
        stamp_ok.then_some(()).ok_or(StatusCode::BAD_REQUEST)
    }

    fn account(&self, headers: &HeaderMap) -> Result<String, StatusCode> {
        self.stamped(headers)?;
        bearer(headers)
            .and_then(|t| self.tokens.check(t).ok())
            .ok_or(StatusCode::UNAUTHORIZED)
    }

    /// A control's record result now (`None` while running), applying it on success;
    /// and whether this call applied it.
    fn advance(&self, c: &mut Control) -> (Option<&'static str>, bool) {
        let Some(delivery) = c.delivery else {
            let failed = c.refused && c.created.elapsed() >= c.stage;
            return (failed.then_some("fail"), false);
        };
        match self.garage.delivery(&c.vin, delivery) {
            Some(Delivery::Executed) => {
                let first = !c.applied;
                c.applied = true;
                (Some("success"), first)
            }
            Some(Delivery::Expired) => (Some("fail"), false),
            _ => (None, false),
        }
    }
}

async fn vehicles(State(m): State<HyundaiMock>, headers: HeaderMap) -> Response {
    let account = match m.account(&headers) {
        Ok(a) => a,
        Err(s) => return s.into_response(),
    };
    let list: Vec<_> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| json!({
            "vin": c.vin, "vehicleId": c.vin, "vehicleName": c.model, "nickname": c.model,
            "year": c.year.to_string(), "type": "EV", "master": true, "carShare": 0,
            "regDate": format!("{}-01-01 00:00:00.000", c.year),
            "detailInfo": {"inColor": "NNB", "outColor": "SAW", "saleCarmdlCd": "NE", "bodyType": "4", "saleCarmdlEnNm": c.model},
            "ccuCCS2ProtocolSupport": u8::from(m.ccs2.contains(&c.vin)),
        }))
        .collect();
    ok(json!({"vehicles": list}))
}

async fn location(
    State(m): State<HyundaiMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.owned(&headers, &id) {
        Ok(c) => ok(json!({"gpsDetail": {
            "coord": {"lat": c.latitude, "lon": c.longitude, "alt": 100.0, "type": 0},
            "head": c.heading, "speed": {"value": 0, "unit": 0},
            "accuracy": {"hdop": 1, "pdop": 1}, "time": spa_now(),
        }})),
        Err(s) => s.into_response(),
    }
}

async fn status(
    State(m): State<HyundaiMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // A CCS2 car's status lives at `ccs2/carstatus/latest`.
    if m.ccs2.contains(&id) {
        return Json(json!({"retCode": "F", "resCode": "9999", "resMsg": "use ccs2/carstatus"}))
            .into_response();
    }
    // The lock as the cloud last heard it from the car (the kit's lagging view).
    match m.owned(&headers, &id).map(|_| m.garage.view(&id)) {
        Ok(Some((c, reported))) => ok(json!({"vehicleStatusInfo": {"vehicleStatus": {
            "time": spa_time(reported), "doorLock": c.locked, "trunkOpen": c.open.trunk,
            "hoodOpen": c.open.frunk, "airCtrlOn": false,
            "doorOpen": {"frontLeft": u8::from(c.open.front_left), "frontRight": u8::from(c.open.front_right),
                "backLeft": u8::from(c.open.rear_left), "backRight": u8::from(c.open.rear_right)},
        }}})),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(s) => s.into_response(),
    }
}

async fn ccs2_status(
    State(m): State<HyundaiMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.owned(&headers, &id).map(|_| m.garage.view(&id)) {
        Ok(Some((c, reported))) => {
            let lock = u8::from(!c.locked);
            let door = |open: bool| json!({"Lock": lock, "Open": u8::from(open)});
            let o = c.open;
            let t = spa_time(reported);
            ok(json!({
                "state": {"Vehicle": {
                    "Date": format!("{t}.000"), "Offset": "0",
                    "Body": {
                        "Trunk": {"Open": u8::from(o.trunk)},
                        "Hood": {"Open": u8::from(o.frunk)},
                    },
                    "Cabin": {"Door": {
                        "Row1": {"Driver": door(o.front_left), "Passenger": door(o.front_right)},
                        "Row2": {"Left": door(o.rear_left), "Right": door(o.rear_right)},
                    }},
                    "Location": {
                        "GeoCoord": {"Latitude": c.latitude, "Longitude": c.longitude, "Altitude": 0, "Type": 0},
                        "Heading": c.heading,
                        "TimeStamp": {
                            "Year": reported.year(), "Mon": u8::from(reported.month()),
                            "Day": reported.day(), "Hour": reported.hour(),
                            "Min": reported.minute(), "Sec": reported.second(),
                        },
                    },
                }},
                "lastUpdateTime": t,
            }))
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(s) => s.into_response(),
    }
}

async fn control(
    State(m): State<HyundaiMock>,
    Path(id): Path<String>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let car = match m.owned(&headers, &id) {
        Ok(c) => c,
        Err(s) => return s.into_response(),
    };
    let action = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["action"].as_str().map(str::to_string));
    let lock_to = match action.as_deref() {
        Some("close") => true,
        Some("open") => false,
        _ => {
            return Json(json!({"retCode": "F", "resCode": "9999", "resMsg": "bad action"}))
                .into_response();
        }
    };
    // A CCS2 car takes door commands only on its own path, with a control token.
    if m.ccs2.contains(&car.vin) {
        return unsupported();
    }
    m.start_control(&car, lock_to, fault.map(|f| f.0))
}

impl HyundaiMock {
    /// Hands a lock (`lock_to`) or unlock to `car` and answers its `msgId`.
    fn start_control(
        &self,
        car: &MockCar,
        lock_to: bool,
        fault: Option<DeliveryFault>,
    ) -> Response {
        let msg_id = random_token("");
        let stage = self.stage * if car.asleep { 3 } else { 1 };
        // The OEM wakes a sleeping car itself, unless the car's timing queues commands.
        if car.asleep && car.timing.queue_ms == 0 {
            self.garage.update(&car.vin, |c| c.asleep = false);
        }
        let delivery = (!car.refusing).then(|| {
            self.garage
                .deliver(&car.vin, lock_to, stage, fault.unwrap_or_default())
        });
        lock(&self.controls).insert(
            msg_id.clone(),
            Control {
                vin: car.vin.clone(),
                lock_to,
                created: Instant::now(),
                stage,
                refused: car.refusing,
                applied: false,
                delivery,
            },
        );
        Json(json!({"retCode": "S", "resCode": "0000", "resMsg": {}, "msgId": msg_id}))
            .into_response()
    }
}

async fn records(
    State(m): State<HyundaiMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(s) = m.owned(&headers, &id) {
        return s.into_response();
    }
    let mut list = Vec::new();
    let mut applied = false;
    for (msg_id, c) in lock(&m.controls).iter_mut().filter(|(_, c)| c.vin == id) {
        if let (Some(result), now) = m.advance(c) {
            applied |= now;
            let action = if c.lock_to { "close" } else { "open" };
            list.push(json!({"recordId": msg_id, "result": result, "category": "door", "action": action, "time": spa_now()}));
        }
    }
    let mut resp = ok(json!(list));
    if applied {
        resp.extensions_mut().insert(Applied);
    }
    resp
}

async fn inspect(State(m): State<HyundaiMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for HyundaiMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for HyundaiMock {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn owner_pin(&self) -> Option<String> {
        let owner = self.parts.oauth.default_account();
        lock(&self.pins).owners.of(owner)
    }

    fn needs_pin(&self, oem_id: &str) -> bool {
        self.ccs2.iter().any(|v| v == oem_id)
    }

    fn limit_next(&self) -> Option<Duration> {
        // Hyundai/Kia: HTTP 200 with retCode F and resCode 5091, no announced time.
        self.faults.add(
            Fault::on(
                "/api/v1/spa/",
                Action::Status {
                    status: 200,
                    body: Some(json!({"retCode": "F", "resCode": "5091", "resMsg": "Exceeds number of requests"})),
                    retry_after: None,
                },
            )
            .times(1),
        );
        None
    }
}

/// Owners' PINs (the kit's) and the control tokens made from them.
#[derive(Debug, Default)]
pub struct Pins {
    /// Each login's PIN and the wrong tries.
    pub owners: OwnerPins,
    /// Control tokens handed out: token → (login, valid until).
    pub tokens: HashMap<String, (String, Instant)>,
}

/// The answer of the older door control to a CCS2 car.
pub fn unsupported() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"retCode": "F", "resCode": "4005", "resMsg": "Unsupported control"})),
    )
        .into_response()
}
