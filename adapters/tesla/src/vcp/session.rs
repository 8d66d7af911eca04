//! The client side of a session with one domain of one car (protocol.md, "Handshake"
//! and "Authorizing commands"): the handshake request, the verified session it yields
//! (key, epoch, counter, the car's clock), HMAC-authorized commands, and verified (and,
//! with `FLAG_ENCRYPT_RESPONSE`, decrypted) answers. Nothing here does I/O.

use prost::Message;
use tokio::time::Instant;

use super::crypto::{self, SessionKey};
use super::key::AppKey;
use super::metadata::Metadata;
use super::proto::signatures::{
    self, HmacPersonalizedSignatureData, KeyIdentity, SessionInfo, SessionInfoStatus,
    SignatureData, SignatureType, Tag,
};
use super::proto::universal_message::{
    Destination, Domain, Flags, MessageFaultE, RoutableMessage, SessionInfoRequest, destination,
    routable_message,
};

/// How long a command stays valid after it is signed (in the car's clock).
pub const COMMAND_TTL_S: u32 = 15;

/// What went wrong at the protocol layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VcpError {
    /// The car does not know keyway's key (handshake status or `UNKNOWN_KEY_ID`).
    #[error("the vehicle does not know this application's key")]
    NotPaired,
    /// The car refused because the session is stale (epoch, counter, clock, MAC): a new
    /// handshake may fix it. The command was not executed.
    #[error("the vehicle's session is out of sync ({0:?})")]
    OutOfSync(MessageFaultE),
    /// Another protocol fault; the command was not executed, except that `Timeout`
    /// means a subsystem did not answer and the outcome is unknown.
    #[error("the vehicle reported {0:?}")]
    Fault(MessageFaultE),
    /// An answer that fails authentication or does not decode: discarded.
    #[error("the vehicle's answer is not authentic or not readable: {0}")]
    BadAnswer(&'static str),
}

/// A handshake in flight: the request to send and the challenge its answer must carry.
#[derive(Debug)]
pub struct Handshake {
    /// The `RoutableMessage` to send.
    pub request: RoutableMessage,
    uuid: Vec<u8>,
    domain: Domain,
}

/// A command signed in a session: the message to send and the request hash its answer
/// is bound to.
#[derive(Debug)]
pub struct Signed {
    /// The `RoutableMessage` to send.
    pub request: RoutableMessage,
    request_hash: Vec<u8>,
}

/// A verified session with one domain of one car.
#[derive(Clone, Debug)]
pub struct Session {
    domain: Domain,
    vin: String,
    key: SessionKey,
    epoch: Vec<u8>,
    counter: u32,
    clock_time: u32,
    clock_at: Instant,
}

fn destination(domain: Domain) -> Option<Destination> {
    Some(Destination {
        sub_destination: Some(destination::SubDestination::Domain(domain as i32)),
    })
}

fn from_us() -> Option<Destination> {
    Some(Destination {
        sub_destination: Some(destination::SubDestination::RoutingAddress(
            crypto::random::<16>().to_vec(),
        )),
    })
}

/// The handshake request to `domain` for `key` (a fresh routing address and challenge).
pub fn handshake(key: &AppKey, domain: Domain) -> Handshake {
    let uuid = crypto::random::<16>().to_vec();
    Handshake {
        request: RoutableMessage {
            to_destination: destination(domain),
            from_destination: from_us(),
            payload: Some(routable_message::Payload::SessionInfoRequest(
                SessionInfoRequest {
                    public_key: key.public_bytes(),
                    challenge: Vec::new(),
                },
            )),
            uuid: uuid.clone(),
            ..Default::default()
        },
        uuid,
        domain,
    }
}

/// The metadata a session-info tag covers: HMAC, the VIN, the request's challenge.
pub fn session_info_metadata(vin: &str, challenge: &[u8]) -> Vec<u8> {
    Metadata::new()
        .add_byte(Tag::SignatureType, SignatureType::Hmac as u8)
        .add(Tag::Personalization, vin.as_bytes())
        .add(Tag::Challenge, challenge)
        .bytes()
}

