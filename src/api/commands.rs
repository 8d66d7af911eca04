//! Command routes: `POST /v1/vehicles/{id}/lock|unlock` and `GET /v1/commands/{id}`.
//!
//! A command answers `202 Accepted` with `Location: /v1/commands/{id}` unless the
//! caller sends `Prefer: wait=N`: then keyway waits up to N seconds (capped by
//! `commands.max_wait`) and answers `200` with the final record, or the failure as a
//! problem (with `command_id`), or `202` if it is still pending. A replay with the same
//! `Idempotency-Key` gets the same command and the same answer.

use std::sync::Arc;

use super::extract::Path;
use axum::Json;
use axum::extract::{FromRef, FromRequest, FromRequestParts, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyway_adapter::Command;
use serde::Deserialize;

use super::ApiError;
use super::contract::{Edge, IdempotencyKey, JsonBody, PreferWait, Problems};
use super::extract::{Authed, OptionalJson, idempotency_key, prefer_wait};
use super::limits::Inbound;
use super::problem::RequestId;
use super::substates::{ApiState, MaxWait};
use crate::auth::Scope;
use crate::commands::{
    CommandError, CommandView, Commands, ReadError, Request, Submission, retry_after, view,
};
use crate::error::Code;
use crate::store::{CommandId, CommandRecord, CommandStatus};
use crate::vehicles::Fleet;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The optional body of a lock/unlock.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// The caller's own reference (an order or delivery id), kept with the record.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reference: Option<String>,
}

/// The problems of a lock or unlock: the edge's, the body's, and the command service's
/// (a failed or `unknown` command answers its stored code, one of these).
type CommandProblems = Problems<(Edge, JsonBody, CommandError)>;

fn location(c: &CommandRecord) -> HeaderValue {
    HeaderValue::try_from(format!("/v1/commands/{}", c.id))
        .unwrap_or_else(|_| HeaderValue::from_static("/v1/commands"))
}

/// The answer to a lock/unlock in its current state, `now`.
fn answer(c: &CommandRecord, now: OffsetDateTime) -> Response {
    match c.status {
        CommandStatus::Pending => {
            let mut resp = (StatusCode::ACCEPTED, Json(view(c, now))).into_response();
            resp.headers_mut().insert(header::LOCATION, location(c));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        CommandStatus::Succeeded => {
            let mut resp = (StatusCode::OK, Json(view(c, now))).into_response();
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
            let code = c.error_code.unwrap_or(fallback);
            let view = view(c, now);
            let mut e = ApiError::new(code, c.error_detail.clone().unwrap_or_default());
            // The members the failure carried when it happened (e.g. Tesla's
            // `pairing_url`), then the command's own.
            e.extra.extend(c.error_members.clone());
            let mut e = e
                .with("command_id", c.id.to_string())
                .with("command_status", c.status.as_str())
                .with("retryable", view.retryable)
                .with(
                    "last_observed",
                    serde_json::to_value(&view.last_observed).unwrap_or_default(),
                );
            e.retry_after = retry_after(c, now);
            let mut resp = e.into_response();
            resp.headers_mut().insert(header::LOCATION, location(c));
            resp
        }
    }
}

/// The command service as lock, unlock and a grant's unlock use it: submit, then wait
/// for the final record as long as the caller's `Prefer: wait` asks, at most
/// `commands.max_wait`.
#[derive(Clone)]
pub struct Settle {
    commands: Arc<Commands>,
    max_wait: MaxWait,
}

impl FromRef<ApiState> for Settle {
    fn from_ref(s: &ApiState) -> Self {
        Settle {
            commands: FromRef::from_ref(s),
            max_wait: MaxWait::from_ref(s),
        }
    }
}

impl Settle {
    /// The record once final, or as it stands after the wait `headers` ask for (none:
    /// as it stands now).
    pub async fn settle(
        &self,
        headers: &HeaderMap,
        record: CommandRecord,
    ) -> Result<CommandRecord, ApiError> {
        Ok(match self.max_wait.cap(prefer_wait(headers)) {
            Some(w) if record.status == CommandStatus::Pending && !w.is_zero() => {
                self.commands.wait(&record.id, w).await?.unwrap_or(record)
            }
            _ => record,
        })
    }

    /// The answer to a lock/unlock in `record`'s current state.
    pub fn answer(&self, record: &CommandRecord) -> Response {
        answer(record, self.commands.now())
    }
}

/// Everything a lock or unlock request carries, extracted in the order the handlers
/// used to take it: the caller (auth, limits), the vehicle id, the request's id, the
/// inbound limiters, the headers, and the optional body.
pub struct CommandCall {
    caller: Arc<crate::auth::Caller>,
    id: crate::store::VehicleId,
    request_id: RequestId,
    inbound: Arc<Inbound>,
    headers: HeaderMap,
    body: Option<CommandBody>,
}

impl FromRequest<ApiState> for CommandCall {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, api: &ApiState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let Authed(caller) = Authed::from_request_parts(&mut parts, api).await?;
        let Path(id) = Path::<crate::store::VehicleId>::from_request_parts(&mut parts, api).await?;
        let missing = || ApiError::internal("the request context is not installed");
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or_else(missing)?;
        let inbound = parts
            .extensions
            .get::<Arc<Inbound>>()
            .cloned()
            .ok_or_else(missing)?;
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let OptionalJson(body) = OptionalJson::<CommandBody>::from_request(req, api).await?;
        Ok(Self {
            caller,
            id,
            request_id,
            inbound,
            headers,
            body,
        })
    }
}

