//! The car's side of a domain (what the mock car runs): it answers handshakes with a
//! tagged `SessionInfo`, and lets a command through only if its signer is in the
//! keychain, its epoch is current, it has not expired (nor lives too long), its counter
//! is new and its HMAC is right — refusing otherwise with the specification's fault
//! codes. Answers are encrypted when the request asks for it.

use std::collections::HashMap;

use p256::SecretKey;
use prost::Message;
use tokio::time::Instant;

use super::crypto;
use super::proto::signatures::{
    self, AesGcmResponseSignatureData, HmacSignatureData, SessionInfo, SessionInfoStatus,
    SignatureData,
};
use super::proto::universal_message::{
    Destination, Domain, Flags, MessageFaultE, MessageStatus, OperationStatusE, RoutableMessage,
    destination, routable_message,
};
use super::session::{command_metadata, request_hash, response_metadata, session_info_metadata};

/// The longest validity the car accepts on a command (seconds of its clock).
pub const MAX_TTL_S: u32 = 60;

/// One domain of one car.
#[derive(Debug)]
pub struct VehicleDomain {
    domain: Domain,
    vin: String,
    secret: SecretKey,
    epoch: [u8; 16],
    booted: Instant,
    clock_base: u32,
    keychain: Vec<Vec<u8>>,
    counters: HashMap<Vec<u8>, u32>,
    /// The session key agreed with each signer (ECDH once per key, as a car keeps it).
    keys: HashMap<Vec<u8>, crypto::SessionKey>,
}

