//! Events: every command outcome and grant step (`command.succeeded`,
//! `grant.unlocked`, `grant.relock_failed`, `account.reauthorization_required`, …) is
//! appended to the `events` table in order, then delivered two ways:
//!
//! - **Server-Sent Events** (`GET /v1/events`): a stream from any position; the event
//!   id is the event's `seq` — its number among its tenant's events, so no tenant sees
//!   another's volume — and a client that reconnects with `Last-Event-ID` resumes
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
mod kind;
pub mod manage;
mod view;
pub mod webhooks;

pub use kind::{Kind, Payload, Subject};
pub use view::{EventView, view};

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::{EventRecord, EventStore, WebhookRecord};

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
    /// The gateway's clock (events are stamped by it).
    pub(crate) clock: Clock,
}

impl Events {
    /// Events in `store`.
    pub fn new(store: Arc<dyn EventStore>, clock: Clock) -> Self {
        Self {
            clock,
            store,
            hooks: std::sync::Mutex::default(),
            latest: watch::channel(0).0,
            deliveries: Arc::default(),
        }
    }

    /// The event record of `payload`, stamped `at` (not yet stored).
    pub fn record(payload: &impl Payload, at: time::OffsetDateTime) -> EventRecord {
        let about = payload.subject();
        EventRecord {
            seq: 0,
            id: crate::ids::new("evt"),
            kind: payload.kind(),
            tenant: about.tenant.into(),
            vehicle_id: about.vehicle_id.map(Into::into),
            grant_id: about.grant_id.map(str::to_string),
            command_id: about.command_id.map(Into::into),
            // A payload is plain data: serializing it cannot fail.
            data: serde_json::to_string(payload).unwrap_or_else(|_| "null".into()),
            created_at: at,
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
            .filter(|w| w.tenant == event.tenant && w.types.wants(event.kind))
            .filter(|w| match (&w.vehicles, &event.vehicle_id) {
                (None, _) => true,
                (Some(allowed), Some(v)) => allowed.iter().any(|a| a == v),
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
    pub async fn emit(&self, payload: &impl Payload) -> Option<i64> {
        let kind = payload.kind().as_str();
        let event = Self::record(payload, self.clock.now());
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
    ) -> Result<Vec<EventRecord>, crate::store::StoreError> {
        self.store
            .events_after(&caller.tenant, caller.vehicles.as_deref(), seq, limit)
            .await
    }

    /// Changes when this process writes an event.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
