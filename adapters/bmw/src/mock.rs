//! A stateful fake of the MyBMW API, served by axum.
//!
//! Behaves as OEM-REFERENCE.md describes, in the shapes of `fixtures/bmw/` (see its
//! SOURCES.md): `POST /eadrax-vcs/v5/vehicle-list`; vehicles addressed by a `bmw-vin`
//! header;
//! `vehicle-data/profile` gives model and year;
//! `door-lock`/`door-unlock` answer an `eventId`; `eventStatus` reports PENDING, then
//! DELIVERED, then EXECUTED once the car executed it — or ERROR when the car refuses or
//! the command expired in the queue of a sleeping car — each stage lasting `stage`
//! (three times as long while the car sleeps: BMW wakes it itself, unless the car's
//! timing queues commands); `vehicles/state` carries location and
//! `combinedSecurityState` as the cloud sees them, lagging the car by its
//! `state_lag_ms`, with the time the car reported them (the kit's timeline); cars in
//! `state_without_location` have no position there, and the `vehicle-finder` service
//! finds it (`eventPosition` once its event is `EXECUTED`).
//! Errors use BMW's `{"statusCode", "message"}` bodies. OAuth comes from the kit with
//! BMW's profile: HTTP Basic client auth, rotating refresh tokens, 400 `invalid_grant`.
//!
//! Simplified: one state document per car (no charging, windows or trips), no daily
//! quota counting (faults can answer BMW's 403 quota text), no PIN.
//! Controls: `GET /__mock/state`, `/__mock/requests`, `/__mock/faults`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::{Login, Parts};
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault, now_utc, rfc3339};
use keyway_adapter::mock::{Applied, MockServer, Rejection, bearer, lock, random_token};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct BmwMockConfig {
    /// How long each command stage (PENDING, DELIVERED) lasts.
    pub stage: Duration,
    /// The OAuth side: client, secret, default login, access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
    /// Cars whose state carries no position (found only with the vehicle finder).
    pub state_without_location: Vec<String>,
}

impl Default for BmwMockConfig {
    fn default() -> Self {
        Self {
            stage: Duration::from_secs(2),
            login: Login {
                client_id: "keyway".into(),
                client_secret: Some("secret".into()),
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(28_799),
            },
            cars: Vec::new(),
            state_without_location: Vec::new(),
        }
    }
}

