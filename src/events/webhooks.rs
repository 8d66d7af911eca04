//! Webhook subscriptions and their delivery.
//!
//! Each subscription has its own secret (shown once, at creation; stored sealed).
//! Every delivery is a `POST` of the event's JSON with
//! `Keyway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, so a
//! receiver can check both origin and freshness ([`verify`]) and reject replays of old
//! deliveries. A delivery that does not get a 2xx within the timeout is retried with
//! doubling backoff (from `webhook_backoff`, at most an hour) up to
//! `webhook_max_attempts`, then marked failed; each attempt's status and error are kept
//! (`GET /v1/webhooks/{id}/deliveries`). Deliveries are claimed by moving their next
//! attempt forward, so replicas never send the same attempt twice at once; a receiver
//! must still de-duplicate by `Keyway-Delivery-Id` (at-least-once).
//!
//! Every connection goes through the egress guard ([`super::egress`]); the delivery
//! log keeps an error class (`blocked_address`, `connect_failed`, `timeout`,
//! `http_3xx`, `http_4xx`, `http_5xx`, `request_failed`), never raw socket errors.
//! Each subscription's deliveries run in their own task, so a slow or dead receiver
//! delays only its own.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use ring::hmac;

use super::egress::{ConnectError, Egress, GuardedConnector};
use crate::auth::Caller;
use crate::crypto::Sealer;
use crate::error::{Classify, Code};

/// A subscription keyway refuses or could not make.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WebhookError {
    /// The egress guard refused its URL: malformed (`invalid_request`), or naming an
    /// address keyway may not reach (`forbidden`).
    #[error("url refused: {0}")]
    Refused(#[from] super::egress::Refused),
    /// Its secret could not be sealed.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl crate::error::Codes for WebhookError {
    fn codes() -> Vec<Code> {
        vec![Code::InvalidRequest, Code::Forbidden, Code::Internal]
    }
}

impl Classify for WebhookError {
    fn code(&self) -> Code {
        match self {
            WebhookError::Refused(super::egress::Refused::BadUrl) => Code::InvalidRequest,
            WebhookError::Refused(_) => Code::Forbidden,
            WebhookError::Crypto(_) | WebhookError::Store(_) => Code::Internal,
        }
    }
}
use crate::store::{DeliveryRecord, DeliveryStatus, EventStore, EventTypes, Kind, WebhookRecord};

/// The webhook client: TLS over the guarded connector.
type GuardedClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// Delivery settings.
#[derive(Clone, Copy, Debug)]
pub struct DeliverySettings {
    /// One attempt's deadline.
    pub timeout: Duration,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// First retry delay (doubling).
    pub backoff: Duration,
    /// How often to look for due deliveries (also woken by new events).
    pub tick: Duration,
}

fn aad(id: &str) -> String {
    format!("webhooks/{id}/secret")
}

