//! keyway's configuration: one TOML file, with secrets also settable from the
//! environment so they need not sit in the file (`KEYWAY_AUTH_HS256_SECRET`,
//! `KEYWAY_OEMS_<OEM>_CLIENT_SECRET`, `KEYWAY_CRYPTO_KEYS`). Unknown fields are errors,
//! and every error names the field it is about. Defaults are documented on each field
//! and in `keyway.example.toml`. Durations are human strings (`"250ms"`, `"30s"`,
//! `"1m 30s"`, humantime's form); the last release's integer keys with a unit suffix
//! (`lease_ms = 30000`) still load for one release, each with a deprecation warning
//! (`legacy`). Configuration is data: one file per section, each
//! checking its own values; nothing here builds a client, a key or an adapter.

mod auth;
mod cluster;
mod commands;
mod error;
mod events;
mod legacy;
mod oems;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keyway_adapter::Secret;
use serde::Deserialize;

pub use auth::{AuthConfig, CryptoConfig, JwtAlgorithm};
pub use cluster::ClusterConfig;
pub use commands::{CommandsConfig, HttpConfig, InboundConfig};
pub use error::ConfigError;
pub(crate) use error::invalid;
pub use events::{EventsConfig, GrantsConfig, WatchConfig};
pub use oems::{
    BreakerConfig, LimitsConfig, OemConfig, ReadsConfig, ResolvedLimits, RetryConfig, TimingConfig,
    WakeForReads, WindowConfig,
};

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the unified API listens on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where state lives: `sqlite://PATH` (default `sqlite://keyway.db`), or
    /// `postgres://…` for several replicas (see `[cluster]`). May carry a password:
    /// redacted in `Debug`.
    #[serde(default = "default_store")]
    pub store: Secret,
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
    /// Watching cars and emitting their changes.
    #[serde(default)]
    pub watch: WatchConfig,
    /// Which route a car linked through several accounts is read through first.
    #[serde(default)]
    pub routes: RoutesConfig,
    /// One table per OEM to enable, keyed by OEM id (`tesla`, ...).
    #[serde(default)]
    pub oems: BTreeMap<String, OemConfig>,
}

/// The order in which reads try the routes of a car linked through several accounts (a
/// direct link and an aggregator): OEM ids, the first a car has that answers serves the
/// read. Commands always go through the car's first-linked route.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesConfig {
    /// The order for every tenant without its own. Default none: the first-linked route,
    /// then the others in the order they were linked.
    #[serde(default)]
    pub prefer: Vec<String>,
    /// A tenant's own order: `[routes.tenants] delivery-svc = ["tesla", "smartcar"]`.
    #[serde(default)]
    pub tenants: BTreeMap<String, Vec<String>>,
}

impl RoutesConfig {
    /// The OEM order for `tenant`'s reads.
    pub fn order(&self, tenant: &str) -> &[String] {
        self.tenants.get(tenant).unwrap_or(&self.prefer)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_store() -> Secret {
    Secret::new("sqlite://keyway.db")
}

/// Where state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (cluster mode); the URL may carry a password.
    Postgres(Secret),
}

impl Config {
    /// Reads, parses, applies environment overrides and validates `path`; each
    /// deprecated key it accepts is logged as a warning.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (config, deprecated) = Self::load_noting(path)?;
        for note in deprecated {
            tracing::warn!(config = %path.display(), "{note}");
        }
        Ok(config)
    }

    /// [`Config::load`], returning the deprecation notices instead of logging them.
    pub fn load_noting(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let (mut config, deprecated) = parse(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: parse_error(&text, &e),
        })?;
        config.apply_env(|k| std::env::var(k).ok());
        config.validate()?;
        Ok((config, deprecated))
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
            self.store = Secret::new(s);
        }
        if let Some(s) = env("KEYWAY_CLUSTER_REDIS") {
            self.cluster.redis = Some(Secret::new(s));
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
            if let Some(s) = env(&format!("{prefix}_WEBHOOK_SECRET")) {
                oem.webhook_secret = Some(Secret::new(s));
            }
        }
    }

    /// Checks what serde cannot and needs nothing but the values (what depends on
    /// an OEM, a key or an address is checked where it is built, at start).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store_url()?;
        self.crypto.active()?;
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid("public_url", "must be an http:// or https:// URL"));
        }
        self.auth.validate()?;
        self.commands.validate()?;
        self.inbound.validate(self.commands.max_wait)?;
        self.cluster.validate()?;
        self.grants.validate()?;
        self.events.validate()?;
        self.watch.validate()?;
        for (name, oem) in &self.oems {
            oem.validate(name)?;
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

    /// The parsed `store` URL.
    pub fn store_url(&self) -> Result<StoreUrl, ConfigError> {
        let store = self.store.expose();
        if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(self.store.clone()));
        }
        match store.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(StoreUrl::Sqlite(PathBuf::from(path))),
            _ => Err(invalid(
                "store",
                "expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
            )),
        }
    }
}

