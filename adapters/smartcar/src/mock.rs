//! A stateful fake of Smartcar's vehicle API v2.0 and v3 ([`v3`]), served by axum.
//!
//! Behaves as Smartcar's reference describes: every call needs a bearer token; vehicles
//! are addressed by Smartcar's own UUIDs ([`vehicle_id`] of the VIN), listed in pages
//! (`limit` ≤ 50, `offset`); the make comes from the VIN's manufacturer code ([`MAKES`]);
//! `GET /security` and `/location` answer the cloud's lagging view with `sc-data-age`;
//! `POST /security {"action"}` answers `{"status": "success"}` once the car executed
//! it, 409 `VEHICLE_STATE`/`ASLEEP` while it sleeps (Smartcar has no wake-up), 409
//! `VEHICLE_STATE`/`REMOTE_ACCESS_DISABLED` when the car refuses, 501
//! `COMPATIBILITY`/`VEHICLE_NOT_CAPABLE` for a car whose make Smartcar cannot command,
//! and 502 `UPSTREAM`/`NO_RESPONSE` when the make's cloud does not answer in time (the
//! car may still act). OAuth comes from the kit with Smartcar's profile: HTTP Basic
//! client auth, rotating refresh tokens, 400 `invalid_grant`; Connect's redirect names
//! the owner too (`user_id`, for v3 clients) and `/oauth2/token` grants the application
//! its own token. The compatibility API ([`compatibility`]) says, for the
//! application's credentials, which cars cannot take `control_security`.
//!
//! Webhooks: [`SmartcarMock::vehicle_state`] is the signed `VEHICLE_STATE` Smartcar
//! would push about a car now, and `POST /__mock/webhooks/deliver {"callback", "event",
//! "vehicle"}` delivers one (`VEHICLE_STATE`, or `VERIFY` with a check of the answer).
//!
//! Simplified: no per-vehicle request counting (faults answer Smartcar's 429), no
//! `permissions`, batch or make-specific endpoints; webhooks go out when asked, not on
//! their own. Controls: `GET /__mock/state`, `/__mock/requests`, `/__mock/faults`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::{Login, Parts};
use keyway_adapter::mock::timeline::{Delivery, DeliveryFault, now_utc, rfc3339};
use keyway_adapter::mock::{Applied, MockServer, Rejection, bearer, random_token};
use serde::Deserialize;
use serde_json::json;

/// One mock car (the kit's). Its `vin` is the real VIN; the mock addresses it by
/// [`vehicle_id`].
pub use keyway_adapter::mock::garage::Car as MockCar;

pub mod compatibility;
pub mod v3;
mod webhooks;

/// The make Smartcar reports for a VIN's world manufacturer identifier (its first three
/// characters), for the makes the demo fleet has.
pub const MAKES: &[(&str, &str)] = &[
    ("SAD", "JAGUAR"),
    ("SAL", "LAND ROVER"),
    ("1N4", "NISSAN"),
    ("JTD", "TOYOTA"),
    ("JTM", "TOYOTA"),
    ("WDD", "MERCEDES-BENZ"),
    ("W1K", "MERCEDES-BENZ"),
    ("1C4", "JEEP"),
    ("5YJ", "TESLA"),
    ("WBA", "BMW"),
    ("KNA", "KIA"),
    ("YV1", "VOLVO"),
];

/// Mock settings.
#[derive(Clone, Debug)]
pub struct SmartcarMockConfig {
    /// The OAuth side: client, secret, default login, access-token lifetime.
    pub login: Login,
    /// The cars, by their real VINs.
    pub cars: Vec<MockCar>,
    /// VINs of cars Smartcar reads but cannot command (`VEHICLE_NOT_CAPABLE`).
    pub incapable: Vec<String>,
    /// The application management token Smartcar signs its webhooks with.
    pub management_token: String,
}

impl Default for SmartcarMockConfig {
    fn default() -> Self {
        Self {
            login: Login {
                client_id: "keyway".into(),
                client_secret: Some("secret".into()),
                default_account: "owner".into(),
                access_ttl: Duration::from_secs(7200),
            },
            cars: Vec::new(),
            incapable: Vec::new(),
            management_token: "sc-management-token".into(),
        }
    }
}