/// The most of a receiver's answer keyway reads (its status is what counts).
const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// The signature header value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = hex::encode(ctx.sign().as_ref());
    format!("t={t},v1={tag}")
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is too far from now (a replay, or a wrong clock).
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// The body or secret does not match.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a `Keyway-Signature` header against the body as received, at `now` (unix
/// seconds), accepting timestamps within `tolerance_s`. What a receiver runs.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => tags.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance_s {
        return Err(SignatureError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = t.to_string().into_bytes();
    msg.push(b'.');
    msg.extend_from_slice(body);
    let ok = tags
        .iter()
        .any(|tag| hex::decode(tag).is_ok_and(|b| hmac::verify(&key, &msg, &b).is_ok()));
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Subscriptions and their delivery.
pub struct Webhooks {
    pub(super) store: Arc<dyn EventStore>,
    /// Told when a subscription is added or ended here.
    pub(super) events: Arc<super::Events>,
    sealer: Arc<Sealer>,
    egress: Arc<Egress>,
    client: GuardedClient,
    settings: DeliverySettings,
}

impl Webhooks {
    /// Webhooks over `store`, connecting only where `egress` allows.
    pub fn new(
        store: Arc<dyn EventStore>,
        events: Arc<super::Events>,
        sealer: Arc<Sealer>,
        egress: Arc<Egress>,
        settings: DeliverySettings,
    ) -> Self {
        let connector = GuardedConnector::new(egress.clone(), settings.timeout);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(crate::upstream::https(connector));
        Self {
            store,
            events,
            sealer,
            egress,
            client,
            settings,
        }
    }

    /// Subscribes `url` to `types` (`*` for all) for the caller's tenant (and, for a
    /// restricted token, only its vehicles); returns the record and its secret (the
    /// only time the secret is shown). A URL the egress guard refuses is
    /// `invalid_request`.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        url: &str,
        types: &[Kind],
    ) -> Result<(WebhookRecord, String), WebhookError> {
        self.egress.check_url(url).await?;
        let id = crate::ids::new("whk");
        let secret = format!("whsec_{}", crate::ids::new("s").trim_start_matches("s_"));
        let record = WebhookRecord {
            id: id.clone(),
            url: url.to_string(),
            secret: self
                .sealer
                .seal(&keyway_adapter::Secret::new(secret.clone()), &aad(&id))?,
            types: EventTypes::of(types),
            created_by: caller.sub.clone(),
            tenant: caller.tenant.clone(),
            vehicles: caller.vehicles.clone(),
            created_at: self.events.clock.now(),
        };
        self.store.insert_webhook(&record).await?;
        // This replica sees the new subscription at once (others within a second).
        self.events.hooks_changed();
        Ok((record, secret))
    }

    /// Starts every delivery due now, one task per subscription; returns how many.
    pub async fn deliver_due(self: &Arc<Self>) -> usize {
        let t = self.events.clock.now();
        let claim_until = t + self.settings.timeout * 2;
        let due = match self.store.claim_deliveries(t, claim_until, 50).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read due webhook deliveries");
                return 0;
            }
        };
        let n = due.len();
        let hooks = self.store.webhooks().await.unwrap_or_default();
        let mut by_hook: std::collections::HashMap<String, Vec<DeliveryRecord>> =
            std::collections::HashMap::new();
        for d in due {
            by_hook.entry(d.webhook_id.clone()).or_default().push(d);
        }
        // A slow or dead receiver holds only its own task; the claim keeps these
        // deliveries from being taken again while they run.
        for (id, batch) in by_hook {
            let hook = hooks.iter().find(|h| h.id == id).cloned();
            let this = self.clone();
            tokio::spawn(async move {
                let sends = batch.into_iter().map(|d| this.attempt(d, hook.clone()));
                futures_util::future::join_all(sends).await;
            });
        }
        n
    }

    async fn attempt(&self, mut d: DeliveryRecord, hook: Option<WebhookRecord>) {
        d.attempts += 1;
        d.updated_at = self.events.clock.now();
        let outcome = match hook {
            None => Err((None, "subscription_deleted".to_string(), false)),
            Some(hook) => self.send(&d, &hook).await,
        };
        match outcome {
            Ok(status) => {
                d.status = DeliveryStatus::Delivered;
                d.last_status = Some(status);
                d.last_error = None;
            }
            Err((status, error, retry)) => {
                d.last_status = status;
                d.last_error = Some(error);
                if retry && d.attempts < self.settings.max_attempts {
                    let delay = crate::upstream::retry::doubled(
                        self.settings.backoff,
                        d.attempts - 1,
                        Duration::from_secs(3600),
                    );
                    d.next_attempt_at = self.events.clock.now() + delay;
                } else {
                    d.status = DeliveryStatus::Failed;
                    tracing::warn!(delivery = %d.id, webhook = %d.webhook_id, attempts = d.attempts,
                        "webhook delivery failed for good");
                }
            }
        }
        if let Err(e) = self.store.update_delivery(&d).await {
            tracing::warn!(delivery = %d.id, error = %e, "could not record a webhook attempt");
        }
    }

    async fn send(
        &self,
        d: &DeliveryRecord,
        hook: &WebhookRecord,
    ) -> Result<u16, (Option<u16>, String, bool)> {
        let fail = |s: Option<u16>, e: &str| (s, e.to_string(), true);
        let event = match self.store.event(d.event_seq).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err((None, "event_missing".into(), false)),
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery could not read its event");
                return Err(fail(None, "internal"));
            }
        };
        let secret = self
            .sealer
            .open(&hook.secret, &aad(&hook.id))
            .map_err(|e| {
                tracing::error!(webhook = %hook.id, error = %e, "webhook secret does not open");
                (None, "internal".to_string(), false)
            })?;
        let body = Bytes::from(serde_json::to_vec(&super::view::view(&event)).unwrap_or_default());
        let signature = sign(
            secret.expose(),
            self.events.clock.now().unix_timestamp(),
            &body,
        );
        let req = Request::post(&hook.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "keyway-webhooks/1")
            .header("keyway-signature", signature)
            .header("keyway-event-id", &event.id)
            .header("keyway-event-type", event.kind.as_str())
            .header("keyway-delivery-id", &d.id)
            .body(Full::new(body))
            .map_err(|_| (None, "bad_url".to_string(), false))?;
        let sent = tokio::time::timeout(self.settings.timeout, async {
            let resp = self.client.request(req).await.map_err(|e| class(&e))?;
            let status = resp.status().as_u16();
            // Read a short answer so the connection can be reused; a longer one (or a
            // slow one) is dropped with its connection: a receiver cannot make keyway
            // hold more than `MAX_ANSWER_BYTES` of it.
            let answer = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES);
            let _ = tokio::time::timeout(Duration::from_secs(1), answer.collect()).await;
            Ok::<u16, &'static str>(status)
        })
        .await;
        match sent {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
            // Redirects are not followed: the receiver must answer itself.
            Ok(Ok(status)) => Err(fail(Some(status), &format!("http_{}xx", status / 100))),
            // A blocked address stays blocked: no retry.
            Ok(Err("blocked_address")) => Err((None, "blocked_address".into(), false)),
            Ok(Err(e)) => Err(fail(None, e)),
            Err(_) => Err(fail(None, "timeout")),
        }
    }
}

/// The class of a failed request, for the delivery log (no raw socket errors).
fn class(e: &hyper_util::client::legacy::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(c) = err.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Blocked(_) => "blocked_address",
                ConnectError::Timeout => "timeout",
                ConnectError::Io(_) => "connect_failed",
            };
        }
        source = err.source();
    }
    if e.is_connect() {
        "connect_failed"
    } else {
        "request_failed"
    }
}

/// Delivers due webhooks until the task is dropped: on every new event and every tick.
pub async fn run(webhooks: Arc<Webhooks>, wake: Arc<tokio::sync::Notify>) {
    loop {
        while webhooks.deliver_due().await > 0 {}
        let _ = tokio::time::timeout(webhooks.settings.tick, wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_tampered_body_does_not() {
        let h = sign("whsec_x", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify("whsec_x", &h, b"{\"a\":1}", 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify("whsec_x", &h, b"{\"a\":2}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_y", &h, b"{\"a\":1}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_x", &h, b"{\"a\":1}", 1_700_001_000, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("whsec_x", "v1=00", b"", 0, 300),
            Err(SignatureError::Malformed)
        );
    }
}
