//! The mock's CCS2 door control: the owner's PIN traded for a control token
//! (`PUT /api/v1/user/pin`), which authorizes `POST /api/v2/spa/vehicles/{id}/ccs2/control/door`
//! (`{"command": "close"|"open"}`). A wrong PIN answers without a control token (the
//! refusal's body is ours: the public clients tell it only by the missing token); after
//! three wrong PINs in a row the owner is locked out (the kit's `OwnerPins`). The older door
//! control refuses CCS2 cars (`resCode 4005`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyway_adapter::mock::timeline::DeliveryFault;
use keyway_adapter::mock::{bearer, lock, random_token};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{HyundaiMock, unsupported};

/// How long a control token is valid.
const CONTROL_TTL_S: u64 = 3600;

fn refusal() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"retCode": "F", "resCode": "4010", "resMsg": "Invalid PIN"})),
    )
        .into_response()
}

/// `PUT /api/v1/user/pin`: `{"deviceId", "pin"}` → `{"controlToken", "expiresTime"}`.
pub async fn pin(
    State(m): State<HyundaiMock>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let account = match m.account(&headers) {
        Ok(a) => a,
        Err(s) => return s.into_response(),
    };
    let given = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["pin"].as_str().map(str::to_string));
    let mut pins = lock(&m.pins);
    if pins.owners.check(&account, given.as_deref()).is_err() {
        return refusal();
    }
    let token = random_token("ctl_");
    let until = Instant::now() + std::time::Duration::from_secs(CONTROL_TTL_S);
    pins.tokens.insert(token.clone(), (account, until));
    Json(json!({"controlToken": token, "expiresTime": CONTROL_TTL_S})).into_response()
}

/// `POST /api/v2/spa/vehicles/{id}/ccs2/control/door` with a control token.
pub async fn door(
    State(m): State<HyundaiMock>,
    Path(id): Path<String>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // The stamp as everywhere; the bearer is a control token of the car's owner.
    if let Err(s) = m.stamped(&headers) {
        return s.into_response();
    }
    let owner = bearer(&headers).and_then(|t| {
        let pins = lock(&m.pins);
        pins.tokens
            .get(t)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(a, _)| a.clone())
    });
    let Some(owner) = owner else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(car) = m.garage.with_owned(&owner, &id, |c| c.clone()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !m.ccs2.contains(&car.vin) {
        return unsupported();
    }
    let command = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["command"].as_str().map(str::to_string));
    match command.as_deref() {
        Some("close") => m.start_control(&car, true, fault.map(|f| f.0)),
        Some("open") => m.start_control(&car, false, fault.map(|f| f.0)),
        _ => Json(json!({"retCode": "F", "resCode": "9999", "resMsg": "bad command"}))
            .into_response(),
    }
}

impl HyundaiMock {
    /// The CCS2 routes: the PIN's trade for a control token, and the door control.
    pub(super) fn ccs2_routes(&self) -> axum::Router<HyundaiMock> {
        axum::Router::new()
            .route(
                "/api/v2/spa/vehicles/{id}/ccs2/control/door",
                axum::routing::post(door),
            )
            .route("/api/v1/user/pin", axum::routing::put(pin))
    }
}
