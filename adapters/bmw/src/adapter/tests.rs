//! Unit tests of the parent module.

use super::*;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/bmw/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn resp(status: u16, name: &str) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .body(Bytes::from(fixture(name)))
        .unwrap()
}

#[test]
fn fixtures_parse() {
    let v = parse_vehicles(&fixture("vehicle_list.json")).unwrap();
    assert_eq!(v.len(), 1, "only the confirmed mapping: {v:?}");
    assert_eq!(v[0].oem_id, "WBY31AW090FP00001");
    let v = parse_vehicles(&fixture("vehicles_v4_legacy.json")).unwrap();
    assert_eq!(v[0].oem_id, "WBY31AW090FP00001");
    assert_eq!(v[0].model.as_deref(), Some("i4 eDrive40"));
    assert_eq!(v[0].year, Some(2023));
    // An unrecognised list is an error, never an empty fleet.
    assert!(parse_vehicles(br#"{"vehicles": []}"#).is_err());
    // A car whose state BMW does not report: lock state unknown, no position —
    // answers, not errors.
    let s = parse_security(&fixture("state_no_doors.json")).unwrap();
    assert_eq!((s.locked, s.doors.is_none()), (None, true));
    assert_eq!(s.recorded_at.map(|t| t.year()), Some(2026));
    assert!(matches!(
        parse_location(&fixture("state_no_doors.json")),
        Err(OemError::NoFix { .. })
    ));
    // BMW's "no timestamp" falls back to when BMW last heard from the car.
    let s = parse_security(&fixture("state_no_timestamp.json")).unwrap();
    assert_eq!(s.locked, Some(false));
    assert_eq!(s.recorded_at.map(|t| t.year()), Some(2026));
    let l = parse_location(&fixture("state.json")).unwrap();
    assert!((l.latitude - 48.177655).abs() < 1e-9);
    assert_eq!(l.heading, Some(217.0));
    let s = parse_security(&fixture("state.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    assert!(
        s.doors
            .unwrap()
            .iter()
            .any(|d| d.position == DoorPosition::Trunk && d.open)
    );
    assert!(matches!(
        parse_accepted(&fixture("command_accepted.json")),
        Ok(Sent::Pending(_))
    ));
    assert!(matches!(
        parse_event_status(&fixture("event_status_pending.json")),
        Ok(Progress::Pending { .. })
    ));
    assert_eq!(
        parse_event_status(&fixture("event_status_executed.json")),
        Ok(Progress::Succeeded)
    );
    assert!(matches!(
        parse_event_status(&fixture("event_status_error.json")),
        Ok(Progress::Failed(OemError::Refused { .. }))
    ));
}

#[test]
fn profile_and_vehicle_finder_answers() {
    let (model, year) = parse_profile(&fixture("profile.json")).unwrap();
    assert_eq!((model.as_deref(), year), (Some("i4 eDrive40"), Some(2023)));
    let l = parse_event_position(&fixture("event_position.json")).unwrap();
    assert!((l.latitude - 48.177655).abs() < 1e-9);
    assert_eq!(l.heading, Some(217.0));
    assert_eq!(l.recorded_at, None);
    // BMW's errorDetails (no observer position, car too far): no fix, not an error.
    assert!(matches!(
        parse_event_position(&fixture("event_position_error.json")),
        Err(OemError::NoFix { .. })
    ));
    assert!(matches!(
        parse_event_position(br#"{"positionData": {"status": "DISTANCE_TOO_HIGH"}}"#),
        Err(OemError::NoFix { .. })
    ));
}

#[test]
fn limit_styles() {
    assert_eq!(
        classify(&resp(429, "error_rate_limited_429.json"), false),
        OemError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    assert_eq!(
        classify(&resp(403, "error_quota_403.json"), true),
        OemError::RateLimited {
            retry_after: Some(Duration::from_secs(2 * 3600 + 10 * 60 + 5))
        }
    );
    assert!(matches!(
        classify(&resp(401, "error_unauthorized_401.json"), false),
        OemError::Unauthorized { .. }
    ));
}

proptest! {
    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        name in prop::sample::select(vec!["vehicle_list.json", "vehicles_v4_legacy.json", "state.json", "state_no_timestamp.json", "state_no_doors.json", "command_accepted.json",
            "event_status_error.json", "error_quota_403.json", "profile.json", "event_position.json"]),
        cut in 0usize..3000,
        flips in prop::collection::vec((0usize..3000, any::<u8>()), 0..4),
    ) {
        let body = keyway_adapter::conformance::mutate(fixture(name), cut, &flips);
        let _ = parse_vehicles(&body);
        let _ = parse_location(&body);
        let _ = parse_security(&body);
        let _ = parse_accepted(&body);
        let _ = parse_event_status(&body);
        let _ = parse_profile(&body);
        let _ = parse_event_position(&body);
        let _ = classify(&Response::builder().status(403).body(Bytes::from(body.clone())).unwrap(), true);
    }
}