impl VehicleDomain {
    /// A freshly booted domain with its own key and epoch, and an empty keychain.
    pub fn new(domain: Domain, vin: &str) -> Self {
        let secret = loop {
            if let Ok(s) = SecretKey::from_slice(&crypto::random::<32>()) {
                break s;
            }
        };
        Self {
            domain,
            vin: vin.to_string(),
            secret,
            epoch: crypto::random(),
            booted: Instant::now(),
            clock_base: 2_600,
            keychain: Vec::new(),
            counters: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Adds a public key (65-byte uncompressed) to the keychain: the owner paired it.
    pub fn enroll(&mut self, public_key: &[u8]) {
        if !self.is_enrolled(public_key) {
            self.keychain.push(public_key.to_vec());
        }
    }

    /// Replaces the keychain (the car's configuration says which keys are paired).
    pub fn set_keychain(&mut self, keys: impl IntoIterator<Item = Vec<u8>>) {
        self.keychain = keys.into_iter().collect();
    }

    /// Whether the keychain holds `public_key`.
    pub fn is_enrolled(&self, public_key: &[u8]) -> bool {
        self.keychain.iter().any(|k| k == public_key)
    }

    /// A reboot: a new epoch (sessions must be renewed) and a restarted clock.
    pub fn reboot(&mut self) {
        self.epoch = crypto::random();
        self.booted = Instant::now();
        self.counters.clear();
    }

    fn now(&self) -> u32 {
        self.clock_base + self.booted.elapsed().as_secs().min(u32::MAX as u64 / 2) as u32
    }

    fn reply(&self, request: &RoutableMessage) -> RoutableMessage {
        RoutableMessage {
            to_destination: request.from_destination.clone(),
            from_destination: Some(Destination {
                sub_destination: Some(destination::SubDestination::Domain(self.domain as i32)),
            }),
            request_uuid: request.uuid.clone(),
            ..Default::default()
        }
    }

    fn refuse(&self, request: &RoutableMessage, fault: MessageFaultE) -> RoutableMessage {
        RoutableMessage {
            signed_message_status: Some(MessageStatus {
                operation_status: OperationStatusE::OperationstatusError as i32,
                signed_message_fault: fault as i32,
            }),
            ..self.reply(request)
        }
    }

    /// Answers one message. `execute` runs an authorized payload (an encoded
    /// `VCSEC.UnsignedMessage`) and returns the application answer to send back.
    /// Returns the answer and whether `execute` ran.
    pub fn handle(
        &mut self,
        request: &RoutableMessage,
        execute: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> (RoutableMessage, bool) {
        if request.to_domain() != Some(self.domain) {
            return (
                self.refuse(request, MessageFaultE::MessagefaultErrorInvalidDomains),
                false,
            );
        }
        match &request.payload {
            Some(routable_message::Payload::SessionInfoRequest(r)) => {
                (self.session_info(request, &r.public_key), false)
            }
            Some(routable_message::Payload::ProtobufMessageAsBytes(p)) => {
                match self.authorize(request, p) {
                    Err(fault) => (self.refuse(request, fault), false),
                    Ok((k, hash)) => {
                        let answer = execute(p);
                        (self.answer(request, &k, &hash, answer), true)
                    }
                }
            }
            _ => (
                self.refuse(request, MessageFaultE::MessagefaultErrorDecoding),
                false,
            ),
        }
    }

    fn session_info(&self, request: &RoutableMessage, public_key: &[u8]) -> RoutableMessage {
        let Some(theirs) = crypto::decode_public(public_key) else {
            return self.refuse(request, MessageFaultE::MessagefaultErrorDecoding);
        };
        let enrolled = self.is_enrolled(public_key);
        let info = SessionInfo {
            counter: self.counters.get(public_key).copied().unwrap_or(0),
            public_key: crypto::encode_public(&self.secret.public_key()),
            epoch: self.epoch.to_vec(),
            clock_time: self.now(),
            status: if enrolled {
                SessionInfoStatus::Ok
            } else {
                SessionInfoStatus::KeyNotOnWhitelist
            } as i32,
            handle: 0,
        }
        .encode_to_vec();
        let k = crypto::session_key(&self.secret, &theirs);
        let metadata = session_info_metadata(&self.vin, &request.uuid);
        let tag = crypto::mac(&crypto::subkey(&k, "session info"), &[&metadata, &info]);
        RoutableMessage {
            payload: Some(routable_message::Payload::SessionInfo(info)),
            sub_sig_data: Some(routable_message::SubSigData::SignatureData(SignatureData {
                signer_identity: None,
                sig_type: Some(signatures::signature_data::SigType::SessionInfoTag(
                    HmacSignatureData { tag },
                )),
            })),
            ..self.reply(request)
        }
    }

    /// Checks a signed command; on success records its counter and returns the session
    /// key and the request hash.
    fn authorize(
        &mut self,
        request: &RoutableMessage,
        payload: &[u8],
    ) -> Result<(crypto::SessionKey, Vec<u8>), MessageFaultE> {
        use MessageFaultE as F;
        let signer = request
            .signer()
            .ok_or(F::MessagefaultErrorInvalidSignature)?;
        if !self.is_enrolled(signer) {
            return Err(F::MessagefaultErrorUnknownKeyId);
        }
        let k = match self.keys.get(signer) {
            Some(k) => k.clone(),
            None => {
                let theirs = crypto::decode_public(signer).ok_or(F::MessagefaultErrorDecoding)?;
                let k = crypto::session_key(&self.secret, &theirs);
                self.keys.insert(signer.to_vec(), k.clone());
                k
            }
        };
        let Some(signatures::signature_data::SigType::HmacPersonalizedData(h)) =
            request.signature_data()
        else {
            return Err(F::MessagefaultErrorInvalidSignature);
        };
        if h.epoch != self.epoch {
            return Err(F::MessagefaultErrorIncorrectEpoch);
        }
        let now = self.now();
        if h.expires_at < now {
            return Err(F::MessagefaultErrorTimeExpired);
        }
        if h.expires_at > now + MAX_TTL_S {
            return Err(F::MessagefaultErrorTimeToLiveTooLong);
        }
        let metadata = command_metadata(
            self.domain,
            &self.vin,
            &h.epoch,
            h.expires_at,
            h.counter,
            request.flags,
        );
        let mac_key = crypto::subkey(&k, "authenticated command");
        if !crypto::verify_mac(&mac_key, &[&metadata, payload], &h.tag) {
            return Err(F::MessagefaultErrorInvalidSignature);
        }
        // VCSEC takes counters strictly in order: a replay or a stale counter is refused.
        let last = self.counters.entry(signer.to_vec()).or_insert(0);
        if h.counter <= *last {
            return Err(F::MessagefaultErrorInvalidTokenOrCounter);
        }
        *last = h.counter;
        Ok((k, request_hash(self.domain, &h.tag)))
    }

    fn answer(
        &self,
        request: &RoutableMessage,
        k: &crypto::SessionKey,
        hash: &[u8],
        plain: Vec<u8>,
    ) -> RoutableMessage {
        let encrypt = request.flags & (1 << Flags::FlagEncryptResponse as u32) != 0;
        if !encrypt {
            return RoutableMessage {
                payload: Some(routable_message::Payload::ProtobufMessageAsBytes(plain)),
                ..self.reply(request)
            };
        }
        let counter = match request.signature_data() {
            Some(signatures::signature_data::SigType::HmacPersonalizedData(h)) => h.counter,
            _ => 0,
        };
        let flags = 0;
        let metadata = response_metadata(self.domain, &self.vin, counter, flags, hash, 0);
        let (nonce, ciphertext, tag) = crypto::seal(k, &plain, &metadata);
        RoutableMessage {
            payload: Some(routable_message::Payload::ProtobufMessageAsBytes(
                ciphertext,
            )),
            sub_sig_data: Some(routable_message::SubSigData::SignatureData(SignatureData {
                signer_identity: None,
                sig_type: Some(signatures::signature_data::SigType::AesGcmResponseData(
                    AesGcmResponseSignatureData {
                        nonce,
                        counter,
                        tag,
                    },
                )),
            })),
            flags,
            ..self.reply(request)
        }
    }
}
