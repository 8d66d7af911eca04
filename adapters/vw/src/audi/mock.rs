//! A stateful fake of myAudi's EU backend: the Volkswagen mock's BFF (the same backend
//! for both brands: lagging access status, S-PINs with a lock-out, requests that finish
//! later), with myAudi's own parts on the same server — the GraphQL vehicle list
//! (`POST /vgql/v1/graphql`: the owner's cars in the `userVehicles` shape; a query that
//! is not the list answers GraphQL's `errors`, as does a missing or bad token) and the
//! identity server's device grant (the kit's RFC 8628 mock at
//! `/oidc/v1/device_authorization` and `/oidc/v1/token`, approved at
//! `/__mock/device`). Tokens refresh at the BFF's `/auth/v1/idk/oidc/token`.

use std::time::Duration;

use crate::VwMock;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use keyway_adapter::mock::device::{DeviceConfig, DeviceServer};
use keyway_adapter::mock::{GarageMock, MockServer, bearer};
use serde_json::{Value, json};

/// The mock: the BFF and myAudi's parts; cheap to clone, clones share one world.
#[derive(Clone, Debug)]
pub struct AudiMock {
    /// The BFF (the Volkswagen mock: cars, tokens, faults, journal).
    pub bff: VwMock,
    /// The identity server's device grant.
    pub device: DeviceServer,
}

impl AudiMock {
    /// myAudi over `bff`'s cars and tokens; device codes polled every `interval`.
    pub fn new(bff: VwMock, client_id: &str, interval: Duration) -> Self {
        let device = DeviceServer::new(
            DeviceConfig {
                client_id: client_id.to_string(),
                default_account: bff.oauth.default_account().to_string(),
                ttl: Duration::from_secs(300),
                interval,
                scope: super::adapter::INFO.oauth.scopes.join(" "),
            },
            bff.tokens.clone(),
        );
        Self { bff, device }
    }

    /// The router: the BFF, the GraphQL list, the device grant, refresh and `/__mock/`.
    pub fn router(&self) -> Router {
        let (authorization, token) = super::adapter::INFO
            .oauth
            .linking
            .device()
            .expect("Audi links with the device grant");
        let extra = Router::new()
            .route("/vgql/v1/graphql", post(graphql))
            .with_state(self.bff.clone())
            .merge(self.device.routes(authorization, token));
        self.bff
            .router_with(extra, super::adapter::INFO.oauth.token_path)
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }
}

fn graph_error(message: &str, code: &str) -> Response {
    Json(json!({
        "errors": [{
            "message": message,
            "locations": [{"line": 2, "column": 2}],
            "path": ["userVehicles"],
            "extensions": {"code": code},
        }],
        "data": {"userVehicles": null},
    }))
    .into_response()
}

async fn graphql(State(m): State<VwMock>, headers: HeaderMap, body: Json<Value>) -> Response {
    let Some(account) = bearer(&headers).and_then(|t| m.tokens.check(t).ok()) else {
        return graph_error("401: Unauthorized", "UNAUTHENTICATED");
    };
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !query.contains("userVehicles") {
        return graph_error("only the vehicle list is served here", "BAD_USER_INPUT");
    }
    let cars: Vec<Value> = m
        .garage
        .owned_by(&account)
        .iter()
        .map(|c| {
            json!({
                "vin": c.vin, "mappingVin": c.vin,
                "vehicle": {
                    "core": {"modelYear": c.year},
                    "media": {"shortName": c.model, "longName": format!("Audi {}", c.model)},
                    "classification": {"driveTrain": "BEV"},
                },
                "csid": format!("CSID{}", &c.vin[c.vin.len().saturating_sub(10)..]),
                "commissionNumber": &c.vin[c.vin.len().saturating_sub(6)..],
                "type": "CAR", "devicePlatform": "MEB", "mbbConnect": false,
                "userRole": {"role": "PRIMARY_USER"}, "nickname": "",
            })
        })
        .collect();
    Json(json!({"data": {"userVehicles": cars}})).into_response()
}

impl GarageMock for AudiMock {
    fn parts(&self) -> &keyway_adapter::mock::garage::Parts {
        self.bff.parts()
    }

    fn owner_pin(&self) -> Option<String> {
        self.bff.owner_pin()
    }

    fn needs_pin(&self, oem_id: &str) -> bool {
        self.bff.needs_pin(oem_id)
    }

    fn limit_next(&self) -> Option<Duration> {
        // The BFF's `429`, on myAudi's list as on the BFF: the next request, whichever
        // part of the backend it reaches.
        self.bff.limit_on("/")
    }
}
