//! The protocol against the specification's examples and against the car's side.

use prost::Message;

use super::proto::signatures::SessionInfo;
use super::proto::universal_message::{MessageFaultE, destination, routable_message};
use super::proto::vcsec::FromVcsecMessage;
use super::session::{Session, VcpError, handshake};
use super::vehicle::VehicleDomain;
use super::*;

const VIN: &str = "5YJ30123456789ABC";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn the_specifications_messages_decode_and_encode() {
    // protocol.md, "Decoding messages": the TX line of `tesla-control … list-keys`.
    let tx = h(
        "320208023a1212100a7962c10d38b61dd2a7722780a4f0969a031005514f57616bcc81a8ce0f9d7b48322952040a020805",
    );
    let m = RoutableMessage::decode(tx.as_slice()).unwrap();
    assert_eq!(m.to_domain(), Some(Domain::VehicleSecurity));
    assert_eq!(
        m.from_destination.as_ref().unwrap().sub_destination,
        Some(destination::SubDestination::RoutingAddress(h(
            "0a7962c10d38b61dd2a7722780a4f096"
        )))
    );
    assert_eq!(
        m.payload,
        Some(routable_message::Payload::ProtobufMessageAsBytes(h(
            "0a020805"
        )))
    );
    assert_eq!(m.uuid, h("05514f57616bcc81a8ce0f9d7b483229"));
    // prost writes fields in number order (Go writes the oneof last): the same bytes
    // with the payload moved before the uuid, and they decode to the same message.
    let ours = m.encode_to_vec();
    assert_eq!(
        hex::encode(&ours),
        "320208023a1212100a7962c10d38b61dd2a7722780a4f09652040a0208059a031005514f57616bcc81a8ce0f9d7b483229"
    );
    assert_eq!(RoutableMessage::decode(ours.as_slice()).unwrap(), m);
    // The handshake example's session_info.
    let info = SessionInfo::decode(h("0806124104c7a1f47138486aa4729971494878d33b1a24e39571f748a6e16c5955b3d877d3a6aaa0e955166474af5d32c410f439a2234137ad1bb085fd4e8813c958f11d971a104c463f9cc0d3d26906e982ed224adde6255a0a0000").as_slice()).unwrap();
    assert_eq!(info.counter, 6);
    assert_eq!(info.epoch, h("4c463f9cc0d3d26906e982ed224adde6"));
    assert_eq!(info.clock_time, 2650);
    // RKE payloads: lock is action 1, unlock action 0 (still written: it is a oneof).
    assert_eq!(rke_payload(true), h("1001"));
    assert_eq!(rke_payload(false), h("1000"));
    assert_eq!(rke_action(&rke_payload(false)), Some(false));
}

struct Pair {
    app: AppKey,
    car: VehicleDomain,
}

fn paired() -> Pair {
    let app = AppKey::generate();
    let mut car = VehicleDomain::new(Domain::VehicleSecurity, VIN);
    car.enroll(&app.public_bytes());
    Pair { app, car }
}

impl Pair {
    fn session(&mut self) -> Result<Session, VcpError> {
        let hs = handshake(&self.app, Domain::VehicleSecurity);
        let (answer, ran) = self.car.handle(&hs.request, |_| unreachable!());
        assert!(!ran);
        Session::accept(&self.app, VIN, &hs, &answer)
    }

    /// Sends `request` to the car; the answer's payload, or its fault.
    fn send(&mut self, request: &RoutableMessage) -> (RoutableMessage, Option<bool>) {
        let mut executed = None;
        let (answer, _) = self.car.handle(request, |p| {
            executed = rke_action(p);
            FromVcsecMessage::default().encode_to_vec()
        });
        (answer, executed)
    }
}

fn fault(answer: &RoutableMessage) -> MessageFaultE {
    answer
        .signed_message_status
        .unwrap_or_default()
        .signed_message_fault()
}

#[test]
fn a_signed_lock_runs_and_its_encrypted_answer_opens() {
    let mut p = paired();
    let mut s = p.session().unwrap();
    let signed = s.authorize(&p.app, rke_payload(true));
    let (answer, executed) = p.send(&signed.request);
    assert_eq!(executed, Some(true));
    assert!(matches!(
        answer.signature_data(),
        Some(proto::signatures::signature_data::SigType::AesGcmResponseData(_))
    ));
    let plain = s.open(&signed, &answer).unwrap();
    assert_eq!(
        FromVcsecMessage::decode(plain.as_slice()).unwrap(),
        FromVcsecMessage::default()
    );
    // A second command in the same session (the next counter) runs too.
    let signed = s.authorize(&p.app, rke_payload(false));
    assert_eq!(p.send(&signed.request).1, Some(false));
    // An answer bound to another request does not open.
    let other = s.authorize(&p.app, rke_payload(true));
    let (answer, _) = p.send(&other.request);
    assert_eq!(
        s.open(&signed, &answer),
        Err(VcpError::BadAnswer("response tag"))
    );
}

