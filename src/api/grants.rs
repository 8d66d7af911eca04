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
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::contract::{Edge, IdempotencyKey, JsonBody, PreferWait, Problems};
use super::extract::{Authed, OptionalJson, idempotency_key, prefer_wait};
use super::limits::Inbound;
use super::problem::RequestId;
use super::substates::MaxWait;
use crate::commands::{CommandError, CommandView};
use crate::grants::Grants;
use crate::grants::{GrantError, GrantView, NewGrant, view};
use crate::store::Geofence;

/// Where the car must stand for an unlock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewGeofence)]
pub struct GeofenceBody {
    /// Centre latitude (WGS84 degrees).
    #[schema(minimum = -90.0, maximum = 90.0)]
    latitude: f64,
    /// Centre longitude (WGS84 degrees).
    #[schema(minimum = -180.0, maximum = 180.0)]
    longitude: f64,
    /// Radius in metres.
    #[schema(minimum = 10.0, maximum = 50000.0)]
    radius_m: f64,
}

/// A new grant: who may unlock which car, when, how often and where.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewGrant)]
pub struct GrantBody {
    /// The car (`veh_…`).
    vehicle_id: String,
    /// The grantee's token subject (the courier service); not blank.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    grantee: String,
    /// Start of the window (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    not_before: Option<OffsetDateTime>,
    /// End of the window: later than `not_before` and than now, and at most the
    /// gateway's `grants.max_window` after `not_before`.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    not_after: OffsetDateTime,
    /// Unlocks allowed (default 1).
    #[schema(minimum = 1, maximum = 10)]
    max_unlocks: Option<u32>,
    /// Where the car must stand for an unlock (needs `locate`).
    geofence: Option<GeofenceBody>,
    /// Relock this many seconds after an unlock (default 120).
    #[schema(minimum = 10, maximum = 3600)]
    relock_after_s: Option<u32>,
    /// Why (free text).
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    purpose: Option<String>,
}

/// The grants of a car.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// Its grants, newest first.
    pub grants: Vec<GrantView>,
}

type GrantProblems = Problems<(Edge, GrantError)>;
type CreateProblems = Problems<(Edge, JsonBody, GrantError)>;
type UnlockProblems = Problems<(Edge, GrantError, CommandError)>;

