//! keyway's own limits on its callers: a rate limit per caller (`sub`), an abuse guard
//! on unlocks per vehicle (a burst of unlocks on one car is refused, whoever sends
//! them), load shedding (beyond `max_in_flight` requests keyway answers 503 at once
//! instead of queueing), a body timeout and a request timeout. Refusals are 429
//! problems with `Retry-After` and the IETF draft `RateLimit-Policy` / `RateLimit`
//! headers. These use governor's GCRA (smooth rate with a burst), the right shape for
//! abuse guards; OEM quotas, which must never be exceeded in any window, use
//! `upstream::quota` instead. In cluster mode the caller and unlock limits are one GCRA
//! in Redis for all replicas, and governor's local limiter decides while Redis is
//! unreachable.
//!
//! No caller can take the gateway from the others: a request's body is read whole
//! (within `http.body_timeout`, else 408) before anything else happens, and its
//! in-flight place is taken only after its caller is authenticated — from the caller's
//! tenant's share (`inbound.max_in_flight_per_tenant`) and the whole budget both. A
//! slow body, or a flood from one tenant, holds no place another tenant needs.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use crate::cluster::limits::SharedLimits;
use crate::commands::{Throttled, UnlockGuard};
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
    /// Each tenant's share of `in_flight` (made on first use, dropped when idle).
    tenants: std::sync::Mutex<ahash::HashMap<String, Arc<Semaphore>>>,
    /// How many requests one tenant may have in flight.
    per_tenant: usize,
    /// How long a request's body may take to arrive.
    body_timeout: Duration,
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
    /// Limiters from configuration (validated: every number positive); request bodies
    /// must arrive within `body_timeout`.
    pub fn new(
        config: &InboundConfig,
        body_timeout: Duration,
        shared: Option<Arc<SharedLimits>>,
    ) -> Self {
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
            tenants: std::sync::Mutex::default(),
            per_tenant: config.per_tenant(),
            body_timeout,
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

    /// Drops the keys the limiters no longer need, and the shares of idle tenants.
    pub fn prune(&self) {
        for l in [&self.callers, &self.unlocks] {
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.forget_idle_tenants();
    }

    fn forget_idle_tenants(&self) {
        crate::sync::lock(&self.tenants).retain(|_, s| s.available_permits() < self.per_tenant);
    }

    /// Takes an in-flight place for a request of `tenant` (authenticated) into `seat`:
    /// one of the tenant's share and one of the whole budget, held until the request
    /// ends. `overloaded` (503) when either is used up.
    pub fn admit(&self, tenant: &str, seat: &Seat) -> Result<(), ApiError> {
        let share = {
            let mut tenants = crate::sync::lock(&self.tenants);
            if let Some(s) = tenants.get(tenant) {
                s.clone()
            } else {
                if tenants.len() >= PRUNE_EVERY as usize {
                    drop(tenants);
                    self.forget_idle_tenants();
                    tenants = crate::sync::lock(&self.tenants);
                }
                tenants
                    .entry(tenant.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                    .clone()
            }
        };
        let overloaded = |detail: &str| {
            metrics::inbound_rejection("overloaded");
            let mut e = ApiError::new(Code::Overloaded, detail);
            e.retry_after = Some(Duration::from_secs(1));
            e
        };
        let mine = share.try_acquire_owned().map_err(|_| {
            overloaded("this tenant has as many requests in flight as it may; try again shortly")
        })?;
        let all = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| overloaded("keyway is at capacity; try again shortly"))?;
        *crate::sync::lock(&seat.0) = Some((mine, all));
        Ok(())
    }

    /// How many keys the limiters hold (callers, unlocks).
    pub fn keys(&self) -> (usize, usize) {
        (self.callers.len(), self.unlocks.len())
    }

    fn refuse(
        limiter: &'static str,
        quota: u32,
        window_s: u64,
        wait: Duration,
        detail: &'static str,
    ) -> Throttled {
        metrics::inbound_rejection(limiter);
        Throttled {
            limiter,
            quota,
            window_s,
            wait,
            detail,
        }
    }

    /// Charges one request to `sub`.
    pub async fn check_caller(&self, sub: &str) -> Result<(), ApiError> {
        let c = &self.config;
        let interval = Duration::from_secs(1) / c.caller_per_s.max(1);
        let refuse = |wait| {
            Self::refuse(
                "caller",
                c.caller_burst,
                1,
                wait,
                "this caller sends too many requests; slow down",
            )
            .into()
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
    pub async fn check_unlock(&self, vehicle_id: &str) -> Result<(), Throttled> {
        let c = &self.config;
        let interval = Duration::from_secs(60) / c.unlocks_per_vehicle_per_min.max(1);
        let refuse = |wait| {
            Self::refuse(
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

/// The unlock abuse guard the command service asks before a new unlock.
#[async_trait::async_trait]
impl UnlockGuard for Inbound {
    async fn charge_unlock(&self, vehicle_id: &str) -> Result<(), Throttled> {
        self.check_unlock(vehicle_id).await
    }
}

/// A request's in-flight place, once its caller is authenticated ([`Inbound::admit`]);
/// released when the request ends.
#[derive(Debug, Default)]
pub struct Seat(std::sync::Mutex<Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>>);

/// The body timeout, load shedding and the request timeout (health, readiness and
/// metrics are exempt); hands the request the limiters for the caller and unlock checks
/// and the seat its caller's in-flight place goes into.
pub async fn protect(inbound: Arc<Inbound>, max_body: usize, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let mut req = match whole_body(req, inbound.body_timeout, max_body).await {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let timeout = inbound.config.request_timeout;
    let seat = Arc::new(Seat::default());
    req.extensions_mut().insert(seat.clone());
    req.extensions_mut().insert(inbound);
    let answer = tokio::time::timeout(timeout, next.run(req)).await;
    drop(seat);
    match answer {
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

/// The request with its body read whole: within `timeout` (else 408) and at most
/// `max` bytes (else 413). A request without a body passes as it is.
async fn whole_body(req: Request, timeout: Duration, max: usize) -> Result<Request, ApiError> {
    if axum::body::HttpBody::size_hint(req.body()).exact() == Some(0) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            Code::PayloadTooLarge,
            "the request body is too large",
        )),
        Ok(Err(_)) => Err(ApiError::invalid("the request body could not be read")),
        Err(_) => {
            metrics::inbound_rejection("body_timeout");
            Err(ApiError::new(
                Code::RequestTimeout,
                "the request body did not arrive in time; send it whole, at once",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_unlocks_on_one_car_is_refused() {
        let inbound = Inbound::new(&InboundConfig::default(), Duration::from_secs(10), None);
        for _ in 0..3 {
            inbound.check_unlock("veh_a").await.unwrap();
        }
        let e = ApiError::from(inbound.check_unlock("veh_a").await.unwrap_err());
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
    async fn one_tenant_cannot_take_the_in_flight_places_of_the_others() {
        let config = InboundConfig {
            max_in_flight: 8,
            ..InboundConfig::default()
        };
        let inbound = Inbound::new(&config, Duration::from_secs(10), None);
        let seats: Vec<Seat> = (0..3).map(|_| Seat::default()).collect();
        // A quarter each: the second place of tenant a is refused...
        for seat in &seats[..2] {
            inbound.admit("a", seat).unwrap();
        }
        let e = inbound.admit("a", &seats[2]).unwrap_err();
        assert_eq!(e.code, Code::Overloaded);
        assert!(e.retry_after.is_some());
        // ... while tenant b still gets its own.
        let b = Seat::default();
        inbound.admit("b", &b).unwrap();
        // A finished request gives its place back.
        drop(seats);
        inbound.admit("a", &Seat::default()).unwrap();
        inbound.prune();
    }

    #[tokio::test]
    async fn callers_seen_once_are_forgotten_once_their_bucket_refilled() {
        let config = InboundConfig {
            caller_per_s: 1000,
            caller_burst: 1,
            ..InboundConfig::default()
        };
        let inbound = Inbound::new(&config, Duration::from_secs(10), None);
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