#[test]
fn the_car_refuses_replays_stale_counters_forgeries_and_unknown_keys() {
    let mut p = paired();
    let mut s = p.session().unwrap();
    let first = s.authorize(&p.app, rke_payload(false));
    let second = s.authorize(&p.app, rke_payload(false));
    assert_eq!(p.send(&second.request).1, Some(false));
    // The same message again, and an older counter: refused, not executed.
    for stale in [&second.request, &first.request] {
        let (answer, executed) = p.send(stale);
        assert_eq!(executed, None);
        assert_eq!(
            fault(&answer),
            MessageFaultE::MessagefaultErrorInvalidTokenOrCounter
        );
        assert_eq!(
            s.open(&second, &answer),
            Err(VcpError::OutOfSync(
                MessageFaultE::MessagefaultErrorInvalidTokenOrCounter
            ))
        );
    }
    // A payload changed after signing: the MAC fails.
    let mut forged = s.authorize(&p.app, rke_payload(true)).request;
    forged.payload = Some(routable_message::Payload::ProtobufMessageAsBytes(
        rke_payload(false),
    ));
    let (answer, executed) = p.send(&forged);
    assert_eq!(
        (fault(&answer), executed),
        (MessageFaultE::MessagefaultErrorInvalidSignature, None)
    );
    // Unsigned: no signer.
    let mut unsigned = forged.clone();
    unsigned.sub_sig_data = None;
    assert_eq!(
        fault(&p.send(&unsigned).0),
        MessageFaultE::MessagefaultErrorInvalidSignature
    );
    // A key the car does not know: the handshake says so, and so does a command.
    let stranger = AppKey::generate();
    let hs = handshake(&stranger, Domain::VehicleSecurity);
    let (answer, _) = p.car.handle(&hs.request, |_| unreachable!());
    assert_eq!(
        Session::accept(&stranger, VIN, &hs, &answer).unwrap_err(),
        VcpError::NotPaired
    );
    let mut theirs = s.clone();
    let signed = theirs.authorize(&stranger, rke_payload(false));
    let (answer, executed) = p.send(&signed.request);
    assert_eq!(
        (fault(&answer), executed),
        (MessageFaultE::MessagefaultErrorUnknownKeyId, None)
    );
}

#[tokio::test(start_paused = true)]
async fn expired_commands_and_reboots_are_refused_and_a_new_handshake_recovers() {
    let mut p = paired();
    let mut s = p.session().unwrap();
    let signed = s.authorize(&p.app, rke_payload(false));
    tokio::time::advance(std::time::Duration::from_secs(
        u64::from(session::COMMAND_TTL_S) + 1,
    ))
    .await;
    let (answer, executed) = p.send(&signed.request);
    assert_eq!(
        (fault(&answer), executed),
        (MessageFaultE::MessagefaultErrorTimeExpired, None)
    );
    // The session's clock moved on with ours: the next command is in time.
    let signed = s.authorize(&p.app, rke_payload(false));
    assert_eq!(p.send(&signed.request).1, Some(false));
    // After a reboot the epoch is new: out of sync, and a new handshake fixes it.
    p.car.reboot();
    let signed = s.authorize(&p.app, rke_payload(true));
    let (answer, _) = p.send(&signed.request);
    assert_eq!(
        s.open(&signed, &answer),
        Err(VcpError::OutOfSync(
            MessageFaultE::MessagefaultErrorIncorrectEpoch
        ))
    );
    let mut s = p.session().unwrap();
    let signed = s.authorize(&p.app, rke_payload(true));
    assert_eq!(p.send(&signed.request).1, Some(true));
}

#[test]
fn a_handshake_answer_for_another_car_or_challenge_is_discarded() {
    let mut p = paired();
    let hs = handshake(&p.app, Domain::VehicleSecurity);
    let (answer, _) = p.car.handle(&hs.request, |_| unreachable!());
    assert_eq!(
        Session::accept(&p.app, "5YJ3OTHERVIN00000", &hs, &answer).unwrap_err(),
        VcpError::BadAnswer("session info tag")
    );
    let other = handshake(&p.app, Domain::VehicleSecurity);
    assert_eq!(
        Session::accept(&p.app, VIN, &other, &answer).unwrap_err(),
        VcpError::BadAnswer("session info tag")
    );
    assert!(Session::accept(&p.app, VIN, &hs, &answer).is_ok());
    // Base64 as Fleet API carries it round-trips.
    assert_eq!(from_base64(&to_base64(&answer)), Some(answer));
}
