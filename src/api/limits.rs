//! keyway's own limits on its callers: a rate limit per caller (`sub`), an abuse guard
//! on unlocks per vehicle (a burst of unlocks on one car is refused, whoever sends
//! them), load shedding (beyond `max_in_flight` requests keyway answers 503 at once
//! instead of queueing), and a request timeout. Refusals are 429 problems with
//! `Retry-After` and the IETF draft `RateLimit-Policy` / `RateLimit` headers. These use
//! governor's GCRA (smooth rate with a burst), the right shape for abuse guards; OEM
//! quotas, which must never be exceeded in any window, use `upstream::quota` instead.
//! In cluster mode the caller and unlock limits are one GCRA in Redis for all replicas,
//! and governor's local limiter decides while Redis is unreachable.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::Semaphore;

use super::ApiError;
use crate::cluster::limits::SharedLimits;
use crate::config::InboundConfig;
use crate::error::Code;
use crate::metrics;

/// The inbound limiters.
pub struct Inbound {
    callers: DefaultKeyedRateLimiter<String>,
    unlocks: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    config: InboundConfig,
    in_flight: Arc<Semaphore>,
    shared: Option<Arc<SharedLimits>>,
    /// Checks since the limiters were last pruned.
    checks: std::sync::atomic::AtomicU64,
}

/// Every this many checks the keyed limiters drop keys whose state is back to fresh
/// (callers and cars seen once stay in memory no longer than that).
const PRUNE_EVERY: u64 = 4096;

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("config", &self.config)
            .finish()
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN)
}

impl Inbound {
    /// Limiters from configuration (validated: every number positive).
    pub fn new(config: &InboundConfig, shared: Option<Arc<SharedLimits>>) -> Self {
        let callers = Quota::per_second(nonzero(config.caller_per_s))
            .allow_burst(nonzero(config.caller_burst));
        let unlocks = Quota::per_minute(nonzero(config.unlocks_per_vehicle_per_min))
            .allow_burst(nonzero(config.unlock_burst));
        Self {
            callers: DefaultKeyedRateLimiter::keyed(callers),
            unlocks: DefaultKeyedRateLimiter::keyed(unlocks),
            clock: DefaultClock::default(),
            config: config.clone(),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            shared,
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts a check; every [`PRUNE_EVERY`] checks, drops the keys both limiters no
    /// longer need (a key whose bucket refilled is the same as an absent one).
    fn tick(&self) {
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
    }

    /// Drops the keys the limiters no longer need.
    pub fn prune(&self) {
        for l in [&self.callers, &self.unlocks] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How many keys the limiters hold (callers, unlocks).
    pub fn keys(&self) -> (usize, usize) {
        (self.callers.len(), self.unlocks.len())
    }

    fn refuse(
        &self,
        name: &'static str,
        quota: u32,
        window_s: u64,
        wait: Duration,
        detail: &str,
    ) -> ApiError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut e = ApiError::new(Code::RateLimited, detail);
        e.retry_after = Some(Duration::from_secs(secs.max(1)));
        e.headers = vec![
            (
                "ratelimit-policy",
                format!("\"{name}\";q={quota};w={window_s}"),
            ),
            ("ratelimit", format!("\"{name}\";r=0;t={}", secs.max(1))),
        ]
        .into();
        metrics::inbound_rejection(name);
        e
    }

    /// Charges one request to `sub`.
    pub async fn check_caller(&self, sub: &str) -> Result<(), ApiError> {
        let c = &self.config;
        let interval = Duration::from_secs(1) / c.caller_per_s.max(1);
        let refuse = |wait| {
            self.refuse(
                "caller",
                c.caller_burst,
                1,
                wait,
                "this caller sends too many requests; slow down",
            )
        };
        if let Some(answer) = self
            .cluster_wide("caller", sub, interval, c.caller_burst)
            .await
        {
            return answer.map_err(refuse);
        }
        self.tick();
        self.callers
            .check_key(&sub.to_string())
            .map_err(|not_until| refuse(not_until.wait_time_from(self.clock.now())))
    }

    /// Charges one unlock to `vehicle_id`.
    pub async fn check_unlock(&self, vehicle_id: &str) -> Result<(), ApiError> {
        let c = &self.config;
        let interval = Duration::from_secs(60) / c.unlocks_per_vehicle_per_min.max(1);
        let refuse = |wait| {
            self.refuse(
                "unlocks_per_vehicle",
                c.unlock_burst,
                60,
                wait,
                "too many unlocks of this vehicle in a short time; refused as a safety measure",
            )
        };
        if let Some(answer) = self
            .cluster_wide("unlocks", vehicle_id, interval, c.unlock_burst)
            .await
        {
            return answer.map_err(refuse);
        }
        self.tick();
        self.unlocks
            .check_key(&vehicle_id.to_string())
            .map_err(|not_until| refuse(not_until.wait_time_from(self.clock.now())))
    }

    /// The Redis GCRA's answer, or None (not in cluster mode, or Redis unreachable).
    async fn cluster_wide(
        &self,
        name: &'static str,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Option<Result<(), Duration>> {
        self.shared.as_ref()?.gcra(name, key, interval, burst).await
    }
}

/// Load shedding and the request timeout (health, readiness and metrics are exempt);
/// hands the request the limiters for the caller and unlock checks.
pub async fn protect(inbound: Arc<Inbound>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let Ok(_permit) = inbound.in_flight.clone().try_acquire_owned() else {
        metrics::inbound_rejection("overloaded");
        let mut e = ApiError::new(Code::Overloaded, "keyway is at capacity; try again shortly");
        e.retry_after = Some(Duration::from_secs(1));
        return e.into_response();
    };
    let timeout = Duration::from_secs(inbound.config.request_timeout_s);
    req.extensions_mut().insert(inbound);
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics::inbound_rejection("timeout");
            ApiError::new(
                Code::UpstreamTimeout,
                "keyway could not answer in time; commands keep running, follow them by id",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_unlocks_on_one_car_is_refused() {
        let inbound = Inbound::new(&InboundConfig::default(), None);
        for _ in 0..3 {
            inbound.check_unlock("veh_a").await.unwrap();
        }
        let e = inbound.check_unlock("veh_a").await.unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert!(e.retry_after.unwrap() >= Duration::from_secs(1));
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| *k == "ratelimit-policy" && v.contains("q=3;w=60"))
        );
        // Another car is unaffected.
        inbound.check_unlock("veh_b").await.unwrap();
    }

    #[tokio::test]
    async fn callers_seen_once_are_forgotten_once_their_bucket_refilled() {
        let config = InboundConfig {
            caller_per_s: 1000,
            caller_burst: 1,
            ..InboundConfig::default()
        };
        let inbound = Inbound::new(&config, None);
        for i in 0..(PRUNE_EVERY - 1) {
            inbound.check_caller(&format!("sub-{i}")).await.unwrap();
        }
        assert_eq!(inbound.keys().0, (PRUNE_EVERY - 1) as usize);
        // One request's state is gone after 1 ms at 1,000/s; wait well past it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The next check is the PRUNE_EVERY-th: the stale keys go, the new one stays.
        inbound.check_caller("sub-last").await.unwrap();
        assert!(inbound.keys().0 <= 1, "{:?}", inbound.keys());
    }
}
