//! keyway's configuration: one TOML file, with secrets also settable from the
//! environment so they need not sit in the file (`KEYWAY_AUTH_HS256_SECRET`,
//! `KEYWAY_OEMS_<OEM>_CLIENT_SECRET`, `KEYWAY_CRYPTO_KEYS`). Unknown fields are errors, and every error names
//! the field it is about. Defaults are documented on each field and in
//! `keyway.example.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyway_adapter::Secret;
use serde::Deserialize;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for keyway (the message names line, column and key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, naming the field.
        message: String,
    },
    /// A field has a value keyway cannot use.
    #[error("`{field}`: {message}")]
    Invalid {
        /// Dotted field path, e.g. `auth.hs256_secret`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the unified API listens on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where state lives: `sqlite://PATH` (default `sqlite://keyway.db`), or
    /// `postgres://…` for several replicas (see `[cluster]`).
    #[serde(default = "default_store")]
    pub store: String,
    /// The URL owners' browsers reach keyway at (the OAuth redirect URI is
    /// `<public_url>/v1/oauth/callback`). Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Encryption of OEM tokens at rest.
    #[serde(default)]
    pub crypto: CryptoConfig,
    /// Caller authentication.
    pub auth: AuthConfig,
    /// Command lifecycle timing.
    #[serde(default)]
    pub commands: CommandsConfig,
    /// Inbound HTTP limits.
    #[serde(default)]
    pub http: HttpConfig,
    /// keyway's own limits on callers.
    #[serde(default)]
    pub inbound: InboundConfig,
    /// Several replicas as one gateway.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Delivery grants and their relocks.
    #[serde(default)]
    pub grants: GrantsConfig,
    /// Event delivery (webhooks).
    #[serde(default)]
    pub events: EventsConfig,
    /// One table per OEM to enable, keyed by OEM id (`tesla`, ...).
    #[serde(default)]
    pub oems: BTreeMap<String, OemConfig>,
}

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

/// Cluster mode: replicas sharing a PostgreSQL store (and a Redis for limits).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis holding cluster-wide limits: `redis://HOST:PORT[/DB]`. Unset: every
    /// replica enforces limits on its own.
    pub redis: Option<String>,
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

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_store() -> String {
    "sqlite://keyway.db".into()
}

/// Keys sealing secrets at rest.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoConfig {
    /// The key id sealing new values. Default: the only key, when there is one.
    pub active_key: Option<String>,
    /// Keys by id, each the standard base64 of 32 random bytes (`keyway gen-key`).
    /// `KEYWAY_CRYPTO_KEYS="k2=…,k1=…"` adds or replaces keys from the environment.
    #[serde(default)]
    pub keys: BTreeMap<String, Secret>,
}

/// JWT algorithms keyway accepts (one is pinned per deployment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (development).
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// How callers' JWTs are verified.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`. Default `keyway`.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The one accepted algorithm. Default `HS256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: JwtAlgorithm,
    /// HS256 secret (or env `KEYWAY_AUTH_HS256_SECRET`); at least 32 bytes.
    pub hs256_secret: Option<Secret>,
    /// PEM public key for RS256/ES256.
    pub public_key_file: Option<PathBuf>,
    /// JWKS file (keys chosen by `kid`) for RS256/ES256.
    pub jwks_file: Option<PathBuf>,
    /// Clock skew tolerated on `exp`/`nbf`, seconds. Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
}

fn default_audience() -> String {
    "keyway".into()
}

fn default_algorithm() -> JwtAlgorithm {
    JwtAlgorithm::HS256
}

fn default_leeway() -> u64 {
    30
}

