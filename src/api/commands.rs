//! Command routes: `POST /v1/vehicles/{id}/lock|unlock` and `GET /v1/commands/{id}`.
//!
//! A command answers `202 Accepted` with `Location: /v1/commands/{id}` unless the
//! caller sends `Prefer: wait=N`: then keyway waits up to N seconds (capped by
//! `commands.max_wait_s`) and answers `200` with the final record, or the failure as a
//! problem (with `command_id`), or `202` if it is still pending. A replay with the same
//! `Idempotency-Key` gets the same command and the same answer.

use std::sync::Arc;

use super::extract::Path;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyway_adapter::Command;
use serde::Deserialize;

use super::ApiError;
use super::extract::{Authed, OptionalJson, idempotency_key, prefer_wait};
use super::limits::Inbound;
use super::problem::RequestId;
use crate::auth::Scope;
use crate::commands::{CommandView, Request, retry_after, view};
use crate::error::Code;
use crate::gateway::Gateway;
use crate::store::{CommandRecord, CommandStatus};

/// The optional body of a lock/unlock.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// The caller's own reference (an order or delivery id), kept with the record.
    pub reference: Option<String>,
}

fn location(c: &CommandRecord) -> HeaderValue {
    HeaderValue::try_from(format!("/v1/commands/{}", c.id))
        .unwrap_or_else(|_| HeaderValue::from_static("/v1/commands"))
}

/// The answer to a lock/unlock in its current state.
pub(crate) fn answer(c: &CommandRecord) -> Response {
    match c.status {
        CommandStatus::Pending => {
            let mut resp = (StatusCode::ACCEPTED, Json(view(c))).into_response();
            resp.headers_mut().insert(header::LOCATION, location(c));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        CommandStatus::Succeeded => {
            let mut resp = (StatusCode::OK, Json(view(c))).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_LOCATION, location(c));
            resp
        }
        CommandStatus::Failed | CommandStatus::Unknown => {
            let fallback = if c.status == CommandStatus::Unknown {
                Code::OutcomeUnknown
            } else {
                Code::Internal
            };
            let code = c
                .error_code
                .as_deref()
                .and_then(Code::parse)
                .unwrap_or(fallback);
            let view = view(c);
            let mut e = ApiError::new(code, c.error_detail.clone().unwrap_or_default())
                .with("command_id", c.id.clone())
                .with("command_status", c.status.as_str())
                .with("retryable", view.retryable)
                .with(
                    "last_observed",
                    serde_json::to_value(&view.last_observed).unwrap_or_default(),
                );
            // The pairing link travels in the stored detail (OemFailure wrote it).
            if code == Code::VirtualKeyNotPaired
                && let Some(url) = c
                    .error_detail
                    .as_deref()
                    .and_then(|d| d.split_whitespace().find(|w| w.starts_with("https://")))
            {
                e = e.with("pairing_url", url.to_string());
            }
            e.retry_after = retry_after(c);
            let mut resp = e.into_response();
            resp.headers_mut().insert(header::LOCATION, location(c));
            resp
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn command(
    gw: Arc<Gateway>,
    inbound: &Inbound,
    caller: Arc<crate::auth::Caller>,
    id: String,
    action: Command,
    headers: HeaderMap,
    request_id: RequestId,
    body: Option<CommandBody>,
) -> Result<Response, ApiError> {
    caller.require(match action {
        Command::Lock => Scope::CommandsLock,
        Command::Unlock => Scope::CommandsUnlock,
    })?;
    let vehicle = gw.fleet.find(&caller, &id).await?;
    let wait = prefer_wait(&headers).map(|w| w.min(gw.config.commands.max_wait()));
    let req = Request {
        caller: caller.sub.clone(),
        key_scope: caller.key_scope(),
        tenant: vehicle.tenant.clone(),
        reserved: false,
        action,
        reference: body.and_then(|b| b.reference),
        idempotency_key: idempotency_key(&headers)?,
        request_id: Some(request_id.0),
    };
    gw.commands.admit(&vehicle, &req).await?;
    // The unlock abuse guard charges new unlocks, not replays of an existing one.
    if action == Command::Unlock && !gw.commands.is_replay(&req).await? {
        inbound.check_unlock(&vehicle.id).await?;
    }
    let record = gw.commands.submit(&vehicle, req).await?;
    let record = match wait {
        Some(w) if record.status == CommandStatus::Pending && !w.is_zero() => {
            gw.commands.wait(&record.id, w).await?.unwrap_or(record)
        }
        _ => record,
    };
    Ok(answer(&record))
}

/// `POST /v1/vehicles/{id}/lock` (`UNLOCK = false`) and `.../unlock` (`UNLOCK = true`).
pub async fn act<const UNLOCK: bool>(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(inbound): Extension<Arc<Inbound>>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<CommandBody>,
) -> Result<Response, ApiError> {
    let action = if UNLOCK {
        Command::Unlock
    } else {
        Command::Lock
    };
    command(gw, &inbound, caller, id, action, headers, request_id, body).await
}

/// `GET /v1/commands/{id}`: the caller's own commands (any of its tenant's, with
/// `admin`), on vehicles its token may touch; anything else is `command_not_found`.
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    if !(caller.has(Scope::CommandsLock)
        || caller.has(Scope::CommandsUnlock)
        || caller.has(Scope::GrantsUse))
    {
        caller.require(Scope::CommandsLock)?;
    }
    Ok(Json(view(&visible(&gw, &caller, &id).await?)))
}

/// `POST /v1/commands/{id}/acknowledge` (`commands:unlock`): the caller acknowledges an
/// unlock in doubt, so it no longer blocks the car's next unlock (audited).
pub async fn acknowledge(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    caller.require(Scope::CommandsUnlock)?;
    let c = visible(&gw, &caller, &id).await?;
    let c = gw.commands.acknowledge(c, &caller.sub).await?;
    Ok(Json(view(&c)))
}

/// A command the caller may see, or `command_not_found`.
async fn visible(
    gw: &Gateway,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<CommandRecord, ApiError> {
    let not_found = || ApiError::new(Code::CommandNotFound, format!("no command {id}"));
    let c = gw
        .store
        .visible_command(&caller.tenant, &caller.sub, id)
        .await?
        .ok_or_else(not_found)?;
    let own = c.caller == caller.sub && (c.tenant == caller.tenant || c.reserved);
    let tenant_admin = c.tenant == caller.tenant && caller.has(Scope::Admin);
    let visible = (own || tenant_admin) && caller.may_touch(&c.vehicle_id);
    if !visible {
        return Err(not_found());
    }
    Ok(c)
}
