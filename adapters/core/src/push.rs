//! The push path of the adapter contract: what an OEM or aggregator sends keyway
//! without being asked (an inbound webhook), as the adapter reads it once it has
//! verified where it came from.
//!
//! The adapter only translates and verifies ([`crate::Adapter::push`]): it checks the
//! sender's signature with the secret keyway's operator configured, answers the OEM's
//! own checks of the callback ([`Pushed::Challenge`]), and turns each car's data into
//! partial states. keyway merges those like its own reads (newest wins: a replayed or
//! late delivery older than what keyway holds changes nothing) and polls a car that is
//! pushed less.

use crate::{Location, SecurityState};

/// What a verified push carried.
#[derive(Clone, Debug, PartialEq)]
pub enum Pushed {
    /// The OEM checks that keyway owns the callback: answer `200` with this JSON.
    Challenge(serde_json::Value),
    /// Cars' states, each as far as the push told it.
    States {
        /// The OEM's id of this delivery (for logs; replays are harmless by merging).
        event_id: Option<String>,
        /// The states, by the OEM's vehicle id.
        states: Vec<PushedState>,
    },
    /// A kind of push keyway does not use (acknowledged, nothing kept).
    Ignored {
        /// The OEM's name for it.
        kind: String,
    },
}

/// One car's state as pushed: each part `None` when the push did not carry it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushedState {
    /// The OEM's id of the car.
    pub oem_id: String,
    /// The lock and openings.
    pub security: Option<SecurityState>,
    /// The position.
    pub location: Option<Location>,
}

/// Why a push was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The adapter has no push path.
    #[error("this OEM pushes nothing keyway reads")]
    NotCapable,
    /// No valid signature: not from the OEM (or keyway's secret is not the OEM's).
    #[error("the push is not signed by the OEM: {0}")]
    Unverified(String),
    /// Signed, but not a push keyway can read.
    #[error("the push could not be read: {0}")]
    Invalid(String),
}

/// Whether `tag` (hex) is the HMAC-SHA256 of `message` under `key`, compared in
/// constant time. The signature scheme of Smartcar's webhooks (`SC-Signature`) and of
/// many others.
pub fn hmac_sha256_hex_matches(key: &[u8], message: &[u8], tag: &str) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex::decode(tag.trim()).is_ok_and(|t| ring::hmac::verify(&key, message, &t).is_ok())
}

/// The HMAC-SHA256 of `message` under `key`, in lower-case hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex::encode(ring::hmac::sign(&key, message).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_rfc_4231_and_checked_exactly() {
        // RFC 4231, test case 2.
        let tag = hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            tag,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_sha256_hex_matches(
            b"Jefe",
            b"what do ya want for nothing?",
            &tag
        ));
        assert!(!hmac_sha256_hex_matches(
            b"Jefe",
            b"what do ya want for nothing!",
            &tag
        ));
        assert!(!hmac_sha256_hex_matches(
            b"jefe",
            b"what do ya want for nothing?",
            &tag
        ));
        assert!(!hmac_sha256_hex_matches(b"Jefe", b"x", "not hex"));
    }
}
