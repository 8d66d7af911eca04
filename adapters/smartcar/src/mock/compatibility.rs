//! The Smartcar mock's compatibility API: `GET /v2.0/compatibility?vin&scope&country`
//! with the application's client id and secret as HTTP Basic (anything else `401`),
//! answering for each permission asked whether the car is capable —
//! `control_security` not for a make Smartcar cannot command (`VEHICLE_NOT_CAPABLE`) —
//! and for a VIN it does not know `compatible: false` (`MAKE_NOT_COMPATIBLE`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::SmartcarMock;

impl SmartcarMock {
    /// `GET /v2.0/compatibility`.
    pub(super) fn compatibility_routes(&self) -> axum::Router<SmartcarMock> {
        axum::Router::new().route("/v2.0/compatibility", axum::routing::get(compatibility))
    }
}

async fn compatibility(
    State(m): State<SmartcarMock>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !m.oauth.basic_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"type": "AUTHENTICATION", "code": null, "statusCode": 401,
                "description": "The client id or secret is invalid."}),
            ),
        )
            .into_response();
    }
    let vin = q.get("vin").map(String::as_str).unwrap_or_default();
    let Some(listing) = m.listings.values().find(|l| l.vin == vin) else {
        return Json(
            json!({"compatible": false, "reason": "MAKE_NOT_COMPATIBLE", "capabilities": []}),
        )
        .into_response();
    };
    let endpoint = |p: &str| match p {
        "read_location" => "/location",
        "read_security" | "control_security" => "/security",
        "read_vin" => "/vin",
        _ => "/",
    };
    let capabilities: Vec<Value> = q
        .get("scope")
        .map(String::as_str)
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let capable = p != "control_security" || listing.commands;
            json!({
                "permission": p, "endpoint": endpoint(p), "capable": capable,
                "reason": if capable { Value::Null } else { json!("VEHICLE_NOT_CAPABLE") },
            })
        })
        .collect();
    Json(json!({"compatible": true, "reason": null, "capabilities": capabilities})).into_response()
}
