//! The mock's Fleet API handlers for reads, wake-ups and REST commands (signed commands
//! are in [`super::signed`]).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyway_adapter::mock::timeline::DeliveryFault;
use keyway_adapter::mock::{Applied, lock};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{CommandProtocol, Power, TeslaMock, listed, now_ms, tesla_error};

pub(super) async fn list(State(m): State<TeslaMock>, headers: HeaderMap) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut w = lock(&m.world);
    w.tick();
    let vehicles: Vec<Value> = w
        .vehicles
        .values()
        .filter(|v| v.account == account)
        .map(listed)
        .collect();
    Json(json!({"count": vehicles.len(), "response": vehicles})).into_response()
}

pub(super) async fn one(
    State(m): State<TeslaMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut w = lock(&m.world);
    match w.car(&vin).filter(|v| v.account == account) {
        Some(v) => Json(json!({"response": listed(v)})).into_response(),
        None => tesla_error(StatusCode::NOT_FOUND, "not_found").into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct DataQuery {
    endpoints: Option<String>,
}

pub(super) async fn vehicle_data(
    State(m): State<TeslaMock>,
    Path(vin): Path<String>,
    Query(q): Query<DataQuery>,
    headers: HeaderMap,
) -> Response {
    let endpoints = q.endpoints.unwrap_or_default();
    let result = m.with_awake_car(&headers, &vin, |v| {
        let mut body = listed(v);
        let ts = now_ms();
        if endpoints.is_empty() || endpoints.contains("location_data") {
            body["drive_state"] = json!({
                "latitude": v.latitude, "longitude": v.longitude, "heading": v.heading,
                "native_latitude": v.latitude, "native_longitude": v.longitude,
                "native_location_supported": 1, "native_type": "wgs",
                "active_route_latitude": v.latitude, "active_route_longitude": v.longitude,
                "active_route_traffic_minutes_delay": 0,
                "gps_as_of": ts / 1000, "timestamp": ts,
                "shift_state": null, "speed": null, "power": 0,
            });
        }
        if endpoints.is_empty() || endpoints.contains("vehicle_state") {
            body["vehicle_state"] = json!({
                "locked": v.locked, "timestamp": ts, "df": u8::from(v.open.front_left),
                "pf": u8::from(v.open.front_right), "dr": u8::from(v.open.rear_left),
                "pr": u8::from(v.open.rear_right), "ft": u8::from(v.open.frunk),
                "rt": u8::from(v.trunk_open), "is_user_present": v.user_present,
                "vehicle_name": v.display_name, "car_version": "2024.20.9", "sentry_mode": false,
                "api_version": 71, "autopark_state_v3": "ready", "calendar_supported": true,
                "center_display_state": 0, "fd_window": 0, "fp_window": 0,
                "odometer": 15720.07, "valet_mode": false,
            });
        }
        body
    });
    match result {
        Ok(mut body) => {
            // The lock as Tesla's servers last heard it from the car.
            if body.get("vehicle_state").is_some()
                && let Some((locked, at)) = lock(&m.world).view(&vin)
            {
                body["vehicle_state"]["locked"] = json!(locked);
                body["vehicle_state"]["timestamp"] =
                    json!(at.unix_timestamp() * 1000 + i64::from(at.millisecond()));
            }
            Json(json!({"response": body})).into_response()
        }
        Err(r) => r.into_response(),
    }
}

pub(super) async fn wake_up(
    State(m): State<TeslaMock>,
    Path(vin): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut w = lock(&m.world);
    let delay = w.wake_delay;
    let Some(v) = w.car(&vin).filter(|v| v.account == account) else {
        return tesla_error(StatusCode::NOT_FOUND, "not_found").into_response();
    };
    if v.state == Power::Asleep && v.waking_until.is_none() {
        if delay.is_zero() {
            v.state = Power::Online;
        } else {
            v.waking_until = Some(Instant::now() + delay);
        }
    }
    Json(json!({"response": listed(v)})).into_response()
}

/// Tesla's refusal of an unsigned REST command to a car that needs signed ones.
pub const PROTOCOL_REQUIRED: &str = "Tesla Vehicle Command Protocol required, please refer to the documentation here: https://developer.tesla.com/docs/fleet-api#2023-10-09-rest-api-vehicle-commands-endpoint-deprecation-warning";

pub(super) async fn command(
    State(m): State<TeslaMock>,
    Path((vin, verb)): Path<(String, String)>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
) -> Response {
    let lock_to = match verb.as_str() {
        "door_lock" => true,
        "door_unlock" => false,
        _ => return tesla_error(StatusCode::NOT_FOUND, "not_found").into_response(),
    };
    let car = m.with_awake_car(&headers, &vin, |v| (v.user_present, v.protocol));
    let result = car.and_then(|(present, protocol)| {
        // Cars on the Vehicle Command Protocol take only signed commands.
        if protocol == CommandProtocol::Signed {
            return Err(tesla_error(StatusCode::FORBIDDEN, PROTOCOL_REQUIRED));
        }
        if present {
            return Ok((false, json!({"result": false, "reason": "user_present"})));
        }
        let fault = fault.map(|f| f.0).unwrap_or_default();
        if lock(&m.world).deliver(&vin, lock_to, fault) {
            Ok((true, json!({"result": true, "reason": ""})))
        } else {
            // On its way to the car still (late): Tesla's servers give up waiting.
            Err(tesla_error(StatusCode::GATEWAY_TIMEOUT, "upstream timeout"))
        }
    });
    match result {
        Ok((applied, body)) => {
            let mut resp = Json(json!({"response": body})).into_response();
            if applied {
                resp.extensions_mut().insert(Applied);
            }
            resp
        }
        Err(r) => r.into_response(),
    }
}

impl TeslaMock {
    /// The Fleet API: the vehicle list, one vehicle, its data, wake-up and REST commands.
    pub(super) fn fleet_routes(&self) -> axum::Router<TeslaMock> {
        use axum::routing::{get, post};
        axum::Router::new()
            .route("/api/1/vehicles", get(list))
            .route("/api/1/products", get(list))
            .route("/api/1/vehicles/{vin}", get(one))
            .route("/api/1/vehicles/{vin}/vehicle_data", get(vehicle_data))
            .route("/api/1/vehicles/{vin}/wake_up", post(wake_up))
            .route("/api/1/vehicles/{vin}/command/{verb}", post(command))
    }
}
