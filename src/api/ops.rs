//! Operations routes: `/healthz` (the process answers) and `/readyz` (the store answers
//! and OEMs are configured), both unauthenticated and cheap.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::{ApiError, Code};
use crate::gateway::Gateway;

/// `GET /healthz`: liveness.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: readiness (the store answers).
pub async fn readyz(State(gw): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    gw.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "store not ready");
        ApiError::new(Code::Internal, "the store does not answer")
    })?;
    let mut oems: Vec<&str> = gw.registry.ids().collect();
    oems.sort_unstable();
    Ok(Json(json!({ "status": "ready", "oems": oems })))
}
