//! Tesla's Vehicle Command Protocol, written from teslamotors/vehicle-command's
//! `pkg/protocol/protocol.md`: the messages ([`proto`]), the metadata serialisation
//! ([`metadata`]), the cryptography ([`crypto`]), the application key ([`key`]), the
//! client's sessions ([`session`]) and the car's side ([`vehicle`], which the mock car
//! runs). The specification's test keys and worked examples are unit tests here, byte
//! for byte. keyway signs VCSEC remote-keyless-entry actions (lock, unlock) with
//! HMAC-SHA256, as Fleet API requires, and asks for encrypted answers.

pub mod crypto;
pub mod key;
pub mod metadata;
pub mod proto;
pub mod session;
pub mod vehicle;

pub use key::AppKey;
pub use proto::universal_message::{Domain, RoutableMessage};
pub use session::{Session, VcpError};

use prost::Message;
use proto::vcsec::{RkeActionE, UnsignedMessage, unsigned_message};

/// The VCSEC payload for a lock (`true`) or unlock (`false`): an `UnsignedMessage` with
/// its RKE action.
pub fn rke_payload(lock: bool) -> Vec<u8> {
    let action = if lock {
        RkeActionE::RkeActionLock
    } else {
        RkeActionE::RkeActionUnlock
    };
    UnsignedMessage {
        sub_message: Some(unsigned_message::SubMessage::RkeAction(action as i32)),
    }
    .encode_to_vec()
}

/// The RKE action a VCSEC payload asks for: `Some(true)` lock, `Some(false)` unlock.
pub fn rke_action(payload: &[u8]) -> Option<bool> {
    match UnsignedMessage::decode(payload).ok()?.sub_message? {
        unsigned_message::SubMessage::RkeAction(a) => match RkeActionE::try_from(a).ok()? {
            RkeActionE::RkeActionLock => Some(true),
            RkeActionE::RkeActionUnlock => Some(false),
            _ => None,
        },
    }
}

/// A `RoutableMessage` as Fleet API carries it (`routable_message` / `response`):
/// standard base64 of its encoding.
pub fn to_base64(m: &RoutableMessage) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(m.encode_to_vec())
}

/// Decodes what [`to_base64`] made; `None` when it is not base64 or not a message.
pub fn from_base64(s: &str) -> Option<RoutableMessage> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    RoutableMessage::decode(bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests;
