//! Retries that are provably safe for a door lock, bounded by a budget.
//!
//! *What* may be retried is decided by [`decide`] from the request and the outcome
//! alone: a request that certainly never reached the OEM (connection refused, or a 429 —
//! the OEM says it did not process it) may always go again; after an ambiguous failure
//! (timeout, reset, 5xx) only an idempotent request (GET, or one marked
//! [`Idempotent`](keyway_adapter::http::Idempotent)) may. Commands are never repeated
//! after an ambiguous failure here — the command layer reconciles instead.
//!
//! *Whether* to retry is bounded three ways: at most `max_attempts`; a retry budget per
//! OEM (tower's `TpsBudget`: retries may add at most `budget_percent` of recent traffic,
//! with a floor of `budget_min_per_s`) so an OEM outage is never amplified into a retry
//! storm; and an overall deadline. Backoff is exponential with full jitter, and never
//! shorter than the OEM's `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use keyway_adapter::TransportError;
use keyway_adapter::error::parse_retry_after;
use keyway_adapter::http::is_idempotent;
use rand::Rng;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use crate::metrics;

/// Retry settings for one OEM.
#[derive(Clone, Debug)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff step.
    pub base: Duration,
    /// Longest backoff step.
    pub cap: Duration,
    /// No attempt starts after this much time since the first.
    pub deadline: Duration,
}

/// Whether to try again after `outcome`: `None` = no; `Some(hint)` = yes, waiting at
/// least `hint` when the OEM said how long.
pub fn decide(
    idempotent: bool,
    outcome: &Result<Response<Bytes>, TransportError>,
) -> Option<Option<Duration>> {
    match outcome {
        // Never sent.
        Err(TransportError::Connect(_)) => Some(None),
        // Maybe sent.
        Err(TransportError::Timeout | TransportError::Io(_)) => idempotent.then_some(None),
        // Refused locally: the caller decides.
        Err(
            TransportError::NotSent(_)
            | TransportError::QuotaExhausted { .. }
            | TransportError::CircuitOpen { .. },
        ) => None,
        Ok(resp) => {
            let after = parse_retry_after(resp.headers().get(http::header::RETRY_AFTER));
            match resp.status().as_u16() {
                429 => Some(after),
                500 | 502 | 503 | 504 if idempotent => Some(after),
                _ => None,
            }
        }
    }
}

/// `base` doubled `n` times, at most `cap` (the ceiling of every backoff in keyway:
/// OEM retries, relock attempts, webhook deliveries).
pub fn doubled(base: Duration, n: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << n.min(16)).min(cap)
}

/// Full-jitter exponential backoff for retry number `retry` (1-based).
pub fn backoff(s: &RetrySettings, retry: u32) -> Duration {
    let ceiling = doubled(s.base, retry, s.cap);
    let ms = rand::rng().random_range(0..=ceiling.as_millis() as u64);
    Duration::from_millis(ms)
}

/// The retry policy of one OEM (clones share the budget).
#[derive(Clone)]
pub struct Retry {
    settings: Arc<RetrySettings>,
    budget: Arc<TpsBudget>,
    oem: &'static str,
}

impl Retry {
    /// A policy with its own budget.
    pub fn new(settings: RetrySettings, budget: TpsBudget, oem: &'static str) -> Self {
        Self {
            settings: Arc::new(settings),
            budget: Arc::new(budget),
            oem,
        }
    }
}

