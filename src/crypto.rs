//! Encryption of secrets at rest (OEM access and refresh tokens, PKCE verifiers):
//! AES-256-GCM from `ring` (already in the tree through rustls), a fresh random
//! 96-bit nonce per value, and the key id stored beside each ciphertext
//! (`kw1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`) so keys can rotate: new values
//! are sealed with the active key, old ones open with whichever key sealed them, and
//! `keyway rotate-key` re-seals everything with the active key. Each value is bound to
//! where it belongs (associated data such as `acct_…/refresh_token`), so a ciphertext
//! copied into another row or column does not open.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyway_adapter::Secret;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{ConfigError, CryptoConfig, invalid};

/// Why a value could not be sealed or opened.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Not a keyway ciphertext.
    #[error("not a sealed value")]
    Malformed,
    /// Sealed with a key that is not configured (any more).
    #[error("sealed with unknown key {0:?}")]
    UnknownKey(String),
    /// Wrong key, wrong place, or tampered.
    #[error("the sealed value does not open (tampered, moved, or wrong key)")]
    Open,
    /// The system random source failed.
    #[error("no randomness")]
    Random,
    /// A key in the configuration is unusable.
    #[error("key {0:?}: {1}")]
    BadKey(String, String),
}

/// Seals and opens secrets.
pub struct Sealer {
    keys: HashMap<String, LessSafeKey>,
    active: String,
    rng: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("active", &self.active)
            .field("keys", &self.keys.len())
            .finish()
    }
}

const PREFIX: &str = "kw1";

