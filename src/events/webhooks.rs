//! Webhook subscriptions and their delivery.
//!
//! Each subscription has its own secret (shown once, at creation; stored sealed).
//! Every delivery is a `POST` of the event's JSON with
//! `Keyway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, so a
//! receiver can check both origin and freshness ([`verify`]) and reject replays of old
//! deliveries. A delivery that does not get a 2xx within the timeout is retried with
//! doubling backoff (from `webhook_backoff_ms`, at most an hour) up to
//! `webhook_max_attempts`, then marked failed; each attempt's status and error are kept
//! (`GET /v1/webhooks/{id}/deliveries`). Deliveries are claimed by moving their next
//! attempt forward, so replicas never send the same attempt twice at once; a receiver
//! must still de-duplicate by `Keyway-Delivery-Id` (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use ring::hmac;

use crate::crypto::Sealer;
use crate::error::ApiError;
use crate::store::{DeliveryRecord, Store, WebhookRecord, now};
use crate::upstream::HttpsClient;

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

/// Whether a subscription's type list (`*` or comma-separated) includes `kind`.
pub fn wants(types: &str, kind: &str) -> bool {
    types.split(',').any(|t| t == "*" || t == kind)
}

fn aad(id: &str) -> String {
    format!("webhooks/{id}/secret")
}

/// The signature header value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag: String = ctx
        .sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
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
    let ok = tags.iter().any(|tag| {
        let bytes: Option<Vec<u8>> = (0..tag.len())
            .step_by(2)
            .map(|i| {
                tag.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        bytes.is_some_and(|b| hmac::verify(&key, &msg, &b).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Subscriptions and their delivery.
pub struct Webhooks {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    client: HttpsClient,
    settings: DeliverySettings,
}

impl Webhooks {
    /// Webhooks over `store`, sending with `client`.
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        client: HttpsClient,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            store,
            sealer,
            client,
            settings,
        }
    }

    /// Subscribes `url` to `types` (`*` for all); returns the record and its secret
    /// (the only time the secret is shown).
    pub async fn subscribe(
        &self,
        url: &str,
        types: &[String],
        created_by: &str,
    ) -> Result<(WebhookRecord, String), ApiError> {
        let id = crate::ids::new("whk");
        let secret = format!("whsec_{}", crate::ids::new("s").trim_start_matches("s_"));
        let record = WebhookRecord {
            id: id.clone(),
            url: url.to_string(),
            secret: self
                .sealer
                .seal(&keyway_adapter::Secret::new(secret.clone()), &aad(&id))
                .map_err(ApiError::internal)?,
            types: if types.is_empty() {
                "*".into()
            } else {
                types.join(",")
            },
            created_by: created_by.to_string(),
            created_at: now(),
        };
        self.store.insert_webhook(&record).await?;
        Ok((record, secret))
    }

    /// Sends every delivery due now; returns how many were attempted.
    pub async fn deliver_due(&self) -> usize {
        let t = now();
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
        let sends = due.into_iter().map(|d| {
            let hook = hooks.iter().find(|h| h.id == d.webhook_id).cloned();
            async move { self.attempt(d, hook).await }
        });
        futures_util::future::join_all(sends).await;
        n
    }

    async fn attempt(&self, mut d: DeliveryRecord, hook: Option<WebhookRecord>) {
        d.attempts += 1;
        d.updated_at = now();
        let outcome = match hook {
            None => Err((None, "subscription deleted".to_string(), false)),
            Some(hook) => self.send(&d, &hook).await,
        };
        match outcome {
            Ok(status) => {
                d.status = "delivered".into();
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
                    d.next_attempt_at = now() + delay;
                } else {
                    d.status = "failed".into();
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
        let fail = |s: Option<u16>, e: String| (s, e, true);
        let event = match self.store.event(d.event_seq).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err((None, "event missing".into(), false)),
            Err(e) => return Err(fail(None, e.to_string())),
        };
        let secret = self
            .sealer
            .open(&hook.secret, &aad(&hook.id))
            .map_err(|e| (None, format!("secret: {e}"), false))?;
        let body = Bytes::from(super::view(&event).to_string());
        let signature = sign(
            secret.expose(),
            time::OffsetDateTime::now_utc().unix_timestamp(),
            &body,
        );
        let req = Request::post(&hook.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "keyway-webhooks/1")
            .header("keyway-signature", signature)
            .header("keyway-event-id", &event.id)
            .header("keyway-event-type", &event.kind)
            .header("keyway-delivery-id", &d.id)
            .body(Full::new(body))
            .map_err(|e| (None, format!("request: {e}"), false))?;
        let sent = tokio::time::timeout(self.settings.timeout, async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            // Read (a bounded part of) the answer so the connection can be reused.
            let _ = tokio::time::timeout(Duration::from_secs(1), resp.into_body().collect()).await;
            Ok::<u16, String>(status)
        })
        .await;
        match sent {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
            Ok(Ok(status)) => Err(fail(Some(status), format!("receiver answered {status}"))),
            Ok(Err(e)) => Err(fail(None, e)),
            Err(_) => Err(fail(None, "no answer in time".into())),
        }
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

    #[test]
    fn type_filters() {
        assert!(wants("*", "grant.unlocked"));
        assert!(wants("grant.unlocked,grant.relocked", "grant.relocked"));
        assert!(!wants("grant.unlocked", "command.failed"));
    }
}
