//! Caller authentication and authorization: verifies the `Authorization: Bearer` JWT
//! an internal service sends (algorithm pinned by configuration; `iss`, `aud`, `exp`,
//! `nbf` and `sub` required and checked) and turns it into a [`Caller`] with scopes and
//! an optional list of the only vehicles the token may touch. Also mints development
//! tokens for `keyway token` and the demo.
//!
//! Every caller acts for a **tenant**: the token's `tenant` claim when several services
//! act as one, else its `sub`. Every object keyway keeps (accounts, vehicles, commands,
//! idempotency keys, grants, events, webhooks and their deliveries) belongs to one
//! tenant, and a caller reaches only its own tenant's (README, "Who may see what").
//! `admin` is a scope like the others: it never crosses tenants.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, ConfigError, JwtAlgorithm};
use crate::error::{Classify, Code};

/// A caller refused: no valid token, or not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No valid caller token (`unauthenticated`).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The token lacks a scope (`forbidden`).
    #[error("the token lacks the scope {}", .0.as_str())]
    MissingScope(Scope),
    /// The token may not do this (`forbidden`).
    #[error("{0}")]
    Forbidden(String),
}

impl crate::error::Codes for AuthError {
    fn codes() -> Vec<Code> {
        vec![Code::Unauthenticated, Code::Forbidden]
    }
}

impl Classify for AuthError {
    fn code(&self) -> Code {
        match self {
            AuthError::Unauthenticated(_) => Code::Unauthenticated,
            AuthError::MissingScope(_) | AuthError::Forbidden(_) => Code::Forbidden,
        }
    }

    fn extra(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            AuthError::MissingScope(s) => vec![("required_scope", s.as_str().into())],
            _ => Vec::new(),
        }
    }
}

/// A permission a token can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// List and read vehicles.
    VehiclesRead,
    /// Read positions.
    LocationRead,
    /// Read lock state.
    SecurityRead,
    /// Lock.
    CommandsLock,
    /// Unlock.
    CommandsUnlock,
    /// Link and unlink OEM accounts.
    AccountsWrite,
    /// Create and revoke delivery grants.
    GrantsWrite,
    /// Use a delivery grant.
    GrantsUse,
    /// Read the event stream.
    EventsRead,
    /// Manage webhook subscriptions.
    WebhooksWrite,
    /// Everything.
    Admin,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 11] = [
        Scope::VehiclesRead,
        Scope::LocationRead,
        Scope::SecurityRead,
        Scope::CommandsLock,
        Scope::CommandsUnlock,
        Scope::AccountsWrite,
        Scope::GrantsWrite,
        Scope::GrantsUse,
        Scope::EventsRead,
        Scope::WebhooksWrite,
        Scope::Admin,
    ];

    /// The scope string.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::VehiclesRead => "vehicles:read",
            Scope::LocationRead => "location:read",
            Scope::SecurityRead => "security:read",
            Scope::CommandsLock => "commands:lock",
            Scope::CommandsUnlock => "commands:unlock",
            Scope::AccountsWrite => "accounts:write",
            Scope::GrantsWrite => "grants:write",
            Scope::GrantsUse => "grants:use",
            Scope::EventsRead => "events:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a scope string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub sub: String,
    /// The tenant the caller acts for: the `tenant` claim, else `sub`.
    pub tenant: crate::ids::TenantId,
    scopes: u16,
    /// When set, the only vehicle ids this token may touch.
    pub vehicles: Option<Vec<String>>,
}

impl Caller {
    /// A caller with the given scopes, its own tenant (tests, internal use).
    pub fn new(sub: &str, scopes: &[Scope], vehicles: Option<Vec<String>>) -> Self {
        Self {
            sub: sub.into(),
            tenant: sub.into(),
            scopes: scopes.iter().fold(0, |acc, s| acc | s.bit()),
            vehicles,
        }
    }

    /// The same caller acting for `tenant`.
    pub fn in_tenant(mut self, tenant: &str) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Whose idempotency keys these are: the caller's own within its tenant (a `sub`
    /// acting for another tenant never meets its keys there).
    pub fn key_scope(&self) -> String {
        if self.tenant == *self.sub {
            self.sub.clone()
        } else {
            // Neither part can hold a control character (refused at verification).
            format!("{}\u{1f}{}", self.tenant, self.sub)
        }
    }

