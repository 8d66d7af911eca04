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