/// What the mock knows of a car beyond the kit's [`MockCar`].
#[derive(Clone, Debug)]
struct Listing {
    vin: String,
    make: String,
    commands: bool,
}

/// The mock: cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct SmartcarMock {
    parts: Parts,
    /// By Smartcar id.
    listings: Arc<HashMap<String, Listing>>,
    /// What webhooks are signed with.
    management_token: Arc<String>,
    /// When owners who never used Connect here connected: an hour before the mock
    /// started.
    started: time::OffsetDateTime,
}

/// Smartcar's id of a car: a UUID-shaped digest of its VIN (stable, so a fleet file
/// and the mock agree without a table).
pub fn vehicle_id(vin: &str) -> String {
    // FNV-1a, twice with different offsets: 128 bits, printed as a UUID.
    let fnv = |seed: u64| {
        vin.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The make for a VIN, by its manufacturer code (`UNKNOWN` when [`MAKES`] lacks it).
pub fn make_of(vin: &str) -> &'static str {
    MAKES
        .iter()
        .find(|(wmi, _)| vin.starts_with(wmi))
        .map_or("UNKNOWN", |(_, make)| make)
}

/// A Smartcar error answer.
fn error(status: u16, kind: &str, code: Option<&str>, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let resolution = match kind {
        "RATE_LIMIT" | "UPSTREAM" => json!({"type": "RETRY_LATER"}),
        "PERMISSION" | "AUTHENTICATION" => json!({"type": "REAUTHENTICATE"}),
        _ => json!({"type": null}),
    };
    let body = json!({
        "type": kind,
        "code": code,
        "description": description,
        "docURL": format!("https://smartcar.com/docs/errors/api-errors/{}", kind.to_lowercase()),
        "statusCode": status.as_u16(),
        "requestId": random_token(""),
        "resolution": resolution,
        "suggestedUserMessage": "Your vehicle is temporarily unable to connect. Please try again later.",
    });
    (status, Json(body)).into_response()
}

/// A Smartcar error before any car is touched (small, unlike a [`Response`]).
#[derive(Debug)]
struct Refused {
    status: u16,
    kind: &'static str,
    code: Option<&'static str>,
    description: &'static str,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.status, self.kind, self.code, self.description)
    }
}

fn unauthorized() -> Refused {
    Refused {
        status: 401,
        kind: "AUTHENTICATION",
        code: None,
        description: "The provided authorization credentials are invalid or expired.",
    }
}

fn not_found() -> Refused {
    Refused {
        status: 404,
        kind: "RESOURCE_NOT_FOUND",
        code: Some("PATH"),
        description: "The requested resource does not exist.",
    }
}

/// An answer with Smartcar's data headers: when the make recorded it.
fn with_age(body: serde_json::Value, recorded: time::OffsetDateTime) -> Response {
    let mut resp = Json(body).into_response();
    if let Ok(v) = http::HeaderValue::try_from(rfc3339(recorded)) {
        resp.headers_mut().insert("sc-data-age", v);
    }
    if let Ok(v) = http::HeaderValue::try_from(rfc3339(now_utc())) {
        resp.headers_mut().insert("sc-fetched-at", v);
    }
    resp
}

#[derive(Deserialize)]
struct Paging {
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Deserialize)]
struct SecurityAction {
    action: String,
}

impl SmartcarMock {
    /// A mock with the given cars and settings.
    pub fn new(config: SmartcarMockConfig) -> Self {
        let mut listings = HashMap::new();
        let cars = config
            .cars
            .into_iter()
            .map(|c| {
                let id = vehicle_id(&c.vin);
                listings.insert(
                    id.clone(),
                    Listing {
                        make: make_of(&c.vin).to_string(),
                        commands: !config.incapable.contains(&c.vin),
                        vin: c.vin.clone(),
                    },
                );
                MockCar { vin: id, ..c }
            })
            .collect();
        // Connect answers v2.0 clients (the code) and v3 clients (the owner) alike.
        let profile = keyway_adapter::OAuthProfile {
            linking: crate::adapter::INFO_V3.oauth.linking,
            ..crate::adapter::INFO.oauth
        };
        Self {
            parts: Parts::new(&profile, cars, config.login, Rejection::invalid_grant()),
            listings: Arc::new(listings),
            management_token: Arc::new(config.management_token),
            started: now_utc() - time::Duration::hours(1),
        }
    }