/// Command lifecycle timing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Longest `Prefer: wait=N` honoured, seconds. Default 60.
    pub max_wait_s: u64,
    /// How long to keep waking a sleeping car before `vehicle_asleep`, seconds. Default 60.
    pub wake_timeout_s: u64,
    /// Pause between wake-up calls, milliseconds. Default 2000.
    pub wake_poll_ms: u64,
    /// How long an accepted async command may stay pending before it is given up, seconds.
    /// Default 300.
    pub command_timeout_s: u64,
    /// Longest pause between polls of an async command, milliseconds. Default 5000.
    pub max_poll_interval_ms: u64,
    /// Refresh access tokens this long before they expire, seconds. Default 300.
    pub token_refresh_skew_s: u64,
    /// Callers' commands queued or running per car, beyond which a new one answers
    /// `429 vehicle_busy` (relocks and grant unlocks are never refused). Default 4.
    pub max_queued_per_vehicle: usize,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        Self {
            max_wait_s: 60,
            wake_timeout_s: 60,
            wake_poll_ms: 2000,
            command_timeout_s: 300,
            max_poll_interval_ms: 5000,
            token_refresh_skew_s: 300,
            max_queued_per_vehicle: 4,
        }
    }
}

impl CommandsConfig {
    /// `max_wait_s` as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_s)
    }
}

/// Inbound HTTP limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, bytes. Default 65536.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
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
    /// Longest time to answer a request, seconds (above `commands.max_wait_s`). Default 90.
    pub request_timeout_s: u64,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            caller_per_s: 50,
            caller_burst: 100,
            unlocks_per_vehicle_per_min: 6,
            unlock_burst: 3,
            max_in_flight: 1024,
            request_timeout_s: 90,
        }
    }
}

/// One OEM's connection settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OemConfig {
    /// Base URL of the OEM's vehicle API.
    pub api_base_url: String,
    /// Base URL of its OAuth server. Default: `api_base_url`.
    pub auth_base_url: Option<String>,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (or env `KEYWAY_OEMS_<OEM>_CLIENT_SECRET`).
    pub client_secret: Option<Secret>,
    /// The application's API key, for OEMs that want one on every call (Volvo's
    /// `vcc-api-key`; or env `KEYWAY_OEMS_<OEM>_API_KEY`).
    pub api_key: Option<Secret>,
    /// Per-try timeout, milliseconds. Default 10000.
    #[serde(default = "default_oem_timeout")]
    pub timeout_ms: u64,
    /// Rate limits (defaults: what the adapter declares the OEM publishes).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Read caching and waking.
    #[serde(default)]
    pub reads: ReadsConfig,
    /// How the OEM's cloud lags its cars (defaults: what the adapter declares).
    #[serde(default)]
    pub timing: TimingConfig,
    /// Price per billed request of each class in US dollars (`data`, `command`, `wake`
    /// for Tesla), over the adapter's defaults (the published pricing); drives
    /// `keyway_oem_estimated_spend_usd`.
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
    /// Tesla: the application's P-256 private key (PEM) that signs commands — or env
    /// `KEYWAY_OEMS_TESLA_APP_KEY`; `keyway tesla-keygen` makes one.
    pub app_key: Option<Secret>,
    /// Tesla: a file holding that key (read at start; keep it `0600`).
    pub app_key_file: Option<PathBuf>,
    /// Tesla: the domain Tesla fetches the public key from. With it keyway serves
    /// `/.well-known/appspecific/com.tesla.3p.public-key.pem` and makes pairing links
    /// (`https://tesla.com/_ak/<app_domain>`).
    pub app_domain: Option<String>,
}

impl OemConfig {
    /// The Tesla application key, from `app_key` or `app_key_file` (PEM).
    pub fn app_key_pem(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(k) = &self.app_key {
            return Ok(Some(k.clone()));
        }
        match &self.app_key_file {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(path)
                .map(|s| Some(Secret::new(s)))
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

/// Overrides of an OEM's declared timing ([`keyway_adapter::OemTiming`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// The longest time the OEM's view of a car lags the car, seconds.
    pub state_lag_s: Option<u64>,
    /// The longest time after sending that the OEM may still execute a command, seconds.
    pub command_window_s: Option<u64>,
}

impl TimingConfig {
    /// The adapter's timing with these overrides.
    pub fn over(&self, declared: keyway_adapter::OemTiming) -> keyway_adapter::OemTiming {
        keyway_adapter::OemTiming {
            state_lag: self
                .state_lag_s
                .map_or(declared.state_lag, Duration::from_secs),
            command_window: self
                .command_window_s
                .map_or(declared.command_window, Duration::from_secs),
        }
    }
}

/// When a read may wake a sleeping car (waking can cost like ~20 commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeForReads {
    /// Only when the caller sends `max-age=0` (the default: a wake-up costs what ~20
    /// commands cost at Tesla, and a read should not spend it unasked).
    OnRequest,
    /// Only when keyway has no earlier reading, or the caller sends `max-age=0`.
    IfNoCache,
    /// Whenever a fresh reading is needed.
    Always,
    /// Never: a sleeping car without a cached reading answers `vehicle_asleep`.
    Never,
}

/// Read caching and waking for one OEM.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadsConfig {
    /// A location this young is served from cache, seconds. Default 30.
    pub location_ttl_s: f64,
    /// A lock state this young is served from cache, seconds. Default 10.
    pub security_ttl_s: f64,
    /// Waking for reads. Default `on_request`.
    pub wake: WakeForReads,
}