/// A remote command on its way to the car.
#[derive(Debug)]
struct Event {
    vin: String,
    created: Instant,
    stage: Duration,
    /// The garage's delivery; `None` when the car refuses it.
    delivery: Option<u64>,
    /// `EXECUTED` was reported.
    reported: bool,
    /// A vehicle finder (no lock change): executed after two stages.
    finder: bool,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct BmwMock {
    parts: Parts,
    events: Arc<Mutex<HashMap<String, Event>>>,
    stage: Duration,
    hidden: Arc<Mutex<Vec<String>>>,
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

fn now() -> String {
    rfc3339(now_utc())
}

impl BmwMock {
    /// A mock with the given cars and settings.
    pub fn new(config: BmwMockConfig) -> Self {
        Self {
            parts: Parts::new(
                &crate::adapter::INFO.oauth,
                config.cars,
                config.login,
                Rejection::invalid_grant(),
            ),
            events: Arc::default(),
            stage: config.stage,
            hidden: Arc::new(Mutex::new(config.state_without_location)),
        }
    }

    /// The router: MyBMW, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/eadrax-vcs/v5/vehicle-list", post(vehicles))
            .route("/eadrax-vcs/v4/vehicles/state", get(state))
            .route("/eadrax-vcs/v5/vehicle-data/profile", get(profile))
            .route(
                "/eadrax-vrccs/v4/presentation/remote-commands/eventPosition",
                post(event_position),
            )
            .route(
                "/eadrax-vrccs/v3/presentation/remote-commands/eventStatus",
                post(event_status),
            )
            .route(
                "/eadrax-vrccs/v4/presentation/remote-commands/{service}",
                post(command),
            )
            .route("/__mock/state", get(inspect))
            .with_state(self.clone());
        self.parts
            .finish(api, "/gcdm/oauth/authenticate", "/gcdm/oauth/token")
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car (commands that are due applied first).
    pub fn car(&self, vin: &str) -> Option<MockCar> {
        self.garage.car(vin)
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut MockCar)) {
        self.garage.update(vin, f);
    }

    /// An event's status now; whether this call is the first to report it executed.
    fn status(&self, event_id: &str) -> Option<(&'static str, bool)> {
        let mut events = lock(&self.events);
        let e = events.get_mut(event_id)?;
        let age = e.created.elapsed();
        if e.finder {
            return Some((
                if age < e.stage * 2 {
                    "PENDING"
                } else {
                    "EXECUTED"
                },
                false,
            ));
        }
        let Some(delivery) = e.delivery else {
            return Some((if age < e.stage { "PENDING" } else { "ERROR" }, false));
        };
        Some(match self.garage.delivery(&e.vin, delivery) {
            Some(Delivery::Executed) => {
                let first = !e.reported;
                e.reported = true;
                ("EXECUTED", first)
            }
            Some(Delivery::Expired) => ("ERROR", false),
            _ if age < e.stage => ("PENDING", false),
            _ => ("DELIVERED", false),
        })
    }

    /// Whether the car's state carries its position from now on (`false`: only the
    /// vehicle finder finds it).
    pub fn set_position_in_state(&self, vin: &str, shown: bool) {
        let mut hidden = lock(&self.hidden);
        hidden.retain(|v| v != vin);
        if !shown {
            hidden.push(vin.to_string());
        }
    }

    /// Starts a remote service's event; the answer naming it.
    fn start_event(
        &self,
        vin: String,
        stage: Duration,
        delivery: Option<u64>,
        finder: bool,
    ) -> Response {
        let event_id = random_token(&format!("rslt-{vin}-"));
        lock(&self.events).insert(
            event_id.clone(),
            Event {
                vin,
                created: Instant::now(),
                stage,
                delivery,
                reported: false,
                finder,
            },
        );
        Json(json!({"eventId": event_id, "creationTime": now()})).into_response()
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<String, BmwError> {
        let token =
            bearer(headers).ok_or_else(|| bmw_error(StatusCode::UNAUTHORIZED, "Unauthorized"))?;
        self.tokens
            .check(token)
            .map_err(|_| bmw_error(StatusCode::UNAUTHORIZED, "Unauthorized"))
    }

    /// The owned car named by `bmw-vin`.
    fn owned_car(&self, headers: &HeaderMap) -> Result<MockCar, BmwError> {
        let account = self.authorize(headers)?;
        let vin = headers
            .get("bmw-vin")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bmw_error(StatusCode::BAD_REQUEST, "bmw-vin header missing"))?;
        self.garage
            .with_owned(&account, vin, |c| c.clone())
            .ok_or_else(|| bmw_error(StatusCode::NOT_FOUND, "Vehicle not found"))
    }
}

async fn vehicles(State(m): State<BmwMock>, headers: HeaderMap) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let list: Vec<_> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| {
            json!({
                "isAssociated": false, "isLmmEnabled": false, "isPrimaryUser": true,
                "mappingStatus": "CONFIRMED", "vehicleMappingType": "CONNECTED", "vin": c.vin,
            })
        })
        .collect();
    Json(json!({"gcid": format!("gcid-{account}"), "mappingInfos": list})).into_response()
}

async fn state(State(m): State<BmwMock>, headers: HeaderMap) -> Response {
    let (c, reported) = match m.owned_car(&headers).map(|c| m.garage.view(&c.vin)) {
        Ok(Some(seen)) => seen,
        Ok(None) => return bmw_error(StatusCode::NOT_FOUND, "Vehicle not found").into_response(),
        Err(e) => return e.into_response(),
    };
    let t = rfc3339(reported);
    let fetched = now();
    let o = c.open;
    let door = |open: bool| if open { "OPEN" } else { "CLOSED" };
    let mut doc = json!({
        "capabilities": {
            "lock": true, "unlock": true, "vehicleFinder": true,
            "remoteServices": {
                "doorLock": {"id": "doorLock", "state": "ACTIVATED"},
                "doorUnlock": {"id": "doorUnlock", "state": "ACTIVATED"},
            },
            "vehicleStateSource": "LAST_STATE_CALL",
        },
        "state": {
            "isLeftSteering": true, "lastFetched": fetched, "lastUpdatedAt": t,
            "isLscSupported": true, "range": 380, "currentMileage": 18211,
            "doorsState": {
                "combinedSecurityState": if c.locked { "SECURED" } else { "UNLOCKED" },
                "combinedState": door(o.front_left || o.front_right || o.rear_left
                    || o.rear_right || o.trunk || o.frunk),
                "hood": door(o.frunk), "leftFront": door(o.front_left),
                "leftRear": door(o.rear_left), "rightFront": door(o.front_right),
                "rightRear": door(o.rear_right), "trunk": door(o.trunk),
            },
            "windowsState": {"combinedState": "CLOSED", "leftFront": "CLOSED", "rightFront": "CLOSED"},
            "location": {
                "address": {"formatted": ""},
                "coordinates": {"latitude": c.latitude, "longitude": c.longitude},
                "heading": c.heading,
            },
            "electricChargingState": {"chargingLevelPercent": 80, "range": 380, "isChargerConnected": false},
        },
    });
    if lock(&m.hidden).contains(&c.vin)
        && let Some(state) = doc.get_mut("state").and_then(|s| s.as_object_mut())
    {
        state.remove("location");
    }
    Json(doc).into_response()
}

