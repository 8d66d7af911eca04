//! Cluster-wide limits in Redis: OEM quotas as an exact sliding-window log (the same
//! rule as `upstream::quota`, so N per window holds for the cluster as a whole), the
//! OEM's "back off until" pushback, and callers' limits as a GCRA. Each check is one
//! atomic Lua script on Redis's own clock, so replicas with skewed clocks agree.
//!
//! When Redis does not answer within its deadline, the check is decided by the local
//! limiter instead (each replica then enforces its share of the quota), the failure is
//! logged (at most every 10 s) and counted, and Redis is not asked again for one
//! second — a dead Redis costs one deadline per second, never an outage.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;

use super::redis::{Redis, RedisError};
use crate::metrics;
use keyway_adapter::Window;

/// Sliding-window log over several windows, plus the pushback gate.
/// KEYS: pushback, log per window. ARGV: member, then (per_ms, max) per window.
/// Returns 0 when a slot was taken, else milliseconds until one frees.
const QUOTA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gate = redis.call('PTTL', KEYS[1])
if gate > 0 then return gate end
local wait = 0
for i = 2, #KEYS do
  local per = tonumber(ARGV[2 * i - 2])
  local max = tonumber(ARGV[2 * i - 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - per)
  if redis.call('ZCARD', KEYS[i]) >= max then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + per - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i - 2]))
end
return 0
";

/// Extends the pushback gate to ARGV[1] ms from now unless it already lasts longer.
const PUSH_BACK: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
";

/// GCRA: ARGV emission interval ms, burst. Returns 0 if allowed, else ms to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
if new - now > interval * burst then return new - now - interval * burst end
redis.call('SET', KEYS[1], new, 'PX', new - now)
return 0
";

/// Limits shared by every replica through one Redis.
pub struct SharedLimits {
    redis: Redis,
    prefix: String,
    quota: Script,
    push_back: Script,
    gcra: Script,
    /// Until when (ms since `epoch`) Redis is not asked, after a failure.
    skip_until_ms: AtomicU64,
    last_warning_ms: AtomicU64,
    up: AtomicBool,
    epoch: Instant,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("redis", &self.redis)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// How long Redis is left alone after a failure.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

impl SharedLimits {
    /// Limits in the Redis at `url` (TLS trusting `ca_file` when given), keys under
    /// `prefix:`.
    pub fn new(
        url: &str,
        ca_file: Option<&Path>,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, RedisError> {
        metrics::redis_up(true);
        Ok(Self {
            redis: Redis::new(url, ca_file, timeout)?,
            prefix: prefix.to_string(),
            quota: Script::new(QUOTA),
            push_back: Script::new(PUSH_BACK),
            gcra: Script::new(GCRA),
            skip_until_ms: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(0),
            up: AtomicBool::new(true),
            epoch: Instant::now(),
        })
    }

    /// Whether the last exchange with Redis worked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs a script unless Redis failed within the last second.
    async fn run(
        &self,
        kind: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Option<i64> {
        if self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            metrics::limits_degraded(kind);
            return None;
        }
        match self.redis.eval(script, keys, args).await {
            Ok(reply) => {
                self.answered();
                Some(reply)
            }
            Err(e) => {
                metrics::limits_degraded(kind);
                self.failed(&e);
                None
            }
        }
    }

    /// Asks Redis now whether it answers (readiness: the last exchange may be old).
    pub async fn probe(&self) -> bool {
        match self.redis.ping().await {
            Ok(()) => {
                self.answered();
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    fn answered(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis answers again: limits are cluster-wide again");
            metrics::redis_up(true);
        }
    }

    fn failed(&self, e: &RedisError) {
        let now = self.now_ms();
        self.skip_until_ms.store(
            now + PAUSE_AFTER_FAILURE.as_millis() as u64,
            Ordering::Relaxed,
        );
        self.up.store(false, Ordering::Relaxed);
        metrics::redis_up(false);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if last == 0 || now.saturating_sub(last) >= 10_000 {
            self.last_warning_ms.store(now.max(1), Ordering::Relaxed);
            tracing::warn!(error = %e,
                "Redis unreachable: limits fall back to this replica's local share");
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// Takes a slot of the quota `name` (windows already widened by their margin):
    /// `Some(Ok)` taken, `Some(Err(wait))` full, `None` Redis unreachable.
    pub async fn take(&self, name: &str, windows: &[Window]) -> Option<Result<(), Duration>> {
        let gate = self.key(&["quota", name, "pushback"]);
        let logs: Vec<String> = (0..windows.len())
            .map(|i| self.key(&["quota", name, &i.to_string()]))
            .collect();
        let mut keys = vec![gate.as_str()];
        keys.extend(logs.iter().map(String::as_str));
        let mut args = vec![crate::ids::new("slot")];
        for w in windows {
            args.push(w.per.as_millis().max(1).to_string());
            args.push(w.max.to_string());
        }
        let reply = self.run("quota", &self.quota, &keys, &args).await?;
        Some(wait_from(reply))
    }

    /// Makes everyone stay away from quota `name` for `d`.
    pub async fn push_back(&self, name: &str, d: Duration) {
        let gate = self.key(&["quota", name, "pushback"]);
        let ms = d.as_millis().max(1).to_string();
        let _ = self.run("pushback", &self.push_back, &[&gate], &[ms]).await;
    }

    /// One request against the GCRA limit `name` (`interval` between requests on
    /// average, `burst` at once): as [`SharedLimits::take`].
    pub async fn gcra(
        &self,
        name: &'static str,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Option<Result<(), Duration>> {
        let k = self.key(&["gcra", name, key]);
        let args = [
            interval.as_millis().max(1).to_string(),
            burst.max(1).to_string(),
        ];
        let reply = self.run(name, &self.gcra, &[&k], &args).await?;
        Some(wait_from(reply))
    }
}

fn wait_from(ms: i64) -> Result<(), Duration> {
    match ms {
        // Zero, or a negative answer: do not block callers on a script bug.
        ..=0 => Ok(()),
        ms => Err(Duration::from_millis(ms as u64)),
    }
}