/// The metadata an HMAC-personalized command covers.
pub fn command_metadata(
    domain: Domain,
    vin: &str,
    epoch: &[u8],
    expires_at: u32,
    counter: u32,
    flags: u32,
) -> Vec<u8> {
    let m = Metadata::new()
        .add_byte(Tag::SignatureType, SignatureType::HmacPersonalized as u8)
        .add_byte(Tag::Domain, domain as u8)
        .add(Tag::Personalization, vin.as_bytes())
        .add(Tag::Epoch, epoch)
        .add_u32(Tag::ExpiresAt, expires_at)
        .add_u32(Tag::Counter, counter);
    // Flags are covered only when set (protocol.md, "Metadata").
    if flags != 0 {
        m.add_u32(Tag::Flags, flags)
    } else {
        m
    }
    .bytes()
}

/// The metadata an encrypted answer's associated data covers.
pub fn response_metadata(
    domain: Domain,
    vin: &str,
    counter: u32,
    flags: u32,
    request_hash: &[u8],
    fault: u32,
) -> Vec<u8> {
    Metadata::new()
        .add_byte(Tag::SignatureType, SignatureType::AesGcmResponse as u8)
        .add_byte(Tag::Domain, domain as u8)
        .add(Tag::Personalization, vin.as_bytes())
        .add_u32(Tag::Counter, counter)
        .add_u32(Tag::Flags, flags)
        .add(Tag::RequestHash, request_hash)
        .add_u32(Tag::Fault, fault)
        .bytes()
}

/// The request hash of an HMAC-personalized request: the signature type, then the tag
/// (VCSEC: its first 16 bytes).
pub fn request_hash(domain: Domain, tag: &[u8]) -> Vec<u8> {
    let keep = if domain == Domain::VehicleSecurity {
        16
    } else {
        tag.len()
    };
    let mut h = vec![SignatureType::HmacPersonalized as u8];
    h.extend_from_slice(&tag[..keep.min(tag.len())]);
    h
}

/// The protocol-layer fault an answer reports, if any.
fn fault(answer: &RoutableMessage) -> MessageFaultE {
    answer
        .signed_message_status
        .as_ref()
        .map_or(MessageFaultE::MessagefaultErrorNone, |s| {
            s.signed_message_fault()
        })
}

/// Classifies a fault: who can fix it and whether a new handshake may.
pub fn fault_error(f: MessageFaultE) -> VcpError {
    use MessageFaultE as F;
    match f {
        F::MessagefaultErrorUnknownKeyId | F::MessagefaultErrorInactiveKey => VcpError::NotPaired,
        F::MessagefaultErrorInvalidSignature
        | F::MessagefaultErrorInvalidTokenOrCounter
        | F::MessagefaultErrorIncorrectEpoch
        | F::MessagefaultErrorTimeExpired
        | F::MessagefaultErrorRepeatedCounter => VcpError::OutOfSync(f),
        other => VcpError::Fault(other),
    }
}

impl Session {
    /// Verifies the car's handshake answer and opens a session. The tag must be the
    /// HMAC the specification gives over the VIN and this handshake's challenge.
    pub fn accept(
        key: &AppKey,
        vin: &str,
        hs: &Handshake,
        answer: &RoutableMessage,
    ) -> Result<Session, VcpError> {
        let f = fault(answer);
        if f != MessageFaultE::MessagefaultErrorNone {
            return Err(fault_error(f));
        }
        let Some(routable_message::Payload::SessionInfo(bytes)) = &answer.payload else {
            return Err(VcpError::BadAnswer("no session info"));
        };
        let info = SessionInfo::decode(bytes.as_slice())
            .map_err(|_| VcpError::BadAnswer("session info"))?;
        let theirs = crypto::decode_public(&info.public_key)
            .ok_or(VcpError::BadAnswer("vehicle key not on P-256"))?;
        let k = crypto::session_key(key.secret(), &theirs);
        let tag = match answer.signature_data() {
            Some(signatures::signature_data::SigType::SessionInfoTag(t)) => &t.tag,
            _ => return Err(VcpError::BadAnswer("no session info tag")),
        };
        let metadata = session_info_metadata(vin, &hs.uuid);
        if !crypto::verify_mac(
            &crypto::subkey(&k, "session info"),
            &[&metadata, bytes],
            tag,
        ) {
            return Err(VcpError::BadAnswer("session info tag"));
        }
        if info.status() == SessionInfoStatus::KeyNotOnWhitelist {
            return Err(VcpError::NotPaired);
        }
        if info.epoch.len() != 16 {
            return Err(VcpError::BadAnswer("epoch"));
        }
        Ok(Session {
            domain: hs.domain,
            vin: vin.to_string(),
            key: k,
            epoch: info.epoch,
            counter: info.counter,
            clock_time: info.clock_time,
            clock_at: Instant::now(),
        })
    }

