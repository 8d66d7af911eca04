//! `[events]` (webhook delivery) and `[grants]` (delivery grants and their relocks):
//! fields, defaults and their checks. The webhook egress allow-list is parsed by
//! `events::egress`, which uses it.

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Delivery grants.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantsConfig {
    /// How often the relock worker looks for due relocks, ms. Default 1000.
    pub tick_ms: u64,
    /// Relock attempts before `grant.relock_failed`. Default 5.
    pub relock_max_attempts: u32,
    /// Delay before the second relock attempt, ms (doubling, at most 60 s). Default 2000.
    pub relock_backoff_ms: u64,
    /// Longest grant window, seconds. Default 7 days.
    pub max_window_s: u64,
}

impl Default for GrantsConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1000,
            relock_max_attempts: 5,
            relock_backoff_ms: 2000,
            max_window_s: 7 * 86_400,
        }
    }
}

/// Webhook delivery.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// One delivery attempt's deadline, ms. Default 5000.
    pub webhook_timeout_ms: u64,
    /// Attempts before a delivery is marked failed. Default 8.
    pub webhook_max_attempts: u32,
    /// Delay before the first retry, ms (doubling, at most an hour). Default 1000.
    pub webhook_backoff_ms: u64,
    /// How often to look for due deliveries, ms. Default 1000.
    pub delivery_tick_ms: u64,
    /// Exceptions to the webhook egress guard, which refuses loopback, private,
    /// link-local and other internal addresses: CIDRs (`10.20.0.0/16`), addresses or
    /// host names. Default none.
    pub webhook_allow: Vec<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            webhook_timeout_ms: 5000,
            webhook_max_attempts: 8,
            webhook_backoff_ms: 1000,
            delivery_tick_ms: 1000,
            webhook_allow: Vec::new(),
        }
    }
}

impl GrantsConfig {
    /// Checks the counts and durations are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_ms == 0 || self.relock_max_attempts == 0 || self.max_window_s == 0 {
            return Err(invalid(
                "grants",
                "tick_ms, relock_max_attempts and max_window_s must be positive",
            ));
        }
        Ok(())
    }
}

impl EventsConfig {
    /// Checks the counts and durations are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.webhook_timeout_ms == 0
            || self.webhook_max_attempts == 0
            || self.delivery_tick_ms == 0
        {
            return Err(invalid(
                "events",
                "webhook_timeout_ms, webhook_max_attempts and delivery_tick_ms must be positive",
            ));
        }
        Ok(())
    }
}

/// Watching cars (`PUT /v1/vehicles/{id}/watch`, and every active grant's car).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// How often the watcher looks for cars due a read, ms. Default 1000.
    pub tick_ms: u64,
    /// The pause between two reads of one watched car, ms, when the quota allows.
    /// Default 30000.
    pub min_period_ms: u64,
    /// The same for a grant's car while its unlock and relock are under way (from the
    /// courier's unlock until the relock's watch for a late unlock ends), ms. Default
    /// 5000.
    pub busy_period_ms: u64,
    /// The share of each OEM's request quota reserved for watching (0 < share < 1):
    /// with many watched cars the pause grows so watching never takes more. Default 0.5.
    pub quota_share: f64,
    /// A move counts as a change beyond this many metres. Default 50.
    pub move_m: f64,
    /// The longest watch a caller may set, seconds. Default one day.
    pub max_watch_s: u64,
    /// A car whose OEM pushed its state is not read again for this long, ms (the pushes
    /// keep it fresh; reads resume when they stop). Default 300000.
    pub pushed_quiet_ms: u64,
    /// A watched car that sleeps (or is offline) is read ever less often: the pause
    /// doubles with each such reading, up to this, ms (a grant's car: up to twice its
    /// period, the delivery is on). Default 600000.
    pub asleep_max_period_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1000,
            min_period_ms: 30_000,
            busy_period_ms: 5_000,
            quota_share: 0.5,
            move_m: 50.0,
            max_watch_s: 86_400,
            pushed_quiet_ms: 300_000,
            asleep_max_period_ms: 600_000,
        }
    }
}

impl WatchConfig {
    /// Checks the durations are positive and the share is a share.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            self.tick_ms,
            self.min_period_ms,
            self.busy_period_ms,
            self.max_watch_s,
        ];
        if zero.contains(&0) {
            return Err(invalid(
                "watch",
                "tick_ms, min_period_ms, busy_period_ms and max_watch_s must be positive",
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
