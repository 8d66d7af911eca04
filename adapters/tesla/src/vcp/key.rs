//! The application's P-256 key pair: the private half signs commands (it is a secret:
//! never printed, `Debug` redacts it), the public half is what owners enroll in their
//! cars and what Tesla fetches from the app domain's well-known path.

use p256::SecretKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};

use super::crypto;

/// The application key.
#[derive(Clone)]
pub struct AppKey {
    secret: SecretKey,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AppKey(public {})",
            hex::encode(&self.public_bytes()[..8])
        )
    }
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a P-256 private key in PEM (SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`)")]
pub struct BadKey;

impl AppKey {
    /// A key from PEM: SEC1 (`openssl ecparam -genkey`) or PKCS#8.
    pub fn from_pem(pem: &str) -> Result<Self, BadKey> {
        let pem = pem.trim();
        SecretKey::from_sec1_pem(pem)
            .or_else(|_| SecretKey::from_pkcs8_pem(pem))
            .map(|secret| Self { secret })
            .map_err(|_| BadKey)
    }

    /// A fresh key from the system's random source.
    pub fn generate() -> Self {
        loop {
            let bytes: [u8; 32] = crypto::random();
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                return Self { secret };
            }
        }
    }

    /// The private key as PKCS#8 PEM (`PRIVATE KEY`, naming the P-256 curve), for
    /// `keyway tesla-keygen` to write once: OpenSSL, Python's `cryptography` and Go
    /// read it (the SEC1 form written before carried no curve and they could not).
    /// Keys written before still read ([`AppKey::from_pem`]).
    pub fn private_pem(&self) -> String {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a valid key encodes")
            .to_string()
    }

    /// The public key as SPKI PEM: what `/.well-known/appspecific/com.tesla.3p.public-key.pem`
    /// serves.
    pub fn public_pem(&self) -> String {
        self.secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a valid key encodes")
    }

    /// `ENCODE_PUBLIC(C)`: the 65-byte uncompressed public key.
    pub fn public_bytes(&self) -> Vec<u8> {
        crypto::encode_public(&self.secret.public_key())
    }

    /// The private scalar, for key agreement inside this module only.
    pub(crate) fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    #[test]
    fn writes_pkcs8_naming_the_curve_and_still_reads_sec1() {
        use base64::Engine;
        let k = AppKey::generate();
        let pem = k.private_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        // id-ecPublicKey and prime256v1 (RFC 5480), as every reader expects.
        let ec = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        for oid in [&ec[..], &p256[..]] {
            assert!(der.windows(oid.len()).any(|w| w == oid), "{oid:02x?}");
        }
        // A key written before (SEC1, no curve) still reads.
        let sec1 = k.secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert_eq!(
            AppKey::from_pem(&sec1).unwrap().public_bytes(),
            k.public_bytes()
        );
    }

    #[test]
    fn reads_sec1_and_pkcs8_and_round_trips() {
        let k = AppKey::generate();
        let again = AppKey::from_pem(&k.private_pem()).unwrap();
        assert_eq!(again.public_bytes(), k.public_bytes());
        let pkcs8 = k.secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(
            AppKey::from_pem(&pkcs8).unwrap().public_bytes(),
            k.public_bytes()
        );
        assert!(k.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(AppKey::from_pem("not a key").unwrap_err(), BadKey);
        // Debug shows a fingerprint of the public key, never the private key.
        let debug = format!("{k:?}");
        assert!(!debug.contains(&k.private_pem()[30..60]));
    }
}
