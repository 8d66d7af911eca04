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
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::contract::{Edge, JsonBody, Problems};
use super::extract::{Authed, OptionalJson};
use super::timestamp;
use crate::auth::Scope;
use crate::error::{Code, Codes};
use crate::events::Events;
use crate::events::manage::ManageError;
use crate::events::webhooks::WebhookError;
use crate::events::webhooks::Webhooks;
use crate::events::{Kind, view};
use crate::store::{DeliveryRecord, DeliveryStatus, EventRecord, WebhookRecord};

/// `GET /v1/events` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this event (`seq`); `Last-Event-ID` wins when both are sent.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 999_999_999_999_999_999_i64)]
    after: Option<String>,
    /// Only these event types (comma-separated; empty: all).
    #[param(value_type = Option<Vec<Kind>>, style = Form, explode = false)]
    types: Option<String>,
    /// Only this vehicle's events.
    vehicle_id: Option<String>,
}

/// The cursor `Last-Event-ID` carries: an event's `seq`.
const LAST_EVENT_ID_PATTERN: &str = "^[0-9]{1,18}$";

/// The event stream's headers.
struct LastEventId;

impl utoipa::IntoParams for LastEventId {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![super::contract::header(
            "Last-Event-ID",
            "Resume after this event (`seq`), as an EventSource sends it on reconnect.",
            Some(LAST_EVENT_ID_PATTERN),
        )]
    }
}

/// A cursor as `Last-Event-ID` or `after` gives it: 1–18 digits.
fn cursor(s: &str) -> Option<i64> {
    let s = s.trim();
    ((1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// One Server-Sent Event of the stream (what an EventSource hands its listener).
#[derive(ToSchema)]
#[schema(as = StreamedEvent)]
#[allow(dead_code)]
struct SseEvent {
    /// The event's `seq`: what `Last-Event-ID` resumes after.
    #[schema(pattern = "^[0-9]{1,18}$")]
    id: String,
    /// The event type.
    event: Kind,
    /// The event, as JSON.
    #[schema(schema_with = event_json)]
    data: String,
}

/// A string holding an event (`Event`) as JSON.
fn event_json() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .content_media_type("application/json")
        .content_schema(Some(utoipa::openapi::Ref::from_schema_name("Event")))
        .build()
}

/// What the stream can refuse: a bad cursor or filter, a vehicle the token may not
/// see.
struct StreamRefusal;

impl Codes for StreamRefusal {
    fn codes() -> Vec<Code> {
        vec![Code::InvalidRequest, Code::Forbidden]
    }
}

type StreamProblems = Problems<(Edge, StreamRefusal)>;
type WebhookProblems = Problems<(Edge, WebhookError)>;
type SubscribeProblems = Problems<(Edge, JsonBody, WebhookError)>;
type ManageProblems = Problems<(Edge, ManageError)>;

/// How often a stream looks for events written by other replicas.
const POLL: Duration = Duration::from_secs(1);

/// The event stream (Server-Sent Events): each event's `id` is its `seq`, its `event`
/// its type, its `data` the event; resumable with `Last-Event-ID` or `?after=`.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    operation_id = "streamEvents",
    params(StreamQuery, LastEventId),
    responses((status = 200, description = "A stream of events; each `data` is an Event",
        body = SseEvent, content_type = "text/event-stream"), StreamProblems),
    security(("bearer" = ["events:read"]))
)]
pub async fn stream(
    State(events): State<Arc<Events>>,
    Authed(caller): Authed,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::EventsRead)?;
    let from_header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(cursor).ok_or_else(|| {
            ApiError::invalid("Last-Event-ID must be an event id (1 to 18 digits)")
        })?),
    };
    let from_query = match q.after.as_deref() {
        None => None,
        Some(a) => Some(
            cursor(a)
                .ok_or_else(|| ApiError::invalid("after must be an event id (1 to 18 digits)"))?,
        ),
    };
    let after = from_header.or(from_query).unwrap_or(0);
    // Empty items are no filter (`?types=` is every type).
    let types: Option<Vec<Kind>> = match q.types.as_deref() {
        Some(t) => {
            let parsed = t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(event_type)
                .collect::<Result<Vec<_>, _>>()?;
            (!parsed.is_empty()).then_some(parsed)
        }
        None => None,
    };
    if let Some(v) = &q.vehicle_id {
        caller.require_vehicle(v)?;
    }
    // The store reads only the caller's tenant's events (and a restricted token's
    // vehicles'); these are the caller's own filters.
    let keep = move |e: &EventRecord| {
        types.as_ref().is_none_or(|t| t.contains(&e.kind))
            && q.vehicle_id
                .as_ref()
                .is_none_or(|v| e.vehicle_id.as_deref() == Some(v.as_str()))
    };
    struct State {
        caller: Arc<crate::auth::Caller>,
        events: Arc<crate::events::Events>,
        last: i64,
        buffer: VecDeque<EventRecord>,
        wake: tokio::sync::watch::Receiver<i64>,
    }
    let state = State {
        wake: events.watch(),
        caller,
        events,
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
                        .event(e.kind.as_str())
                        .data(serde_json::to_string(&view(&e)).unwrap_or_default());
                    return Some((Ok::<_, Infallible>(event), s));
                }
                match s.events.after(&s.caller, s.last, 100).await {
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

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhook)]
pub struct WebhookBody {
    /// Where to POST the events: `https://` (or `http://`), a host name or IPv4
    /// address, an optional port, a path. Addresses inside keyway's network are
    /// refused (`403 forbidden`) unless the operator allows them (`[events]
    /// webhook_allow`, `keyway demo --webhook-allow`); a name that does not resolve
    /// yet is taken, and each delivery resolves and checks it again.
    #[schema(
        max_length = 2000,
        pattern = r"^https?://[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,15}(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(?:[/?][A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$"
    )]
    url: String,
    /// The event types to receive (empty or absent: all).
    #[serde(default)]
    #[schema(value_type = Vec<Kind>)]
    events: Vec<String>,
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    /// `whk_…`.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// The event types it receives (`*`: all).
    pub events: Vec<String>,
    /// The vehicles it is limited to (those of the token that made it); null: all.
    pub vehicles: Option<Vec<String>>,
    /// When it was made.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The signing secret (`whsec_…`), shown once, in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub secret: Option<String>,
}

