//! A stateful fake of GM's OnStar API, served by axum.
//!
//! Behaves as OEM-REFERENCE.md and `fixtures/gm/` describe: the garage answers the
//! GraphQL query at `POST /mbff/garage/v1`;
//! `POST /veh/cmd/v3/{lock|unlock|location}/{VIN}` answers 202 in v3's top-level shape
//! `{requestId, requestTime, status: "IN_PROGRESS", url}` with an absolute status URL;
//! polling it reports `IN_PROGRESS` for `stage` (three times as long while the car
//! sleeps: OnStar reaches it by SMS), then `SUCCESS` — the lock changes then, and a
//! location answer carries `body.location.{lat, long}` as strings — or `FAILURE` with an
//! `error` when the car refuses. Error bodies are empty (as GM's often are). OAuth is the kit's with
//! GM's profile: PKCE code exchange, then an RFC 8693 token exchange.
//!
//! Simplified: the B2C login and the token exchange share one token endpoint (GM uses
//! two hosts); no PIN upgrade for commands; no diagnostics or other commands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::{Login, Parts};
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault};
use keyway_adapter::mock::{Applied, MockServer, Rejection, bearer, lock, random_token};
use serde_json::json;
use tokio::time::Instant;

/// One mock car (the kit's).
pub use keyway_adapter::mock::garage::Car as MockCar;

/// Mock settings.
#[derive(Clone, Debug)]
pub struct GmMockConfig {
    /// How long a request stays `inProgress`.
    pub stage: Duration,
    /// The OAuth side: client, secret, default login, access-token lifetime.
    pub login: Login,
    /// The cars.
    pub cars: Vec<MockCar>,
}

impl Default for GmMockConfig {
    fn default() -> Self {
        Self {
            stage: Duration::from_secs(2),
            login: Login {
                client_id: "keyway".into(),
                client_secret: None,
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(1800),
            },
            cars: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lock(bool),
    Location,
}

#[derive(Debug)]
struct Request {
    vin: String,
    /// `lock`, `unlock` or `location`, and when it was asked (for the answers).
    what: String,
    requested: String,
    created: Instant,
    stage: Duration,
    refused: bool,
    done: bool,
    /// A lock/unlock's delivery to the car (the kit's timeline).
    delivery: Option<u64>,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct GmMock {
    parts: Parts,
    requests: Arc<Mutex<HashMap<String, Request>>>,
    stage: Duration,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl GmMock {
    /// A mock with the given cars and settings.
    pub fn new(config: GmMockConfig) -> Self {
        Self {
            parts: Parts::new(
                &crate::adapter::INFO.oauth,
                config.cars,
                config.login,
                Rejection::invalid_grant(),
            ),
            requests: Arc::default(),
            stage: config.stage,
        }
    }

    /// The router: OnStar, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/mbff/garage/v1", post(garage))
            .route("/veh/cmd/v3/{what}/{vin}", post(start))
            .route("/api/v1/account/vehicles/{vin}/requests/{id}", get(status))
            .route("/__mock/state", get(inspect))
            .with_state(self.clone());
        self.parts
            .finish(api, "/oauth2/v2.0/authorize", "/oauth2/v2.0/token")
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car (requests that are due applied first).
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

    /// A request's state: (status, location when done, applied by this call).
    fn advance(&self, id: &str) -> Option<(&'static str, Option<MockCar>, bool)> {
        let mut requests = lock(&self.requests);
        let r = requests.get_mut(id)?;
        if r.created.elapsed() < r.stage {
            return Some(("inProgress", None, false));
        }
        if r.refused {
            return Some(("failure", None, false));
        }
        if let Some(delivery) = r.delivery {
            // A lock/unlock succeeds when the car executed it.
            return Some(match self.garage.delivery(&r.vin, delivery) {
                Some(Delivery::Executed) => {
                    let first = !r.done;
                    r.done = true;
                    ("success", self.garage.car(&r.vin), first)
                }
                Some(Delivery::Expired) => ("failure", None, false),
                _ => ("inProgress", None, false),
            });
        }
        r.done = true;
        Some(("success", self.garage.car(&r.vin), false))
    }
}

/// The v3 garage: answers the GraphQL `vehicles` query (any query text; the mock does
/// not select fields).
async fn garage(State(m): State<GmMock>, headers: HeaderMap) -> Response {
    let Some(account) = m.account(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let list: Vec<_> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| {
            json!({"vin": c.vin, "vehicleId": format!("v-{}", &c.vin[c.vin.len().saturating_sub(6)..]),
                   "make": "Chevrolet", "model": c.model, "nickName": "", "year": c.year,
                   "onstarStatusCode": "ACTIVE"})
        })
        .collect();
    Json(json!({"data": {"vehicles": list}})).into_response()
}

async fn start(
    State(m): State<GmMock>,
    Path((what, vin)): Path<(String, String)>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
) -> Response {
    let Some(account) = m.account(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let kind = match what.as_str() {
        "lock" => Kind::Lock(true),
        "unlock" => Kind::Lock(false),
        "location" => Kind::Location,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let Some(car) = m.garage.with_owned(&account, &vin, |c| c.clone()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let id = random_token("");
    let stage = m.stage * if car.asleep { 3 } else { 1 };
    let refused = car.refusing && kind != Kind::Location;
    // OnStar wakes a sleeping car itself, unless the car's timing queues commands.
    if car.asleep && car.timing.queue_ms == 0 {
        m.garage.update(&vin, |c| c.asleep = false);
    }
    let delivery = match kind {
        Kind::Lock(to) if !refused => {
            let fault = fault.map(|f| f.0).unwrap_or_default();
            Some(m.garage.deliver(&vin, to, stage, fault))
        }
        _ => None,
    };
    lock(&m.requests).insert(
        id.clone(),
        Request {
            vin: vin.clone(),
            what: what.clone(),
            requested: now(),
            created: Instant::now(),
            stage,
            refused,
            done: false,
            delivery,
        },
    );
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // v3 answers at the top level, in capitals.
    let body = json!({
        "requestId": id, "requestTime": now(), "status": "IN_PROGRESS", "type": what,
        "url": format!("http://{host}/api/v1/account/vehicles/{vin}/requests/{id}"),
        "error": null,
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn status(
    State(m): State<GmMock>,
    Path((vin, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(account) = m.account(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if m.garage.with_owned(&account, &vin, |_| ()).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some((state, car, applied)) = m.advance(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = match state {
        "success" => "SUCCESS",
        "failure" => "FAILURE",
        _ => "IN_PROGRESS",
    };
    let (what, requested) = lock(&m.requests)
        .get(&id)
        .map(|r| (r.what.clone(), r.requested.clone()))
        .unwrap_or_default();
    let mut cr = json!({"requestId": id, "requestTime": requested, "type": what,
                        "status": status, "error": null});
    if state == "success" {
        cr["completionTime"] = json!(now());
        if let Some(c) = car {
            cr["body"] = json!({"location": {"lat": c.latitude.to_string(), "long": c.longitude.to_string()}});
        }
    }
    if state == "failure" {
        cr["error"] =
            json!({"code": "ONS-300", "description": "Vehicle could not complete the request"});
    }
    let mut resp = Json(cr).into_response();
    if applied {
        resp.extensions_mut().insert(Applied);
    }
    resp
}

async fn inspect(State(m): State<GmMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for GmMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for GmMock {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn limit_next(&self) -> Option<Duration> {
        // GM: 429 with Retry-After and (often) an empty body.
        self.faults.limit_next("/", None, 30)
    }
}
