use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/skoda/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap()
}

#[test]
fn the_garage_lists_vins_and_each_entry_says_whether_it_can_lock() {
    let listed = parse_garage(&fixture("garage.json")).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].0, "TMBJB9NY5RF000001");
    assert!(
        parse_garage(br#"{"errors": [{"type": "NO_MOD1_4_VEHICLES", "description": "none"}]}"#)
            .unwrap()
            .is_empty()
    );
    let enyaq = parse_entry(&fixture("garage_vehicle.json")).unwrap();
    assert_eq!(enyaq.access, Some(true));
    assert_eq!(enyaq.vehicle.model.as_deref(), Some("Enyaq"));
    assert_eq!(enyaq.vehicle.year, Some(2024));
    assert_eq!(enyaq.vehicle.display_name.as_deref(), Some("Family Enyaq"));
    assert_eq!(enyaq.vehicle.capabilities, None, "all the adapter declares");
    let octavia = parse_entry(&fixture("garage_vehicle_no_access.json")).unwrap();
    assert_eq!(
        octavia.access,
        Some(false),
        "ACCESS with LICENSE_EXPIRED cannot command"
    );
    assert_eq!(
        octavia.vehicle.capabilities,
        Some(vec![Capability::Locate, Capability::Security])
    );
    let without = br#"{"vin": "TMBJJ7NX1PY000002", "capabilities": {"capabilities": [{"id": "STATE", "statuses": []}]}}"#;
    assert_eq!(
        parse_entry(without).unwrap().access,
        Some(false),
        "no ACCESS listed"
    );
    // A partial list (the service platform behind the garage answered 429, as a
    // myskoda fixture shows): no ACCESS listed tells nothing.
    let partial = br#"{"vin": "TMBJJ7NX1PY000002", "capabilities": {"capabilities": [{"id": "STATE", "statuses": []}], "errors": [{"type": "UNAVAILABLE_SERVICE_PLATFORM_CAPABILITIES", "description": "429 TOO_MANY_REQUESTS"}]}}"#;
    let partial = parse_entry(partial).unwrap();
    assert_eq!(partial.access, None);
    assert_eq!(partial.vehicle.capabilities, None, "nothing taken away");
    assert_eq!(
        parse_entry(br#"{"vin": "TMBJJ7NX1PY000002"}"#)
            .unwrap()
            .access,
        None
    );
}

#[test]
fn the_status_reads_the_lock_in_the_clients_order_and_the_doors() {
    let s = parse_status(&fixture("vehicle_status.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    let doors = s.doors.unwrap();
    assert_eq!(doors.len(), 6, "{doors:?}");
    assert!(doors.iter().all(|d| !d.open));
    assert_eq!(
        s.recorded_at.unwrap(),
        OffsetDateTime::parse("2026-12-01T08:32:10Z", &Rfc3339).unwrap()
    );
    let lock = |overall: &str| {
        let body = format!(r#"{{"overall": {{{overall}}}}}"#);
        parse_status(body.as_bytes()).unwrap().locked
    };
    // reliableLockStatus decides when it knows.
    assert_eq!(
        lock(r#""reliableLockStatus": "UNLOCKED", "locked": "YES""#),
        Some(false)
    );
    // Unknown there: `locked`, then `doorsLocked`.
    assert_eq!(
        lock(r#""reliableLockStatus": "UNKNOWN", "locked": "YES""#),
        Some(true)
    );
    assert_eq!(lock(r#""doorsLocked": "OPENED""#), Some(false));
    assert_eq!(lock(r#""doorsLocked": "TRUNK_OPENED""#), Some(false));
    assert_eq!(
        lock(r#""locked": "UNKNOWN", "doorsLocked": "UNKNOWN""#),
        None
    );
    assert!(parse_status(br#"{"detail": {}}"#).is_err(), "no overall");
    // The render's vehicleState: the rear left door open.
    let open = br#"{"overall": {"locked": "NO"}, "renders": {"lightMode": {"oneX": "https://x/render?carType=SUV&vehicleState=1-1-3-1-0-0-1-1-0&dimension=1x"}}}"#;
    let doors = parse_status(open).unwrap().doors.unwrap();
    assert_eq!(
        doors
            .iter()
            .filter(|d| d.open)
            .map(|d| d.position)
            .collect::<Vec<_>>(),
        vec![DoorPosition::RearLeft]
    );
}

#[test]
fn a_position_is_the_vehicles_entry_and_motion_is_no_fix() {
    let l = parse_positions(&fixture("positions.json")).unwrap();
    assert!((l.latitude - 50.413513).abs() < 1e-9 && (l.longitude - 14.905102).abs() < 1e-9);
    assert_eq!(l.recorded_at, None, "the answer has no time");
    let moving = parse_positions(&fixture("positions_in_motion.json"));
    assert!(
        matches!(&moving, Err(OemError::NoFix { detail }) if detail.contains("VEHICLE_IN_MOTION")),
        "{moving:?}"
    );
}

#[test]
fn a_refused_spin_names_the_tries_left_and_a_lock_out() {
    assert_eq!(parse_verified(&fixture("spin_verify_correct.json")), Ok(()));
    match parse_verified(&fixture("spin_verify_incorrect.json")) {
        Err(OemError::PinRejected { detail }) => {
            assert!(detail.contains("2 tries left"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let locked = br#"{"verificationStatus": "INCORRECT_SPIN", "spinStatus": {"remainingTries": 0, "lockedWaitingTimeInSeconds": 3600, "state": "LOCKED"}}"#;
    assert!(
        matches!(parse_verified(locked), Err(OemError::PinRejected { detail }) if detail.contains("locked for 3600 s"))
    );
    assert!(matches!(
        parse_verified(br#"{"verificationStatus": "SOMETHING_NEW"}"#),
        Err(OemError::InvalidResponse { .. })
    ));
}

#[test]
fn a_checked_spin_that_failed_on_the_way_leaves_the_command_unsent() {
    let e = OemError::Timeout {
        delivered: Delivered::Unknown,
    }
    .before_the_command();
    assert_eq!(e.delivered(), Delivered::No);
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = parse_garage(&body);
        let _ = parse_entry(&body);
        let _ = parse_status(&body);
        let _ = parse_positions(&body);
        let _ = parse_verified(&body);
    }
}
