//! OEM quotas: "at most N requests in any window W", for each window an OEM publishes
//! (Volvo: 100 requests/min and 10 commands/min; BMW: a daily quota), plus pushback —
//! after an OEM says "too many" (429, BMW's 403 quota text, Hyundai's 200 + `5091`) no
//! request goes to it until the time it announced.
//!
//! The limiter is an exact sliding-window log rather than a GCRA (governor): a GCRA
//! that allows a burst of N *and* refills at N/W lets up to 2N through in one window,
//! which is what an OEM counting "per minute" would refuse. keyway counts when it sends,
//! the OEM when requests arrive; each window is widened by a margin (10 %, at most 1 s)
//! so that jitter between the two cannot push N+1 arrivals into one of the OEM's windows. A request that would exceed
//! a window waits for a slot when one frees within `max_wait`, and otherwise fails fast
//! with the time until one does (`rate_limited` + `Retry-After` at the API).
//!
//! A quota may keep a **reserve**: the last `reserve` slots of every window are taken
//! only by reserved requests (relocks and the unlock a valid grant owes a courier), so
//! callers spending the OEM's command quota can never starve the relock that closes a
//! customer's car. Both classes count in the one log.
//!
//! In cluster mode the log lives in Redis ([`crate::cluster::limits`]) so the windows
//! hold for all replicas together; while Redis is unreachable each replica keeps to
//! its share (`max / replicas`) in the local log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use keyway_adapter::error::parse_retry_after;
use keyway_adapter::{TransportError, Window};
use tokio::time::Instant;

use crate::cluster::limits::SharedLimits;
use crate::metrics;

#[derive(Debug)]
struct Inner {
    logs: Vec<VecDeque<Instant>>,
    pushback_until: Option<Instant>,
}

/// A quota: several windows and a pushback gate.
#[derive(Debug)]
pub struct Quota {
    windows: Vec<Window>,
    max_wait: Duration,
    inner: Mutex<Inner>,
    oem: &'static str,
    kind: &'static str,
    /// Slots of each window only reserved requests may take.
    reserve: u32,
    /// Cluster-wide log: the limits, and the windows widened by their margin.
    shared: Option<(Arc<SharedLimits>, Vec<Window>)>,
}

impl Quota {
    /// A quota enforcing every window in `windows`.
    pub fn new(
        windows: Vec<Window>,
        max_wait: Duration,
        oem: &'static str,
        kind: &'static str,
    ) -> Self {
        let logs = windows.iter().map(|_| VecDeque::new()).collect();
        Self {
            windows,
            max_wait,
            inner: Mutex::new(Inner {
                logs,
                pushback_until: None,
            }),
            oem,
            kind,
            reserve: 0,
            shared: None,
        }
    }

