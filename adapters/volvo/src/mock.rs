//! A stateful fake of Volvo's Connected Vehicle API v2 and Location API, served by axum.
//!
//! Behaves as OEM-REFERENCE.md describes: every call needs the application's
//! `vcc-api-key` (401 without it) and a bearer token; `commands/lock|unlock` answer at
//! once with an `invokeStatus` — `COMPLETED`, `REJECTED` when the car refuses (its
//! `refusing` flag), `VEHICLE_IN_SLEEP` while it sleeps (Volvo offers no wake-up; the
//! owner's app or the car wakes it); `doors` reports `centralLock`; the location is
//! GeoJSON with `[longitude, latitude, altitude]` and the heading as a string;
//! `command-accessibility` says `UNAVAILABLE` (`POWER_SAVING_MODE`) for such a sleeper. Errors use
//! `{"error": {"message", "description"}}`. OAuth comes from the kit with Volvo's
//! profile: HTTP Basic client auth, non-rotating refresh tokens, 400 `invalid_grant`.
//!
//! Simplified: no per-minute counting of its own (faults answer Volvo's 429), no
//! `operationId` tracking, the other Connected Vehicle endpoints (windows, tyres, …)
//! are absent. Controls: `GET /__mock/state`, `/__mock/requests`, `/__mock/faults`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::{Login, Parts};
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault, now_utc, rfc3339};
use keyway_adapter::mock::{Applied, MockServer, Rejection, bearer, lock, random_token};
use serde_json::json;

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct VolvoMockConfig {
    /// The application key every call must carry.
    pub api_key: String,
    /// The OAuth side: client, secret, default login, access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
}

impl Default for VolvoMockConfig {
    fn default() -> Self {
        Self {
            api_key: "vcc-demo-key".into(),
            login: Login {
                client_id: "keyway".into(),
                client_secret: Some("secret".into()),
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(1799),
            },
            cars: Vec::new(),
        }
    }
}

/// Whether Volvo can reach a car now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// No connection: commands time out undecided, the check says `NO_INTERNET`.
    Offline,
    /// Asleep without queueing: `VEHICLE_IN_SLEEP`, the check says `POWER_SAVING_MODE`.
    Sleeping,
    /// Reachable.
    Available,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct VolvoMock {
    parts: Parts,
    api_key: Arc<String>,
    /// Cars without a connection: Volvo cannot reach them.
    offline: Arc<Mutex<Vec<String>>>,
}

/// A Volvo error answer: `{"error": {"message", "description"}}`.
#[derive(Debug)]
struct VolvoError {
    status: StatusCode,
    message: &'static str,
    description: &'static str,
}

impl IntoResponse for VolvoError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "description": self.description}});
        (self.status, Json(body)).into_response()
    }
}

fn volvo_error(status: StatusCode, message: &'static str, description: &'static str) -> VolvoError {
    VolvoError {
        status,
        message,
        description,
    }
}

fn now() -> String {
    rfc3339(now_utc())
}

fn envelope(data: serde_json::Value) -> Response {
    Json(json!({"data": data, "operationId": random_token("op-")})).into_response()
}

impl VolvoMock {
    /// A mock with the given cars and settings.
    pub fn new(config: VolvoMockConfig) -> Self {
        Self {
            parts: Parts::new(
                &crate::adapter::INFO.oauth,
                config.cars,
                config.login,
                Rejection::invalid_grant(),
            ),
            api_key: Arc::new(config.api_key),
            offline: Arc::default(),
        }
    }

    /// The router: the Connected Vehicle and Location APIs, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/connected-vehicle/v2/vehicles", get(vehicles))
            .route("/connected-vehicle/v2/vehicles/{vin}", get(details))
            .route("/connected-vehicle/v2/vehicles/{vin}/doors", get(doors))
            .route(
                "/connected-vehicle/v2/vehicles/{vin}/command-accessibility",
                get(accessibility),
            )
            .route(
                "/connected-vehicle/v2/vehicles/{vin}/commands/{command}",
                post(command),
            )
            .route("/location/v1/vehicles/{vin}/location", get(location))
            .route("/__mock/state", get(inspect))
            .with_state(self.clone());
        self.parts
            .finish(api, "/as/authorization.oauth2", "/as/token.oauth2")
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car.
    pub fn car(&self, vin: &str) -> Option<MockCar> {
        self.garage.car(vin)
    }

    /// Whether the car has a connection from now on. Without one, Volvo's command call
    /// times out undecided (`TIMEOUT`; the car never gets it) and `command-accessibility`
    /// says `UNAVAILABLE` (`NO_INTERNET`).
    pub fn set_connected(&self, vin: &str, connected: bool) {
        let mut offline = lock(&self.offline);
        offline.retain(|v| v != vin);
        if !connected {
            offline.push(vin.to_string());
        }
    }

    /// Whether Volvo can reach the car now: one judgement for its command call and its
    /// accessibility check, so the two always agree.
    fn reach(&self, c: &MockCar) -> Reach {
        if lock(&self.offline).contains(&c.vin) {
            Reach::Offline
        } else if c.asleep && c.timing.queue_ms == 0 {
            Reach::Sleeping
        } else {
            Reach::Available
        }
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut MockCar)) {
        self.garage.update(vin, f);
    }

    /// The account behind a request with a valid API key and token.
    fn authorize(&self, headers: &HeaderMap) -> Result<String, VolvoError> {
        let key_ok = headers
            .get("vcc-api-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k == self.api_key.as_str());
        if !key_ok {
            return Err(volvo_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                // Volvo's own words (fixtures/volvo/error_vcc_api_key_401.json).
                "Access denied due to invalid VCC-API-KEY. Make sure to provide a valid key for an active application.",
            ));
        }
        let token = bearer(headers).ok_or_else(|| {
            volvo_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Access token missing",
            )
        })?;
        self.tokens.check(token).map_err(|_| {
            volvo_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Access token expired or invalid",
            )
        })
    }

    /// Runs `f` on an owned car.
    fn with_car<T>(
        &self,
        headers: &HeaderMap,
        vin: &str,
        f: impl FnOnce(&mut MockCar) -> T,
    ) -> Result<T, VolvoError> {
        let account = self.authorize(headers)?;
        self.garage
            .with_owned(&account, vin, f)
            .ok_or_else(|| volvo_error(StatusCode::NOT_FOUND, "Not Found", "Vehicle not found"))
    }
}

