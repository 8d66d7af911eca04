//! `[auth]` (how callers' JWTs are verified) and `[crypto]` (the keys sealing secrets
//! at rest): the fields and the checks that need nothing but the values. The keys
//! themselves are decoded where they are used (`crypto::Sealer::from_config`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keyway_adapter::Secret;
use serde::Deserialize;

use super::{ConfigError, invalid};

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

impl CryptoConfig {
    /// The id of the key sealing new values: `active_key`, or the only key.
    pub fn active(&self) -> Result<String, ConfigError> {
        if self.keys.is_empty() {
            return Err(invalid(
                "crypto.keys",
                "at least one key is required to encrypt OEM tokens at rest \
                 (generate one with `keyway gen-key`, or set KEYWAY_CRYPTO_KEYS)",
            ));
        }
        match (&self.active_key, self.keys.len()) {
            (Some(a), _) => Ok(a.clone()),
            (None, 1) => Ok(self.keys.keys().next().cloned().unwrap_or_default()),
            (None, _) => Err(invalid(
                "crypto.active_key",
                "required when several keys are configured",
            )),
        }
    }
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
    /// Clock skew tolerated on `exp`/`nbf`. Default `30s`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
}

fn default_audience() -> String {
    "keyway".into()
}

fn default_algorithm() -> JwtAlgorithm {
    JwtAlgorithm::HS256
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

impl AuthConfig {
    /// Checks the pinned algorithm has its key and the issuer is set.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.algorithm {
            JwtAlgorithm::HS256 => match &self.hs256_secret {
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
                if self.public_key_file.is_none() && self.jwks_file.is_none() {
                    return Err(invalid(
                        "auth.public_key_file",
                        "RS256/ES256 need public_key_file or jwks_file",
                    ));
                }
            }
        }
        if self.issuer.is_empty() {
            return Err(invalid("auth.issuer", "must not be empty"));
        }
        Ok(())
    }
}
