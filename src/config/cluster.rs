//! `[cluster]`: replicas sharing a PostgreSQL store and, optionally, a Redis for
//! cluster-wide limits. The Redis client itself is built by `cluster::limits`.

use std::path::PathBuf;
use std::time::Duration;

use keyway_adapter::Secret;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// Cluster mode: replicas sharing a PostgreSQL store (and a Redis for limits).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis holding cluster-wide limits: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
    /// or `rediss://…` for TLS (or env `KEYWAY_CLUSTER_REDIS`; it may carry a password,
    /// so it is kept secret). Unset: every replica enforces limits on its own.
    pub redis: Option<Secret>,
    /// With `rediss://`: the PEM CA certificate the server's certificate must chain to.
    /// Unset: the system's roots.
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of keyway's Redis keys. Default `keyway`.
    pub prefix: String,
    /// How many replicas share the OEM quotas: while Redis is unreachable each replica
    /// keeps to 1/replicas of every quota. Default 1.
    pub replicas: u32,
    /// Longest Redis exchange before a limit is decided locally. Default `250ms`.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Lease length: how long a dead replica's command, token refresh or car stays
    /// claimed before another replica takes it over. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often a replica looks for commands whose lease lapsed. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub sweep: Duration,
    /// PostgreSQL connections per replica. Default 16.
    pub pool_size: u32,
    /// PostgreSQL ends a session idle inside a transaction this long, freeing the
    /// locks of a replica that froze or died mid-transaction. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub idle_in_transaction: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis: None,
            redis_ca_file: None,
            prefix: "keyway".into(),
            replicas: 1,
            redis_timeout: Duration::from_millis(250),
            lease: Duration::from_millis(30_000),
            sweep: Duration::from_millis(5_000),
            pool_size: 16,
            idle_in_transaction: Duration::from_millis(5_000),
        }
    }
}

impl ClusterConfig {
    /// Checks the counts and durations are usable and the Redis URL has a Redis scheme.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replicas == 0
            || self.lease < Duration::from_millis(100)
            || self.sweep.is_zero()
            || self.pool_size == 0
            || self.idle_in_transaction < Duration::from_millis(100)
        {
            return Err(invalid(
                "cluster",
                "replicas, sweep and pool_size must be positive, lease and \
                 idle_in_transaction at least 100ms",
            ));
        }
        if let Some(url) = self.redis.as_ref().map(Secret::expose)
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(invalid(
                "cluster.redis",
                "expected redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://… (TLS)",
            ));
        }
        if self.redis_ca_file.is_some()
            && !self
                .redis
                .as_ref()
                .is_some_and(|u| u.expose().starts_with("rediss://"))
        {
            return Err(invalid(
                "cluster.redis_ca_file",
                "a CA file is only for a rediss:// (TLS) Redis URL",
            ));
        }
        Ok(())
    }
}