impl Default for ReadsConfig {
    fn default() -> Self {
        Self {
            location_ttl_s: 30.0,
            security_ttl_s: 10.0,
            wake: WakeForReads::OnRequest,
        }
    }
}

/// One "at most `max` in any `per_s` seconds" window.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// At most this many …
    pub max: u32,
    /// … in any interval of this many seconds.
    pub per_s: f64,
}

/// An OEM's rate limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Windows for every request; unset: the adapter's published defaults.
    pub requests: Option<Vec<WindowConfig>>,
    /// Windows for commands; unset: the adapter's published defaults.
    pub commands: Option<Vec<WindowConfig>>,
    /// How long a request may wait for a quota slot before `rate_limited`. Default 2000.
    pub max_wait_ms: u64,
    /// Exchanges in flight to the OEM at once. Default 64.
    pub max_concurrency: usize,
    /// Slots of every command window that only relocks and grants' owed unlocks may
    /// take (callers' commands keep to the rest; at most `max - 1`). Default 1.
    pub reserved_commands: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests: None,
            commands: None,
            max_wait_ms: 2000,
            max_concurrency: 64,
            reserved_commands: 1,
        }
    }
}

/// Limits with the adapter's defaults filled in.
#[derive(Clone, Debug)]
pub struct ResolvedLimits {
    /// Request windows.
    pub requests: Vec<crate::upstream::quota::Window>,
    /// Command windows.
    pub commands: Vec<crate::upstream::quota::Window>,
    /// Longest quota wait.
    pub max_wait_ms: u64,
    /// Concurrency cap.
    pub max_concurrency: usize,
    /// Command slots reserved for relocks and owed grant unlocks.
    pub reserved_commands: u32,
}

impl LimitsConfig {
    /// Fills unset windows from the adapter's published limits.
    pub fn resolve(&self, defaults: &keyway_adapter::Limits) -> ResolvedLimits {
        use crate::upstream::quota::Window;
        let pick = |set: &Option<Vec<WindowConfig>>, def: &[(u32, u64)]| -> Vec<Window> {
            match set {
                Some(v) => v
                    .iter()
                    .map(|w| Window {
                        max: w.max,
                        per: Duration::from_secs_f64(w.per_s),
                    })
                    .collect(),
                None => def
                    .iter()
                    .map(|(max, per)| Window {
                        max: *max,
                        per: Duration::from_secs(*per),
                    })
                    .collect(),
            }
        };
        ResolvedLimits {
            requests: pick(&self.requests, defaults.requests),
            commands: pick(&self.commands, defaults.commands),
            max_wait_ms: self.max_wait_ms,
            max_concurrency: self.max_concurrency,
            reserved_commands: self.reserved_commands,
        }
    }
}

/// Retries toward one OEM.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all. Default 3.
    pub max_attempts: u32,
    /// First backoff step, ms. Default 100.
    pub base_ms: u64,
    /// Longest backoff step, ms. Default 2000.
    pub cap_ms: u64,
    /// No retry starts later than this after the first attempt, ms. Default 20000.
    pub deadline_ms: u64,
    /// Retries may add at most this percentage of recent requests. Default 20.
    pub budget_percent: f32,
    /// … but at least this many retries per second are allowed. Default 10.
    pub budget_min_per_s: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_ms: 100,
            cap_ms: 2000,
            deadline_ms: 20_000,
            budget_percent: 20.0,
            budget_min_per_s: 10,
        }
    }
}