async fn command(
    fleet: &Fleet,
    settle: &Settle,
    call: CommandCall,
    action: Command,
) -> Result<Response, ApiError> {
    let CommandCall {
        caller,
        id,
        request_id,
        inbound,
        headers,
        body,
    } = call;
    caller.require(match action {
        Command::Lock => Scope::CommandsLock,
        Command::Unlock => Scope::CommandsUnlock,
    })?;
    let vehicle = fleet.find(&caller, &id).await?;
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
    let record = settle
        .commands
        .submit(Submission {
            vehicle: &vehicle,
            request: req,
            guard: &*inbound,
        })
        .await?;
    let record = settle.settle(&headers, record).await?;
    Ok(settle.answer(&record))
}

/// Lock the car. `202` with `Location` while the OEM works on it; with
/// `Prefer: wait=N`, `200` once it succeeded, or its failure as a problem (with
/// `command_id`).
#[utoipa::path(
    post,
    path = "/v1/vehicles/{id}/lock",
    tag = "commands",
    operation_id = "lockVehicle",
    params(
        ("id" = String, Path, description = "The vehicle (`veh_…`)"),
        IdempotencyKey,
        PreferWait
    ),
    request_body(content = Option<CommandBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The command succeeded", body = CommandView),
        (status = 202, description = "Accepted; follow it at `Location`", body = CommandView),
        CommandProblems
    ),
    security(("bearer" = ["commands:lock"]))
)]
pub async fn lock(
    State(fleet): State<Arc<Fleet>>,
    State(settle): State<Settle>,
    call: CommandCall,
) -> Result<Response, ApiError> {
    command(&fleet, &settle, call, Command::Lock).await
}

/// Unlock the car; answers as a lock does. No second unlock is sent while an earlier
/// one may still execute (`409 command_in_doubt`).
#[utoipa::path(
    post,
    path = "/v1/vehicles/{id}/unlock",
    tag = "commands",
    operation_id = "unlockVehicle",
    params(
        ("id" = String, Path, description = "The vehicle (`veh_…`)"),
        IdempotencyKey,
        PreferWait
    ),
    request_body(content = Option<CommandBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The command succeeded", body = CommandView),
        (status = 202, description = "Accepted; follow it at `Location`", body = CommandView),
        CommandProblems
    ),
    security(("bearer" = ["commands:unlock"]))
)]
pub async fn unlock(
    State(fleet): State<Arc<Fleet>>,
    State(settle): State<Settle>,
    call: CommandCall,
) -> Result<Response, ApiError> {
    command(&fleet, &settle, call, Command::Unlock).await
}

/// A command: the caller's own (any of its tenant's, with `admin`), on vehicles its
/// token may touch; anything else is `command_not_found`.
#[utoipa::path(
    get,
    path = "/v1/commands/{id}",
    tag = "commands",
    operation_id = "getCommand",
    params(("id" = String, Path, description = "The command (`cmd_…`)")),
    responses((status = 200, description = "The command", body = CommandView), ReadProblems),
    security(("bearer" = ["commands:lock"]), ("bearer" = ["commands:unlock"]), ("bearer" = ["grants:use"]))
)]
pub async fn get(
    State(commands): State<Arc<Commands>>,
    Authed(caller): Authed,
    Path(id): Path<CommandId>,
) -> Result<Json<CommandView>, ApiError> {
    if !(caller.has(Scope::CommandsLock)
        || caller.has(Scope::CommandsUnlock)
        || caller.has(Scope::GrantsUse))
    {
        caller.require(Scope::CommandsLock)?;
    }
    Ok(Json(commands.view(&commands.visible(&caller, &id).await?)))
}

/// Acknowledge an unlock whose outcome is `unknown`, so it no longer blocks the car's
/// next unlock (audited).
#[utoipa::path(
    post,
    path = "/v1/commands/{id}/acknowledge",
    tag = "commands",
    operation_id = "acknowledgeCommand",
    params(("id" = String, Path, description = "The command (`cmd_…`)")),
    responses((status = 200, description = "The acknowledged command", body = CommandView), AckProblems),
    security(("bearer" = ["commands:unlock"]))
)]
pub async fn acknowledge(
    State(commands): State<Arc<Commands>>,
    Authed(caller): Authed,
    Path(id): Path<CommandId>,
) -> Result<Json<CommandView>, ApiError> {
    caller.require(Scope::CommandsUnlock)?;
    let c = commands.visible(&caller, &id).await?;
    let c = commands.acknowledge(c, &caller.sub).await?;
    Ok(Json(commands.view(&c)))
}

type ReadProblems = Problems<(Edge, ReadError)>;
type AckProblems = Problems<(Edge, ReadError, CommandError)>;
