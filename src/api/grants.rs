//! Grant routes: `POST /v1/grants`, `GET /v1/grants?vehicle_id=`, `GET|DELETE
//! /v1/grants/{id}`, and the grantee's `POST /v1/grants/{id}/unlock` and `/complete`.
//! The unlock answers like a vehicle unlock (the command; `Prefer: wait=N`,
//! `Idempotency-Key`); `complete` with `Prefer: wait=N` waits for the relock to be
//! confirmed.

use std::sync::Arc;

use super::extract::{Path, Query};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ApiError;
use super::extract::{Authed, OptionalJson, idempotency_key, prefer_wait};
use super::problem::RequestId;
use crate::gateway::Gateway;
use crate::grants::{GrantView, NewGrant, view};
use crate::store::{CommandStatus, Geofence};

/// A geofence in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeofenceBody {
    latitude: f64,
    longitude: f64,
    radius_m: f64,
}

/// `POST /v1/grants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    vehicle_id: String,
    grantee: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    not_before: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
    max_unlocks: Option<u32>,
    geofence: Option<GeofenceBody>,
    relock_after_s: Option<u32>,
    purpose: Option<String>,
}

/// `POST /v1/grants`.
pub async fn create(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    OptionalJson(body): OptionalJson<GrantBody>,
) -> Result<Response, ApiError> {
    let b = body
        .ok_or_else(|| ApiError::invalid("send a JSON body: vehicle_id, grantee, not_after, …"))?;
    let g = gw
        .grants
        .create(
            &caller,
            NewGrant {
                vehicle_id: b.vehicle_id,
                grantee: b.grantee,
                not_before: b.not_before,
                not_after: b.not_after,
                max_unlocks: b.max_unlocks,
                geofence: b.geofence.map(|f| Geofence {
                    latitude: f.latitude,
                    longitude: f.longitude,
                    radius_m: f.radius_m,
                }),
                relock_after_s: b.relock_after_s,
                purpose: b.purpose,
            },
        )
        .await?;
    let mut resp = (StatusCode::CREATED, Json(view(&g, gw.grants.clock.now()))).into_response();
    if let Ok(v) = format!("/v1/grants/{}", g.id).parse() {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /v1/grants` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    vehicle_id: Option<String>,
}

/// `GET /v1/grants?vehicle_id=`.
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let vehicle = q
        .vehicle_id
        .ok_or_else(|| ApiError::invalid("name the vehicle: ?vehicle_id=veh_…"))?;
    let now = gw.grants.clock.now();
    let grants: Vec<GrantView> = gw
        .grants
        .list(&caller, &vehicle)
        .await?
        .iter()
        .map(|g| view(g, now))
        .collect();
    Ok(Json(json!({ "grants": grants })))
}

/// `GET /v1/grants/{id}`.
pub async fn one(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let g = gw.grants.get(&caller, &id).await?;
    Ok(Json(view(&g, gw.grants.clock.now())))
}

/// `DELETE /v1/grants/{id}`: revoke (an open car is relocked).
pub async fn revoke(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let g = gw.grants.revoke(&caller, &id).await?;
    Ok(Json(view(&g, gw.grants.clock.now())))
}

/// `POST /v1/grants/{id}/unlock`.
pub async fn unlock(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let wait = prefer_wait(&headers).map(|w| w.min(gw.config.commands.max_wait()));
    let record = gw
        .grants
        .unlock(&caller, &id, key, Some(request_id.0))
        .await?;
    let record = match wait {
        Some(w) if record.status == CommandStatus::Pending && !w.is_zero() => {
            gw.commands.wait(&record.id, w).await?.unwrap_or(record)
        }
        _ => record,
    };
    Ok(super::commands::answer(&record))
}

/// `POST /v1/grants/{id}/complete`: the grantee is done; relock now.
pub async fn complete(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<GrantView>, ApiError> {
    let mut g = gw.grants.complete(&caller, &id).await?;
    if let Some(w) = prefer_wait(&headers).map(|w| w.min(gw.config.commands.max_wait()))
        && !w.is_zero()
        && let Some(settled) = gw.grants.wait_relock(&g.id, w).await?
    {
        g = settled;
    }
    Ok(Json(view(&g, gw.grants.clock.now())))
}