    /// The OEM it limits.
    pub fn oem(&self) -> &'static str {
        self.oem
    }

    /// The longest of its windows (zero without any).
    pub fn longest_window(&self) -> std::time::Duration {
        self.windows.iter().map(|w| w.per).max().unwrap_or_default()
    }

    /// The most requests per second it lets through for as long as one likes (its
    /// tightest window's rate); `None` without any window.
    pub fn sustained_rate(&self) -> Option<f64> {
        self.windows
            .iter()
            .map(|w| f64::from(w.max) / w.per.as_secs_f64().max(1e-3))
            .min_by(f64::total_cmp)
    }

    /// Keeps `reserve` slots of every window (at most `max - 1`) for reserved requests.
    pub fn with_reserve(mut self, reserve: u32) -> Self {
        self.reserve = reserve;
        self
    }

    /// How many entries a window may hold for a request of this class.
    fn cap(&self, w: &Window, reserved: bool) -> u32 {
        if reserved {
            w.max
        } else {
            w.max - self.reserve.min(w.max.saturating_sub(1))
        }
    }

    /// Keeps the windows cluster-wide in Redis; the local log, used only while Redis
    /// is unreachable, keeps to this replica's share of each window.
    pub fn shared(mut self, limits: Arc<SharedLimits>, replicas: u32) -> Self {
        let whole: Vec<Window> = self
            .windows
            .iter()
            .map(|w| Window {
                max: w.max,
                per: guarded(w.per),
            })
            .collect();
        for w in &mut self.windows {
            w.max = w.max.div_ceil(replicas.max(1));
        }
        self.shared = Some((limits, whole));
        self
    }

    /// Takes a slot now — cluster-wide when shared and Redis answers, else locally —
    /// or says how long until one frees.
    /// Takes a slot now (cluster-wide in cluster mode), or says how long until one frees:
    /// for a caller that must do something between deciding to wait and waiting (the
    /// command layer clears its "sent" mark first).
    pub async fn take(&self, reserved: bool) -> Result<(), Duration> {
        if let Some((limits, windows)) = &self.shared {
            let windows: Vec<Window> = windows
                .iter()
                .map(|w| Window {
                    max: self.cap(w, reserved),
                    per: w.per,
                })
                .collect();
            if let Some(answer) = limits
                .take(&format!("{}:{}", self.oem, self.kind), &windows)
                .await
            {
                return answer;
            }
        }
        self.try_acquire_as(reserved)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// The longest a request waits for a slot before it is refused.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Counts a wait and its length, or a refusal (`waited: None`), in the metrics.
    pub fn observe_wait(&self, waited: Option<Duration>) {
        match waited {
            Some(w) if !w.is_zero() => metrics::quota_wait(self.oem, self.kind, w.as_secs_f64()),
            Some(_) => {}
            None => metrics::quota_rejection(self.oem, self.kind),
        }
    }

    /// Takes a slot now, or says how long until one frees.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.try_acquire_as(false)
    }

    /// Takes a slot now for an ordinary or a reserved request, or says how long until
    /// one frees.
    pub fn try_acquire_as(&self, reserved: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut i = self.lock();
        if let Some(until) = i.pushback_until {
            if now < until {
                return Err(until - now);
            }
            i.pushback_until = None;
        }
        let mut wait = Duration::ZERO;
        for (w, log) in self.windows.iter().zip(i.logs.iter_mut()) {
            let per = guarded(w.per);
            while log.front().is_some_and(|t| now.duration_since(*t) >= per) {
                log.pop_front();
            }
            if log.len() >= self.cap(w, reserved) as usize
                && let Some(oldest) = log.front()
            {
                wait = wait.max(per - now.duration_since(*oldest));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for log in i.logs.iter_mut() {
            log.push_back(now);
        }
        Ok(())
    }

    /// Takes a slot, waiting up to `max_wait`; else the time until one frees.
    pub async fn acquire(&self) -> Result<(), Duration> {
        self.acquire_as(false).await
    }

    /// [`Quota::acquire`] for an ordinary or a reserved request.
    pub async fn acquire_as(&self, reserved: bool) -> Result<(), Duration> {
        let started = Instant::now();
        loop {
            match self.take(reserved).await {
                Ok(()) => {
                    let waited = started.elapsed();
                    if !waited.is_zero() {
                        metrics::quota_wait(self.oem, self.kind, waited.as_secs_f64());
                    }
                    return Ok(());
                }
                Err(wait) if started.elapsed() + wait <= self.max_wait => {
                    tokio::time::sleep(wait).await;
                }
                Err(wait) => {
                    metrics::quota_rejection(self.oem, self.kind);
                    return Err(wait);
                }
            }
        }
    }

    /// The OEM asked keyway to back off for `d`.
    pub fn push_back(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut i = self.lock();
        if i.pushback_until.is_none_or(|u| u < until) {
            i.pushback_until = Some(until);
        }
        tracing::info!(
            oem = self.oem,
            quota = self.kind,
            back_off_ms = d.as_millis() as u64,
            "OEM rate limit: backing off"
        );
        if let Some((limits, _)) = &self.shared {
            let (limits, name) = (limits.clone(), format!("{}:{}", self.oem, self.kind));
            tokio::spawn(async move { limits.push_back(&name, d).await });
        }
    }
}

/// A window widened by the send-to-arrival margin: 10 %, at most one second.
fn guarded(per: Duration) -> Duration {
    per + (per / 10).min(Duration::from_secs(1))
}

/// The request quota as a layer: takes a slot per request and turns 429 answers into
/// pushback.
impl super::Policy for Arc<Quota> {
    async fn handle<B: super::Below>(
        &self,
        inner: &B,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, TransportError> {
        if let Err(retry_after) = self.acquire().await {
            return Err(TransportError::QuotaExhausted { retry_after });
        }
        let outcome = inner.send(req).await;
        if let Ok(resp) = &outcome
            && resp.status() == http::StatusCode::TOO_MANY_REQUESTS
        {
            metrics::rate_limited(self.oem);
            let after = parse_retry_after(resp.headers().get(http::header::RETRY_AFTER))
                .unwrap_or(Duration::from_secs(1));
            self.push_back(after);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(max: u32, per_s: u64, max_wait_s: u64) -> Quota {
        Quota::new(
            vec![Window {
                max,
                per: Duration::from_secs(per_s),
            }],
            Duration::from_secs(max_wait_s),
            "test",
            "requests",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window() {
        let q = Arc::new(quota(10, 60, 3600));
        let mut times = Vec::new();
        let start = Instant::now();
        for _ in 0..35 {
            q.acquire().await.unwrap();
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(60))
                .count();
            assert!(in_window <= 10, "{in_window} in the minute from {t:?}");
        }
        // Bursts of 10 are allowed at once; the 11th waits the window and its margin.
        assert_eq!(times[9], Duration::ZERO);
        assert_eq!(times[10], Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn the_reserve_is_left_to_reserved_requests() {
        let q = quota(10, 60, 0).with_reserve(2);
        for _ in 0..8 {
            q.try_acquire().unwrap();
        }
        assert!(q.try_acquire().is_err(), "callers took a reserved slot");
        assert_eq!(q.try_acquire_as(true), Ok(()));
        assert_eq!(q.try_acquire_as(true), Ok(()));
        assert!(q.try_acquire_as(true).is_err());
        // A window of one is never all reserve.
        let one = quota(1, 60, 0).with_reserve(5);
        assert_eq!(one.try_acquire(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn fails_fast_beyond_max_wait_with_the_time_left() {
        let q = quota(1, 60, 2);
        q.acquire().await.unwrap();
        assert_eq!(q.acquire().await, Err(Duration::from_secs(61)));
    }

    #[tokio::test(start_paused = true)]
    async fn pushback_holds_everything_until_the_announced_time() {
        let q = quota(100, 60, 0);
        q.push_back(Duration::from_secs(2));
        assert_eq!(q.try_acquire(), Err(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(q.try_acquire().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(q.try_acquire(), Ok(()));
    }
}
