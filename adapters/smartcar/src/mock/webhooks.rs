//! The Smartcar mock's webhooks: the signed `VEHICLE_STATE` Smartcar would push about
//! a car now (the car's own signals, recorded now), the `VERIFY` it sends a new
//! callback, and `POST /__mock/webhooks/deliver`, which delivers one to a callback.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyway_adapter::mock::random_token;
use keyway_adapter::mock::timeline::{now_utc, rfc3339};
use serde::Deserialize;
use serde_json::json;

use super::{SmartcarMock, error, not_found};

impl SmartcarMock {
    /// `POST /__mock/webhooks/deliver`.
    pub(super) fn webhook_routes(&self) -> axum::Router<SmartcarMock> {
        axum::Router::new().route("/__mock/webhooks/deliver", axum::routing::post(deliver))
    }

    /// The `VEHICLE_STATE` webhook Smartcar would deliver now about car `id` (its
    /// signals as the car reports them, recorded now), and its `SC-Signature`.
    pub fn vehicle_state(&self, id: &str) -> Option<(Vec<u8>, String)> {
        let c = self.garage.car(id)?;
        let listing = self.listing(id);
        let at = (now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let meta = json!({"retrievedAt": at, "oemUpdatedAt": at});
        let signal = |code: &str, name: &str, group: &str, body: serde_json::Value| {
            json!({"code": code, "name": name, "group": group, "body": body,
                   "status": {"value": "SUCCESS"}, "meta": meta})
        };
        let o = c.open;
        let door = |row: u8, column: u8, open: bool| json!({"row": row, "column": column, "isOpen": open, "isLocked": c.locked});
        let body = json!({
            "eventId": random_token(""),
            "eventType": "VEHICLE_STATE",
            "vehicleId": id,
            "data": {
                "user": {"id": keyway_adapter::mock::owner_id(&c.account)},
                "vehicle": {"id": id, "make": listing.make, "model": c.model, "year": c.year},
                "signals": [
                    signal("closure-islocked", "IsLocked", "Closure", json!({"value": c.locked})),
                    signal("closure-doors", "Doors", "Closure", json!({
                        "values": [door(0, 0, o.front_left), door(0, 1, o.front_right),
                                   door(1, 0, o.rear_left), door(1, 1, o.rear_right)],
                        "rowCount": 2, "columnCount": 2})),
                    signal("closure-reartrunk", "RearTrunk", "Closure",
                           json!({"isOpen": o.trunk, "isLocked": c.locked})),
                    signal("closure-fronttrunk", "FrontTrunk", "Closure",
                           json!({"isOpen": o.frunk, "isLocked": c.locked})),
                    signal("location-preciselocation", "PreciseLocation", "Location", json!({
                        "latitude": c.latitude, "longitude": c.longitude, "heading": c.heading,
                        "direction": "N", "locationType": "CURRENT"})),
                ],
            },
            "triggers": [{"type": "SIGNAL_UPDATED",
                          "signal": {"code": "closure-islocked", "name": "IsLocked", "group": "Closure"}}],
            "meta": {"version": "4.0", "deliveryId": random_token(""), "deliveredAt": at,
                     "webhookId": "keyway-mock", "webhookName": "keyway", "signalCount": 5,
                     "mode": "TEST"},
        });
        let bytes = serde_json::to_vec(&body).ok()?;
        let signature = crate::push::sign(&self.management_token, &bytes);
        Some((bytes, signature))
    }

    /// The `VERIFY` webhook Smartcar sends to a new callback, its signature, and the
    /// answer it expects.
    pub fn verify(&self) -> (Vec<u8>, String, String) {
        let challenge = random_token("");
        let body = json!({"eventId": random_token(""), "eventType": "VERIFY",
            "data": {"challenge": challenge},
            "meta": {"version": "4.0", "webhookId": "keyway-mock", "webhookName": "keyway",
                     "deliveryId": random_token(""), "deliveredAt": rfc3339(now_utc())}});
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let signature = crate::push::sign(&self.management_token, &bytes);
        let expected = crate::push::sign(&self.management_token, challenge.as_bytes());
        (bytes, signature, expected)
    }
}

#[derive(Deserialize)]
pub(super) struct Deliver {
    /// keyway's callback URL.
    callback: String,
    /// `VEHICLE_STATE` (default) or `VERIFY`.
    event: Option<String>,
    /// The car, for `VEHICLE_STATE`.
    vehicle: Option<String>,
}

/// `POST /__mock/webhooks/deliver`: delivers one signed webhook to `callback` as
/// Smartcar would, and tells what the callback answered (for `VERIFY`: whether it
/// proved it holds the management token).
async fn deliver(State(m): State<SmartcarMock>, Json(d): Json<Deliver>) -> Response {
    let (body, signature, expected) = match d.event.as_deref().unwrap_or("VEHICLE_STATE") {
        "VERIFY" => {
            let (b, s, e) = m.verify();
            (b, s, Some(e))
        }
        _ => match m.vehicle_state(d.vehicle.as_deref().unwrap_or_default()) {
            Some((b, s)) => (b, s, None),
            None => return not_found().into_response(),
        },
    };
    let req = http::Request::post(&d.callback)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(crate::push::SIGNATURE, signature)
        .body(bytes::Bytes::from(body));
    let Ok(req) = req else {
        return error(
            400,
            "VALIDATION",
            Some("PARAMETER"),
            "callback is not a URL.",
        );
    };
    match keyway_adapter::transport::loopback_http().send(req).await {
        Ok(resp) => {
            let answer: serde_json::Value =
                serde_json::from_slice(resp.body()).unwrap_or(serde_json::Value::Null);
            let verified = expected.map(|e| answer["challenge"].as_str() == Some(e.as_str()));
            Json(json!({"status": resp.status().as_u16(), "answer": answer, "verified": verified}))
                .into_response()
        }
        Err(e) => error(502, "UPSTREAM", Some("NO_RESPONSE"), &e.to_string()),
    }
}
