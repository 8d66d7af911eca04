//! The mock's `/__mock/` controls: inspect the world, steer a car, expire tokens, reset.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use keyway_adapter::mock::timeline::CarTiming;
use keyway_adapter::mock::{Faults, lock};
use serde::Deserialize;
use serde_json::json;

use super::{CommandProtocol, MockVehicle, Power, TeslaMock, tesla_error};

pub(super) async fn inspect(State(m): State<TeslaMock>) -> Response {
    let mut w = lock(&m.world);
    w.tick();
    let vehicles: Vec<&MockVehicle> = w.vehicles.values().collect();
    Json(json!({
        "vehicles": vehicles,
        "refreshes_served": m.tokens.refreshes_served(),
        "refresh_replays_seen": m.tokens.replays_seen(),
        "requests_seen": m.journal.oem_requests(),
        "executions": w.executions,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Steer {
    state: Option<Power>,
    locked: Option<bool>,
    user_present: Option<bool>,
    trunk_open: Option<bool>,
    doors: Option<keyway_adapter::mock::garage::OpeningsChange>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    heading: Option<f64>,
    timing: Option<CarTiming>,
    protocol: Option<CommandProtocol>,
    keys: Option<Vec<String>>,
}

pub(super) async fn steer(
    State(m): State<TeslaMock>,
    Path(vin): Path<String>,
    Json(s): Json<Steer>,
) -> Response {
    if m.vehicle(&vin).is_none() {
        return tesla_error(StatusCode::NOT_FOUND, "not_found").into_response();
    }
    m.update(&vin, |v| {
        if let Some(x) = s.state {
            v.state = x;
            v.waking_until = None;
        }
        if let Some(x) = s.locked {
            v.locked = x;
        }
        if let Some(x) = s.user_present {
            v.user_present = x;
        }
        if let Some(x) = s.trunk_open {
            v.trunk_open = x;
        }
        if let Some(d) = &s.doors {
            d.apply(&mut v.open);
            v.trunk_open = v.open.trunk;
        }
        if let Some(x) = s.latitude {
            v.latitude = x;
        }
        if let Some(x) = s.longitude {
            v.longitude = x;
        }
        if let Some(x) = s.heading {
            v.heading = x;
        }
        if let Some(x) = s.timing {
            v.timing = x;
        }
        if let Some(x) = s.protocol {
            v.protocol = x;
        }
        if let Some(x) = s.keys.clone() {
            v.keys = x;
        }
    });
    Json(m.vehicle(&vin)).into_response()
}

/// `POST /__mock/tokens/expire`: every access token issued so far stops working.
pub(super) async fn expire_tokens(State(m): State<TeslaMock>) -> StatusCode {
    m.tokens.expire_access_tokens();
    StatusCode::NO_CONTENT
}

/// `POST /__mock/reset`: vehicles back to their initial state, no faults, empty journal.
pub(super) async fn reset(State(m): State<TeslaMock>) -> StatusCode {
    let mut w = lock(&m.world);
    w.vehicles = (*m.initial).clone();
    w.lives.clear();
    w.executions.clear();
    w.vcsec.clear();
    w.signed_commands = 0;
    drop(w);
    m.faults.clear();
    m.journal.clear();
    StatusCode::NO_CONTENT
}

// === conformance steering ===

#[async_trait::async_trait]
impl keyway_adapter::mock::MockControl for TeslaMock {
    fn journal(&self) -> &keyway_adapter::mock::Journal {
        &self.journal
    }

    fn vehicle_ids(&self) -> Vec<String> {
        lock(&self.world)
            .vehicles
            .values()
            .filter(|v| *v.account == *self.owner)
            .map(|v| v.vin.clone())
            .collect()
    }

    fn position(&self, oem_id: &str) -> (f64, f64) {
        let v = self.vehicle(oem_id).expect("known vehicle");
        (v.latitude, v.longitude)
    }

    fn locked(&self, oem_id: &str) -> bool {
        self.vehicle(oem_id).expect("known vehicle").locked
    }

    fn set_locked(&self, oem_id: &str, locked: bool) {
        self.update(oem_id, |v| v.locked = locked);
    }

    fn set_asleep(&self, oem_id: &str) {
        self.update(oem_id, |v| {
            v.state = Power::Asleep;
            v.waking_until = None;
        });
    }

    fn set_awake(&self, oem_id: &str) {
        self.update(oem_id, |v| {
            v.state = Power::Online;
            v.waking_until = None;
        });
    }

    fn set_refusing(&self, oem_id: &str, refusing: bool) {
        self.update(oem_id, |v| v.user_present = refusing);
    }

    fn access_token(&self) -> String {
        self.tokens.issue(&self.owner).access_token
    }

    fn expire_access_tokens(&self) {
        self.tokens.expire_access_tokens();
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn limit_next(&self) -> Option<Duration> {
        // Tesla: 429 with Retry-After (and RateLimit-* headers, not modelled).
        self.faults.limit_next(
            "/api/1/",
            Some(
                json!({"response": null, "error": "Rate limit exceeded", "error_description": ""}),
            ),
            7,
        )
    }
}

impl TeslaMock {
    /// `/__mock/`: the state, steering a car, reset, expiring tokens.
    pub(super) fn control_routes(&self) -> axum::Router<TeslaMock> {
        use axum::routing::{get, patch, post};
        axum::Router::new()
            .route("/__mock/state", get(inspect))
            .route("/__mock/vehicles/{vin}", patch(steer))
            .route("/__mock/reset", post(reset))
            .route("/__mock/tokens/expire", post(expire_tokens))
    }
}
