//! `[events]` (webhook delivery) and `[grants]` (delivery grants and their relocks):
//! fields, defaults and their checks. The webhook egress allow-list is parsed by
//! `events::egress`, which uses it.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Delivery grants.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantsConfig {
    /// How often the relock worker looks for due relocks. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Relock attempts before `grant.relock_failed`. Default 5.
    pub relock_max_attempts: u32,
    /// Delay before the second relock attempt (doubling, at most 60 s). Default `2s`.
    #[serde(with = "humantime_serde")]
    pub relock_backoff: Duration,
    /// Longest grant window. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub max_window: Duration,
}

impl Default for GrantsConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(1000),
            relock_max_attempts: 5,
            relock_backoff: Duration::from_millis(2000),
            max_window: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Webhook delivery.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// One delivery attempt's deadline. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// Attempts before a delivery is marked failed. Default 8.
    pub webhook_max_attempts: u32,
    /// Delay before the first retry (doubling, at most an hour). Default `1s`.
    #[serde(with = "humantime_serde")]
    pub webhook_backoff: Duration,
    /// How often to look for due deliveries. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub delivery_tick: Duration,
    /// Exceptions to the webhook egress guard, which refuses loopback, private,
    /// link-local and other internal addresses: CIDRs (`10.20.0.0/16`), addresses or
    /// host names. Default none.
    pub webhook_allow: Vec<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            webhook_timeout: Duration::from_millis(5000),
            webhook_max_attempts: 8,
            webhook_backoff: Duration::from_millis(1000),
            delivery_tick: Duration::from_millis(1000),
            webhook_allow: Vec::new(),
        }
    }
}

impl GrantsConfig {
    /// Checks the counts and durations are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick.is_zero() || self.relock_max_attempts == 0 || self.max_window.is_zero() {
            return Err(invalid(
                "grants",
                "tick, relock_max_attempts and max_window must be positive",
            ));
        }
        Ok(())
    }
}

impl EventsConfig {
    /// Checks the counts and durations are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.webhook_timeout.is_zero()
            || self.webhook_max_attempts == 0
            || self.delivery_tick.is_zero()
        {
            return Err(invalid(
                "events",
                "webhook_timeout, webhook_max_attempts and delivery_tick must be positive",
            ));
        }
        Ok(())
    }
}

/// Watching cars (`PUT /v1/vehicles/{id}/watch`, and every active grant's car).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// How often the watcher looks for cars due a read. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// The pause between two reads of one watched car, when the quota allows.
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub min_period: Duration,
    /// The same for a grant's car while its unlock and relock are under way (from the
    /// courier's unlock until the relock's watch for a late unlock ends). Default
    /// `5s`.
    #[serde(with = "humantime_serde")]
    pub busy_period: Duration,
    /// The share of each OEM's request quota reserved for watching (0 < share < 1):
    /// with many watched cars the pause grows so watching never takes more. Default 0.5.
    pub quota_share: f64,
    /// A move counts as a change beyond this many metres. Default 50.
    pub move_m: f64,
    /// The longest watch a caller may set. Default one day.
    #[serde(with = "humantime_serde")]
    pub max_watch: Duration,
    /// A car whose OEM pushed its state is not read again for this long (the pushes
    /// keep it fresh; reads resume when they stop). Default `5m`.
    #[serde(with = "humantime_serde")]
    pub pushed_quiet: Duration,
    /// A watched car that sleeps (or is offline) is read ever less often: the pause
    /// doubles with each such reading, up to this (a grant's car: up to twice its
    /// period, the delivery is on). Default `10m`.
    #[serde(with = "humantime_serde")]
    pub asleep_max_period: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(1000),
            min_period: Duration::from_millis(30_000),
            busy_period: Duration::from_millis(5_000),
            quota_share: 0.5,
            move_m: 50.0,
            max_watch: Duration::from_secs(86_400),
            pushed_quiet: Duration::from_millis(300_000),
            asleep_max_period: Duration::from_millis(600_000),
        }
    }
}

impl WatchConfig {
    /// Checks the durations are positive and the share is a share.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = [self.tick, self.min_period, self.busy_period, self.max_watch];
        if zero.contains(&Duration::ZERO) {
            return Err(invalid(
                "watch",
                "tick, min_period, busy_period and max_watch must be positive",
            ));
        }
        let share_ok = self.quota_share > 0.0 && self.quota_share < 1.0;
        let move_ok = self.move_m >= 0.0 && self.move_m.is_finite();
        if !(share_ok && move_ok) {
            return Err(invalid(
                "watch",
                "quota_share must lie between 0 and 1, move_m must not be negative",
            ));
        }
        Ok(())
    }
}