impl super::Policy for Retry {
    async fn handle<B: super::Below>(
        &self,
        inner: &B,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, TransportError> {
        let idempotent = is_idempotent(&req);
        let deadline = Instant::now() + self.settings.deadline;
        self.budget.deposit();
        let mut attempt = 1;
        loop {
            let outcome = inner.send(clone_request(&req)).await;
            let Some(hint) = decide(idempotent, &outcome) else {
                return outcome;
            };
            if attempt >= self.settings.max_attempts {
                return outcome;
            }
            let wait = backoff(&self.settings, attempt).max(hint.unwrap_or_default());
            if Instant::now() + wait > deadline {
                return outcome;
            }
            if !self.budget.withdraw() {
                metrics::retry_budget_exhausted(self.oem);
                return outcome;
            }
            metrics::retry(self.oem);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// A copy of a whole-body request (the body is reference-counted `Bytes`).
fn clone_request(req: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    if req
        .extensions()
        .get::<keyway_adapter::http::Idempotent>()
        .is_some()
    {
        copy.extensions_mut()
            .insert(keyway_adapter::http::Idempotent);
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_adapter::Http;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn status(code: u16, retry_after: Option<&str>) -> Result<Response<Bytes>, TransportError> {
        let mut b = Response::builder().status(code);
        if let Some(r) = retry_after {
            b = b.header("retry-after", r);
        }
        Ok(b.body(Bytes::new()).unwrap())
    }

    #[test]
    fn only_unsent_or_idempotent_requests_retry() {
        // Never sent: always.
        assert_eq!(
            decide(false, &Err(TransportError::Connect("refused".into()))),
            Some(None)
        );
        // Ambiguous: only idempotent.
        assert_eq!(decide(false, &Err(TransportError::Timeout)), None);
        assert_eq!(decide(true, &Err(TransportError::Timeout)), Some(None));
        assert_eq!(
            decide(false, &Err(TransportError::Io("reset".into()))),
            None
        );
        assert_eq!(decide(false, &status(503, None)), None);
        assert_eq!(
            decide(true, &status(503, Some("3"))),
            Some(Some(Duration::from_secs(3)))
        );
        // 429: the OEM did not process it.
        assert_eq!(
            decide(false, &status(429, Some("2"))),
            Some(Some(Duration::from_secs(2)))
        );
        // Answers and local refusals: never.
        assert_eq!(decide(true, &status(200, None)), None);
        assert_eq!(decide(true, &status(404, None)), None);
        assert_eq!(
            decide(
                true,
                &Err(TransportError::CircuitOpen {
                    retry_after: Duration::from_secs(1)
                })
            ),
            None
        );
    }

    #[test]
    fn backoff_is_bounded_by_the_cap() {
        let s = RetrySettings {
            max_attempts: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
            deadline: Duration::from_secs(5),
        };
        for retry in 1..20 {
            assert!(backoff(&s, retry) <= Duration::from_millis(400));
        }
    }

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            deadline: Duration::from_secs(10),
        }
    }

    /// A stack answering `codes` in turn (then the last one forever), counting calls.
    fn scripted(codes: Vec<u16>, calls: Arc<AtomicU32>, budget: TpsBudget) -> Http {
        let below = Http::new(tower::service_fn(move |_req: Request<Bytes>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            let code = codes[n.min(codes.len() - 1)];
            async move { status(code, None) }
        }));
        super::super::layer(below, Retry::new(settings(), budget, "test"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_survives_two_503s() {
        let calls = Arc::new(AtomicU32::new(0));
        let budget = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
        let svc = scripted(vec![503, 503, 200], calls.clone(), budget);
        let resp = svc
            .send(Request::get("http://x/").body(Bytes::new()).unwrap())
            .await;
        assert_eq!(resp.unwrap().status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_is_not_repeated_after_a_503() {
        let calls = Arc::new(AtomicU32::new(0));
        let budget = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
        let svc = scripted(vec![503, 200], calls.clone(), budget);
        let resp = svc
            .send(Request::post("http://x/").body(Bytes::new()).unwrap())
            .await;
        assert_eq!(resp.unwrap().status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_caps_retries_during_an_outage() {
        let calls = Arc::new(AtomicU32::new(0));
        // No floor and 20 %: 100 failing reads may add at most ~20 retries.
        let budget = TpsBudget::new(Duration::from_secs(10), 0, 0.2);
        let svc = scripted(vec![503], calls.clone(), budget);
        for _ in 0..100 {
            let _ = svc
                .send(Request::get("http://x/").body(Bytes::new()).unwrap())
                .await;
        }
        let total = calls.load(Ordering::SeqCst);
        assert!(total <= 100 + 21, "{total} calls for 100 requests");
        assert!(total > 100, "some retries happened");
    }
}