/// Whether `id` can name a key (it appears inside ciphertexts).
pub fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes a configured key: standard base64 of exactly 32 bytes.
pub fn decode_key(id: &str, b64: &Secret) -> Result<[u8; 32], CryptoError> {
    let bytes = STANDARD
        .decode(b64.expose().trim())
        .map_err(|e| CryptoError::BadKey(id.into(), format!("not base64: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| CryptoError::BadKey(id.into(), "must be 32 bytes (256 bits)".into()))
}

/// A new random key, base64-encoded (what `keyway gen-key` prints).
pub fn generate_key() -> Result<String, CryptoError> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| CryptoError::Random)?;
    Ok(STANDARD.encode(key))
}

impl Sealer {
    /// The sealer `[crypto]` describes; errors name the field (`crypto.keys.<id>`,
    /// `crypto.active_key`).
    pub fn from_config(c: &CryptoConfig) -> Result<Self, ConfigError> {
        let active = c.active()?;
        let mut keys = Vec::new();
        for (id, b64) in &c.keys {
            let key = decode_key(id, b64)
                .map_err(|e| invalid(&format!("crypto.keys.{id}"), e.to_string()))?;
            keys.push((id.clone(), key));
        }
        Self::new(&keys, &active).map_err(|e| invalid("crypto.active_key", e.to_string()))
    }

    /// A sealer with `keys` (id → 32-byte key) sealing with `active`.
    pub fn new(keys: &[(String, [u8; 32])], active: &str) -> Result<Self, CryptoError> {
        let mut map = HashMap::new();
        for (id, bytes) in keys {
            if !valid_key_id(id) {
                return Err(CryptoError::BadKey(
                    id.clone(),
                    "ids are 1-32 of A-Z a-z 0-9 - _".into(),
                ));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, bytes)
                .map_err(|_| CryptoError::BadKey(id.clone(), "rejected by AES-256-GCM".into()))?;
            map.insert(id.clone(), LessSafeKey::new(unbound));
        }
        if !map.contains_key(active) {
            return Err(CryptoError::BadKey(
                active.into(),
                "the active key is not among the keys".into(),
            ));
        }
        Ok(Self {
            keys: map,
            active: active.into(),
            rng: SystemRandom::new(),
        })
    }

    /// The id of the key new values are sealed with.
    pub fn active_key(&self) -> &str {
        &self.active
    }

    /// Seals `plain` for the place named by `aad`.
    pub fn seal(&self, plain: &Secret, aad: &str) -> Result<String, CryptoError> {
        let key = &self.keys[&self.active];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut buf = plain.expose().as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .map_err(|_| CryptoError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{PREFIX}.{}.{}",
            self.active,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens a value sealed for the place named by `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Secret, CryptoError> {
        let (kid, data) = parse(sealed)?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.into()))?;
        let mut bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| CryptoError::Open)
    }

    /// Whether `sealed` was sealed with a key other than the active one.
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        parse(sealed).is_ok_and(|(kid, _)| kid != self.active)
    }
}

fn parse(sealed: &str) -> Result<(&str, &str), CryptoError> {
    let mut parts = sealed.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(PREFIX), Some(kid), Some(data)) if !kid.is_empty() => Ok((kid, data)),
        _ => Err(CryptoError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_the_configuration_are_checked_and_named() {
        let config = |keys: &[(&str, &str)]| CryptoConfig {
            active_key: None,
            keys: keys
                .iter()
                .map(|(id, k)| (id.to_string(), Secret::new(*k)))
                .collect(),
        };
        let good = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert!(Sealer::from_config(&config(&[("k1", good)])).is_ok());
        let e = Sealer::from_config(&config(&[("k1", "AQEB")])).unwrap_err();
        assert!(e.to_string().contains("crypto.keys.k1"), "{e}");
        let e = Sealer::from_config(&config(&[])).unwrap_err();
        assert!(e.to_string().contains("crypto.keys"), "{e}");
        let e = Sealer::from_config(&config(&[("k1", good), ("k2", good)])).unwrap_err();
        assert!(e.to_string().contains("crypto.active_key"), "{e}");
    }

    fn sealer(active: &str) -> Sealer {
        Sealer::new(
            &[("k1".into(), [1u8; 32]), ("k2".into(), [2u8; 32])],
            active,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_no_plaintext() {
        let s = sealer("k1");
        let sealed = s
            .seal(&Secret::new("rt_supersecret"), "acct_1/refresh_token")
            .unwrap();
        assert!(sealed.starts_with("kw1.k1."));
        assert!(!sealed.contains("supersecret"));
        assert_eq!(
            s.open(&sealed, "acct_1/refresh_token").unwrap().expose(),
            "rt_supersecret"
        );
        // Fresh nonce each time.
        assert_ne!(
            sealed,
            s.seal(&Secret::new("rt_supersecret"), "acct_1/refresh_token")
                .unwrap()
        );
    }

    #[test]
    fn moved_or_tampered_values_do_not_open() {
        let s = sealer("k1");
        let sealed = s
            .seal(&Secret::new("token"), "acct_1/access_token")
            .unwrap();
        assert_eq!(
            s.open(&sealed, "acct_2/access_token"),
            Err(CryptoError::Open)
        );
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(s.open(&tampered, "acct_1/access_token").is_err());
        assert_eq!(s.open("plain-token", "x"), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = sealer("k1");
        let sealed = old.seal(&Secret::new("v"), "a").unwrap();
        let new = sealer("k2");
        assert!(new.needs_rotation(&sealed));
        assert_eq!(new.open(&sealed, "a").unwrap().expose(), "v");
        let resealed = new.seal(&Secret::new("v"), "a").unwrap();
        assert!(!new.needs_rotation(&resealed));
        let only_k2 = Sealer::new(&[("k2".into(), [2u8; 32])], "k2").unwrap();
        assert_eq!(
            only_k2.open(&sealed, "a"),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn keys_are_checked() {
        assert!(decode_key("k", &Secret::new(generate_key().unwrap())).is_ok());
        assert!(decode_key("k", &Secret::new("c2hvcnQ=")).is_err());
        assert!(Sealer::new(&[("bad.id".into(), [0u8; 32])], "bad.id").is_err());
        assert!(Sealer::new(&[("k1".into(), [0u8; 32])], "k9").is_err());
    }
}
