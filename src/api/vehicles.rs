//! Vehicle routes: list, detail, location and security, each checking its scope and
//! the token's vehicle restriction before anything reaches an OEM.

use std::sync::Arc;

use super::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ApiError;
use super::extract::{Authed, MaxAge};
use super::object::Object;
use crate::auth::Scope;
use crate::gateway::Gateway;
use crate::store::VehicleRecord;

fn view(gw: &Gateway, v: &VehicleRecord) -> Value {
    let (make, capabilities, path, confirmable) = match gw.fleet.adapter(v) {
        Ok(a) => (
            json!(a.info().make),
            json!(a.info().capabilities),
            a.command_path(&v.oem_id),
            a.info().can(keyway_adapter::Capability::Security),
        ),
        Err(_) => (Value::Null, json!([]), None, false),
    };
    let mut out = json!({
        "id": v.id,
        "oem": v.oem,
        "make": make,
        "model": v.model,
        "year": v.year,
        "display_name": v.display_name,
        "vin": v.vin,
        "capabilities": capabilities,
        // Whether keyway can read the car's lock state to settle a command whose answer
        // was lost (GM cannot: such a command stays `unknown` unless acknowledged).
        "outcome_confirmable": confirmable,
    });
    // OEMs with more than one command path (Tesla: signed or REST, and whether the car
    // knows keyway's key) — as far as keyway has learned it (vehicle sync or a command).
    if let Some(p) = path {
        out["command_protocol"] = json!(p.protocol);
        out["key_paired"] = json!(p.key_paired);
    }
    out
}

/// Paging of `GET /v1/vehicles`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Vehicles per page (1–1000, default 100).
    pub limit: Option<u32>,
    /// Continue after this vehicle id (the previous page's `next`).
    pub after: Option<String>,
}

/// `GET /v1/vehicles?limit=N&after=ID`: a page of vehicles, ordered by id, and `next`
/// (the id to continue after, or null on the last page).
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    query: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::VehiclesRead)?;
    let axum::extract::Query(page) =
        query.map_err(|e| ApiError::invalid(format!("bad query: {}", e.body_text())))?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let found = gw.fleet.list(&caller, page.after.as_deref(), limit).await?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|v| v.id.clone()))
        .flatten();
    let vehicles: Vec<Value> = found.iter().map(|v| view(&gw, v)).collect();
    Ok(Json(json!({ "vehicles": vehicles, "next": next })))
}

/// `GET /v1/vehicles/{id}`.
pub async fn one(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::VehiclesRead)?;
    let v = gw.fleet.find(&caller, &id).await?;
    Ok(Json(view(&gw, &v)))
}

/// Seconds since the OEM's time; `None` when the OEM gave none.
fn age_s(recorded_at: Option<OffsetDateTime>) -> Option<i64> {
    recorded_at.map(|t| (OffsetDateTime::now_utc() - t).whole_seconds().max(0))
}

/// `GET /v1/vehicles/{id}/location`.
pub async fn location(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    MaxAge(max_age): MaxAge,
) -> Result<axum::response::Response, ApiError> {
    caller.require(Scope::LocationRead)?;
    let v = gw.fleet.find(&caller, &id).await?;
    let l = gw.fleet.locate(&v, max_age).await?;
    Ok(Object::new()
        .str("vehicle_id", &v.id)
        .f64("latitude", l.latitude)
        .f64("longitude", l.longitude)
        .opt_f64("heading", l.heading)
        .some_f64("accuracy_m", l.accuracy_m)
        .opt_time("recorded_at", l.recorded_at)
        .opt_i64("age_s", age_s(l.recorded_at))
        .into_response())
}

/// `GET /v1/vehicles/{id}/security`.
pub async fn security(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    MaxAge(max_age): MaxAge,
) -> Result<axum::response::Response, ApiError> {
    caller.require(Scope::SecurityRead)?;
    let v = gw.fleet.find(&caller, &id).await?;
    let (s, source) = gw.fleet.security(&v, max_age).await?;
    let answer = Object::new()
        .str("vehicle_id", &v.id)
        // `null`: the OEM reports the lock as unknown.
        .value("locked", &s.locked)
        .str("source", source.as_str());
    let answer = match &s.doors {
        Some(doors) => answer.value("doors", doors),
        None => answer,
    };
    Ok(answer
        .opt_time("recorded_at", s.recorded_at)
        .opt_i64("age_s", age_s(s.recorded_at))
        .into_response())
}
