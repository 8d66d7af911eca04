//! A stateful fake of the MyBMW API, served by axum.
//!
//! Behaves as OEM-REFERENCE.md describes: vehicles addressed by a `bmw-vin` header;
//! `door-lock`/`door-unlock` answer an `eventId`; `eventStatus` reports PENDING, then
//! DELIVERED, then EXECUTED (the lock state changes then) — or ERROR when the car
//! refuses — each stage lasting `stage` (three times as long while the car sleeps: BMW
//! wakes it itself); `vehicles/state` carries location and `combinedSecurityState`.
//! Errors use BMW's `{"statusCode", "message"}` bodies. OAuth comes from the kit with
//! BMW's profile: HTTP Basic client auth, rotating refresh tokens, 400 `invalid_grant`.
//!
//! Simplified: one state document per car (no charging, windows or trips), no daily
//! quota counting (faults can answer BMW's 403 quota text), no PIN.
//! Controls: `GET /__mock/state`, `/__mock/requests`, `/__mock/faults`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::ClientAuth;
use keyway_adapter::conformance::MockControl;
use keyway_adapter::mock::{
    AccessDenied, Applied, Faults, Journal, MockServer, OAuthServer, OAuthServerConfig, Rejection,
    TokenBook, bearer, instrument, lock, random_token,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

/// One mock car.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MockCar {
    /// VIN.
    pub vin: String,
    /// Model name.
    pub model: String,
    /// Model year.
    pub year: u16,
    /// The login that owns it.
    pub account: String,
    /// Door lock.
    pub locked: bool,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Heading.
    #[serde(default)]
    pub heading: f64,
    /// Sleeping (commands take longer; BMW wakes the car itself).
    #[serde(default)]
    pub asleep: bool,
    /// Refuses remote commands (they end in ERROR).
    #[serde(default)]
    pub refusing: bool,
}

/// Mock settings.
#[derive(Clone, Debug)]
pub struct BmwMockConfig {
    /// How long each command stage (PENDING, DELIVERED) lasts.
    pub stage: Duration,
    /// Access-token lifetime (BMW: 28,799 s).
    pub access_ttl: Duration,
    /// The cars.
    pub cars: Vec<MockCar>,
    /// The registered OAuth client.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Option<String>,
    /// The login at `/authorize` unless `login_hint` names another.
    pub default_account: String,
}

impl Default for BmwMockConfig {
    fn default() -> Self {
        Self {
            stage: Duration::from_secs(2),
            access_ttl: Duration::from_secs(28_799),
            cars: Vec::new(),
            client_id: "keyway".into(),
            client_secret: Some("secret".into()),
            default_account: "owner".into(),
        }
    }
}

#[derive(Debug)]
struct Event {
    vin: String,
    lock_to: bool,
    created: Instant,
    stage: Duration,
    refused: bool,
    applied: bool,
}

#[derive(Debug)]
struct World {
    cars: BTreeMap<String, MockCar>,
    events: HashMap<String, Event>,
    stage: Duration,
}

impl World {
    /// The event's status now, applying the command when it executes.
    fn status(&mut self, event_id: &str) -> Option<&'static str> {
        let e = self.events.get_mut(event_id)?;
        let age = e.created.elapsed();
        if e.refused {
            return Some(if age < e.stage { "PENDING" } else { "ERROR" });
        }
        if age < e.stage {
            return Some("PENDING");
        }
        if age < e.stage * 2 {
            return Some("DELIVERED");
        }
        if !e.applied {
            e.applied = true;
            if let Some(car) = self.cars.get_mut(&e.vin) {
                car.locked = e.lock_to;
                car.asleep = false;
            }
        }
        Some("EXECUTED")
    }

    /// Applies every command whose time has come (state reads see it too).
    fn settle(&mut self) {
        let ids: Vec<String> = self.events.keys().cloned().collect();
        for id in ids {
            self.status(&id);
        }
    }
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct BmwMock {
    world: Arc<Mutex<World>>,
    /// Issued tokens.
    pub tokens: TokenBook,
    /// The authorization server.
    pub oauth: OAuthServer,
    /// Every request seen.
    pub journal: Journal,
    /// Injected faults.
    pub faults: Faults,
}

/// A MyBMW error answer: `{"statusCode": …, "message": …}`.
#[derive(Debug)]
struct BmwError {
    status: StatusCode,
    message: &'static str,
}

