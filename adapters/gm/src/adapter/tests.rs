//! Unit tests of the parent module.

use super::*;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/gm/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn direction_garage_and_v3_answers() {
    let l = parse_location_status(&fixture("location_with_direction.json"))
        .unwrap()
        .unwrap();
    assert_eq!(l.heading, Some(214.0));
    // The v3 GraphQL garage.
    let v = parse_vehicles(&fixture("vehicles_graphql.json")).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].year, Some(2023), "a number here");
    assert_eq!(v[0].display_name.as_deref(), Some("Commuter"));
    // GraphQL errors and another OEM's list never read as an empty fleet.
    assert!(parse_vehicles(&fixture("garage_errors.json")).is_err());
    assert!(parse_vehicles(br#"{"userVehicles": {"vehicleDetails": []}}"#).is_err());
    // v3 command answers: top level, in capitals.
    let p = parse_accepted(&fixture("command_v3_in_progress.json"), true).unwrap();
    assert!(p.handle.starts_with("/api/v1/account/vehicles/"));
    assert_eq!(
        parse_progress(&fixture("command_v3_in_progress.json")),
        Ok(Progress::Pending {
            poll_after: Some(POLL_INTERVAL)
        })
    );
    assert_eq!(
        parse_progress(&fixture("command_v3_success.json")),
        Ok(Progress::Succeeded)
    );
    assert_eq!(
        parse_progress(&fixture("command_v3_failure.json")),
        Ok(Progress::Failed(OemError::Refused {
            reason: "The vehicle did not respond".into()
        }))
    );
    assert_eq!(
        parse_vehicles(br#"{"vehicles": {"size": "0"}}"#).unwrap(),
        Vec::new()
    );
}

#[test]
fn the_v3_digital_twin_location_reads() {
    let l = parse_location_status(&fixture("digital_twin_ready.json"))
        .unwrap()
        .unwrap();
    assert!((l.latitude - 42.331427).abs() < 1e-9);
    assert!((l.longitude + 83.045754).abs() < 1e-9);
    assert_eq!(l.recorded_at, None, "no time is invented");
    assert_eq!(
        parse_location_status(&fixture("digital_twin_pending.json")),
        Ok(None)
    );
}

#[test]
fn fixtures_parse() {
    let v = parse_vehicles(&fixture("vehicles.json")).unwrap();
    assert_eq!(v[0].oem_id, "1G1FZ6S09P4000001");
    assert_eq!(v[0].year, Some(2023), "year arrives as a string");
    let p = parse_accepted(&fixture("command_in_progress.json"), true).unwrap();
    assert!(
        p.handle.starts_with("/api/v1/account/vehicles/"),
        "only the path is kept: {}",
        p.handle
    );
    assert_eq!(
        parse_progress(&fixture("command_success.json")),
        Ok(Progress::Succeeded)
    );
    assert!(matches!(
        parse_progress(&fixture("command_failure.json")),
        Ok(Progress::Failed(OemError::Refused { .. }))
    ));
    let l = parse_location_status(&fixture("location_success.json"))
        .unwrap()
        .unwrap();
    assert!((l.latitude - 42.331427).abs() < 1e-9);
    assert!((l.longitude + 83.045754).abs() < 1e-9);
    assert_eq!(
        parse_location_status(&fixture("command_in_progress.json")),
        Ok(None)
    );
}

#[test]
fn status_urls_cannot_point_elsewhere() {
    assert_eq!(
        path_of("https://evil.example/steal?x=1").as_deref(),
        Some("/steal?x=1")
    );
    assert_eq!(path_of("/veh/x").as_deref(), Some("/veh/x"));
    assert_eq!(path_of("https://host-only.example"), None);
}

proptest! {
    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        name in prop::sample::select(vec!["charging_metrics.json", "vehicles.json", "command_in_progress.json",
            "command_success.json", "command_failure.json", "location_success.json"]),
        cut in 0usize..3000,
        flips in prop::collection::vec((0usize..3000, any::<u8>()), 0..4),
    ) {
        let body = keyway_adapter::conformance::mutate(fixture(name), cut, &flips);
        let _ = parse_vehicles(&body);
        let _ = parse_accepted(&body, true);
        let _ = parse_progress(&body);
        let _ = parse_location_status(&body);
    }
}

#[test]
fn charging_metrics_carry_a_position() {
    let l = parse_location_status(&fixture("charging_metrics.json"))
        .unwrap()
        .unwrap();
    assert!((l.latitude - 42.331427).abs() < 1e-9 && (l.longitude + 83.045754).abs() < 1e-9);
    assert_eq!(l.heading, Some(214.0));
    // `loc` as "lat,lng" where the separate fields are missing; none at all is no fix.
    let l = parse_location_status(br#"{"results": [{"loc": "42.5,-83.1", "soc": 40}]}"#)
        .unwrap()
        .unwrap();
    assert_eq!((l.latitude, l.longitude), (42.5, -83.1));
    assert!(matches!(
        parse_location_status(br#"{"results": [{"soc": 40}]}"#),
        Err(OemError::NoFix { .. })
    ));
}