    /// The car's clock now, as this session estimates it.
    pub fn vehicle_time(&self) -> u32 {
        let elapsed = self.clock_at.elapsed().as_secs();
        self.clock_time
            .saturating_add(elapsed.min(u32::MAX as u64) as u32)
    }

    /// Signs `payload` (an encoded `VCSEC.UnsignedMessage` or `CarServer.Action`) with the
    /// next counter, valid for [`COMMAND_TTL_S`], asking for an encrypted answer.
    pub fn authorize(&mut self, key: &AppKey, payload: Vec<u8>) -> Signed {
        self.counter = self.counter.wrapping_add(1);
        let expires_at = self.vehicle_time() + COMMAND_TTL_S;
        let flags = 1u32 << (Flags::FlagEncryptResponse as u32);
        let metadata = command_metadata(
            self.domain,
            &self.vin,
            &self.epoch,
            expires_at,
            self.counter,
            flags,
        );
        let tag = crypto::mac(
            &crypto::subkey(&self.key, "authenticated command"),
            &[&metadata, &payload],
        );
        let request_hash = request_hash(self.domain, &tag);
        Signed {
            request: RoutableMessage {
                to_destination: destination(self.domain),
                from_destination: from_us(),
                payload: Some(routable_message::Payload::ProtobufMessageAsBytes(payload)),
                sub_sig_data: Some(routable_message::SubSigData::SignatureData(SignatureData {
                    signer_identity: Some(KeyIdentity {
                        identity_type: Some(signatures::key_identity::IdentityType::PublicKey(
                            key.public_bytes(),
                        )),
                    }),
                    sig_type: Some(signatures::signature_data::SigType::HmacPersonalizedData(
                        HmacPersonalizedSignatureData {
                            epoch: self.epoch.clone(),
                            counter: self.counter,
                            expires_at,
                            tag,
                        },
                    )),
                })),
                uuid: crypto::random::<16>().to_vec(),
                flags,
                ..Default::default()
            },
            request_hash,
        }
    }

    /// Verifies the car's answer to `signed` and returns its application payload (an
    /// encoded `FromVCSECMessage` for VCSEC), decrypting it when the car encrypted it.
    pub fn open(&self, signed: &Signed, answer: &RoutableMessage) -> Result<Vec<u8>, VcpError> {
        let f = fault(answer);
        let payload = match &answer.payload {
            Some(routable_message::Payload::ProtobufMessageAsBytes(p)) => p.clone(),
            _ => Vec::new(),
        };
        match answer.signature_data() {
            Some(signatures::signature_data::SigType::AesGcmResponseData(gcm)) => {
                let metadata = response_metadata(
                    self.domain,
                    &self.vin,
                    gcm.counter,
                    answer.flags,
                    &signed.request_hash,
                    f as u32,
                );
                let plain = crypto::open(&self.key, &gcm.nonce, &payload, &gcm.tag, &metadata)
                    .ok_or(VcpError::BadAnswer("response tag"))?;
                if f != MessageFaultE::MessagefaultErrorNone {
                    return Err(fault_error(f));
                }
                Ok(plain)
            }
            // Firmware before 2024.38 answers in plaintext (and faults are never encrypted).
            _ if f != MessageFaultE::MessagefaultErrorNone => Err(fault_error(f)),
            _ => Ok(payload),
        }
    }
}

impl RoutableMessage {
    /// The signature data's type, if any.
    pub fn signature_data(&self) -> Option<&signatures::signature_data::SigType> {
        match &self.sub_sig_data {
            Some(routable_message::SubSigData::SignatureData(s)) => s.sig_type.as_ref(),
            None => None,
        }
    }

    /// The signer's public key, if the message names one.
    pub fn signer(&self) -> Option<&[u8]> {
        match &self.sub_sig_data {
            Some(routable_message::SubSigData::SignatureData(SignatureData {
                signer_identity:
                    Some(KeyIdentity {
                        identity_type: Some(signatures::key_identity::IdentityType::PublicKey(k)),
                    }),
                ..
            })) => Some(k),
            _ => None,
        }
    }

    /// The domain this message is addressed to, if it names one.
    pub fn to_domain(&self) -> Option<Domain> {
        match self.to_destination.as_ref()?.sub_destination {
            Some(destination::SubDestination::Domain(d)) => Domain::try_from(d).ok(),
            _ => None,
        }
    }
}