impl IntoResponse for BmwError {
    fn into_response(self) -> Response {
        let body = json!({"statusCode": self.status.as_u16(), "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

fn bmw_error(status: StatusCode, message: &'static str) -> BmwError {
    BmwError { status, message }
}

impl BmwMock {
    /// A mock with the given cars and settings.
    pub fn new(config: BmwMockConfig) -> Self {
        let tokens = TokenBook::new(config.access_ttl, true);
        let oauth = OAuthServer::new(
            OAuthServerConfig {
                client_id: config.client_id,
                client_secret: config.client_secret,
                client_auth: ClientAuth::Basic,
                scopes: crate::adapter::INFO
                    .oauth
                    .scopes
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                require_pkce: true,
                default_account: config.default_account,
                code_ttl: Duration::from_secs(600),
                token_exchange: false,
                refresh_rejection: Rejection::invalid_grant(),
            },
            tokens.clone(),
        );
        Self {
            world: Arc::new(Mutex::new(World {
                cars: config
                    .cars
                    .into_iter()
                    .map(|c| (c.vin.clone(), c))
                    .collect(),
                events: HashMap::new(),
                stage: config.stage,
            })),
            tokens,
            oauth,
            journal: Journal::default(),
            faults: Faults::default(),
        }
    }

    /// The router: MyBMW, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/eadrax-vcs/v4/vehicles", get(vehicles))
            .route("/eadrax-vcs/v4/vehicles/state", get(state))
            .route(
                "/eadrax-vrccs/v4/presentation/remote-commands/eventStatus",
                post(event_status),
            )
            .route(
                "/eadrax-vrccs/v4/presentation/remote-commands/{service}",
                post(command),
            )
            .route("/__mock/state", get(inspect))
            .with_state(self.clone())
            .merge(
                self.oauth
                    .routes("/gcdm/oauth/authenticate", "/gcdm/oauth/token"),
            );
        instrument(api, &self.journal, &self.faults)
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car (pending commands that are due applied first).
    pub fn car(&self, vin: &str) -> Option<MockCar> {
        let mut w = lock(&self.world);
        w.settle();
        w.cars.get(vin).cloned()
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut MockCar)) {
        let mut w = lock(&self.world);
        w.settle();
        if let Some(c) = w.cars.get_mut(vin) {
            f(c);
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<String, BmwError> {
        let token =
            bearer(headers).ok_or_else(|| bmw_error(StatusCode::UNAUTHORIZED, "Unauthorized"))?;
        self.tokens.check(token).map_err(|e| match e {
            AccessDenied::Expired | AccessDenied::Unknown => {
                bmw_error(StatusCode::UNAUTHORIZED, "Unauthorized")
            }
        })
    }

    /// The owned car named by `bmw-vin`.
    fn owned_vin(&self, headers: &HeaderMap) -> Result<String, BmwError> {
        let account = self.authorize(headers)?;
        let vin = headers
            .get("bmw-vin")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bmw_error(StatusCode::BAD_REQUEST, "bmw-vin header missing"))?;
        let w = lock(&self.world);
        match w.cars.get(vin) {
            Some(c) if c.account == account => Ok(vin.to_string()),
            _ => Err(bmw_error(StatusCode::NOT_FOUND, "Vehicle not found")),
        }
    }
}

async fn vehicles(State(m): State<BmwMock>, headers: HeaderMap) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let w = lock(&m.world);
    let list: Vec<_> = w
        .cars
        .values()
        .filter(|c| c.account == account)
        .map(|c| {
            json!({
                "vin": c.vin, "appVehicleType": "CONNECTED",
                "mappingInfo": {"isPrimaryUser": true, "mappingStatus": "CONFIRMED"},
                "attributes": {"model": c.model, "year": c.year, "brand": "BMW", "driveTrain": "ELECTRIC"},
            })
        })
        .collect();
    Json(list).into_response()
}

async fn state(State(m): State<BmwMock>, headers: HeaderMap) -> Response {
    let vin = match m.owned_vin(&headers) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let mut w = lock(&m.world);
    w.settle();
    let Some(c) = w.cars.get(&vin) else {
        return bmw_error(StatusCode::NOT_FOUND, "Vehicle not found").into_response();
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Json(json!({
        "isLeftSteering": true, "lastFetched": now, "lastUpdatedAt": now,
        "doorsState": {
            "combinedSecurityState": if c.locked { "SECURED" } else { "UNLOCKED" },
            "leftFront": "CLOSED", "rightFront": "CLOSED", "leftRear": "CLOSED",
            "rightRear": "CLOSED", "hood": "CLOSED", "trunk": "CLOSED", "combinedState": "CLOSED",
        },
        "location": {"coordinates": {"latitude": c.latitude, "longitude": c.longitude}, "heading": c.heading},
        "range": 380,
    }))
    .into_response()
}

async fn command(
    State(m): State<BmwMock>,
    axum::extract::Path(service): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let lock_to = match service.as_str() {
        "door-lock" => true,
        "door-unlock" => false,
        _ => return bmw_error(StatusCode::NOT_FOUND, "Unknown remote service").into_response(),
    };
    let vin = match m.owned_vin(&headers) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let mut w = lock(&m.world);
    let car = w.cars.get(&vin).cloned();
    let stage = w.stage
        * if car.as_ref().is_some_and(|c| c.asleep) {
            3
        } else {
            1
        };
    let event_id = random_token(&format!("rslt-{vin}-"));
    w.events.insert(
        event_id.clone(),
        Event {
            vin,
            lock_to,
            created: Instant::now(),
            stage,
            refused: car.is_some_and(|c| c.refusing),
            applied: false,
        },
    );
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Json(json!({"eventId": event_id, "creationTime": created})).into_response()
}

#[derive(Deserialize)]
struct EventQuery {
    #[serde(rename = "eventId")]
    event_id: Option<String>,
}

async fn event_status(
    State(m): State<BmwMock>,
    Query(q): Query<EventQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = m.authorize(&headers) {
        return r.into_response();
    }
    let mut w = lock(&m.world);
    let Some(id) = q.event_id else {
        return bmw_error(StatusCode::BAD_REQUEST, "eventId missing").into_response();
    };
    let was_applied = w.events.get(&id).is_some_and(|e| e.applied);
    match w.status(&id) {
        Some(status) => {
            let mut resp = if status == "ERROR" {
                Json(json!({"eventStatus": "ERROR", "errorDetails": {"title": "Remote service could not be executed", "description": "refused by the vehicle"}})).into_response()
            } else {
                Json(json!({"eventStatus": status})).into_response()
            };
            if status == "EXECUTED" && !was_applied {
                resp.extensions_mut().insert(Applied);
            }
            resp
        }
        None => bmw_error(StatusCode::NOT_FOUND, "Event not found").into_response(),
    }
}

async fn inspect(State(m): State<BmwMock>) -> Response {
    let mut w = lock(&m.world);
    w.settle();
    let cars: Vec<&MockCar> = w.cars.values().collect();
    Json(json!({
        "vehicles": cars,
        "refreshes_served": m.tokens.refreshes_served(),
        "refresh_replays_seen": m.tokens.replays_seen(),
        "requests_seen": m.journal.oem_requests(),
    }))
    .into_response()
}

#[async_trait]
impl MockControl for BmwMock {
    fn vehicle_ids(&self) -> Vec<String> {
        lock(&self.world)
            .cars
            .values()
            .filter(|c| c.account == "owner")
            .map(|c| c.vin.clone())
            .collect()
    }

    fn position(&self, oem_id: &str) -> (f64, f64) {
        let c = self.car(oem_id).expect("known car");
        (c.latitude, c.longitude)
    }

    fn locked(&self, oem_id: &str) -> bool {
        self.car(oem_id).expect("known car").locked
    }

    fn set_locked(&self, oem_id: &str, locked: bool) {
        self.update(oem_id, |c| c.locked = locked);
    }

    fn set_asleep(&self, oem_id: &str) {
        self.update(oem_id, |c| c.asleep = true);
    }

    fn set_awake(&self, oem_id: &str) {
        self.update(oem_id, |c| c.asleep = false);
    }

    fn set_refusing(&self, oem_id: &str, refusing: bool) {
        self.update(oem_id, |c| c.refusing = refusing);
    }

    fn access_token(&self) -> String {
        self.tokens.issue("owner").access_token
    }

    fn expire_access_tokens(&self) {
        self.tokens.expire_access_tokens();
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn limit_next(&self) -> Option<Duration> {
        // BMW's daily quota: 403 with the time until it is replenished.
        self.faults.add(
            keyway_adapter::mock::Fault::on(
                "/eadrax-",
                keyway_adapter::mock::Action::Status {
                    status: 403,
                    body: Some(json!({"statusCode": 403, "message": "Out of call volume quota. Quota will be replenished in 01:00:30."})),
                    retry_after: None,
                },
            )
            .times(1),
        );
        Some(Duration::from_secs(3630))
    }
}