fn webhook_view(w: &WebhookRecord) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        events: w.types.names(),
        vehicles: w.vehicles.clone(),
        created_at: timestamp(w.created_at),
        secret: None,
    }
}

/// An event type a caller names (a stream's `?types=`, a subscription's `events`), or
/// the one answer for a name that is none, listing the known ones.
fn event_type(name: &str) -> Result<Kind, ApiError> {
    Kind::parse(name).ok_or_else(|| {
        ApiError::invalid(format!(
            "unknown event type {name:?}; known: {}",
            Kind::list()
        ))
    })
}

/// The caller's subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// The subscriptions.
    pub webhooks: Vec<WebhookView>,
}

/// One delivery of an event to a subscription.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView {
    /// `dlv_…`.
    pub id: String,
    /// The event (`seq`).
    pub event_seq: i64,
    /// `pending` (will be tried again), `delivered` or `failed` (given up).
    #[schema(example = "delivered")]
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is tried next (pending only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was queued.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A subscription's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The newest 100 deliveries, newest first.
    pub deliveries: Vec<DeliveryView>,
}

fn delivery_view(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        event_seq: d.event_seq,
        status: d.status.as_str().to_string(),
        attempts: d.attempts,
        next_attempt_at: (d.status == DeliveryStatus::Pending)
            .then(|| timestamp(d.next_attempt_at)),
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: timestamp(d.created_at),
        updated_at: timestamp(d.updated_at),
    }
}

/// Subscribe a URL to events; the answer shows the signing secret, once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "events",
    operation_id = "subscribeWebhook",
    request_body(content = WebhookBody, content_type = "application/json"),
    responses((status = 201, description = "Subscribed", body = WebhookView), SubscribeProblems),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn subscribe(
    State(webhooks): State<Arc<Webhooks>>,
    Authed(caller): Authed,
    OptionalJson(body): OptionalJson<WebhookBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let b = body.ok_or_else(|| ApiError::invalid("send a JSON body: {\"url\": …}"))?;
    crate::text::check("url", &b.url, 2000)?;
    let kinds = b
        .events
        .iter()
        .map(|t| event_type(t))
        .collect::<Result<Vec<Kind>, ApiError>>()?;
    let (w, secret) = webhooks.subscribe(&caller, &b.url, &kinds).await?;
    let mut body = webhook_view(&w);
    body.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The caller's subscriptions.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "events",
    operation_id = "listWebhooks",
    responses((status = 200, description = "The subscriptions", body = WebhookList), WebhookProblems),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn list(
    State(webhooks): State<Arc<Webhooks>>,
    Authed(caller): Authed,
) -> Result<Json<WebhookList>, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let webhooks = webhooks.list(&caller).await?;
    let webhooks = webhooks.iter().map(webhook_view).collect();
    Ok(Json(WebhookList { webhooks }))
}

/// End a subscription.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "events",
    operation_id = "unsubscribeWebhook",
    params(("id" = String, Path, description = "The subscription (`whk_…`)")),
    responses((status = 204, description = "Unsubscribed"), ManageProblems),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn unsubscribe(
    State(webhooks): State<Arc<Webhooks>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    webhooks.unsubscribe(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A subscription's delivery log, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "events",
    operation_id = "listWebhookDeliveries",
    params(("id" = String, Path, description = "The subscription (`whk_…`)")),
    responses((status = 200, description = "The delivery log", body = DeliveryList), ManageProblems),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn deliveries(
    State(webhooks): State<Arc<Webhooks>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Scope::WebhooksWrite)?;
    let deliveries = webhooks.deliveries(&caller, &id, 100).await?;
    let deliveries = deliveries.iter().map(delivery_view).collect();
    Ok(Json(DeliveryList { deliveries }))
}
