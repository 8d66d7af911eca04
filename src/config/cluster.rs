//! `[cluster]`: replicas sharing a PostgreSQL store and, optionally, a Redis for
//! cluster-wide limits. The Redis client itself is built by `cluster::limits`.

use std::path::PathBuf;

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
    /// Longest Redis exchange before a limit is decided locally, ms. Default 250.
    pub redis_timeout_ms: u64,
    /// Lease length, ms: how long a dead replica's command, token refresh or car stays
    /// claimed before another replica takes it over. Default 30000.
    pub lease_ms: u64,
    /// How often a replica looks for commands whose lease lapsed, ms. Default 5000.
    pub sweep_ms: u64,
    /// PostgreSQL connections per replica. Default 16.
    pub pool_size: u32,
    /// PostgreSQL ends a session idle inside a transaction this long, ms, freeing the
    /// locks of a replica that froze or died mid-transaction. Default 5000.
    pub idle_in_transaction_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis: None,
            redis_ca_file: None,
            prefix: "keyway".into(),
            replicas: 1,
            redis_timeout_ms: 250,
            lease_ms: 30_000,
            sweep_ms: 5_000,
            pool_size: 16,
            idle_in_transaction_ms: 5_000,
        }
    }
}

impl ClusterConfig {
    /// Checks the counts and durations are usable and the Redis URL has a Redis scheme.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replicas == 0
            || self.lease_ms < 100
            || self.sweep_ms == 0
            || self.pool_size == 0
            || self.idle_in_transaction_ms < 100
        {
            return Err(invalid(
                "cluster",
                "replicas, sweep_ms and pool_size must be positive, lease_ms and \
                 idle_in_transaction_ms at least 100",
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
