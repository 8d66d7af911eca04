//! `[oems.<id>]`: one OEM's connection settings — URLs, OAuth client, limits, retries,
//! breaker, read caching and waking, timing overrides, prices and Tesla's signing key
//! — with the checks that need nothing but the values. What depends on the OEM
//! (known ids, required API keys, who signs) is checked by the registry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keyway_adapter::Secret;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// One OEM's connection settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OemConfig {
    /// Base URL of the OEM's vehicle API.
    pub api_base_url: String,
    /// Base URL of its OAuth server. Default: `api_base_url`.
    pub auth_base_url: Option<String>,
    /// Base URL of the page owners log in at, when it is not the OAuth server's
    /// (Smartcar Connect: `https://connect.smartcar.com`). Default: `auth_base_url`.
    pub login_base_url: Option<String>,
    /// Base URL of the OEM's list of an owner's vehicles, when it is not the vehicle
    /// API's (myAudi's GraphQL at `https://app-api.live-my.audi.com`). Default:
    /// `api_base_url`.
    pub vehicles_base_url: Option<String>,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (or env `KEYWAY_OEMS_<OEM>_CLIENT_SECRET`).
    pub client_secret: Option<Secret>,
    /// The application's API key, for OEMs that want one on every call (Volvo's
    /// `vcc-api-key`; or env `KEYWAY_OEMS_<OEM>_API_KEY`).
    pub api_key: Option<Secret>,
    /// Per-try timeout. Default `10s`.
    #[serde(default = "default_oem_timeout", with = "humantime_serde")]
    pub timeout: Duration,
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
    /// The secret the OEM signs its pushes (inbound webhooks) with, for OEMs that push
    /// (Smartcar: the application management token); or env
    /// `KEYWAY_OEMS_<OEM>_WEBHOOK_SECRET`. Without it keyway takes no pushes from the OEM.
    pub webhook_secret: Option<Secret>,
    /// Tesla: the application's P-256 private key (PEM) that signs commands — or env
    /// `KEYWAY_OEMS_TESLA_APP_KEY`; `keyway tesla-keygen` makes one.
    pub app_key: Option<Secret>,
    /// Tesla: a file holding that key (read at start; keep it `0600`).
    pub app_key_file: Option<PathBuf>,
    /// Tesla: the domain Tesla fetches the public key from. With it keyway serves
    /// `/.well-known/appspecific/com.tesla.3p.public-key.pem` and makes pairing links
    /// (`https://tesla.com/_ak/<app_domain>`).
    pub app_domain: Option<String>,
    /// Which of the OEM's API versions keyway calls, for an OEM that offers several
    /// (Smartcar: `"2.0"`, the default, with per-owner tokens; or `"3"`, with the
    /// application's own token from `auth_base_url` and the owner named per call).
    /// Accounts linked under one version are linked again under the other.
    pub api_version: Option<String>,
}

