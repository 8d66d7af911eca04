//! Account-linking routes: start a link (`POST /v1/accounts/{oem}/authorize`), the
//! OAuth redirect target (`GET /v1/oauth/callback`, reached by the owner's browser, so
//! unauthenticated: the single-use `state` is the credential), list and unlink.

use std::sync::Arc;

use super::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::Authed;
use super::timestamp;
use crate::accounts::Callback;
use crate::auth::Scope;
use crate::gateway::Gateway;
use crate::store::{AccountRecord, VehicleRecord};

fn view(a: &AccountRecord, vehicle_ids: &[String]) -> Value {
    json!({
        "id": a.id,
        "oem": a.oem,
        "owner": a.owner,
        "status": a.status.as_str(),
        "created_at": timestamp(a.created_at),
        "vehicle_ids": vehicle_ids,
    })
}

/// `POST /v1/accounts/{oem}/authorize`.
pub async fn authorize(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(oem): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::AccountsWrite)?;
    let link = gw.accounts.start(&caller, &oem).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "authorization_url": link.authorization_url,
            "state": link.state.expose(),
            "expires_at": timestamp(link.expires_at),
        })),
    ))
}

/// `GET /v1/oauth/callback`.
pub async fn callback(
    State(gw): State<Arc<Gateway>>,
    Query(cb): Query<Callback>,
) -> Result<Json<Value>, ApiError> {
    let (account, vehicles) = gw.accounts.complete(cb).await?;
    let ids: Vec<String> = vehicles
        .iter()
        .map(|v: &VehicleRecord| v.id.clone())
        .collect();
    Ok(Json(json!({ "account": view(&account, &ids) })))
}

/// `GET /v1/accounts`.
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::AccountsWrite)?;
    let accounts: Vec<Value> = gw
        .accounts
        .list(&caller)
        .await?
        .iter()
        .map(|(a, v)| view(a, v))
        .collect();
    Ok(Json(json!({ "accounts": accounts })))
}

/// `DELETE /v1/accounts/{id}`.
pub async fn unlink(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::AccountsWrite)?;
    gw.accounts.unlink(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
