//! `[commands]` (the command lifecycle's timing), `[http]` and `[inbound]` (keyway's
//! own limits on its callers): fields, defaults and their checks.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Command lifecycle timing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Longest `Prefer: wait=N` honoured. Default `1m`.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// How long to keep waking a sleeping car before `vehicle_asleep`. Default `1m`.
    #[serde(with = "humantime_serde")]
    pub wake_timeout: Duration,
    /// Pause between wake-up calls. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub wake_poll: Duration,
    /// How long an accepted async command may stay pending before it is given up.
    /// Default `5m`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Longest pause between polls of an async command. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub max_poll_interval: Duration,
    /// Refresh access tokens this long before they expire. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub token_refresh_skew: Duration,
    /// Callers' commands queued or running per car, beyond which a new one answers
    /// `429 vehicle_busy` (relocks and grant unlocks are never refused). Default 4.
    pub max_queued_per_vehicle: usize,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(60),
            wake_timeout: Duration::from_secs(60),
            wake_poll: Duration::from_millis(2000),
            command_timeout: Duration::from_secs(300),
            max_poll_interval: Duration::from_millis(5000),
            token_refresh_skew: Duration::from_secs(300),
            max_queued_per_vehicle: 4,
        }
    }
}

/// Inbound HTTP limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, bytes. Default 65536.
    pub max_body_bytes: usize,
    /// Serving threads, each a single-threaded event loop with its own `SO_REUSEPORT`
    /// listener and its own upstream connection pools. 0 (default): one per core; 1:
    /// the work-stealing runtime alone (the listener it was given).
    pub workers: usize,
    /// A connection must send a whole request head within this of being ready for one
    /// (when it opens, and after each answer): trickled headers and idle keep-alive
    /// connections are closed after it (nginx's `client_header_timeout` and
    /// `keepalive_timeout` in one, as hyper times both). Default `10s`.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request's body must arrive whole within this of its head; else 408. Default
    /// `10s`.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Open connections at most. When reached, the connection that waited longest
    /// without sending a request is closed for the new one. 0 (default): the process's
    /// open-file limit (raised to its hard limit at start) less 256 for the store, OEMs
    /// and logs.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            workers: 0,
            header_timeout: Duration::from_millis(10_000),
            body_timeout: Duration::from_millis(10_000),
            max_connections: 0,
        }
    }
}

impl HttpConfig {
    /// How many serving threads `workers` means on this machine.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// keyway's own limits on its callers (abuse guards and load shedding).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Sustained requests per second per caller `sub`. Default 50.
    pub caller_per_s: u32,
    /// Burst per caller. Default 100.
    pub caller_burst: u32,
    /// Unlocks per vehicle per minute, sustained. Default 6.
    pub unlocks_per_vehicle_per_min: u32,
    /// Unlocks of one vehicle allowed at once. Default 3.
    pub unlock_burst: u32,
    /// Requests in flight at once; beyond it keyway answers 503 at once. Default 1024.
    pub max_in_flight: usize,
    /// Requests of one tenant in flight at once, taken after authentication; beyond it
    /// that tenant is answered 503 while others are not. 0 (default): a quarter of
    /// `max_in_flight`.
    pub max_in_flight_per_tenant: usize,
    /// Longest time to answer a request (above `commands.max_wait`). Default `1m 30s`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            caller_per_s: 50,
            caller_burst: 100,
            unlocks_per_vehicle_per_min: 6,
            unlock_burst: 3,
            max_in_flight: 1024,
            max_in_flight_per_tenant: 0,
            request_timeout: Duration::from_secs(90),
        }
    }
}

impl CommandsConfig {
    /// Checks the waits are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_wait > Duration::from_secs(300) {
            return Err(invalid("commands.max_wait", "at most 5m"));
        }
        if self.wake_poll.is_zero() {
            return Err(invalid("commands.wake_poll", "must be positive"));
        }
        Ok(())
    }
}

impl InboundConfig {
    /// How many requests one tenant may have in flight.
    pub fn per_tenant(&self) -> usize {
        match self.max_in_flight_per_tenant {
            0 => (self.max_in_flight / 4).max(1),
            n => n.min(self.max_in_flight).max(1),
        }
    }

    /// Checks the limits are positive and a request may outlast the longest
    /// `Prefer: wait` (`commands.max_wait`).
    pub fn validate(&self, max_wait: Duration) -> Result<(), ConfigError> {
        if self.caller_per_s == 0 || self.caller_burst == 0 {
            return Err(invalid(
                "inbound.caller_per_s",
                "caller limits must be positive",
            ));
        }
        if self.unlocks_per_vehicle_per_min == 0 || self.unlock_burst == 0 {
            return Err(invalid(
                "inbound.unlocks_per_vehicle_per_min",
                "unlock limits must be positive",
            ));
        }
        if self.request_timeout <= max_wait {
            return Err(invalid(
                "inbound.request_timeout",
                "must be longer than commands.max_wait",
            ));
        }
        Ok(())
    }
}