/// The circuit breaker of one OEM.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open it. Default 5.
    pub failures: u32,
    /// Recent exchanges looked at; half of them failing opens it. Default 20.
    pub window: usize,
    /// How long it stays open before a probe, ms. Default 10000.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            window: 20,
            open_ms: 10_000,
        }
    }
}

fn default_oem_timeout() -> u64 {
    10_000
}

impl OemConfig {
    /// The OAuth server's base URL.
    pub fn auth_base(&self) -> &str {
        self.auth_base_url.as_deref().unwrap_or(&self.api_base_url)
    }
}

/// Where state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (cluster mode).
    Postgres(String),
}

impl Config {
    /// Reads, parses, applies environment overrides and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        config.apply_env(|k| std::env::var(k).ok());
        config.validate()?;
        Ok(config)
    }

    /// Fills secrets from the environment where the file leaves them out.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        // One file for every replica: each may listen elsewhere.
        if let Some(s) = env("KEYWAY_LISTEN")
            && let Ok(addr) = s.parse()
        {
            self.listen = addr;
        }
        // The store URL may carry a password: keep it out of the file.
        if let Some(s) = env("KEYWAY_STORE") {
            self.store = s;
        }
        if let Some(s) = env("KEYWAY_CLUSTER_REDIS") {
            self.cluster.redis = Some(s);
        }
        if let Some(s) = env("KEYWAY_AUTH_HS256_SECRET") {
            self.auth.hs256_secret = Some(Secret::new(s));
        }
        if let Some(list) = env("KEYWAY_CRYPTO_KEYS") {
            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                if let Some((id, key)) = pair.split_once('=') {
                    self.crypto
                        .keys
                        .insert(id.trim().to_string(), Secret::new(key.trim()));
                }
            }
        }
        for (name, oem) in &mut self.oems {
            let prefix = format!("KEYWAY_OEMS_{}", name.to_ascii_uppercase());
            if let Some(s) = env(&format!("{prefix}_CLIENT_SECRET")) {
                oem.client_secret = Some(Secret::new(s));
            }
            if let Some(s) = env(&format!("{prefix}_API_KEY")) {
                oem.api_key = Some(Secret::new(s));
            }
            if let Some(s) = env(&format!("{prefix}_APP_KEY")) {
                oem.app_key = Some(Secret::new(s));
            }
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store_url()?;
        self.sealer()?;
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid("public_url", "must be an http:// or https:// URL"));
        }
        match self.auth.algorithm {
            JwtAlgorithm::HS256 => match &self.auth.hs256_secret {
                None => {
                    return Err(invalid(
                        "auth.hs256_secret",
                        "required for HS256 (or set KEYWAY_AUTH_HS256_SECRET)",
                    ));
                }
                Some(s) if s.expose().len() < 32 => {
                    return Err(invalid("auth.hs256_secret", "must be at least 32 bytes"));
                }
                Some(_) => {}
            },
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                if self.auth.public_key_file.is_none() && self.auth.jwks_file.is_none() {
                    return Err(invalid(
                        "auth.public_key_file",
                        "RS256/ES256 need public_key_file or jwks_file",
                    ));
                }
            }
        }
        crate::events::egress::Egress::new(&self.events.webhook_allow, self.listen)
            .map_err(|e| invalid("events.webhook_allow", e))?;
        if self.auth.issuer.is_empty() {
            return Err(invalid("auth.issuer", "must not be empty"));
        }
        if self.commands.max_wait_s > 300 {
            return Err(invalid("commands.max_wait_s", "at most 300"));
        }
        let i = &self.inbound;
        if i.caller_per_s == 0 || i.caller_burst == 0 {
            return Err(invalid(
                "inbound.caller_per_s",
                "caller limits must be positive",
            ));
        }
        if i.unlocks_per_vehicle_per_min == 0 || i.unlock_burst == 0 {
            return Err(invalid(
                "inbound.unlocks_per_vehicle_per_min",
                "unlock limits must be positive",
            ));
        }
        if i.request_timeout_s <= self.commands.max_wait_s {
            return Err(invalid(
                "inbound.request_timeout_s",
                "must be longer than commands.max_wait_s",
            ));
        }
        let c = &self.cluster;
        if c.replicas == 0
            || c.lease_ms < 100
            || c.sweep_ms == 0
            || c.pool_size == 0
            || c.idle_in_transaction_ms < 100
        {
            return Err(invalid(
                "cluster",
                "replicas, sweep_ms and pool_size must be positive, lease_ms and \
                 idle_in_transaction_ms at least 100",
            ));
        }
        if let Some(url) = &c.redis {
            crate::cluster::redis::Redis::new(url, Duration::from_millis(c.redis_timeout_ms))
                .map_err(|e| invalid("cluster.redis", e.to_string()))?;
        }
        let g = &self.grants;
        if g.tick_ms == 0 || g.relock_max_attempts == 0 || g.max_window_s == 0 {
            return Err(invalid(
                "grants",
                "tick_ms, relock_max_attempts and max_window_s must be positive",
            ));
        }
        let e = &self.events;
        if e.webhook_timeout_ms == 0 || e.webhook_max_attempts == 0 || e.delivery_tick_ms == 0 {
            return Err(invalid(
                "events",
                "webhook_timeout_ms, webhook_max_attempts and delivery_tick_ms must be positive",
            ));
        }
        if self.commands.wake_poll_ms == 0 {
            return Err(invalid("commands.wake_poll_ms", "must be positive"));
        }
        for (name, oem) in &self.oems {
            let Some(info) = crate::registry::info(name) else {
                return Err(invalid(
                    &format!("oems.{name}"),
                    format!(
                        "unknown OEM; known: {}",
                        crate::registry::known().join(", ")
                    ),
                ));
            };
            if let Some(header) = info.api_key_header
                && oem.api_key.as_ref().is_none_or(Secret::is_empty)
            {
                return Err(invalid(
                    &format!("oems.{name}.api_key"),
                    format!(
                        "{} calls need an application key ({header}); set it or KEYWAY_OEMS_{}_API_KEY",
                        info.make,
                        name.to_ascii_uppercase()
                    ),
                ));
            }
            let signs =
                oem.app_key.is_some() || oem.app_key_file.is_some() || oem.app_domain.is_some();
            if signs && name != "tesla" {
                return Err(invalid(
                    &format!("oems.{name}.app_key"),
                    "application keys and domains are for Tesla's signed commands only",
                ));
            }
            if let Some(pem) = oem.app_key_pem()?
                && keyway_tesla::vcp::AppKey::from_pem(pem.expose()).is_err()
            {
                return Err(invalid(
                    &format!("oems.{name}.app_key"),
                    "not a P-256 private key in PEM (make one with `keyway tesla-keygen`)",
                ));
            }
            for (field, url) in [
                ("api_base_url", Some(oem.api_base_url.as_str())),
                ("auth_base_url", oem.auth_base_url.as_deref()),
            ] {
                if let Some(url) = url
                    && !(url.starts_with("https://") || url.starts_with("http://"))
                {
                    return Err(invalid(
                        &format!("oems.{name}.{field}"),
                        "must be an http:// or https:// URL",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The base URL owners' browsers reach keyway at.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The sealer for secrets at rest.
    pub fn sealer(&self) -> Result<crate::crypto::Sealer, ConfigError> {
        let c = &self.crypto;
        if c.keys.is_empty() {
            return Err(invalid(
                "crypto.keys",
                "at least one key is required to encrypt OEM tokens at rest \
                 (generate one with `keyway gen-key`, or set KEYWAY_CRYPTO_KEYS)",
            ));
        }
        let active = match (&c.active_key, c.keys.len()) {
            (Some(a), _) => a.clone(),
            (None, 1) => c.keys.keys().next().cloned().unwrap_or_default(),
            (None, _) => {
                return Err(invalid(
                    "crypto.active_key",
                    "required when several keys are configured",
                ));
            }
        };
        let mut keys = Vec::new();
        for (id, b64) in &c.keys {
            let key = crate::crypto::decode_key(id, b64)
                .map_err(|e| invalid(&format!("crypto.keys.{id}"), e.to_string()))?;
            keys.push((id.clone(), key));
        }
        crate::crypto::Sealer::new(&keys, &active)
            .map_err(|e| invalid("crypto.active_key", e.to_string()))
    }

    /// The parsed `store` URL.
    pub fn store_url(&self) -> Result<StoreUrl, ConfigError> {
        if self.store.starts_with("postgres://") || self.store.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(self.store.clone()));
        }
        match self.store.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(StoreUrl::Sqlite(PathBuf::from(path))),
            _ => Err(invalid(
                "store",
                "expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [crypto]
        keys = { k1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" }

        [auth]
        issuer = "https://id.example"
        hs256_secret = "0123456789abcdef0123456789abcdef"
    "#;

    fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.auth.audience, "keyway");
        assert_eq!(c.store_url().unwrap(), StoreUrl::Sqlite("keyway.db".into()));
        assert_eq!(c.commands.max_wait_s, 60);
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse(&format!("lisen = \"127.0.0.1:1\"\n{MINIMAL}")).unwrap_err();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let e = parse(&format!("listen = \"nowhere\"\n{MINIMAL}")).unwrap_err();
        assert!(e.contains("listen"), "{e}");
        let e = parse(&MINIMAL.replace("0123456789abcdef0123456789abcdef", "short")).unwrap_err();
        assert!(e.contains("auth.hs256_secret"), "{e}");
        let e = parse(&format!(
            "{MINIMAL}\n[oems.tesla]\napi_base_url = \"ftp://x\"\nclient_id = \"c\""
        ))
        .unwrap_err();
        assert!(e.contains("oems.tesla.api_base_url"), "{e}");
        let e = parse(&format!(
            "{MINIMAL}\n[oems.trabant]\napi_base_url = \"http://x\"\nclient_id = \"c\""
        ))
        .unwrap_err();
        assert!(e.contains("oems.trabant"), "{e}");
        let e = parse(&format!(
            "{MINIMAL}\n[oems.volvo]\napi_base_url = \"http://x\"\nclient_id = \"c\""
        ))
        .unwrap_err();
        assert!(e.contains("oems.volvo.api_key"), "{e}");
    }

    #[test]
    fn crypto_keys_are_required_and_checked() {
        let no_keys = MINIMAL.replace(
            "keys = { k1 = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\" }",
            "",
        );
        let e = parse(&no_keys).unwrap_err();
        assert!(e.contains("crypto.keys"), "{e}");
        let short = MINIMAL.replace("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "AQEB");
        let e = parse(&short).unwrap_err();
        assert!(e.contains("crypto.keys.k1"), "{e}");
        let two = MINIMAL.replace(
            "k1 = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"",
            "k1 = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\", k2 = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"",
        );
        let e = parse(&two).unwrap_err();
        assert!(e.contains("crypto.active_key"), "{e}");
    }

    #[test]
    fn env_overrides_secrets() {
        let mut c: Config = toml::from_str(&format!(
            "{MINIMAL}\n[oems.tesla]\napi_base_url = \"http://x\"\nclient_id = \"c\""
        ))
        .unwrap();
        c.apply_env(|k| (k == "KEYWAY_OEMS_TESLA_CLIENT_SECRET").then(|| "s3cret".to_string()));
        assert_eq!(
            c.oems["tesla"].client_secret.as_ref().unwrap().expose(),
            "s3cret"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn the_tesla_app_key_comes_from_env_is_checked_and_stays_secret() {
        let pem = keyway_tesla::vcp::AppKey::generate().private_pem();
        let tesla =
            format!("{MINIMAL}\n[oems.tesla]\napi_base_url = \"http://x\"\nclient_id = \"c\"");
        let mut c: Config = toml::from_str(&tesla).unwrap();
        c.apply_env(|k| (k == "KEYWAY_OEMS_TESLA_APP_KEY").then(|| pem.clone()));
        c.validate().unwrap();
        assert!(
            !format!("{c:?}").contains(&pem[40..80]),
            "the key never shows in Debug"
        );
        c.oems.get_mut("tesla").unwrap().app_key = Some(Secret::new("not a key"));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("oems.tesla.app_key"), "{e}");
        let bmw = format!(
            "{MINIMAL}\n[oems.bmw]\napi_base_url = \"http://x\"\nclient_id = \"c\"\napp_domain = \"x.example\""
        );
        let e = parse(&bmw).unwrap_err();
        assert!(e.contains("Tesla"), "{e}");
    }
}
