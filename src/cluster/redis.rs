//! The Redis connection cluster mode runs its limit scripts over, on the `redis` crate:
//! `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` or `rediss://…` (TLS, trusting the
//! system's roots or one PEM CA file), one multiplexed connection per replica, and a
//! deadline on every exchange, connecting included. A failed exchange drops the
//! connection (the next one reconnects) and is returned as [`RedisError`]; callers fall
//! back to local limits, so a dead Redis costs one deadline and never an outage. The
//! URL carries the password, so it never reaches `Debug`, logs or errors.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, IntoConnectionInfo, Script};

use crate::sync::lock;

/// Why a Redis exchange failed (never with the URL's password).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Connecting, authenticating or the exchange failed, or Redis answered an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the deadline.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A bad URL or CA file.
    #[error("redis set-up: {0}")]
    Setup(String),
}

/// A Redis server: its client and, once connected, the shared connection.
pub struct Redis {
    client: Client,
    /// `host:port` only, for `Debug`.
    shown: String,
    timeout: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("addr", &self.shown).finish()
    }
}

impl Redis {
    /// A client for `url`, each exchange bounded by `timeout`; with `rediss://`, the
    /// server's certificate must chain to `ca_file` (PEM) when given, else to the
    /// system's roots. Connects lazily.
    pub fn new(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Self, RedisError> {
        // The crate's own message may quote the URL: say what is wrong without it.
        let info = url.into_connection_info().map_err(|_| {
            RedisError::Setup(
                "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://…".into(),
            )
        })?;
        let shown = info.addr().to_string();
        let client = match ca_file {
            Some(path) if url.starts_with("rediss://") => {
                let root_cert = std::fs::read(path)
                    .map_err(|e| RedisError::Setup(format!("CA file {}: {e}", path.display())))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                Client::build_with_tls(info, certs)?
            }
            Some(_) => {
                return Err(RedisError::Setup(
                    "a CA file is only for rediss:// (TLS) URLs".into(),
                ));
            }
            None => Client::open(info)?,
        };
        Ok(Self {
            client,
            shown,
            timeout,
            conn: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(c) = lock(&self.conn).clone() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *lock(&self.conn) = Some(c.clone());
        Ok(c)
    }

    /// Runs `script` (by its SHA-1, loading it when Redis does not know it yet) with
    /// `keys` and `args`, within the deadline.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, RedisError> {
        let work = async {
            let mut conn = self.connection().await?;
            let mut call = script.prepare_invoke();
            for k in keys {
                call.key(*k);
            }
            for a in args {
                call.arg(a.as_str());
            }
            let answer = call.invoke_async(&mut conn).await;
            if answer.as_ref().is_err_and(broken) {
                *lock(&self.conn) = None;
            }
            Ok(answer?)
        };
        let answer = tokio::time::timeout(self.timeout, work).await;
        if answer.is_err() {
            *lock(&self.conn) = None;
        }
        answer.map_err(|_| RedisError::Timeout(self.timeout))?
    }
}

impl Redis {
    /// `PING` within the deadline (readiness asks Redis itself, not the last exchange).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let work = async {
            let mut conn = self.connection().await?;
            let answer: Result<String, redis::RedisError> =
                redis::cmd("PING").query_async(&mut conn).await;
            if answer.as_ref().is_err_and(broken) {
                *lock(&self.conn) = None;
            }
            answer?;
            Ok(())
        };
        let answer = tokio::time::timeout(self.timeout, work).await;
        if answer.is_err() {
            *lock(&self.conn) = None;
        }
        answer.map_err(|_| RedisError::Timeout(self.timeout))?
    }
}

/// Whether an error leaves the connection unusable (rather than one command refused).
fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}
