//! Unit tests of the parent module.

use super::*;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/ford/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn per_door_lock_entries_combine() {
    // No ALL_DOORS entry: one unlocked door makes the car unlocked.
    let s = parse_security(&fixture("telemetry_per_door.json")).unwrap();
    assert_eq!(s.locked, Some(false));
    assert_eq!(
        s.recorded_at.map(|t| t.second()),
        Some(41),
        "the newest entry's time"
    );
    let all_locked = String::from_utf8(fixture("telemetry_per_door.json"))
        .unwrap()
        .replace("\"UNLOCKED\"", "\"LOCKED\"");
    assert_eq!(
        parse_security(all_locked.as_bytes()).unwrap().locked,
        Some(true)
    );
}

#[test]
fn fordpass_list_mechanical_latches_and_nested_command_states() {
    // The FordPass app's garage: VIN/nickName, with model and year from the profile.
    let v = parse_vehicles(&fixture("vehicles_fordpass.json")).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].vin.as_deref(), Some("1FTFW1E80PFA00002"));
    assert_eq!(v[0].display_name.as_deref(), Some("Work truck"));
    assert_eq!(v[0].model.as_deref(), Some("F-150 Lightning"));
    assert_eq!(v[0].year, Some(2023));
    // ALL_DOORS says UNKNOWN and the mechanical latches say nothing: the one known
    // door decides, with its time.
    let t = fixture("telemetry_mechanical_latches.json");
    let s = parse_security(&t).unwrap();
    assert_eq!(s.locked, Some(true));
    assert_eq!(s.recorded_at.map(|t| t.minute()), Some(58));
    let doors = s.doors.unwrap();
    assert!(doors.contains(&Door {
        position: DoorPosition::FrontLeft,
        open: false
    }));
    assert!(doors.contains(&Door {
        position: DoorPosition::RearRight,
        open: true
    }));
    assert_eq!(doors.len(), 2, "INVALID says nothing");
    // Nothing known at all: the lock state is unknown, not an error.
    let unknown = String::from_utf8(t.clone())
        .unwrap()
        .replace("\"LOCKED\"", "\"UNKNOWN\"");
    assert_eq!(parse_security(unknown.as_bytes()).unwrap().locked, None);
    // A command state under `states.commands`, its id beside the value.
    let id = "cmd-0b6e2f90-0000-4000-8000-000000000007";
    assert!(matches!(
        parse_progress(&t, Command::Unlock, id).unwrap(),
        Progress::Succeeded
    ));
    assert!(matches!(
        parse_progress(&t, Command::Unlock, "another").unwrap(),
        Progress::Pending { .. }
    ));
    assert!(matches!(
        parse_progress(&t, Command::Lock, id).unwrap(),
        Progress::Pending { .. }
    ));
    // The command id under the names FordPass clients accept.
    for key in ["id", "commandId", "correlationId"] {
        let body = format!("{{\"{key}\": \"c-1\"}}");
        assert!(matches!(
            parse_accepted(body.as_bytes()).unwrap(),
            Sent::Pending(p) if p.handle == "c-1"
        ));
    }
}