impl OemConfig {
    /// The Tesla application key, from `app_key` or `app_key_file` (PEM).
    pub fn app_key_pem(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(k) = &self.app_key {
            return Ok(Some(k.clone()));
        }
        match &self.app_key_file {
            None => Ok(None),
            Some(path) => {
                private_to_owner(path)?;
                std::fs::read_to_string(path)
                    .map(|s| Some(Secret::new(s)))
                    .map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }
}

/// Refuses a private key file that others than its owner may read (or write), with the
/// fix in the message (as ssh refuses such a key).
fn private_to_owner(path: &std::path::Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(ConfigError::Invalid {
                field: "oems.tesla.app_key_file".into(),
                message: format!(
                    "{} is readable by others (mode {:04o}); make it the owner's alone: chmod 600 {}",
                    path.display(),
                    mode & 0o7777,
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Overrides of an OEM's declared timing ([`keyway_adapter::OemTiming`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// The longest time the OEM's view of a car lags the car.
    #[serde(default, with = "humantime_serde::option")]
    pub state_lag: Option<Duration>,
    /// The longest time after sending that the OEM may still execute a command.
    #[serde(default, with = "humantime_serde::option")]
    pub command_window: Option<Duration>,
}

impl TimingConfig {
    /// The adapter's timing with these overrides.
    pub fn over(&self, declared: keyway_adapter::OemTiming) -> keyway_adapter::OemTiming {
        keyway_adapter::OemTiming {
            state_lag: self.state_lag.unwrap_or(declared.state_lag),
            command_window: self.command_window.unwrap_or(declared.command_window),
            stamps: declared.stamps,
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
    /// A location this young is served from cache. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub location_ttl: Duration,
    /// A lock state this young is served from cache. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub security_ttl: Duration,
    /// Waking for reads. Default `on_request`.
    pub wake: WakeForReads,
}

impl Default for ReadsConfig {
    fn default() -> Self {
        Self {
            location_ttl: Duration::from_secs_f64(30.0),
            security_ttl: Duration::from_secs_f64(10.0),
            wake: WakeForReads::OnRequest,
        }
    }
}

/// One "at most `max` in any `per`" window.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// At most this many …
    pub max: u32,
    /// … in any interval this long.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

/// An OEM's rate limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Windows for every request; unset: the adapter's published defaults.
    pub requests: Option<Vec<WindowConfig>>,
    /// Windows for commands; unset: the adapter's published defaults.
    pub commands: Option<Vec<WindowConfig>>,
    /// How long a request may wait for a quota slot before `rate_limited`. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
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
            max_wait: Duration::from_millis(2000),
            max_concurrency: 64,
            reserved_commands: 1,
        }
    }
}

/// Limits with the adapter's defaults filled in.
#[derive(Clone, Debug)]
pub struct ResolvedLimits {
    /// Request windows.
    pub requests: Vec<keyway_adapter::Window>,
    /// Command windows.
    pub commands: Vec<keyway_adapter::Window>,
    /// Longest quota wait.
    pub max_wait: Duration,
    /// Concurrency cap.
    pub max_concurrency: usize,
    /// Command slots reserved for relocks and owed grant unlocks.
    pub reserved_commands: u32,
}

impl LimitsConfig {
    /// Fills unset windows from the adapter's published limits.
    pub fn resolve(&self, defaults: &keyway_adapter::Limits) -> ResolvedLimits {
        use keyway_adapter::Window;
        let pick = |set: &Option<Vec<WindowConfig>>, def: &[(u32, u64)]| -> Vec<Window> {
            match set {
                Some(v) => v
                    .iter()
                    .map(|w| Window {
                        max: w.max,
                        per: w.per,
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
            max_wait: self.max_wait,
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
    /// First backoff step. Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Longest backoff step. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// No retry starts later than this after the first attempt. Default `20s`.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Retries may add at most this percentage of recent requests. Default 20.
    pub budget_percent: f32,
    /// … but at least this many retries per second are allowed. Default 10.
    pub budget_min_per_s: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(2000),
            deadline: Duration::from_millis(20_000),
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
    /// How long it stays open before a probe. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub open: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            window: 20,
            open: Duration::from_millis(10_000),
        }
    }
}

fn default_oem_timeout() -> Duration {
    Duration::from_secs(10)
}

impl OemConfig {
    /// The OAuth server's base URL.
    pub fn auth_base(&self) -> &str {
        self.auth_base_url.as_deref().unwrap_or(&self.api_base_url)
    }

    /// The base URL of the owner's vehicle list.
    pub fn vehicles_base(&self) -> &str {
        self.vehicles_base_url
            .as_deref()
            .unwrap_or(&self.api_base_url)
    }

    /// The base URL of the owners' login page (the authorization endpoint).
    pub fn login_base(&self) -> &str {
        self.login_base_url.as_deref().unwrap_or(self.auth_base())
    }
}

impl OemConfig {
    /// Checks the URLs are http(s).
    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        for (field, url) in [
            ("api_base_url", Some(self.api_base_url.as_str())),
            ("auth_base_url", self.auth_base_url.as_deref()),
            ("login_base_url", self.login_base_url.as_deref()),
            ("vehicles_base_url", self.vehicles_base_url.as_deref()),
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
        Ok(())
    }
}
