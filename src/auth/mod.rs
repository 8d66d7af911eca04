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

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, ConfigError, JwtAlgorithm};
use crate::error::{ApiError, Code};

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
    pub tenant: String,
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
        if self.tenant == self.sub {
            self.sub.clone()
        } else {
            // Neither part can hold a control character (refused at verification).
            format!("{}\u{1f}{}", self.tenant, self.sub)
        }
    }

    /// `forbidden` for a token restricted to some vehicles: what it asks for reaches
    /// beyond them (an account's or the whole tenant's objects).
    pub fn require_unrestricted(&self, what: &str) -> Result<(), ApiError> {
        if self.vehicles.is_none() {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                format!("a token restricted to some vehicles cannot {what}"),
            ))
        }
    }

    /// Whether the token carries `scope` (`admin` carries every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// `forbidden` unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                format!("the token lacks the scope {}", scope.as_str()),
            )
            .with("required_scope", scope.as_str()))
        }
    }

    /// Whether the token's `vehicles` restriction allows `vehicle_id`.
    pub fn may_touch(&self, vehicle_id: &str) -> bool {
        self.vehicles
            .as_ref()
            .is_none_or(|v| v.iter().any(|x| x == vehicle_id))
    }

    /// `forbidden` unless the restriction allows `vehicle_id`.
    pub fn require_vehicle(&self, vehicle_id: &str) -> Result<(), ApiError> {
        if self.may_touch(vehicle_id) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                "the token is restricted to other vehicles",
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
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Verification keys: one key, or a JWKS keyed by `kid`.
enum Keys {
    Single(DecodingKey),
    ByKid(HashMap<String, DecodingKey>),
}

/// Verifies caller tokens.
pub struct Verifier {
    keys: Keys,
    validation: Validation,
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
        validation.leeway = c.leeway_s;
        Ok(Self { keys, validation })
    }

    /// Verifies a bearer token.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let unauthenticated = |detail: &str| ApiError::new(Code::Unauthenticated, detail);
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
        Ok(Caller::new(&c.sub, &scopes, c.vehicles).in_tenant(&tenant))
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
mod tests {
    use super::*;
    use keyway_adapter::Secret;

    fn auth() -> AuthConfig {
        AuthConfig {
            issuer: "https://id.test".into(),
            audience: "keyway".into(),
            algorithm: JwtAlgorithm::HS256,
            hs256_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            public_key_file: None,
            jwks_file: None,
            leeway_s: 0,
        }
    }

    fn token(scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        mint_hs256(
            &auth(),
            &DevToken {
                sub: "svc",
                tenant: None,
                scopes: &scopes,
                vehicles: None,
                ttl_s: 60,
            },
        )
        .unwrap()
    }

    #[test]
    fn minted_token_verifies_with_scopes() {
        let v = Verifier::from_config(&auth()).unwrap();
        let c = v.verify(&token(&["location:read", "bogus:scope"])).unwrap();
        assert_eq!(c.sub, "svc");
        assert!(c.has(Scope::LocationRead));
        assert!(!c.has(Scope::CommandsUnlock));
        assert!(c.require(Scope::CommandsUnlock).is_err());
    }

    fn hs256(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn claims() -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp();
        serde_json::json!({"sub": "svc", "iss": "https://id.test", "aud": "keyway",
            "exp": now + 60, "scope": "admin"})
    }

    #[test]
    fn the_tenant_is_the_tenant_claim_else_the_sub() {
        let v = Verifier::from_config(&auth()).unwrap();
        assert_eq!(v.verify(&token(&["admin"])).unwrap().tenant, "svc");
        let mut c = claims();
        c["tenant"] = "acme".into();
        let caller = v.verify(&hs256(c)).unwrap();
        assert_eq!(
            (caller.sub.as_str(), caller.tenant.as_str()),
            ("svc", "acme")
        );
        assert_ne!(
            caller.key_scope(),
            Caller::new("svc", &[], None).key_scope()
        );
        for bad in [
            serde_json::json!(""),
            serde_json::json!(["acme"]),
            serde_json::json!("a\nb"),
        ] {
            let mut c = claims();
            c["tenant"] = bad.clone();
            assert!(v.verify(&hs256(c)).is_err(), "tenant {bad} accepted");
        }
    }

    #[test]
    fn iss_must_be_a_string() {
        let v = Verifier::from_config(&auth()).unwrap();
        assert!(v.verify(&hs256(claims())).is_ok());
        let mut c = claims();
        c["iss"] = serde_json::json!(["https://id.test"]);
        assert_eq!(v.verify(&hs256(c)).unwrap_err().code, Code::Unauthenticated);
        let mut c = claims();
        c["iss"] = serde_json::json!(["https://id.test", "https://evil.test"]);
        assert!(v.verify(&hs256(c)).is_err());
        let mut c = claims();
        c["sub"] = "svc\r\nx".into();
        assert!(v.verify(&hs256(c)).is_err());
    }

    #[test]
    fn admin_implies_everything() {
        let c = Caller::new("a", &[Scope::Admin], None);
        assert!(Scope::ALL.iter().all(|s| c.has(*s)));
    }

    #[test]
    fn vehicle_restriction() {
        let c = Caller::new("a", &[Scope::Admin], Some(vec!["veh_1".into()]));
        assert!(c.may_touch("veh_1"));
        assert!(!c.may_touch("veh_2"));
    }

    #[test]
    fn wrong_secret_and_alg_none_are_rejected() {
        let mut other = auth();
        other.hs256_secret = Some(Secret::new("ffffffffffffffffffffffffffffffff"));
        let v = Verifier::from_config(&other).unwrap();
        let e = v.verify(&token(&["admin"])).unwrap_err();
        assert_eq!(e.code, Code::Unauthenticated);

        // {"alg":"none"} with the same claims and an empty signature.
        let t = token(&["admin"]);
        let payload = t.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        let v = Verifier::from_config(&auth()).unwrap();
        assert_eq!(v.verify(&none).unwrap_err().code, Code::Unauthenticated);
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/auth")
            .join(name)
    }

    fn es256_token(kid: Option<&str>) -> String {
        let key = std::fs::read(fixture("test-es256.key.pem")).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({
            "sub": "svc", "scope": ["vehicles:read"], "iss": "https://id.test",
            "aud": "keyway", "exp": now + 60, "nbf": now - 1,
        });
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(&key).unwrap()).unwrap()
    }

    fn es256_auth() -> AuthConfig {
        AuthConfig {
            algorithm: JwtAlgorithm::ES256,
            hs256_secret: None,
            ..auth()
        }
    }

    #[test]
    fn es256_with_a_pem_public_key() {
        let c = AuthConfig {
            public_key_file: Some(fixture("test-es256.pub.pem")),
            ..es256_auth()
        };
        let v = Verifier::from_config(&c).unwrap();
        let caller = v.verify(&es256_token(None)).unwrap();
        assert!(caller.has(Scope::VehiclesRead));
        // An HS256 token is refused by an ES256 verifier, whatever its signature.
        assert_eq!(
            v.verify(&token(&["admin"])).unwrap_err().code,
            Code::Unauthenticated
        );
    }

    #[test]
    fn es256_with_a_jwks_chooses_the_key_by_kid() {
        let c = AuthConfig {
            jwks_file: Some(fixture("test-jwks.json")),
            ..es256_auth()
        };
        let v = Verifier::from_config(&c).unwrap();
        assert_eq!(
            v.verify(&es256_token(Some("test-es256"))).unwrap().sub,
            "svc"
        );
        let e = v.verify(&es256_token(Some("unknown"))).unwrap_err();
        assert!(e.detail.contains("kid"), "{e}");
        assert!(v.verify(&es256_token(None)).is_err());
    }

    #[test]
    fn unreadable_key_file_names_the_field() {
        let c = AuthConfig {
            public_key_file: Some("/nonexistent/key.pem".into()),
            ..es256_auth()
        };
        let e = Verifier::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("auth.public_key_file"), "{e}");
    }
}
