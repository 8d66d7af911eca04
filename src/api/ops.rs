//! Operations routes: `/healthz` (the process answers), `/readyz` (the store answers;
//! it also names the replica and whether limits are cluster-wide or local),
//! `/metrics`, and `/openapi.json` (the API document generated from the handlers,
//! [`super::contract`]), all unauthenticated and cheap.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use super::contract::{Problems, Public};
use crate::cluster::Cluster;
use crate::error::{Code, Codes};
use crate::registry::Registry;
use crate::store::Store;

/// The process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "The process answers", body = Health)),
    security(())
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The replica can serve.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The OEMs enabled here.
    pub oems: Vec<String>,
    /// This replica's name.
    pub replica: String,
    /// `shared` (PostgreSQL) or `embedded` (SQLite).
    #[schema(example = "embedded")]
    pub store: &'static str,
    /// `cluster` (Redis answers), `local_fallback` (Redis is down: limits are this
    /// replica's own for now) or `local` (no Redis configured).
    #[schema(example = "local")]
    pub limits: &'static str,
}

/// What readiness can answer: the store refuses writes.
pub struct NotReady;

impl Codes for NotReady {
    fn codes() -> Vec<Code> {
        vec![Code::Internal]
    }
}

type ReadyProblems = Problems<NotReady>;

/// Readiness: the store takes a write.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "ready",
    responses((status = 200, description = "Ready", body = Ready), ReadyProblems),
    security(())
)]
pub async fn readyz(
    State(store): State<Arc<dyn Store>>,
    State(cluster): State<Arc<Cluster>>,
    State(registry): State<Arc<Registry>>,
) -> Result<Json<Ready>, ApiError> {
    store.ping_write(&cluster.replica).await.map_err(|e| {
        tracing::warn!(error = %e, "store not ready: it refuses writes");
        ApiError::new(Code::Internal, "the store does not take writes")
    })?;
    let mut oems: Vec<String> = registry.ids().map(str::to_string).collect();
    oems.sort_unstable();
    let c = &cluster;
    // Redis down degrades limits to local ones; it never makes a replica unready.
    let limits = match &c.limits {
        None => "local",
        Some(l) if l.probe().await => "cluster",
        Some(_) => "local_fallback",
    };
    Ok(Json(Ready {
        status: "ready",
        oems,
        replica: c.replica.clone(),
        store: if c.shared { "shared" } else { "embedded" },
        limits,
    }))
}

/// The OpenMetrics text exposition (Prometheus scrapes it).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text")),
    security(())
)]
pub async fn metrics() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(),
    )
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object,
        content_type = "application/json"), PublicProblems),
    security(())
)]
pub async fn openapi() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        super::contract::json(),
    )
}

/// What the Tesla key route answers when no key is published here.
pub struct NoKey;

impl Codes for NoKey {
    fn codes() -> Vec<Code> {
        vec![Code::NotFound]
    }
}

type KeyProblems = Problems<(Public, NoKey)>;
type PublicProblems = Problems<Public>;

/// keyway's Tesla application public key, where Tesla fetches it for
/// `oems.tesla.app_domain` (404 unless a domain and a key are configured).
#[utoipa::path(
    get,
    path = "/.well-known/appspecific/com.tesla.3p.public-key.pem",
    tag = "operations",
    operation_id = "teslaPublicKey",
    responses((status = 200, description = "The PEM public key", body = String,
        content_type = "application/x-pem-file"), KeyProblems),
    security(())
)]
pub async fn tesla_public_key(State(registry): State<Arc<Registry>>) -> Response {
    match registry.tesla_public_key() {
        Some(pem) => (
            [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
            pem.to_string(),
        )
            .into_response(),
        None => ApiError::new(Code::NotFound, "no Tesla application key is published here")
            .into_response(),
    }
}