async fn command(
    State(m): State<BmwMock>,
    axum::extract::Path(service): axum::extract::Path<String>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
) -> Response {
    let lock_to = match service.as_str() {
        "door-lock" => true,
        "door-unlock" => false,
        "vehicle-finder" => return finder(&m, &headers),
        _ => return bmw_error(StatusCode::NOT_FOUND, "Unknown remote service").into_response(),
    };
    let car = match m.owned_car(&headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    // A sleeping car takes longer: BMW wakes it itself — unless the car is set to
    // queue commands while it sleeps (they then wait for it, or expire).
    let stage = m.stage * if car.asleep { 3 } else { 1 };
    if car.asleep && car.timing.queue_ms == 0 {
        m.garage.update(&car.vin, |c| c.asleep = false);
    }
    let delivery = (!car.refusing).then(|| {
        let fault = fault.map(|f| f.0).unwrap_or_default();
        m.garage.deliver(&car.vin, lock_to, stage * 2, fault)
    });
    m.start_event(car.vin, stage, delivery, false)
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
    if let Err(e) = m.authorize(&headers) {
        return e.into_response();
    }
    let Some(id) = q.event_id else {
        return bmw_error(StatusCode::BAD_REQUEST, "eventId missing").into_response();
    };
    match m.status(&id) {
        Some(("ERROR", _)) => Json(json!({
            "eventStatus": "ERROR",
            "errorDetails": {"title": "Remote service could not be executed", "description": "refused by the vehicle"},
        }))
        .into_response(),
        Some((status, applied_now)) => {
            let mut resp = Json(json!({"eventStatus": status})).into_response();
            if applied_now {
                resp.extensions_mut().insert(Applied);
            }
            resp
        }
        None => bmw_error(StatusCode::NOT_FOUND, "Event not found").into_response(),
    }
}

/// `vehicle-finder`: an event that executes after two stages, whose position
/// `eventPosition` then answers.
fn finder(m: &BmwMock, headers: &HeaderMap) -> Response {
    let car = match m.owned_car(headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    m.start_event(car.vin, m.stage, None, true)
}

/// `eventPosition?eventId=`: the position an executed vehicle finder found.
async fn event_position(
    State(m): State<BmwMock>,
    Query(q): Query<EventQuery>,
    headers: HeaderMap,
) -> Response {
    let car = match m.owned_car(&headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let found = q.event_id.as_deref().is_some_and(|id| {
        lock(&m.events)
            .get(id)
            .is_some_and(|e| e.finder && e.vin == car.vin)
    }) && q.event_id.as_deref().and_then(|id| m.status(id))
        == Some(("EXECUTED", false));
    if !found {
        return Json(json!({"errorDetails": {"title": "Unknown position",
            "description": "no executed vehicle finder event"}}))
        .into_response();
    }
    Json(json!({
        "positionData": {"status": "OK", "position": {
            "latitude": car.latitude, "longitude": car.longitude,
            "formattedAddress": "", "heading": car.heading}},
        "errorDetails": null,
    }))
    .into_response()
}

/// `vehicle-data/profile`: the car's model and year.
async fn profile(State(m): State<BmwMock>, headers: HeaderMap) -> Response {
    match m.owned_car(&headers) {
        Ok(c) => Json(json!({
            "bodyType": "G26", "brand": "BMW", "color": 4284245350u64, "countryOfOrigin": "DE",
            "driveTrain": "ELECTRIC", "headUnitRaw": "HU_MGU", "headUnitType": "MGU",
            "hmiVersion": "ID8", "model": c.model, "telematicsUnit": "WAVE01",
            "softwareVersionCurrent": {"iStep": 470, "puStep": {"month": 11, "year": 21}, "seriesCluster": "G026"},
            "softwareVersionExFactory": {"iStep": 470, "puStep": {"month": 11, "year": 21}, "seriesCluster": "G026"},
            "vin": c.vin, "year": c.year,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn inspect(State(m): State<BmwMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for BmwMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for BmwMock {
    fn parts(&self) -> &Parts {
        &self.parts
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
