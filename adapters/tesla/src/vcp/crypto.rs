//! The protocol's cryptography (protocol.md, "Key Agreement" to "Response decryption"):
//! P-256 ECDH to the session key `K = SHA1(Sx)[:16]`, HMAC-SHA256 under keys derived
//! from `K` by label, and AES-128-GCM whose associated data is `SHA256(metadata)`.
//! P-256 comes from `p256` (ring agrees only with ephemeral keys; both sides' keys are
//! static here); HMAC, SHA and AES-GCM from `ring`.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use ring::{aead, digest, hmac, rand::SecureRandom};

/// The 128-bit session key shared by client and car.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub [u8; 16]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// `ENCODE_PUBLIC(P)`: the 65-byte uncompressed point `04 || x || y`.
pub fn encode_public(key: &PublicKey) -> Vec<u8> {
    key.to_encoded_point(false).as_bytes().to_vec()
}

/// A peer's public key from its uncompressed encoding; `None` when not on the curve.
pub fn decode_public(bytes: &[u8]) -> Option<PublicKey> {
    PublicKey::from_sec1_bytes(bytes).ok()
}

/// `K = SHA1(BIG_ENDIAN(Sx, 32))[:16]` for `S = ECDH(ours, theirs)`.
pub fn session_key(ours: &SecretKey, theirs: &PublicKey) -> SessionKey {
    let shared = p256::ecdh::diffie_hellman(ours.to_nonzero_scalar(), theirs.as_affine());
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, shared.raw_secret_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&sha1.as_ref()[..16]);
    SessionKey(k)
}

/// `HMAC-SHA256(K, label)`: the subkey for one purpose (`"session info"`,
/// `"authenticated command"`).
pub fn subkey(k: &SessionKey, label: &str) -> hmac::Key {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k.0), label.as_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// `HMAC-SHA256(key, parts[0] || parts[1] || …)`.
pub fn mac(key: &hmac::Key, parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().to_vec()
}

/// Whether `tag` is `HMAC-SHA256(key, parts…)`, compared in constant time (ring's
/// `hmac::verify`). A truncated tag is not accepted.
pub fn verify_mac(key: &hmac::Key, parts: &[&[u8]], tag: &[u8]) -> bool {
    hmac::verify(key, &parts.concat(), tag).is_ok()
}

/// `SHA256(bytes)`.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

fn gcm_key(k: &SessionKey) -> aead::LessSafeKey {
    let unbound = aead::UnboundKey::new(&aead::AES_128_GCM, &k.0).expect("a 16-byte key");
    aead::LessSafeKey::new(unbound)
}

/// AES-128-GCM under `K` with a fresh random nonce and `SHA256(metadata)` as associated
/// data: `(nonce, ciphertext, tag)`.
pub fn seal(k: &SessionKey, plaintext: &[u8], metadata: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let nonce_bytes: [u8; 12] = random();
    let mut buf = plaintext.to_vec();
    let tag = gcm_key(k)
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce_bytes),
            aead::Aad::from(sha256(metadata)),
            &mut buf,
        )
        .expect("AES-GCM seals any message this size");
    (nonce_bytes.to_vec(), buf, tag.as_ref().to_vec())
}