    /// `forbidden` for a token restricted to some vehicles: what it asks for reaches
    /// beyond them (an account's or the whole tenant's objects).
    pub fn require_unrestricted(&self, what: &str) -> Result<(), AuthError> {
        if self.vehicles.is_none() {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "a token restricted to some vehicles cannot {what}"
            )))
        }
    }

    /// Whether the token carries `scope` (`admin` carries every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// `forbidden` unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope))
        }
    }

    /// Whether the token's `vehicles` restriction allows `vehicle_id`.
    pub fn may_touch(&self, vehicle_id: &str) -> bool {
        self.vehicles
            .as_ref()
            .is_none_or(|v| v.iter().any(|x| x == vehicle_id))
    }

    /// `forbidden` unless the restriction allows `vehicle_id`.
    pub fn require_vehicle(&self, vehicle_id: &str) -> Result<(), AuthError> {
        if self.may_touch(vehicle_id) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(
                "the token is restricted to other vehicles".into(),
            ))
        }
    }
}

/// `scope` as OAuth sends it (one space-separated string) or as a JSON array.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum ScopeClaim {
    Spaced(String),
    List(Vec<String>),
}

/// A claim that must be a JSON string: an array or number is refused, never read
/// as one of its members.
fn string_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A NumericDate as whole seconds, leniently: jsonwebtoken validates the claim itself.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(
        match Option::<serde_json::Value>::deserialize(d)?
            .as_ref()
            .and_then(serde_json::Value::as_f64)
        {
            Some(s) if s >= 0.0 => Some(s as u64),
            _ => None,
        },
    )
}

#[derive(Debug, Deserialize, Serialize)]
struct Claims {
    sub: String,
    #[serde(
        default,
        deserialize_with = "string_only",
        skip_serializing_if = "Option::is_none"
    )]
    tenant: Option<String>,
    #[serde(default, alias = "scp", skip_serializing_if = "Option::is_none")]
    scope: Option<ScopeClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vehicles: Option<Vec<String>>,
    /// Checked by jsonwebtoken too, which also accepts an array; keyway takes a string.
    #[serde(
        default,
        deserialize_with = "string_only",
        skip_serializing_if = "Option::is_none"
    )]
    iss: Option<String>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    /// Checked by jsonwebtoken; read here only to know how long a verified token may be
    /// reused (a value that is not a number reads as none).
    #[serde(
        default,
        deserialize_with = "seconds",
        skip_serializing_if = "Option::is_none"
    )]
    exp: Option<u64>,
    #[serde(
        default,
        deserialize_with = "seconds",
        skip_serializing_if = "Option::is_none"
    )]
    nbf: Option<u64>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Verification keys: one key, or a JWKS keyed by `kid`.
enum Keys {
    Single(DecodingKey),
    ByKid(HashMap<String, DecodingKey>),
}

/// A verified token: its caller (shared with every request that presents the token),
/// and the window in which it stays valid.
struct Verified {
    caller: Arc<Caller>,
    not_before: u64,
    expires: u64,
}

impl Verified {
    /// Whether the full check would accept the token again at `now` (Unix seconds):
    /// strictly inside its window, leeway not needed.
    fn reusable(&self, now: u64) -> bool {
        self.not_before <= now && now < self.expires
    }
}

/// How many verified tokens are kept (each a few hundred bytes).
const VERIFIED_TOKENS: u64 = 10_000;

/// Verifies caller tokens.
///
/// A token that verified is kept (by its exact text, up to [`VERIFIED_TOKENS`]) with its
/// caller, and reused while the clock is strictly inside its `nbf`..`exp` window — a
/// window in which the full check, leeway included, would accept it again (keys come
/// from configuration and never change while the process runs). Services send the same
/// token on every request, and the full check (base64, two JSON parses, the signature)
/// was a twelfth of an uncached location read's CPU (BENCHMARKS.md, profile table).
pub struct Verifier {
    keys: Keys,
    validation: Validation,
    verified: crate::sync::Cache<Box<str>, Arc<Verified>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

fn config_err(field: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.to_string(),
    }
}