    /// The router: the vehicle API, OAuth and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v2.0/vehicles", get(vehicles))
            .route("/v2.0/vehicles/{id}", get(attributes))
            .route("/v2.0/vehicles/{id}/vin", get(vin))
            .route("/v2.0/vehicles/{id}/security", get(security).post(command))
            .route("/v2.0/vehicles/{id}/location", get(location))
            .route("/__mock/state", get(inspect))
            .merge(self.v3_routes())
            .merge(self.compatibility_routes())
            .merge(self.webhook_routes())
            .with_state(self.clone())
            .merge(self.oauth.token_route("/oauth2/token"));
        self.parts.finish(api, "/oauth/authorize", "/oauth/token")
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car, by Smartcar id.
    pub fn car(&self, id: &str) -> Option<MockCar> {
        self.garage.car(id)
    }

    /// Changes one car, by Smartcar id.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut MockCar)) {
        self.garage.update(id, f);
    }

    /// The account behind a request with a valid token.
    fn authorize(&self, headers: &HeaderMap) -> Result<String, Refused> {
        let token = bearer(headers).ok_or_else(unauthorized)?;
        self.tokens.check(token).map_err(|_| unauthorized())
    }

    /// Runs `f` on a car the token's account owns.
    fn with_car<T>(
        &self,
        headers: &HeaderMap,
        id: &str,
        f: impl FnOnce(&mut MockCar) -> T,
    ) -> Result<T, Refused> {
        let account = self.authorize(headers)?;
        self.garage
            .with_owned(&account, id, f)
            .ok_or_else(not_found)
    }

    /// Smartcar's answer to a command the car `id` will not take now, if any: a make
    /// Smartcar cannot command, a sleeping car, a car refusing remote access.
    fn refuses(&self, id: &str, car: &MockCar) -> Option<Response> {
        if !self.listing(id).commands {
            return Some(error(
                501,
                "COMPATIBILITY",
                Some("VEHICLE_NOT_CAPABLE"),
                "The vehicle is incapable of performing your request.",
            ));
        }
        if car.asleep {
            return Some(asleep());
        }
        car.refusing.then(|| {
            error(
                409,
                "VEHICLE_STATE",
                Some("REMOTE_ACCESS_DISABLED"),
                "Remote access is disabled on this vehicle.",
            )
        })
    }

    /// The next request under `prefix` answers Smartcar's 429 (`RATE_LIMIT`/`VEHICLE`,
    /// `retry-after` in seconds); the announced wait.
    fn limit_on(&self, prefix: &str) -> Option<Duration> {
        self.faults.limit_next(
            prefix,
            Some(json!({
                "type": "RATE_LIMIT",
                "code": "VEHICLE",
                "description": "You have reached the throttling rate limit for this vehicle.",
                "statusCode": 429,
                "resolution": {"type": "RETRY_LATER"},
            })),
            30,
        )
    }

    fn listing(&self, id: &str) -> Listing {
        self.listings.get(id).cloned().unwrap_or(Listing {
            vin: id.to_string(),
            make: "UNKNOWN".into(),
            commands: true,
        })
    }
}

async fn vehicles(
    State(m): State<SmartcarMock>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let limit = p.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return error(
            400,
            "VALIDATION",
            Some("PARAMETER"),
            "limit must be between 1 and 50.",
        );
    }
    let offset = p.offset.unwrap_or(0);
    let mut ids: Vec<String> = m
        .garage
        .owned_by(&account)
        .into_iter()
        .map(|c| c.vin)
        .collect();
    ids.sort();
    let page: Vec<&String> = ids.iter().skip(offset).take(limit).collect();
    Json(json!({"paging": {"count": ids.len(), "offset": offset}, "vehicles": page}))
        .into_response()
}