/// Parses a configuration file, accepting the last release's duration keys
/// (`legacy`) with a notice each. A file without them is parsed from its text, so an
/// error names its line; one with them, from the rewritten table.
fn parse(text: &str) -> Result<(Config, Vec<String>), toml::de::Error> {
    let mut table: toml::Table = toml::from_str(text)?;
    let deprecated = legacy::upgrade(&mut table);
    let config = match deprecated.is_empty() {
        true => toml::from_str(text)?,
        false => toml::Value::Table(table).try_into()?,
    };
    Ok((config, deprecated))
}

/// A TOML error as line, column, key and description — never the text of the line,
/// which may hold a secret (a private key, the HS256 secret): quoted parts of toml's
/// description (values it quotes) are left out too.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[start..].chars().count() + 1;
        out.push_str(&format!("line {line}, column {column}"));
        let this = text[start..].lines().next().unwrap_or("");
        if let Some((key, _)) = this.split_once('=') {
            let key = key.trim();
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c))
            {
                out.push_str(&format!(", key `{key}`"));
            }
        }
        out.push_str(": ");
    }
    let mut quoted = None;
    for c in e.message().chars() {
        match quoted {
            Some(q) if c == q => {
                quoted = None;
                out.push('…');
            }
            Some(_) => {}
            None if c == '"' || c == '`' => quoted = Some(c),
            None => out.push(c),
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_names_line_and_key_but_never_the_value() {
        let dir = std::env::temp_dir().join(format!("keyway-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        for bad in [
            "[auth]\nissuer = \"x\"\nhs256_secret = \"s3cret-0123456789\" trailing\n",
            "[auth]\nissuer = \"x\"\nhs256_secret = 9876543210123\n",
            "[oems.tesla]\napp_key = \"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = Config::load(&path).unwrap_err().to_string();
            for secret in ["s3cret", "9876543210123", "MHcCAQEEI", "BEGIN EC"] {
                assert!(!e.contains(secret), "{e}");
            }
            assert!(e.contains("line "), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

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
        assert_eq!(c.commands.max_wait, std::time::Duration::from_secs(60));
    }

    #[test]
    fn durations_are_human_and_the_old_keys_still_load_with_a_notice() {
        let (c, notes) =
            super::parse(&format!("{MINIMAL}\n[cluster]\nlease = \"1m 30s\"\n")).unwrap();
        assert_eq!(c.cluster.lease, std::time::Duration::from_secs(90));
        assert!(notes.is_empty());
        let (c, notes) = super::parse(&format!(
            "{MINIMAL}\n[cluster]\nlease_ms = 90000\n[oems.tesla]\napi_base_url = \"http://x\"\n\
             client_id = \"c\"\ntimeout_ms = 500\n[oems.tesla.timing]\nstate_lag_s = 3\n"
        ))
        .unwrap();
        assert_eq!(c.cluster.lease, std::time::Duration::from_secs(90));
        let tesla = &c.oems["tesla"];
        assert_eq!(tesla.timeout, std::time::Duration::from_millis(500));
        assert_eq!(
            tesla.timing.state_lag,
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
        // A value that is no duration is named.
        let e = parse(&format!("{MINIMAL}\n[cluster]\nlease = \"soon\"\n")).unwrap_err();
        assert!(e.contains("lease"), "{e}");
    }

    #[test]
    fn the_store_password_never_shows_in_debug() {
        let mut c = parse(MINIMAL).unwrap();
        c.apply_env(|k| {
            (k == "KEYWAY_STORE").then(|| "postgres://keyway:hunter2@db:5432/keyway".to_string())
        });
        let url = c.store_url().unwrap();
        assert!(matches!(&url, StoreUrl::Postgres(u) if u.expose().contains("hunter2")));
        for shown in [format!("{c:?}"), format!("{url:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
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
    }

    #[test]
    fn crypto_keys_are_required() {
        let no_keys = MINIMAL.replace(
            "keys = { k1 = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\" }",
            "",
        );
        let e = parse(&no_keys).unwrap_err();
        assert!(e.contains("crypto.keys"), "{e}");
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
        c.apply_env(|k| {
            (k == "KEYWAY_OEMS_TESLA_CLIENT_SECRET"
                || k == "KEYWAY_OEMS_TESLA_APP_KEY"
                || k == "KEYWAY_OEMS_TESLA_WEBHOOK_SECRET")
                .then(|| "s3cret".to_string())
        });
        let tesla = &c.oems["tesla"];
        assert_eq!(tesla.client_secret.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(tesla.webhook_secret.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(tesla.app_key.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