/// Opens what [`seal`] made; `None` when the tag, nonce or associated data is wrong.
pub fn open(
    k: &SessionKey,
    nonce: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    metadata: &[u8],
) -> Option<Vec<u8>> {
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = [ciphertext, tag].concat();
    let plain = gcm_key(k)
        .open_in_place(nonce, aead::Aad::from(sha256(metadata)), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

/// `N` random bytes from the system.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system random source works");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::DecodePublicKey;

    // The specification's test keys ("Test keys": vehicle.key / client.key). Published
    // there for debugging only; never enrolled anywhere.
    pub(crate) const VEHICLE_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDRO5bRmp88e6xK29QMx2y5exYNO9fS+/P2MvlXCUo1woAoGCCqGSM49
AwEHoUQDQgAEx6H0cThIaqRymXFJSHjTOxok45Vx90im4WxZVbPYd9OmqqDpVRZk
dK9dMsQQ9DmiI0E3rRuwhf1OiBPJWPEdlw==
-----END EC PRIVATE KEY-----";
    const VEHICLE_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEx6H0cThIaqRymXFJSHjTOxok45Vx
90im4WxZVbPYd9OmqqDpVRZkdK9dMsQQ9DmiI0E3rRuwhf1OiBPJWPEdlw==
-----END PUBLIC KEY-----";
    pub(crate) const CLIENT_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEICU4zcKal8GcHpmmN9bPT4yXDBGLVu3h5jI+bRYsSzDboAoGCCqGSM49
AwEHoUQDQgAEsra8aMLaBmXOZWgVWUmWxiOU7di+qQX+eBp1T+aoRacUMwkC8iXp
Jp1GbgWzSZgf2p2FzCPG+0RKpztikQXcbg==
-----END EC PRIVATE KEY-----";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn secret(pem: &str) -> SecretKey {
        SecretKey::from_sec1_pem(pem).unwrap()
    }

    #[test]
    fn the_specifications_key_agreement_byte_for_byte() {
        let (c, v) = (secret(CLIENT_KEY), secret(VEHICLE_KEY));
        assert_eq!(
            hex::encode(encode_public(&v.public_key())),
            "04c7a1f47138486aa4729971494878d33b1a24e39571f748a6e16c5955b3d877d3a6aaa0e955166474af5d32c410f439a2234137ad1bb085fd4e8813c958f11d97"
        );
        assert_eq!(
            hex::encode(encode_public(&c.public_key())),
            "04b2b6bc68c2da0665ce656815594996c62394edd8bea905fe781a754fe6a845a714330902f225e9269d466e05b349981fda9d85cc23c6fb444aa73b629105dc6e"
        );
        assert_eq!(
            PublicKey::from_public_key_pem(VEHICLE_PEM).unwrap(),
            v.public_key()
        );
        // K, the same from both sides.
        let k = session_key(&c, &v.public_key());
        assert_eq!(hex::encode(k.0), "1b2fce19967b79db696f909cff89ea9a");
        assert_eq!(session_key(&v, &c.public_key()), k);
        // SESSION_INFO_KEY = HMAC-SHA256(K, "session info").
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k.0), b"session info");
        assert_eq!(
            hex::encode(derived.as_ref()),
            "fceb679ee7bca756fcd441bf238bf2f338629b41d9eb9c67be1b32c9672ce300"
        );
    }

    #[test]
    fn the_specifications_session_info_tag() {
        let k = session_key(&secret(CLIENT_KEY), &secret(VEHICLE_KEY).public_key());
        let metadata =
            h("000106021135594a333031323334353637383941424306101588d5a30eabc6f8fc9a951b11f6fd11ff");
        let session_info = h(
            "0806124104c7a1f47138486aa4729971494878d33b1a24e39571f748a6e16c5955b3d877d3a6aaa0e955166474af5d32c410f439a2234137ad1bb085fd4e8813c958f11d971a104c463f9cc0d3d26906e982ed224adde6255a0a0000",
        );
        let tag = h("996c1fe38331be138f8039c194b14db2198846ed7d8251e6749284d7b32ea002");
        let key = subkey(&k, "session info");
        assert!(verify_mac(&key, &[&metadata, &session_info], &tag));
        let mut wrong = session_info.clone();
        wrong[1] ^= 1;
        assert!(!verify_mac(&key, &[&metadata, &wrong], &tag));
    }

    #[test]
    fn the_specifications_aes_gcm_example_opens() {
        // The "Turn HVAC on" example: its nonce, ciphertext and tag under K.
        let k = SessionKey(h("1b2fce19967b79db696f909cff89ea9a").try_into().unwrap());
        let metadata = h(
            "000105010103021135594a333031323334353637383941424303104c463f9cc0d3d26906e982ed224adde6040400000a5f050400000007ff",
        );
        let plain = open(
            &k,
            &h("dbf79447fa156674dae1caed"),
            &h("38038e8c0f2e"),
            &h("8e128da165f162f4d7d2c8da866cf82a"),
            &metadata,
        );
        assert_eq!(plain, Some(h("120452020801")));
        // Sealing round-trips; other metadata does not open it.
        let (nonce, ct, tag) = seal(&k, b"lock", &metadata);
        assert_eq!(
            open(&k, &nonce, &ct, &tag, &metadata).as_deref(),
            Some(&b"lock"[..])
        );
        assert_eq!(open(&k, &nonce, &ct, &tag, b"other"), None);
    }
}