async fn vehicles(State(m): State<VolvoMock>, headers: HeaderMap) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let list: Vec<_> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| json!({"vin": c.vin}))
        .collect();
    envelope(json!(list))
}

async fn details(
    State(m): State<VolvoMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.with_car(&headers, &vin, |c| {
        json!({"vin": c.vin, "modelYear": c.year, "gearbox": "AUTOMATIC", "fuelType": "ELECTRIC",
               "externalColour": "Crystal White", "batteryCapacityKWH": 78.0,
               "images": {"exteriorImageUrl": "https://example.invalid/ext.png",
                          "internalImageUrl": "https://example.invalid/int.png"},
               "descriptions": {"model": c.model, "upholstery": "null", "steering": "LEFT"}})
    }) {
        Ok(d) => envelope(d),
        Err(e) => e.into_response(),
    }
}

async fn doors(
    State(m): State<VolvoMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The lock as the cloud last heard it from the car (the kit's lagging view).
    let seen = m
        .with_car(&headers, &vin, |_| ())
        .map(|()| m.garage.view(&vin));
    match seen.map(|seen| {
        let (c, reported) = seen.expect("an owned car exists");
        let t = rfc3339(reported);
        let door =
            |open: bool| json!({"value": if open { "OPEN" } else { "CLOSED" }, "timestamp": t});
        let o = c.open;
        json!({
            "centralLock": {"value": if c.locked { "LOCKED" } else { "UNLOCKED" }, "timestamp": t},
            "frontLeftDoor": door(o.front_left), "frontRightDoor": door(o.front_right),
            "rearLeftDoor": door(o.rear_left), "rearRightDoor": door(o.rear_right),
            "hood": door(o.frunk), "tailgate": door(o.trunk), "tankLid": door(false),
        })
    }) {
        Ok(d) => envelope(d),
        Err(e) => e.into_response(),
    }
}

/// `command-accessibility`: a sleeping car that would answer `VEHICLE_IN_SLEEP` is
/// `UNAVAILABLE` (`POWER_SAVING_MODE`); a car set to queue commands while it sleeps is
/// available (Volvo takes the command and waits for it).
async fn accessibility(
    State(m): State<VolvoMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.with_car(&headers, &vin, |c| {
        let t = rfc3339(now_utc());
        let reason = match m.reach(c) {
            Reach::Offline => "NO_INTERNET",
            Reach::Sleeping => "POWER_SAVING_MODE",
            Reach::Available => {
                return json!({"availabilityStatus": {"value": "AVAILABLE", "timestamp": t}});
            }
        };
        json!({"availabilityStatus": {"value": "UNAVAILABLE",
            "unavailableReason": reason, "timestamp": t}})
    }) {
        Ok(d) => envelope(d),
        Err(e) => e.into_response(),
    }
}

async fn location(
    State(m): State<VolvoMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.with_car(&headers, &vin, |c| {
        json!({
            "type": "Feature",
            "properties": {"timestamp": now(), "heading": format!("{}", c.heading)},
            "geometry": {"type": "Point", "coordinates": [c.longitude, c.latitude, 0.0]},
        })
    }) {
        Ok(d) => envelope(d),
        Err(e) => e.into_response(),
    }
}

async fn command(
    State(m): State<VolvoMock>,
    Path((vin, command)): Path<(String, String)>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
) -> Response {
    let lock_to = match command.as_str() {
        "lock" => true,
        "unlock" => false,
        _ => {
            return volvo_error(StatusCode::NOT_FOUND, "Not Found", "Unknown command")
                .into_response();
        }
    };
    let car = m.with_car(&headers, &vin, |c| c.clone());
    let outcome = car.map(|c| match m.reach(&c) {
        // Volvo waits for a car it cannot reach, then gives up undecided.
        Reach::Offline => ("TIMEOUT", false),
        Reach::Sleeping => ("VEHICLE_IN_SLEEP", false),
        Reach::Available if c.refusing => ("REJECTED", false),
        Reach::Available => {
            // The car executes it now, unless its timing or a fault holds it back
            // (queued while asleep, late): then Volvo's call times out undecided.
            let fault = fault.map(|f| f.0).unwrap_or_default();
            let id = m.garage.deliver(&vin, lock_to, Duration::ZERO, fault);
            match m.garage.delivery(&vin, id) {
                Some(Delivery::Executed) => ("COMPLETED", true),
                _ => ("TIMEOUT", false),
            }
        }
    });
    match outcome {
        Ok((status, applied)) => {
            let message = if status == "REJECTED" {
                "Vehicle in use"
            } else {
                ""
            };
            let mut resp =
                envelope(json!({"vin": vin, "invokeStatus": status, "message": message}));
            if applied {
                resp.extensions_mut().insert(Applied);
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn inspect(State(m): State<VolvoMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for VolvoMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for VolvoMock {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn limit_next(&self) -> Option<Duration> {
        // Volvo: 429 (approx.: Retry-After in seconds) with its error body.
        self.faults.limit_next("/connected-vehicle/", Some(json!({"error": {"message": "Too many requests", "description": "Rate limit exceeded"}})), 60)
    }
}
