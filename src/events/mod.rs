//! Events: every command outcome and grant step (`command.succeeded`,
//! `grant.unlocked`, `grant.relock_failed`, `account.reauthorization_required`, …) is
//! appended to the `events` table in order, then delivered two ways:
//!
//! - **Server-Sent Events** (`GET /v1/events`): a stream from any position; the event
//!   id is the event's `seq`, so a client that reconnects with `Last-Event-ID` resumes
//!   exactly after the last event it saw. Replicas wake their streams on their own
//!   events and poll the table once a second for the others'.
//! - **Webhooks** ([`webhooks`]): a delivery row per (subscription, event), written
//!   with the event, retried with backoff until the receiver answers 2xx; the rows are
//!   the delivery log.
//!
//! Every event belongs to the tenant it is about (the vehicle's, the grant's or the
//! account's): a stream reads only its caller's tenant's events (and with a vehicle
//! restriction only those vehicles', filtered in SQL), and an event is queued only for
//! subscriptions of that tenant whose vehicles include it.
//!
//! An event that cannot be written is logged; it never fails the step it describes.

pub mod egress;
pub mod webhooks;

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::clock::timestamp;
use crate::store::{EventRecord, EventStore, WebhookRecord, now};

/// The event types keyway emits.
pub const TYPES: &[&str] = &[
    "command.succeeded",
    "command.failed",
    "grant.created",
    "grant.unlocked",
    "grant.completed",
    "grant.revoked",
    "grant.relocked",
    "grant.relock_failed",
    "account.reauthorization_required",
];

/// What an event is about.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    /// The tenant it belongs to: the only one that sees it.
    pub tenant: &'a str,
    /// The vehicle.
    pub vehicle_id: Option<&'a str>,
    /// The grant.
    pub grant_id: Option<&'a str>,
    /// The command.
    pub command_id: Option<&'a str>,
}

/// How long the list of webhook subscriptions is reused before it is read again (a
/// new subscription reaches every replica within this time).
const HOOKS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Emits and reads events.
pub struct Events {
    store: Arc<dyn EventStore>,
    /// Subscriptions as last read, and when.
    hooks: std::sync::Mutex<Option<(tokio::time::Instant, Vec<WebhookRecord>)>>,
    /// The newest `seq` this process wrote (streams wait on it).
    latest: watch::Sender<i64>,
    /// Wakes the webhook worker.
    pub(crate) deliveries: Arc<tokio::sync::Notify>,
}

impl Events {
    /// Events in `store`.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            hooks: std::sync::Mutex::default(),
            latest: watch::channel(0).0,
            deliveries: Arc::default(),
        }
    }

    /// The event record for `kind`, stamped now (not yet stored).
    pub fn record(kind: &str, about: Subject<'_>, data: &Value) -> EventRecord {
        EventRecord {
            seq: 0,
            id: crate::ids::new("evt"),
            kind: kind.to_string(),
            tenant: about.tenant.to_string(),
            vehicle_id: about.vehicle_id.map(str::to_string),
            grant_id: about.grant_id.map(str::to_string),
            command_id: about.command_id.map(str::to_string),
            data: data.to_string(),
            created_at: now(),
        }
    }

    /// The subscriptions that want `event`: of its tenant, for its type, and — for a
    /// subscription made with a vehicle-restricted token — about one of its vehicles.
    pub async fn hooks_for(&self, event: &EventRecord) -> Vec<String> {
        let kind = event.kind.as_str();
        let fresh = crate::sync::lock(&self.hooks)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < HOOKS_TTL)
            .map(|(_, all)| all.clone());
        let all = match fresh {
            Some(all) => all,
            None => match self.store.webhooks().await {
                Ok(all) => {
                    *crate::sync::lock(&self.hooks) =
                        Some((tokio::time::Instant::now(), all.clone()));
                    all
                }
                Err(e) => {
                    tracing::error!(error = %e, event = kind, "could not read webhook subscriptions");
                    Vec::new()
                }
            },
        };
        all.into_iter()
            .filter(|w| w.tenant == event.tenant && webhooks::wants(&w.types, kind))
            .filter(|w| match (&w.vehicles, &event.vehicle_id) {
                (None, _) => true,
                (Some(allowed), Some(v)) => allowed.contains(v),
                (Some(_), None) => false,
            })
            .map(|w| w.id)
            .collect()
    }

    /// Forgets the cached subscriptions (one was added or removed here).
    pub fn hooks_changed(&self) {
        *crate::sync::lock(&self.hooks) = None;
    }

    /// Wakes streams and the webhook worker for an event stored as `seq`.
    pub fn published(&self, kind: &str, seq: i64, has_deliveries: bool) {
        tracing::info!(event = kind, seq, "event");
        self.latest.send_if_modified(|l| {
            let newer = seq > *l;
            if newer {
                *l = seq;
            }
            newer
        });
        if has_deliveries {
            self.deliveries.notify_one();
        }
    }

    /// Appends an event (queuing its webhook deliveries); returns its `seq`, or None
    /// when it could not be written (logged).
    pub async fn emit(&self, kind: &str, about: Subject<'_>, data: Value) -> Option<i64> {
        let event = Self::record(kind, about, &data);
        let hooks = self.hooks_for(&event).await;
        match self.store.append_event(&event, &hooks).await {
            Ok(seq) => {
                self.published(kind, seq, !hooks.is_empty());
                Some(seq)
            }
            Err(e) => {
                tracing::error!(error = %e, event = kind, "event could not be written");
                None
            }
        }
    }

    /// Up to `limit` of the caller's events after `seq`: its tenant's, and with a
    /// vehicle restriction only those vehicles'.
    pub async fn after(
        &self,
        caller: &crate::auth::Caller,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, crate::error::ApiError> {
        Ok(self
            .store
            .events_after(&caller.tenant, caller.vehicles.as_deref(), seq, limit)
            .await?)
    }

    /// Changes when this process writes an event.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

/// The JSON of an event, as streamed and as POSTed to webhooks.
pub fn view(e: &EventRecord) -> Value {
    json!({
        "id": e.id,
        "seq": e.seq,
        "type": e.kind,
        "created_at": timestamp(e.created_at),
        "vehicle_id": e.vehicle_id,
        "grant_id": e.grant_id,
        "command_id": e.command_id,
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    })
}
