//! Event routes: `GET /v1/events` (Server-Sent Events, resumable with `Last-Event-ID`
//! or `?after=`; filters `?types=a,b` and `?vehicle_id=`), and webhook subscriptions:
//! `POST|GET /v1/webhooks`, `DELETE /v1/webhooks/{id}`, and the delivery log
//! `GET /v1/webhooks/{id}/deliveries`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use super::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{Authed, OptionalJson};
use super::timestamp;
use crate::auth::Scope;
use crate::error::Code;
use crate::events::{Kind, view};
use crate::gateway::Gateway;
use crate::store::{DeliveryRecord, EventRecord, WebhookRecord};

/// `GET /v1/events` query.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    after: Option<i64>,
    types: Option<String>,
    vehicle_id: Option<String>,
}

/// How often a stream looks for events written by other replicas.
const POLL: Duration = Duration::from_secs(1);

/// `GET /v1/events`: the event stream.
pub async fn stream(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::EventsRead)?;
    let from_header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event id (a number)"))?,
        ),
    };
    let after = from_header.or(q.after).unwrap_or(0).max(0);
    let types: Option<Vec<String>> = q
        .types
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    if let Some(bad) = types.iter().flatten().find(|t| Kind::parse(t).is_none()) {
        return Err(ApiError::invalid(format!("unknown event type {bad:?}")));
    }
    if let Some(v) = &q.vehicle_id {
        caller.require_vehicle(v)?;
    }
    // The store reads only the caller's tenant's events (and a restricted token's
    // vehicles'); these are the caller's own filters.
    let keep = move |e: &EventRecord| {
        types.as_ref().is_none_or(|t| t.contains(&e.kind))
            && q.vehicle_id
                .as_ref()
                .is_none_or(|v| e.vehicle_id.as_ref() == Some(v))
    };
    struct State {
        caller: Arc<crate::auth::Caller>,
        gw: Arc<Gateway>,
        last: i64,
        buffer: VecDeque<EventRecord>,
        wake: tokio::sync::watch::Receiver<i64>,
    }
    let state = State {
        wake: gw.events.watch(),
        caller,
        gw,
        last: after,
        buffer: VecDeque::new(),
    };
    let events = futures_util::stream::unfold(state, move |mut s| {
        let keep = keep.clone();
        async move {
            loop {
                if let Some(e) = s.buffer.pop_front() {
                    let event = Event::default()
                        .id(e.seq.to_string())
                        .event(e.kind.clone())
                        .data(view(&e).to_string());
                    return Some((Ok::<_, Infallible>(event), s));
                }
                match s.gw.events.after(&s.caller, s.last, 100).await {
                    Ok(batch) if !batch.is_empty() => {
                        if let Some(l) = batch.last() {
                            s.last = l.seq;
                        }
                        s.buffer.extend(batch.into_iter().filter(|e| keep(e)));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "event stream could not read"),
                }
                let _ = tokio::time::timeout(POLL, s.wake.changed()).await;
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    url: String,
    #[serde(default)]
    events: Vec<String>,
}

fn webhook_view(w: &WebhookRecord) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": w.types.split(',').collect::<Vec<_>>(),
        "vehicles": w.vehicles,
        "created_at": timestamp(w.created_at),
    })
}

/// Whether the caller may manage `w`: the store gave only its tenant's; a token
/// restricted to some vehicles reaches only subscriptions limited to those vehicles.
fn manages(caller: &crate::auth::Caller, w: &WebhookRecord) -> bool {
    match (&caller.vehicles, &w.vehicles) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(theirs)) => theirs.iter().all(|v| caller.may_touch(v)),
    }
}

/// One of the caller's subscriptions, or `not_found`.
async fn managed(
    gw: &Gateway,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<WebhookRecord, ApiError> {
    gw.store
        .tenant_webhooks(&caller.tenant)
        .await?
        .into_iter()
        .find(|w| w.id == id && manages(caller, w))
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no webhook {id}")))
}

fn delivery_view(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.id,
        "event_seq": d.event_seq,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": (d.status == "pending").then(|| timestamp(d.next_attempt_at)),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": timestamp(d.created_at),
        "updated_at": timestamp(d.updated_at),
    })
}

/// `POST /v1/webhooks`: subscribe; the answer shows the signing secret, once.
pub async fn subscribe(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    OptionalJson(body): OptionalJson<WebhookBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let b = body.ok_or_else(|| ApiError::invalid("send a JSON body: {\"url\": …}"))?;
    crate::text::check("url", &b.url, 2000)?;
    if let Some(bad) = b.events.iter().find(|t| Kind::parse(t).is_none()) {
        return Err(ApiError::invalid(format!(
            "unknown event type {bad:?}; known: {}",
            Kind::list()
        )));
    }
    let (w, secret) = gw.webhooks.subscribe(&caller, &b.url, &b.events).await?;
    // This replica sees the new subscription at once (others within a second).
    gw.events.hooks_changed();
    let mut body = webhook_view(&w);
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/webhooks`.
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let all: Vec<Value> = gw
        .store
        .tenant_webhooks(&caller.tenant)
        .await?
        .iter()
        .filter(|w| manages(&caller, w))
        .map(webhook_view)
        .collect();
    Ok(Json(json!({ "webhooks": all })))
}

/// `DELETE /v1/webhooks/{id}`.
pub async fn unsubscribe(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let w = managed(&gw, &caller, &id).await?;
    if gw.store.delete_webhook(&caller.tenant, &w.id).await? {
        gw.events.hooks_changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(Code::NotFound, format!("no webhook {id}")))
    }
}

/// `GET /v1/webhooks/{id}/deliveries`: the delivery log, newest first.
pub async fn deliveries(
    State(gw): State<Arc<Gateway>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let w = managed(&gw, &caller, &id).await?;
    let all: Vec<Value> = gw
        .store
        .deliveries(&caller.tenant, &w.id, 100)
        .await?
        .iter()
        .map(delivery_view)
        .collect();
    Ok(Json(json!({ "deliveries": all })))
}
