//! Unit tests of the parent module, against `fixtures/smartcar/`.

use super::*;
use http::header;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/smartcar/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn answer(status: u16, body: &[u8], retry_after: Option<&str>) -> Response<Bytes> {
    let mut b = Response::builder().status(status);
    if let Some(r) = retry_after {
        b = b.header(header::RETRY_AFTER, r);
    }
    b.body(Bytes::copy_from_slice(body)).unwrap()
}

#[test]
fn the_fixtures_parse() {
    let (ids, more) = parse_vehicle_page(&fixture("vehicles.json"), 0).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(!more, "count 2, both on this page");
    let v = parse_vehicle(&ids[0], &fixture("vehicle.json"), &fixture("vin.json")).unwrap();
    assert_eq!(v.oem_id, ids[0]);
    assert_eq!(v.vin.as_deref(), Some("SADHA2B18N1000001"));
    assert_eq!(v.model.as_deref(), Some("Jaguar I-PACE"));
    assert_eq!(v.year, Some(2022));

    let at = OffsetDateTime::parse("2026-11-30T08:15:02.118Z", &Rfc3339).unwrap();
    let s = parse_security(&fixture("security.json"), Some(at)).unwrap();
    assert_eq!(s.locked, Some(true));
    assert_eq!(s.recorded_at, Some(at));
    let doors = s.doors.unwrap();
    // Four doors and the rear storage; the front storage's `UNKNOWN` is left out.
    assert_eq!(doors.len(), 5);
    assert!(doors.contains(&Door {
        position: DoorPosition::RearRight,
        open: true
    }));
    assert!(doors.contains(&Door {
        position: DoorPosition::Trunk,
        open: false
    }));
    assert!(!doors.iter().any(|d| d.position == DoorPosition::Frunk));

    let l = parse_location(&fixture("location.json"), None).unwrap();
    assert!((l.latitude - 51.50735).abs() < 1e-9);
    assert_eq!((l.heading, l.recorded_at), (None, None));
    assert_eq!(
        parse_action(&fixture("command_success.json")).unwrap(),
        Sent::Completed
    );
}

#[test]
fn paging_continues_until_the_count() {
    let body = br#"{"paging": {"count": 120, "offset": 50}, "vehicles": ["a", "b"]}"#;
    assert_eq!(
        parse_vehicle_page(body, 50).unwrap(),
        (vec!["a".into(), "b".into()], true)
    );
    let last = br#"{"paging": {"count": 52, "offset": 50}, "vehicles": ["a", "b"]}"#;
    assert!(!parse_vehicle_page(last, 50).unwrap().1);
    // An empty page ends it even when the count says otherwise.
    let empty = br#"{"paging": {"count": 99, "offset": 50}, "vehicles": []}"#;
    assert!(!parse_vehicle_page(empty, 50).unwrap().1);
}

#[test]
fn the_data_age_header_is_recorded_at_and_never_invented() {
    let with = Response::builder()
        .header("sc-data-age", "2026-11-30T08:15:02.118Z")
        .body(Bytes::new())
        .unwrap();
    assert!(data_age(&with).is_some());
    let garbled = Response::builder()
        .header("sc-data-age", "yesterday")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(data_age(&garbled), None);
    assert_eq!(data_age(&answer(200, b"", None)), None);
}

#[test]
fn errors_map_by_type_and_code() {
    let asleep = answer(409, &fixture("error_asleep.json"), None);
    assert!(matches!(classify(&asleep, true), OemError::Asleep));
    let limited = answer(429, &fixture("error_rate_limit.json"), Some("30"));
    assert!(matches!(
        classify(&limited, false),
        OemError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(30)
    ));
    let incapable = answer(501, &fixture("error_not_capable.json"), None);
    assert!(matches!(
        classify(&incapable, true),
        OemError::NotCapable { .. }
    ));
    let permission = answer(403, &fixture("error_permission.json"), None);
    assert!(matches!(
        classify(&permission, false),
        OemError::Forbidden { .. }
    ));
    // The make did not answer a command: its outcome is open.
    let upstream = answer(502, &fixture("error_no_response.json"), None);
    assert!(matches!(
        classify(&upstream, true),
        OemError::Upstream {
            delivered: Delivered::Unknown,
            ..
        }
    ));
    assert!(matches!(
        classify(&upstream, false),
        OemError::Upstream {
            delivered: Delivered::No,
            ..
        }
    ));
    // A door open is the car's refusal, with Smartcar's code in the reason.
    let door = br#"{"type": "VEHICLE_STATE", "code": "DOOR_OPEN", "description": "A door is open.", "statusCode": 409}"#;
    match classify(&answer(409, door, None), true) {
        OemError::Refused { reason } => assert!(reason.starts_with("DOOR_OPEN"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let relink = br#"{"type": "CONNECTED_SERVICES_ACCOUNT", "code": "AUTHENTICATION_FAILED", "description": "x", "statusCode": 400}"#;
    assert!(matches!(
        classify(&answer(400, relink, None), false),
        OemError::ReauthorizationRequired { .. }
    ));
    let key = br#"{"type": "CONNECTED_SERVICES_ACCOUNT", "code": "VIRTUAL_KEY_REQUIRED", "description": "x", "statusCode": 400}"#;
    assert!(matches!(
        classify(&answer(400, key, None), true),
        OemError::KeyNotPaired { .. }
    ));
    let plan = br#"{"type": "BILLING", "code": "VEHICLE_REQUEST_LIMIT", "description": "x", "statusCode": 430}"#;
    assert!(matches!(
        classify(&answer(430, plan, None), false),
        OemError::ClientRejected { .. }
    ));
    // Not Smartcar's body at all: the status decides.
    assert!(matches!(
        classify(&answer(401, b"<html>", None), false),
        OemError::Unauthorized { .. }
    ));
}

#[test]
fn a_command_answer_that_is_not_success_is_open() {
    for body in [&br#"{"status": "pending"}"#[..], b"{", b"[]"] {
        assert!(matches!(
            parse_action(body),
            Err(OemError::InvalidResponse {
                delivered: Delivered::Unknown,
                ..
            })
        ));
    }
}

#[test]
fn makes_read_as_people_write_them() {
    assert_eq!(make_name("MERCEDES-BENZ"), "Mercedes-Benz");
    assert_eq!(make_name("LAND ROVER"), "Land Rover");
    assert_eq!(make_name("Tesla"), "Tesla");
}

proptest! {
    /// No answer body makes the parsers panic.
    #[test]
    fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_vehicle_page(&body, 0);
        let _ = parse_security(&body, None);
        let _ = parse_location(&body, None);
        let _ = parse_action(&body);
        let _ = parse_vehicle("id", &body, &body);
        let _ = classify(&answer(409, &body, None), true);
    }

    /// A position is one only when both coordinates are there and in range.
    #[test]
    fn positions_are_real(lat in -200.0..200.0f64, lon in -200.0..200.0f64) {
        let body = serde_json::to_vec(&serde_json::json!({"latitude": lat, "longitude": lon})).unwrap();
        let ok = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        prop_assert_eq!(parse_location(&body, None).is_ok(), ok);
    }
}