#[test]
fn fixtures_parse() {
    let v = parse_vehicles(&fixture("vehicles.json")).unwrap();
    assert_eq!(v[0].model.as_deref(), Some("Mustang Mach-E"));
    assert_eq!(v[0].year, Some(2023));
    let l = parse_location(&fixture("telemetry.json")).unwrap();
    assert!((l.latitude - 42.300650).abs() < 1e-9);
    assert_eq!(l.heading, Some(135.0));
    let s = parse_security(&fixture("telemetry.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    assert!(
        s.doors
            .unwrap()
            .iter()
            .any(|d| d.position == DoorPosition::Trunk && d.open)
    );
    let id = "cmd-5c7a1c2e-0000-4000-8000-000000000001";
    assert!(
        matches!(parse_accepted(&fixture("command_accepted.json")), Ok(Sent::Pending(p)) if p.handle == id)
    );
    let t = fixture("telemetry.json");
    assert_eq!(
        parse_progress(&t, Command::Lock, id),
        Ok(Progress::Succeeded)
    );
    assert!(
        matches!(
            parse_progress(&t, Command::Lock, "another"),
            Ok(Progress::Pending { .. })
        ),
        "another command's state is not ours"
    );
    assert!(matches!(
        parse_progress(&t, Command::Unlock, id),
        Ok(Progress::Pending { .. })
    ));
    let r = Response::builder()
        .status(502)
        .body(Bytes::from(fixture("error_502.json")))
        .unwrap();
    assert!(classify(&r, true).to_string().contains("ref-0b7a-4f0e"));
}

proptest! {
    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        name in prop::sample::select(vec!["vehicles.json", "telemetry.json", "command_accepted.json"]),
        cut in 0usize..3000,
        flips in prop::collection::vec((0usize..3000, any::<u8>()), 0..4),
    ) {
        let body = keyway_adapter::conformance::mutate(fixture(name), cut, &flips);
        let _ = parse_vehicles(&body);
        let _ = parse_location(&body);
        let _ = parse_security(&body);
        let _ = parse_accepted(&body);
        let _ = parse_progress(&body, Command::Lock, "x");
    }
}

#[test]
fn the_older_fordpass_status_reads() {
    let s = parse_security(&fixture("status_v5.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    let doors = s.doors.unwrap();
    assert!(
        doors
            .iter()
            .any(|d| d.position == DoorPosition::FrontRight && d.open)
    );
    assert_eq!(doors.len(), 6, "`Invalid` says nothing: {doors:?}");
    assert_eq!(s.recorded_at.map(|t| (t.year(), t.hour())), Some((2026, 9)));
    let l = parse_location(&fixture("status_v5.json")).unwrap();
    assert!((l.latitude - 42.3149).abs() < 1e-9 && (l.longitude + 83.2102).abs() < 1e-9);
    // A failed answer inside an HTTP 200, and a car without GPS.
    assert!(parse_security(br#"{"vehiclestatus": null, "status": 402}"#).is_err());
    assert!(matches!(
        parse_location(br#"{"vehiclestatus": {"gps": null}, "status": 200}"#),
        Err(OemError::NoFix { .. })
    ));
    assert_eq!(
        parse_security(br#"{"vehiclestatus": {"lockStatus": {"value": "ERROR"}}, "status": 200}"#)
            .unwrap()
            .locked,
        None
    );
}

/// A car telemetry does not know is read from the older status, and from then on
/// directly there: one request per read, not two.
#[tokio::test]
async fn a_car_only_the_older_status_serves_is_read_there_directly() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let telemetry = Arc::new(AtomicUsize::new(0));
    let seen = telemetry.clone();
    let http = keyway_adapter::Http::from_fn(move |req| {
        let seen = seen.clone();
        async move {
            let path = req.uri().path().to_string();
            let (status, body) = if path.starts_with("/v1/telemetry/") {
                seen.fetch_add(1, Ordering::SeqCst);
                (404, Vec::new())
            } else {
                (200, fixture("status_v5.json"))
            };
            Ok(Response::builder()
                .status(status)
                .body(Bytes::from(body))
                .unwrap())
        }
    });
    let cx = Call {
        http,
        token: keyway_adapter::Secret::new("t"),
        command_id: None,
        account: None,
        pin: None,
    };
    let adapter = FordAdapter::new("https://ford.invalid");
    let v = VehicleRef {
        oem_id: "1FTFW1E80PFA00002".into(),
    };
    for _ in 0..3 {
        assert_eq!(adapter.security(&cx, &v).await.unwrap().locked, Some(true));
    }
    assert_eq!(telemetry.load(Ordering::SeqCst), 1);
}
