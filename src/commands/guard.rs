//! The unlock abuse guard's place in the command path. [`UnlockGuard`] is what
//! [`Commands::submit`](super::Commands::submit) asks before it records a *new* unlock
//! (a replay under an idempotency key is not charged), whatever the entry point: a
//! caller's unlock or a grant's. The API edge implements it with its per-vehicle
//! limiter, so `commands` imports nothing from `api`. [`Throttled`] is a limiter's
//! refusal, with the `RateLimit` headers the caller is told.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Classify, Code};

/// Charges one new unlock of a car, or refuses it.
#[async_trait]
pub trait UnlockGuard: Send + Sync {
    /// Charges one unlock of `vehicle_id`.
    async fn charge_unlock(&self, vehicle_id: &str) -> Result<(), Throttled>;
}

/// No guard: for keyway's own submissions, which are locks (a grant's relock) or which
/// a test drives directly.
pub struct Unguarded;

#[async_trait]
impl UnlockGuard for Unguarded {
    async fn charge_unlock(&self, _vehicle_id: &str) -> Result<(), Throttled> {
        Ok(())
    }
}

/// A limiter refused a request (`rate_limited`): which limiter, its quota and window
/// (`RateLimit-Policy`), and how long until it lets one through (`Retry-After`, whole
/// seconds, at least one).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{detail}")]
pub struct Throttled {
    /// The limiter's name in the `RateLimit` headers.
    pub limiter: &'static str,
    /// Requests per window.
    pub quota: u32,
    /// The window, in seconds.
    pub window_s: u64,
    /// Until one request is let through.
    pub wait: Duration,
    /// What the caller is told.
    pub detail: &'static str,
}

impl Throttled {
    /// The wait in whole seconds, rounded up, at least one.
    fn wait_s(&self) -> u64 {
        crate::clock::whole_secs(self.wait).max(1)
    }
}

impl Classify for Throttled {
    fn code(&self) -> Code {
        Code::RateLimited
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.wait_s()))
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let (name, t) = (self.limiter, self.wait_s());
        vec![
            (
                "ratelimit-policy",
                format!("\"{name}\";q={};w={}", self.quota, self.window_s),
            ),
            ("ratelimit", format!("\"{name}\";r=0;t={t}")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_rounds_its_wait_up_to_whole_seconds() {
        let t = |wait| Throttled {
            limiter: "unlocks_per_vehicle",
            quota: 3,
            window_s: 60,
            wait,
            detail: "slow down",
        };
        assert_eq!(
            t(Duration::from_millis(1500)).retry_after(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            t(Duration::ZERO).retry_after(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            t(Duration::from_secs(20)).headers(),
            vec![
                (
                    "ratelimit-policy",
                    "\"unlocks_per_vehicle\";q=3;w=60".into()
                ),
                ("ratelimit", "\"unlocks_per_vehicle\";r=0;t=20".into()),
            ]
        );
    }
}
