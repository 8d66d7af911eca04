//! Unit tests of the parent module.

use super::*;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/hyundai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn fixtures_parse() {
    let v = parse_vehicles(&fixture("vehicles.json")).unwrap();
    assert_eq!(v[0].oem_id, "4b7a2e10-0000-4000-8000-000000000001");
    assert_eq!(v[0].vin.as_deref(), Some("KMHKR81CFNU000001"));
    assert_eq!(v[0].year, Some(2023));
    let l = parse_location(&fixture("location.json")).unwrap();
    assert!((l.latitude - 50.110922).abs() < 1e-9);
    assert_eq!(
        l.recorded_at.unwrap().unix_timestamp(),
        spa_time(Some("20261126095840")).unwrap().unix_timestamp()
    );
    let s = parse_security(&fixture("status.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    assert!(
        s.doors
            .unwrap()
            .iter()
            .any(|d| d.position == DoorPosition::Trunk && d.open)
    );
    let id = "3c9d7b14-0000-4000-8000-000000000001";
    assert!(
        matches!(parse_accepted(&fixture("command_accepted.json")), Ok(Sent::Pending(p)) if p.handle == id)
    );
    assert_eq!(
        parse_records(&fixture("records.json"), id),
        Ok(Progress::Succeeded)
    );
    assert!(matches!(
        parse_records(&fixture("records.json"), "other"),
        Ok(Progress::Pending { .. })
    ));
}

#[test]
fn current_shapes_parse() {
    // `location/park` with the fix directly in resMsg, coordinates as strings.
    let l = parse_location(&fixture("location_direct.json")).unwrap();
    assert!((l.latitude - 50.110922).abs() < 1e-9);
    assert_eq!(l.heading, Some(270.0));
    // A status with resMsg and no retCode is an answer, not an error.
    let s = parse_security(&fixture("status_no_retcode.json")).unwrap();
    assert_eq!(s.locked, Some(false));
    // CCS2: the flag in the list (1 or a boolean), and its status shape (a door with
    // Lock 1 means the car is not locked).
    let listed = parse_listed(&fixture("vehicles_ccs2.json")).unwrap();
    assert_eq!(
        listed.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        [true, false]
    );
    let s = parse_security(&fixture("ccs2_carstatus.json")).unwrap();
    assert_eq!(s.locked, Some(false));
    assert_eq!(
        s.recorded_at.unwrap().unix_timestamp(),
        spa_time(Some("20261126095840")).unwrap().unix_timestamp()
    );
    // Four doors, the boot (open here) and the bonnet.
    let doors = s.doors.unwrap();
    assert_eq!(doors.len(), 6);
    assert!(
        doors
            .iter()
            .any(|d| d.position == DoorPosition::Trunk && d.open)
    );
    assert!(
        doors
            .iter()
            .any(|d| d.position == DoorPosition::Frunk && !d.open)
    );
    // An explicit failure names what the OEM sent; a list without vehicles is an error.
    let e = parse_vehicles(br#"{"retCode":"F","resCode":"9999","resMsg":"x"}"#).unwrap_err();
    assert!(e.to_string().contains("retCode F, resCode 9999"), "{e}");
    assert!(parse_vehicles(br#"{"retCode":"S","resMsg":{}}"#).is_err());
}

#[test]
fn envelope_errors_with_http_200() {
    assert_eq!(
        parse_vehicles(&fixture("rate_limited_200.json")),
        Err(OemError::RateLimited { retry_after: None })
    );
    assert!(matches!(
        parse_vehicles(&fixture("invalid_token.json")),
        Err(OemError::Unauthorized { .. })
    ));
}

proptest! {
    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        name in prop::sample::select(vec!["vehicles.json", "location.json", "status.json",
            "command_accepted.json", "records.json", "rate_limited_200.json"]),
        cut in 0usize..3000,
        flips in prop::collection::vec((0usize..3000, any::<u8>()), 0..4),
    ) {
        let body = keyway_adapter::conformance::mutate(fixture(name), cut, &flips);
        let _ = parse_vehicles(&body);
        let _ = parse_location(&body);
        let _ = parse_security(&body);
        let _ = parse_accepted(&body);
        let _ = parse_records(&body, "x");
        let _ = spa_time(std::str::from_utf8(&body).ok());
    }
}

#[test]
fn a_rejected_stamp_is_keyways_configuration() {
    let body = fixture("error_invalid_application_4017.json");
    let resp = Response::builder()
        .status(400)
        .body(Bytes::from(body.clone()))
        .unwrap();
    assert!(matches!(
        classify(&resp, false),
        OemError::ClientRejected { ref detail } if detail.contains("4017")
    ));
    // Also inside an HTTP 200.
    assert!(matches!(
        parse_security(&body),
        Err(OemError::ClientRejected { .. })
    ));
}