async fn attributes(
    State(m): State<SmartcarMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let make = m.listing(&id).make;
    match m.with_car(
        &headers,
        &id,
        |c| json!({"id": c.vin, "make": make, "model": c.model, "year": c.year}),
    ) {
        Ok(a) => Json(a).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn vin(
    State(m): State<SmartcarMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let vin = m.listing(&id).vin;
    match m.with_car(&headers, &id, |_| ()) {
        Ok(()) => Json(json!({"vin": vin})).into_response(),
        Err(e) => e.into_response(),
    }
}

fn asleep() -> Response {
    error(
        409,
        "VEHICLE_STATE",
        Some("ASLEEP"),
        "The vehicle is in a sleep state and temporarily unable to perform your request.",
    )
}

async fn security(
    State(m): State<SmartcarMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.with_car(&headers, &id, |c| c.asleep) {
        Ok(true) => return asleep(),
        Ok(false) => {}
        Err(e) => return e.into_response(),
    }
    // The lock as the make's cloud last heard it from the car (the kit's lagging view).
    let Some((c, reported)) = m.garage.view(&id) else {
        return not_found().into_response();
    };
    let status = |open: bool| if open { "OPEN" } else { "CLOSED" };
    let o = c.open;
    let opening = |kind: &str, open: bool| json!({"type": kind, "status": status(open)});
    with_age(
        json!({
            "isLocked": c.locked,
            "doors": [
                opening("frontLeft", o.front_left), opening("frontRight", o.front_right),
                opening("backLeft", o.rear_left), opening("backRight", o.rear_right),
            ],
            "windows": [
                opening("frontLeft", false), opening("frontRight", false),
                opening("backLeft", false), opening("backRight", false),
            ],
            "sunroof": [opening("sunroof", false)],
            "storage": [opening("rear", o.trunk), opening("front", o.frunk)],
            "chargingPort": [opening("chargingPort", false)],
        }),
        reported,
    )
}

async fn location(
    State(m): State<SmartcarMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match m.with_car(&headers, &id, |c| c.clone()) {
        Ok(c) if c.asleep => asleep(),
        Ok(c) => with_age(
            json!({"latitude": c.latitude, "longitude": c.longitude}),
            now_utc(),
        ),
        Err(e) => e.into_response(),
    }
}

async fn command(
    State(m): State<SmartcarMock>,
    Path(id): Path<String>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
    body: Option<Json<SecurityAction>>,
) -> Response {
    let car = match m.with_car(&headers, &id, |c| c.clone()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let lock_to = match body.as_ref().map(|b| b.action.as_str()) {
        Some("LOCK") => true,
        Some("UNLOCK") => false,
        _ => {
            return error(
                400,
                "VALIDATION",
                Some("PARAMETER"),
                "action must be LOCK or UNLOCK.",
            );
        }
    };
    if let Some(refused) = m.refuses(&id, &car) {
        return refused;
    }
    // The car executes it now, unless its timing or a fault holds it back (late): then
    // the make's cloud does not answer Smartcar in time, and the car may still act.
    let fault = fault.map(|f| f.0).unwrap_or_default();
    let delivery = m.garage.deliver(&id, lock_to, Duration::ZERO, fault);
    match m.garage.delivery(&id, delivery) {
        Some(Delivery::Executed) => {
            let mut resp = Json(
                json!({"status": "success", "message": "Successfully sent request to vehicle"}),
            )
            .into_response();
            resp.extensions_mut().insert(Applied);
            resp
        }
        _ => error(
            502,
            "UPSTREAM",
            Some("NO_RESPONSE"),
            "The vehicle's manufacturer did not respond in time.",
        ),
    }
}

async fn inspect(State(m): State<SmartcarMock>) -> Response {
    Json(m.state_document()).into_response()
}

impl std::ops::Deref for SmartcarMock {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl GarageMock for SmartcarMock {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn limit_next(&self) -> Option<Duration> {
        self.limit_on("/v2.0/")
    }

    fn push_delivery(&self, oem_id: &str) -> Option<keyway_adapter::mock::PushDelivery> {
        let (body, signature) = self.vehicle_state(oem_id)?;
        let mut headers = http::HeaderMap::new();
        headers.insert(crate::push::SIGNATURE, signature.parse().ok()?);
        Some(keyway_adapter::mock::PushDelivery {
            headers,
            body,
            secret: self.management_token.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuids_and_distinct() {
        let a = vehicle_id("SADHA2B18N1000001");
        assert_eq!(a, vehicle_id("SADHA2B18N1000001"));
        assert_ne!(a, vehicle_id("SADHA2B18N1000002"));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(make_of("SADHA2B18N1000001"), "JAGUAR");
        assert_eq!(make_of("XXX"), "UNKNOWN");
    }
}
