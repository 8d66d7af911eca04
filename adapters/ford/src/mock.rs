//! A stateful fake of Ford's API, served by axum.
//!
//! Behaves as OEM-REFERENCE.md describes: `POST /v1/command/vehicles/{VIN}/commands`
//! answers 201 `{"id"}`; telemetry (`GET /v1/telemetry/sources/fordpass/vehicles/{VIN}`)
//! reports position, heading, `doorLockStatus`, and in `states.lockCommand` /
//! `unlockCommand` the latest command of that type with its `toState`:
//! `REQUEST_QUEUED`, then `IN_PROGRESS`, then `COMMAND_SUCCEEDED_ON_DEVICE` (the lock
//! changes then) or `COMMAND_FAILED_ON_DEVICE` when the car refuses, each stage lasting
//! `stage` (three times as long while the car sleeps: `wakeUp: true` wakes it). 502
//! bodies carry a `referenceId`. OAuth is the kit's with Ford's profile: PKCE, a token
//! exchange, rotating refresh tokens, and 400 `{"errorCode": "460"}` for a dead one.
//!
//! Simplified: one telemetry document per car; no `EXPIRED` commands unless a fault is
//! injected; the login and the token exchange share one token endpoint.

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
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault, now_utc, rfc3339};
use keyway_adapter::mock::{Applied, MockServer, Rejection, bearer, lock, random_token};
use serde_json::{Value, json};
use tokio::time::Instant;

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct FordMockConfig {
    /// How long each command stage lasts.
    pub stage: Duration,
    /// The OAuth side: client, secret, default login, access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
}

impl Default for FordMockConfig {
    fn default() -> Self {
        Self {
            stage: Duration::from_secs(2),
            login: Login {
                client_id: "keyway".into(),
                client_secret: None,
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(1200),
            },
            cars: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Cmd {
    id: String,
    vin: String,
    lock_to: bool,
    created: Instant,
    stage: Duration,
    /// `COMMAND_SUCCEEDED_ON_DEVICE` was reported.
    applied: bool,
    /// Its delivery to the car (the kit's timeline); `None` when refused.
    delivery: Option<u64>,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct FordMock {
    parts: Parts,
    commands: Arc<Mutex<HashMap<String, Cmd>>>,
    stage: Duration,
}

fn stamp() -> String {
    rfc3339(now_utc())
}

impl FordMock {
    /// A mock with the given cars and settings.
    pub fn new(config: FordMockConfig) -> Self {
        Self {
            parts: Parts::new(
                &crate::adapter::INFO.oauth,
                config.cars,
                config.login,
                Rejection {
                    status: 400,
                    body: json!({"message": "Invalid or Expired Token", "errorCode": "460"}),
                },
            ),
            commands: Arc::default(),
            stage: config.stage,
        }
    }

    /// The router: Ford's API, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v1/vehicles", get(vehicles))
            .route("/v1/command/vehicles/{vin}/commands", post(command))
            .route(
                "/v1/telemetry/sources/fordpass/vehicles/{vin}",
                get(telemetry),
            )
            .route("/__mock/state", get(inspect))
            .with_state(self.clone());
        self.parts
            .finish(api, "/oauth2/v2.0/authorize", "/oauth2/v2.0/token")
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

    fn account(&self, headers: &HeaderMap) -> Option<String> {
        self.tokens.check(bearer(headers)?).ok()
    }

    /// A command's `toState` now, applying it when it succeeds; and whether this call
    /// applied it.
    fn advance(&self, cmd: &mut Cmd) -> (&'static str, bool) {
        let age = cmd.created.elapsed();
        let Some(delivery) = cmd.delivery else {
            return if age < cmd.stage * 2 {
                ("IN_PROGRESS", false)
            } else {
                ("COMMAND_FAILED_ON_DEVICE", false)
            };
        };
        match self.garage.delivery(&cmd.vin, delivery) {
            Some(Delivery::Executed) => {
                let first = !cmd.applied;
                cmd.applied = true;
                ("COMMAND_SUCCEEDED_ON_DEVICE", first)
            }
            Some(Delivery::Expired) => ("EXPIRED", false),
            _ if age < cmd.stage => ("REQUEST_QUEUED", false),
            _ => ("IN_PROGRESS", false),
        }
    }
}

async fn vehicles(State(m): State<FordMock>, headers: HeaderMap) -> Response {
    let Some(account) = m.account(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let list: Vec<_> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| json!({"vehicleId": vehicle_id(&c.vin), "vin": c.vin, "make": "Ford",
                         "modelName": c.model, "modelYear": c.year.to_string(), "color": "RAPID RED",
                         "nickName": "", "modemEnabled": true, "vehicleAuthorizationIndicator": 1,
                         "serviceCompatible": true}))
        .collect();
    Json(json!({"vehicles": list, "status": "SUCCESS"})).into_response()
}

async fn command(
    State(m): State<FordMock>,
    Path(vin): Path<String>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(account) = m.account(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let kind = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string));
    let lock_to = match kind.as_deref() {
        Some("lock") => true,
        Some("unlock") => false,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": "unknown command type"})),
            )
                .into_response();
        }
    };
    let Some(car) = m.garage.with_owned(&account, &vin, |c| c.clone()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let id = random_token("cmd-");
    let stage = m.stage * if car.asleep { 3 } else { 1 };
    // FordPass wakes a sleeping car itself, unless the car's timing queues commands.
    if car.asleep && car.timing.queue_ms == 0 {
        m.garage.update(&vin, |c| c.asleep = false);
    }
    let delivery = (!car.refusing).then(|| {
        let fault = fault.map(|f| f.0).unwrap_or_default();
        m.garage.deliver(&vin, lock_to, stage * 2, fault)
    });
    lock(&m.commands).insert(
        id.clone(),
        Cmd {
            id: id.clone(),
            vin,
            lock_to,
            created: Instant::now(),
            stage,
            applied: false,
            delivery,
        },
    );
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "status": "SUCCESS"})),
    )
        .into_response()
}