impl Verifier {
    /// Builds a verifier from configuration, reading key files.
    pub fn from_config(c: &AuthConfig) -> Result<Self, ConfigError> {
        let alg = algorithm(c.algorithm);
        let read = |field: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| config_err(field, format!("{}: {e}", path.display())))
        };
        let keys = match c.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = c
                    .hs256_secret
                    .as_ref()
                    .ok_or_else(|| config_err("auth.hs256_secret", "required for HS256"))?;
                Keys::Single(DecodingKey::from_secret(secret.expose().as_bytes()))
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                if let Some(path) = &c.jwks_file {
                    let set: JwkSet = serde_json::from_slice(&read("auth.jwks_file", path)?)
                        .map_err(|e| config_err("auth.jwks_file", e))?;
                    let mut by_kid = HashMap::new();
                    for jwk in &set.keys {
                        let Some(kid) = jwk.common.key_id.clone() else {
                            continue;
                        };
                        let key = DecodingKey::from_jwk(jwk)
                            .map_err(|e| config_err("auth.jwks_file", format!("key {kid}: {e}")))?;
                        by_kid.insert(kid, key);
                    }
                    if by_kid.is_empty() {
                        return Err(config_err("auth.jwks_file", "no key with a kid"));
                    }
                    Keys::ByKid(by_kid)
                } else {
                    let path = c
                        .public_key_file
                        .as_ref()
                        .ok_or_else(|| config_err("auth.public_key_file", "required"))?;
                    let pem = read("auth.public_key_file", path)?;
                    let key = match c.algorithm {
                        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                        _ => DecodingKey::from_ec_pem(&pem),
                    }
                    .map_err(|e| config_err("auth.public_key_file", e))?;
                    Keys::Single(key)
                }
            }
        };
        let mut validation = Validation::new(alg);
        validation.set_audience(&[&c.audience]);
        validation.set_issuer(&[&c.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = c.leeway.as_secs();
        Ok(Self {
            keys,
            validation,
            verified: crate::sync::cache(VERIFIED_TOKENS),
        })
    }

    /// Verifies a bearer token. The caller is shared: a kept token costs no copy.
    pub fn verify(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(v) = self.verified.get(token).filter(|v| v.reusable(now)) {
            return Ok(v.caller.clone());
        }
        let verified = Arc::new(self.verify_fully(token)?);
        self.verified.insert(token.into(), verified.clone());
        Ok(verified.caller.clone())
    }

    /// The full check: the caller, and the token's window (an `exp` that is not a
    /// number reads as 0, so the token is never reused).
    fn verify_fully(&self, token: &str) -> Result<Verified, AuthError> {
        let unauthenticated = |detail: &'static str| AuthError::Unauthenticated(detail);
        let key = match &self.keys {
            Keys::Single(k) => k,
            Keys::ByKid(keys) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| unauthenticated("the token is not a well-formed JWT"))?;
                let kid = header
                    .kid
                    .ok_or_else(|| unauthenticated("the token names no key (kid)"))?;
                keys.get(&kid)
                    .ok_or_else(|| unauthenticated("the token's key (kid) is not known"))?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            let detail = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidAudience => "the token is not meant for keyway (aud)",
                ErrorKind::InvalidIssuer => "the token's issuer is not trusted (iss)",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                _ => "the token is not a valid JWT",
            };
            unauthenticated(detail)
        })?;
        let c = data.claims;
        if c.sub.is_empty() {
            return Err(unauthenticated("the token's sub is empty"));
        }
        if c.iss.is_none() {
            return Err(unauthenticated("the token lacks a required claim"));
        }
        let tenant = match c.tenant {
            Some(t) if t.is_empty() => return Err(unauthenticated("the token's tenant is empty")),
            Some(t) => t,
            None => c.sub.clone(),
        };
        if [&c.sub, &tenant]
            .iter()
            .any(|s| s.len() > 255 || s.chars().any(char::is_control))
        {
            return Err(unauthenticated(
                "the token's sub and tenant must be 1-255 characters without control characters",
            ));
        }
        let names: Vec<String> = match c.scope {
            Some(ScopeClaim::Spaced(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(ScopeClaim::List(v)) => v,
            None => Vec::new(),
        };
        let scopes: Vec<Scope> = names.iter().filter_map(|s| Scope::parse(s)).collect();
        Ok(Verified {
            caller: Arc::new(Caller::new(&c.sub, &scopes, c.vehicles).in_tenant(&tenant)),
            not_before: c.nbf.unwrap_or(0),
            expires: c.exp.unwrap_or(0),
        })
    }
}

/// What a development token says.
#[derive(Clone, Debug)]
pub struct DevToken<'a> {
    /// `sub`.
    pub sub: &'a str,
    /// `tenant`, when the caller acts for a tenant other than its `sub`.
    pub tenant: Option<&'a str>,
    /// Scopes.
    pub scopes: &'a [String],
    /// Optional vehicle restriction.
    pub vehicles: Option<Vec<String>>,
    /// Lifetime in seconds.
    pub ttl_s: u64,
}

/// Mints an HS256 token accepted by a verifier built from `auth`.
pub fn mint_hs256(auth: &AuthConfig, t: &DevToken<'_>) -> Result<String, ConfigError> {
    let secret = auth
        .hs256_secret
        .as_ref()
        .ok_or_else(|| config_err("auth.hs256_secret", "required to mint HS256 tokens"))?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: t.sub.into(),
        tenant: t.tenant.map(str::to_string),
        scope: Some(ScopeClaim::Spaced(t.scopes.join(" "))),
        vehicles: t.vehicles.clone(),
        iss: Some(auth.issuer.clone()),
        aud: Some(auth.audience.clone()),
        exp: Some(now + t.ttl_s),
        nbf: Some(now.saturating_sub(1)),
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| config_err("auth", e))
}

#[cfg(test)]
mod tests;
