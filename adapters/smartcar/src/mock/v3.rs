//! The Smartcar mock's API v3, beside its v2.0 on the same cars and logins: the
//! application's token (`POST /oauth2/token`, `client_credentials`) on every call,
//! the owner in `sc-user-id` (the id Connect's redirect names, [`owner_id`]).
//!
//! - `GET /v3/connections?user_id=&page=&pageSize=`: the application's connections,
//!   every owner's unless filtered (as Smartcar's is: the filter is the caller's to
//!   set), each with the time its owner last approved Connect.
//! - `GET /v3/vehicles/{id}`: the attributes (`make`, `model`, `year`, …; no VIN, as
//!   the reference's example has none).
//! - `GET /v3/vehicles/{id}/signals/{closure-islocked|location-preciselocation}`: one
//!   signal; the lock as the make's cloud last heard it, with `oemUpdatedAt` then.
//! - `POST /v3/vehicles/{id}/commands/security/{lock|unlock}`: `200` with a
//!   `SUCCESS` `command-execution` once the car executed it; `202` `PENDING` while the
//!   make has not answered (the car may still act); v2.0's errors otherwise.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use keyway_adapter::mock::GarageMock;
use keyway_adapter::mock::garage::Parts;
use keyway_adapter::mock::timeline::{DeliveryFault, now_utc, rfc3339};
use keyway_adapter::mock::{APPLICATION, Applied, PushDelivery, bearer, owner_id, random_token};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MockCar, Refused, SmartcarMock, asleep, error, not_found, unauthorized};
use crate::v3::USER_HEADER;

/// The Smartcar mock seen as API v3 clients see it: the suite's owner is named by its
/// id ([`GarageMock::owner_credential`]), and its rate limits answer on `/v3/`.
#[derive(Clone, Debug)]
pub struct SmartcarV3Mock(pub SmartcarMock);

impl GarageMock for SmartcarV3Mock {
    fn parts(&self) -> &Parts {
        &self.0.parts
    }

    fn limit_next(&self) -> Option<Duration> {
        self.0.limit_on("/v3/")
    }

    fn push_delivery(&self, oem_id: &str) -> Option<PushDelivery> {
        GarageMock::push_delivery(&self.0, oem_id)
    }

    fn owner_credential(&self) -> Option<String> {
        Some(owner_id(self.0.parts.oauth.default_account()))
    }
}

fn ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}

impl SmartcarMock {
    /// The v3 routes.
    pub(super) fn v3_routes(&self) -> axum::Router<SmartcarMock> {
        use axum::routing::{get, post};
        axum::Router::new()
            .route("/v3/connections", get(connections))
            .route("/v3/vehicles/{id}", get(vehicle))
            .route("/v3/vehicles/{id}/signals/{code}", get(read_signal))
            .route(
                "/v3/vehicles/{id}/commands/security/{action}",
                post(command),
            )
    }

    /// The login `sc-user-id` names, after the application's token is checked.
    fn owner(&self, headers: &HeaderMap) -> Result<String, Refused> {
        self.application(headers)?;
        let id = headers
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        self.garage
            .all()
            .into_iter()
            .map(|c| c.account)
            .find(|a| owner_id(a) == id)
            .ok_or_else(not_found)
    }

    /// Checks the bearer is the application's token (an owner's v2.0 token is not).
    fn application(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let token = bearer(headers).ok_or_else(unauthorized)?;
        match self.tokens.check(token) {
            Ok(account) if account == APPLICATION => Ok(()),
            _ => Err(unauthorized()),
        }
    }

    fn owned<T>(
        &self,
        headers: &HeaderMap,
        id: &str,
        f: impl FnOnce(&mut MockCar) -> T,
    ) -> Result<T, Refused> {
        let account = self.owner(headers)?;
        self.garage
            .with_owned(&account, id, f)
            .ok_or_else(not_found)
    }
}