async fn telemetry(
    State(m): State<FordMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(account) = m.account(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if m.garage.with_owned(&account, &vin, |_| ()).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut states = json!({});
    let mut applied = false;
    {
        let mut cmds = lock(&m.commands);
        for (name, to) in [("lockCommand", true), ("unlockCommand", false)] {
            let latest = cmds
                .values_mut()
                .filter(|c| c.vin == vin && c.lock_to == to)
                .max_by_key(|c| c.created);
            if let Some(c) = latest {
                let (to_state, now_applied) = m.advance(c);
                applied |= now_applied;
                states[name] = json!({"updateTime": stamp(), "value": {"commandId": c.id, "toState": to_state}});
            }
        }
    }
    let Some((c, reported)) = m.garage.view(&vin) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let t = stamp();
    let lock_t = rfc3339(reported);
    let lock = if c.locked { "LOCKED" } else { "UNLOCKED" };
    let door = |open: bool, door: &str, side: &str| {
        json!({"updateTime": lock_t,
        "value": if open { "OPEN" } else { "CLOSED" }, "vehicleDoor": door, "vehicleSide": side})
    };
    let o = c.open;
    // Ford reports the driver's door and ALL_DOORS (marq24/ha-fordpass's Mach-E sample).
    let mut resp = Json(json!({
        "updateTime": t,
        "vehicleId": vehicle_id(&c.vin),
        "metrics": {
            "position": {"updateTime": t, "value": {"location": {"lat": c.latitude, "lon": c.longitude, "alt": 180.0}, "gpsDimension": "3D"}},
            "heading": {"updateTime": t, "value": c.heading},
            "doorLockStatus": [
                {"updateTime": lock_t, "value": lock, "vehicleDoor": "UNSPECIFIED_FRONT",
                 "vehicleOccupantRole": "DRIVER", "vehicleSide": "DRIVER"},
                {"updateTime": lock_t, "value": lock, "vehicleDoor": "ALL_DOORS"},
            ],
            "doorStatus": [
                door(o.front_left, "UNSPECIFIED_FRONT", "DRIVER"),
                door(o.front_right, "UNSPECIFIED_FRONT", "PASSENGER"),
                door(o.rear_left, "UNSPECIFIED_REAR", "DRIVER"),
                door(o.rear_right, "UNSPECIFIED_REAR", "PASSENGER"),
                door(o.trunk, "TAILGATE", "UNKNOWN"),
                door(o.frunk, "HOOD_DOOR", "UNKNOWN"),
            ],
            "odometer": {"updateTime": t, "value": 12000.0},
        },
        "states": states,
    }))
    .into_response();
    if applied {
        resp.extensions_mut().insert(Applied);
    }
    resp
}

/// Ford's own id for a car (stable per VIN).
fn vehicle_id(vin: &str) -> String {
    format!("{:0>32}", vin.to_ascii_lowercase())
}

async fn inspect(State(m): State<FordMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for FordMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for FordMock {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn limit_next(&self) -> Option<Duration> {
        // Ford: 429 with Retry-After.
        self.faults
            .limit_next("/v1/", Some(json!({"message": "Too Many Requests"})), 10)
    }
}
