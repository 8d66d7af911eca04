//! Operations routes: `/healthz` (the process answers), `/readyz` (the store answers;
//! it also names the replica and whether limits are cluster-wide or local)
//! and `/openapi.json` (the hand-maintained API description), all unauthenticated and
//! cheap.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiError;
use crate::error::Code;
use crate::gateway::Gateway;

/// `GET /healthz`: liveness.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: readiness (the store takes a write).
pub async fn readyz(State(gw): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    gw.store
        .ping_write(&gw.cluster.replica)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "store not ready: it refuses writes");
            ApiError::new(Code::Internal, "the store does not take writes")
        })?;
    let mut oems: Vec<&str> = gw.registry.ids().collect();
    oems.sort_unstable();
    let c = &gw.cluster;
    // Redis down degrades limits to local ones; it never makes a replica unready.
    let limits = match &c.limits {
        None => "local",
        Some(l) if l.probe().await => "cluster",
        Some(_) => "local_fallback",
    };
    Ok(Json(json!({
        "status": "ready",
        "oems": oems,
        "replica": c.replica,
        "store": if c.shared { "shared" } else { "embedded" },
        "limits": limits,
    })))
}

/// `GET /metrics`: the OpenMetrics text exposition (Prometheus scrapes it).
pub async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(),
    )
}

/// The OpenAPI 3.1 description of the unified API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub async fn openapi() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// `GET /.well-known/appspecific/com.tesla.3p.public-key.pem`: keyway's Tesla
/// application public key, where Tesla fetches it for `oems.tesla.app_domain` (404
/// unless a domain and a key are configured).
pub async fn tesla_public_key(State(gw): State<Arc<Gateway>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match gw.registry.tesla_public_key() {
        Some(pem) => (
            [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
            pem.to_string(),
        )
            .into_response(),
        None => ApiError::new(Code::NotFound, "no Tesla application key is published here")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_exactly_the_problem_codes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut listed: Vec<&str> =
            doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
        let mut known: Vec<&str> = crate::error::all_codes().map(Code::as_str).collect();
        listed.sort_unstable();
        known.sort_unstable();
        assert_eq!(listed, known);
    }
}
