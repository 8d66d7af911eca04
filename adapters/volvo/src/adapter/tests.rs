//! Unit tests of the parent module.

use super::*;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/volvo/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn unknown_is_a_value() {
    // A location without a timestamp is still the car's location, with no time.
    let l = parse_location(&fixture("location_no_timestamp.json")).unwrap();
    assert!((l.latitude - 57.70887).abs() < 1e-9);
    assert_eq!(l.recorded_at, None);
    // No geometry: no fix, which is not an upstream failure.
    assert!(matches!(
        parse_location(br#"{"data": {"type": "Feature", "properties": {}}}"#),
        Err(OemError::NoFix { .. })
    ));
    // A lock Volvo does not know is `None`.
    let doors = String::from_utf8(fixture("doors.json")).unwrap();
    let unspecified = doors.replacen("\"LOCKED\"", "\"UNSPECIFIED\"", 1);
    assert_eq!(parse_doors(unspecified.as_bytes()).unwrap().locked, None);
}

#[test]
fn bare_documents_parse_like_enveloped_ones() {
    // Clients store the document without its `data` envelope (ha-volvo-cars' fixtures).
    for name in [
        "location.json",
        "doors.json",
        "vehicle_details.json",
        "vehicles.json",
    ] {
        let env: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
        let bare = serde_json::to_vec(&env["data"]).unwrap();
        match name {
            "location.json" => assert_eq!(
                parse_location(&bare).unwrap(),
                parse_location(&fixture(name)).unwrap()
            ),
            "doors.json" => assert_eq!(
                parse_doors(&bare).unwrap(),
                parse_doors(&fixture(name)).unwrap()
            ),
            "vehicles.json" => assert_eq!(
                parse_vehicle_list(&bare).unwrap(),
                parse_vehicle_list(&fixture(name)).unwrap()
            ),
            _ => assert_eq!(
                parse_details("V", &bare).unwrap(),
                parse_details("V", &fixture(name)).unwrap()
            ),
        }
    }
    // Doors without `centralLock`: the lock state is unknown, not an error.
    let s = parse_doors(br#"{"data": {"frontLeftDoor": {"value": "CLOSED"}}}"#).unwrap();
    assert_eq!(s.locked, None);
    assert_eq!(s.recorded_at, None);
}

#[test]
fn command_accessibility() {
    assert_eq!(
        parse_accessibility(&fixture("command_accessibility.json")),
        Ok(())
    );
    assert!(matches!(
        parse_accessibility(&fixture("command_accessibility_unavailable.json")),
        Err(OemError::Unreachable { ref detail }) if detail.contains("NO_INTERNET")
    ));
    // The reason as `{value}` beside the status; power saving is sleep; in use and
    // an update running are refusals — all definite: the command was not sent.
    let e = parse_accessibility(
        br#"{"data": {"availabilityStatus": {"value": "UNAVAILABLE"},
        "unavailableReason": {"value": "POWER_SAVING_MODE"}}}"#,
    )
    .unwrap_err();
    assert_eq!(e, OemError::Asleep);
    let e = parse_accessibility(
        br#"{"availabilityStatus": {"value": "UNAVAILABLE", "unavailableReason": "CAR_IN_USE"}}"#,
    )
    .unwrap_err();
    assert!(matches!(e, OemError::Refused { .. }));
    assert_ne!(e.delivered(), Delivered::Unknown, "a definite answer");
    // Nothing said is no obstacle.
    assert_eq!(parse_accessibility(br#"{"data": {}}"#), Ok(()));
}

#[test]
fn fixtures_parse() {
    assert_eq!(
        parse_vehicle_list(&fixture("vehicles.json")).unwrap(),
        vec!["YV1XZK9V0P2000001"]
    );
    let d = parse_details("YV1XZK9V0P2000001", &fixture("vehicle_details.json")).unwrap();
    assert_eq!(d.model.as_deref(), Some("XC40 Recharge"));
    assert_eq!(d.year, Some(2023));
    let l = parse_location(&fixture("location.json")).unwrap();
    assert!(
        (l.latitude - 57.708870).abs() < 1e-9,
        "longitude comes first in GeoJSON"
    );
    assert!((l.longitude - 11.974560).abs() < 1e-9);
    assert_eq!(l.heading, Some(217.0));
    let s = parse_doors(&fixture("doors.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    assert!(
        s.doors
            .unwrap()
            .iter()
            .any(|d| d.position == DoorPosition::Trunk && d.open)
    );
}

#[test]
fn invoke_statuses() {
    assert_eq!(
        parse_invoked(&fixture("command_completed.json")),
        Ok(Sent::Completed)
    );
    assert_eq!(
        parse_invoked(&fixture("command_rejected.json")),
        Err(OemError::Refused {
            reason: "Vehicle in use".into()
        })
    );
    assert_eq!(
        parse_invoked(&fixture("command_in_sleep.json")),
        Err(OemError::Asleep)
    );
    let running = parse_invoked(&fixture("command_running.json")).unwrap_err();
    assert_eq!(
        running.delivered(),
        Delivered::Unknown,
        "RUNNING is reconciled, not re-sent"
    );
}

#[test]
fn errors() {
    let r = |status: u16, name: &str| {
        Response::builder()
            .status(status)
            .body(Bytes::from(fixture(name)))
            .unwrap()
    };
    assert!(matches!(
        classify(&r(401, "error_api_key_401.json"), false),
        OemError::ClientRejected { .. }
    ));
    // Volvo's own words name the header.
    assert!(matches!(
        classify(&r(401, "error_vcc_api_key_401.json"), false),
        OemError::ClientRejected { .. }
    ));
    assert!(matches!(
        classify(&r(429, "error_429.json"), false),
        OemError::RateLimited { .. }
    ));
}

proptest! {
    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        name in prop::sample::select(vec!["vehicles.json", "vehicle_details.json", "location.json",
            "doors.json", "command_completed.json", "command_rejected.json",
            "command_accessibility_unavailable.json"]),
        cut in 0usize..3000,
        flips in prop::collection::vec((0usize..3000, any::<u8>()), 0..4),
    ) {
        let body = keyway_adapter::conformance::mutate(fixture(name), cut, &flips);
        let _ = parse_vehicle_list(&body);
        let _ = parse_details("V", &body);
        let _ = parse_location(&body);
        let _ = parse_doors(&body);
        let _ = parse_invoked(&body);
        let _ = parse_accessibility(&body);
    }
}