#[derive(Deserialize)]
struct Page {
    user_id: Option<String>,
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

async fn connections(
    State(m): State<SmartcarMock>,
    Query(p): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = m.application(&headers) {
        return e.into_response();
    }
    let (page, size) = (p.page.unwrap_or(1), p.page_size.unwrap_or(10));
    if page == 0 || !(1..=100).contains(&size) {
        return error(
            400,
            "VALIDATION",
            Some("PARAMETER"),
            "page or pageSize out of range.",
        );
    }
    let mut all: Vec<MockCar> = m
        .garage
        .all()
        .into_iter()
        .filter(|c| {
            p.user_id
                .as_deref()
                .is_none_or(|u| owner_id(&c.account) == u)
        })
        .collect();
    all.sort_by(|a, b| a.vin.cmp(&b.vin));
    let total = all.len();
    let data: Vec<Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|c| {
            let at = m.oauth.connected_at(&c.account).unwrap_or(m.started);
            json!({"id": format!("conn-{}", c.vin), "type": "connection", "attributes": {
                "userId": owner_id(&c.account), "vehicleId": c.vin,
                "connectedAt": rfc3339(at), "mode": "live"}})
        })
        .collect();
    let next = (page * size < total).then(|| format!("/connections?page={}", page + 1));
    Json(json!({
        "data": data,
        "meta": {"page": page, "pageSize": size, "totalCount": total},
        "links": {"self": format!("/connections?page={page}"), "next": next},
    }))
    .into_response()
}

async fn vehicle(
    State(m): State<SmartcarMock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let make = m.listing(&id).make;
    match m.owned(&headers, &id, |c| (c.model.clone(), c.year)) {
        Ok((model, year)) => Json(json!({"data": {"id": id, "type": "vehicle", "attributes": {
            "make": make, "model": model, "year": year, "powertrainType": "BEV", "mode": "live"},
            "links": {"self": format!("/vehicles/{id}")}}}))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn signal(id: &str, code: &str, name: &str, group: &str, body: Value, at: i64) -> Response {
    Json(json!({
        "id": code, "type": "signal",
        "attributes": {"code": code, "name": name, "group": group,
                       "status": {"value": "SUCCESS"}, "body": body},
        "meta": {"retrievedAt": ms(now_utc()), "oemUpdatedAt": at},
        "links": {"self": format!("/vehicles/{id}/signals/{code}"),
                  "vehicle": format!("/vehicles/{id}")},
    }))
    .into_response()
}

async fn read_signal(
    State(m): State<SmartcarMock>,
    Path((id, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let car = match m.owned(&headers, &id, |c| c.clone()) {
        Ok(c) if c.asleep => return asleep(),
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match code.as_str() {
        "closure-islocked" => {
            // The lock as the make's cloud last heard it (the kit's lagging view).
            let Some((seen, reported)) = m.garage.view(&id) else {
                return not_found().into_response();
            };
            let body = json!({"value": seen.locked});
            signal(&id, &code, "IsLocked", "Closure", body, ms(reported))
        }
        "location-preciselocation" => {
            const POINTS: [&str; 8] = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
            let point = ((car.heading.rem_euclid(360.0) + 22.5) / 45.0) as usize % 8;
            let body = json!({"latitude": car.latitude, "longitude": car.longitude,
                              "heading": car.heading, "direction": POINTS[point],
                              "locationType": "CURRENT"});
            signal(
                &id,
                &code,
                "PreciseLocation",
                "Location",
                body,
                ms(now_utc()),
            )
        }
        _ => not_found().into_response(),
    }
}

fn execution(status: u16, action: &str, value: &str, mode: &str) -> Response {
    let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let at = rfc3339(now_utc());
    // A finished execution says when it completed and how long it took.
    let meta = match status {
        200 => json!({"executedAt": at, "completedAt": at, "durationInSeconds": 0}),
        _ => json!({"executedAt": at}),
    };
    let mut resp = (
        code,
        Json(
            json!({"data": {"id": random_token("exec_"), "type": "command-execution",
            "attributes": {"commandType": format!("security-{action}"),
                           "status": {"value": value}, "executionMode": mode},
            "meta": meta}}),
        ),
    )
        .into_response();
    if status == 200 {
        resp.extensions_mut().insert(Applied);
    }
    resp
}

async fn command(
    State(m): State<SmartcarMock>,
    Path((id, action)): Path<(String, String)>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
) -> Response {
    let car = match m.owned(&headers, &id, |c| c.clone()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let lock_to = match action.as_str() {
        "lock" => true,
        "unlock" => false,
        _ => return not_found().into_response(),
    };
    if let Some(refused) = m.refuses(&id, &car) {
        return refused;
    }
    let fault = fault.map(|f| f.0).unwrap_or_default();
    let delivery = m.garage.deliver(&id, lock_to, Duration::ZERO, fault);
    match m.garage.delivery(&id, delivery) {
        Some(keyway_adapter::mock::timeline::Delivery::Executed) => {
            execution(200, &action, "SUCCESS", "sync")
        }
        // The make's cloud has not answered: long-running, and the car may still act.
        _ => execution(202, &action, "PENDING", "async"),
    }
}
