//! Watch routes: `PUT /v1/vehicles/{id}/watch` (watch a car until a time),
//! `DELETE /v1/vehicles/{id}/watch` (stop) and `GET /v1/watches` (the tenant's). While
//! a car is watched, keyway reads it without waking it and each change of its signals
//! arrives as a `vehicle.state_changed` event (stream and webhooks). Watching is for
//! whoever reads the events: it takes `events:read`, on a car the token may touch.

use std::sync::Arc;

use super::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ApiError;
use super::contract::{Edge, JsonBody, Problems};
use super::extract::{Authed, OptionalJson};
use super::timestamp;
use crate::auth::Scope;
use crate::store::WatchRecord;
use crate::vehicles::Fleet;
use crate::vehicles::VehicleError;
use crate::watch::WatchError;
use crate::watch::Watches;

/// How long to watch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWatch)]
pub struct WatchBody {
    /// When the watch ends: ahead of now, at most the gateway's `watch.max_watch`.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    until: OffsetDateTime,
}

/// A watched car.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Watch)]
pub struct WatchView {
    /// The car (`veh_…`).
    pub vehicle_id: String,
    /// When the watch ends.
    #[schema(format = DateTime)]
    pub until: String,
    /// When it was first set.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// The tenant's watches.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatchList {
    /// Its watched cars, by vehicle id.
    pub watches: Vec<WatchView>,
}

fn view(w: &WatchRecord) -> WatchView {
    WatchView {
        vehicle_id: w.vehicle_id.to_string(),
        until: timestamp(w.until),
        created_at: timestamp(w.created_at),
    }
}

type PutProblems = Problems<(Edge, JsonBody, VehicleError, WatchError)>;
type EndProblems = Problems<(Edge, VehicleError, WatchError)>;
type ListProblems = Problems<(Edge, WatchError)>;

/// Watch a car until a time: each change of its lock, openings, position (beyond
/// `watch.move_m`) or connectivity arrives as one `vehicle.state_changed` event. The car
/// is never woken for it. Setting it again moves the end.
#[utoipa::path(
    put,
    path = "/v1/vehicles/{id}/watch",
    tag = "vehicles",
    operation_id = "watchVehicle",
    params(("id" = String, Path, description = "The vehicle (`veh_…`)")),
    request_body(content = WatchBody, content_type = "application/json"),
    responses((status = 200, description = "The watch", body = WatchView), PutProblems),
    security(("bearer" = ["events:read"]))
)]
pub async fn put(
    State(fleet): State<Arc<Fleet>>,
    State(watches): State<Arc<Watches>>,
    Authed(caller): Authed,
    Path(id): Path<crate::store::VehicleId>,
    OptionalJson(body): OptionalJson<WatchBody>,
) -> Result<Json<WatchView>, ApiError> {
    caller.require(Scope::EventsRead)?;
    // Another tenant's car is not found before anything else is looked at.
    let vehicle = fleet.find(&caller, &id).await?;
    let b = body.ok_or_else(|| ApiError::invalid("send a JSON body: {\"until\": …}"))?;
    let w = watches.put(&caller, &vehicle, b.until).await?;
    Ok(Json(view(&w)))
}

/// Stop watching a car.
#[utoipa::path(
    delete,
    path = "/v1/vehicles/{id}/watch",
    tag = "vehicles",
    operation_id = "unwatchVehicle",
    params(("id" = String, Path, description = "The vehicle (`veh_…`)")),
    responses((status = 204, description = "No longer watched"), EndProblems),
    security(("bearer" = ["events:read"]))
)]
pub async fn end(
    State(fleet): State<Arc<Fleet>>,
    State(watches): State<Arc<Watches>>,
    Authed(caller): Authed,
    Path(id): Path<crate::store::VehicleId>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::EventsRead)?;
    let vehicle = fleet.find(&caller, &id).await?;
    watches.end(&caller, &vehicle.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The cars the caller's tenant watches now.
#[utoipa::path(
    get,
    path = "/v1/watches",
    tag = "vehicles",
    operation_id = "listWatches",
    responses((status = 200, description = "The watches", body = WatchList), ListProblems),
    security(("bearer" = ["events:read"]))
)]
pub async fn list(
    State(watches): State<Arc<Watches>>,
    Authed(caller): Authed,
) -> Result<Json<WatchList>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let watches = watches.list(&caller).await?;
    Ok(Json(WatchList {
        watches: watches.iter().map(view).collect(),
    }))
}