/// Grant a courier time-boxed unlocks of a car, with a guaranteed relock.
#[utoipa::path(
    post,
    path = "/v1/grants",
    tag = "grants",
    operation_id = "createGrant",
    request_body(content = GrantBody, content_type = "application/json"),
    responses((status = 201, description = "The grant", body = GrantView,
        headers(("Location" = String, description = "`/v1/grants/{id}`"))), CreateProblems),
    security(("bearer" = ["grants:write"]))
)]
pub async fn create(
    State(grants): State<Arc<Grants>>,
    Authed(caller): Authed,
    OptionalJson(body): OptionalJson<GrantBody>,
) -> Result<Response, ApiError> {
    let b = body
        .ok_or_else(|| ApiError::invalid("send a JSON body: vehicle_id, grantee, not_after, …"))?;
    let g = grants
        .create(
            &caller,
            NewGrant {
                vehicle_id: b.vehicle_id.into(),
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
    let mut resp = (StatusCode::CREATED, Json(view(&g, grants.clock.now()))).into_response();
    if let Ok(v) = format!("/v1/grants/{}", g.id).parse() {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /v1/grants` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The car whose grants to list.
    #[param(required = true, value_type = String)]
    vehicle_id: Option<String>,
}

/// The grants of a car.
#[utoipa::path(
    get,
    path = "/v1/grants",
    tag = "grants",
    operation_id = "listGrants",
    params(ListQuery),
    responses((status = 200, description = "The grants", body = GrantList), GrantProblems),
    security(("bearer" = ["grants:write"]), ("bearer" = ["grants:use"]))
)]
pub async fn list(
    State(grants): State<Arc<Grants>>,
    Authed(caller): Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let vehicle = q
        .vehicle_id
        .ok_or_else(|| ApiError::invalid("name the vehicle: ?vehicle_id=veh_…"))?;
    let now = grants.clock.now();
    let grants = grants
        .list(&caller, &vehicle.into())
        .await?
        .iter()
        .map(|g| view(g, now))
        .collect();
    Ok(Json(GrantList { grants }))
}

/// A grant.
#[utoipa::path(
    get,
    path = "/v1/grants/{id}",
    tag = "grants",
    operation_id = "getGrant",
    params(("id" = String, Path, description = "The grant (`grt_…`)")),
    responses((status = 200, description = "The grant", body = GrantView), GrantProblems),
    security(("bearer" = ["grants:write"]), ("bearer" = ["grants:use"]))
)]
pub async fn one(
    State(grants): State<Arc<Grants>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let g = grants.get(&caller, &id).await?;
    Ok(Json(view(&g, grants.clock.now())))
}

/// A grant and everything that happened to it, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GrantTimeline)]
pub struct TimelineView {
    /// The grant now.
    pub grant: GrantView,
    /// Its events in order: the grant's own (`grant.*`), the commands sent for it
    /// (`command.*` whose `reference` is the grant: the courier's unlocks, keyway's
    /// relocks) and each change of its car while the grant was in use
    /// (`vehicle.state_changed`).
    pub events: Vec<crate::events::EventView>,
}

/// A grant's timeline: everything that happened to one delivery, in order (for the
/// delivery app's notifications to its customer).
#[utoipa::path(
    get,
    path = "/v1/grants/{id}/timeline",
    tag = "grants",
    operation_id = "getGrantTimeline",
    params(("id" = String, Path, description = "The grant (`grt_…`)")),
    responses((status = 200, description = "The grant and its events", body = TimelineView), GrantProblems),
    security(("bearer" = ["grants:write"]))
)]
pub async fn timeline(
    State(grants): State<Arc<Grants>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<TimelineView>, ApiError> {
    let (g, events) = grants.timeline(&caller, &id).await?;
    Ok(Json(TimelineView {
        grant: view(&g, grants.clock.now()),
        events: events.iter().map(crate::events::view).collect(),
    }))
}

/// Revoke a grant (an open car is relocked). The grant stays readable as `revoked`,
/// with its relock, which is why revoking is a `POST` and not a `DELETE`: after a
/// `DELETE` a resource is gone, and the owner needs to see the relock finish.
#[utoipa::path(
    post,
    path = "/v1/grants/{id}/revoke",
    tag = "grants",
    operation_id = "revokeGrant",
    params(("id" = String, Path, description = "The grant (`grt_…`)")),
    responses((status = 200, description = "The revoked grant", body = GrantView), GrantProblems),
    security(("bearer" = ["grants:write"]))
)]
pub async fn revoke(
    State(grants): State<Arc<Grants>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let g = grants.revoke(&caller, &id).await?;
    Ok(Json(view(&g, grants.clock.now())))
}

/// The grantee unlocks the car under the grant; answers as a vehicle unlock does.
#[utoipa::path(
    post,
    path = "/v1/grants/{id}/unlock",
    tag = "grants",
    operation_id = "unlockGrant",
    params(("id" = String, Path, description = "The grant (`grt_…`)"), IdempotencyKey, PreferWait),
    responses(
        (status = 200, description = "The unlock succeeded", body = CommandView),
        (status = 202, description = "Accepted; follow it at `Location`", body = CommandView),
        UnlockProblems
    ),
    security(("bearer" = ["grants:use"]))
)]
pub async fn unlock(
    State(grants): State<Arc<Grants>>,
    State(settle): State<super::commands::Settle>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(inbound): Extension<Arc<Inbound>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let record = grants
        .unlock(&caller, &id, key, Some(request_id.0), &*inbound)
        .await?;
    let record = settle.settle(&headers, record).await?;
    Ok(settle.answer(&record))
}

/// The grantee is done: relock now. With `Prefer: wait=N`, answers once the relock is
/// confirmed (`relock.state` `locked`) or failed.
#[utoipa::path(
    post,
    path = "/v1/grants/{id}/complete",
    tag = "grants",
    operation_id = "completeGrant",
    params(("id" = String, Path, description = "The grant (`grt_…`)"), PreferWait),
    responses((status = 200, description = "The completed grant", body = GrantView), GrantProblems),
    security(("bearer" = ["grants:use"]), ("bearer" = ["grants:write"]))
)]
pub async fn complete(
    State(grants): State<Arc<Grants>>,
    State(max_wait): State<MaxWait>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<GrantView>, ApiError> {
    let mut g = grants.complete(&caller, &id).await?;
    if let Some(w) = max_wait.cap(prefer_wait(&headers))
        && !w.is_zero()
        && let Some(settled) = grants.wait_relock(&g.id, w).await?
    {
        g = settled;
    }
    Ok(Json(view(&g, grants.clock.now())))
}
