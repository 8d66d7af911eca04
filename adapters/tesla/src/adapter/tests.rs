//! Unit tests of the parent module.

use super::*;
use bytes::Bytes;
use http::Response;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/tesla/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn vehicles_fixture() {
    let v = parse_vehicles(&fixture("vehicles.json")).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].oem_id, "5YJ3E1EA7LF000001");
    assert_eq!(v[0].model.as_deref(), Some("Model 3"));
    assert_eq!(v[0].year, Some(2020));
    assert_eq!(v[1].model.as_deref(), Some("Model Y"));
}

#[test]
fn products_skip_energy_sites() {
    let v = parse_vehicles(&fixture("products.json")).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].display_name.as_deref(), Some("Blue Thunder"));
}

#[test]
fn location_fixture() {
    let l = parse_location(&fixture("vehicle_data_location.json")).unwrap();
    assert!((l.latitude - 37.7765494).abs() < 1e-9);
    assert!((l.longitude + 122.4195418).abs() < 1e-9);
    assert_eq!(l.heading, Some(289.0));
    assert_eq!(l.recorded_at.unwrap().unix_timestamp(), 1692137422);
}

#[test]
fn security_fixture() {
    let s = parse_security(&fixture("vehicle_data_state.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    let doors = s.doors.unwrap();
    let trunk = doors
        .iter()
        .find(|d| d.position == DoorPosition::Trunk)
        .unwrap();
    assert!(trunk.open);
    assert_eq!(doors.iter().filter(|d| d.open).count(), 1);
}

#[test]
fn command_fixtures() {
    assert_eq!(
        parse_command(&fixture("command_ok.json")),
        Ok(Sent::Completed)
    );
    assert_eq!(
        parse_command(&fixture("command_refused.json")),
        Err(OemError::Refused {
            reason: "user_present".into()
        })
    );
}

#[test]
fn error_fixtures() {
    let resp = |status: u16, name: &str| {
        Response::builder()
            .status(status)
            .body(Bytes::from(fixture(name)))
            .unwrap()
    };
    assert_eq!(
        classify(&resp(408, "error_asleep_408.json"), true),
        OemError::Asleep
    );
    assert!(matches!(
        classify(&resp(401, "error_token_expired_401.json"), false),
        OemError::Unauthorized { .. }
    ));
    let region = classify(&resp(421, "error_wrong_region_421.json"), true);
    assert_eq!(region.delivered(), Delivered::No);
    // A wait only in the body is honoured, never replaced by a default.
    assert_eq!(
        classify(&resp(429, "error_rate_limited_429_body.json"), false),
        OemError::RateLimited {
            retry_after: Some(Duration::from_secs(37_829))
        }
    );
    let mut limited = resp(429, "error_asleep_408.json");
    limited
        .headers_mut()
        .insert("retry-after", http::HeaderValue::from_static("7"));
    assert_eq!(
        classify(&limited, true),
        OemError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    let mut boom = resp(503, "error_asleep_408.json");
    *boom.body_mut() = Bytes::new();
    assert_eq!(classify(&boom, true).delivered(), Delivered::Unknown);
}

#[test]
fn missing_optional_fields_are_absent_not_errors() {
    let body = br#"{"response":{"vehicle_state":{"locked":false,"timestamp":1692141038420}}}"#;
    let s = parse_security(body).unwrap();
    assert_eq!(s.locked, Some(false));
    assert_eq!(s.doors, None);
}

proptest! {
    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        name in prop::sample::select(vec![
            "vehicles.json", "products.json", "vehicle_data_location.json",
            "vehicle_data_state.json", "command_ok.json", "command_refused.json",
        ]),
        cut in 0usize..2000,
        flips in prop::collection::vec((0usize..2000, any::<u8>()), 0..4),
    ) {
        let body = keyway_adapter::conformance::mutate(fixture(name), cut, &flips);
        let _ = parse_vehicles(&body);
        let _ = parse_location(&body);
        let _ = parse_security(&body);
        let _ = parse_command(&body);
    }
}

#[test]
fn power_state_from_the_vehicle_record_and_the_wake_up() {
    assert_eq!(
        parse_power(&fixture("vehicle.json")),
        Ok(Connectivity::Online)
    );
    assert_eq!(
        parse_power(&fixture("wake_up.json")),
        Ok(Connectivity::Asleep)
    );
    assert_eq!(
        parse_power(br#"{"response": {"state": "offline"}}"#),
        Ok(Connectivity::Offline)
    );
    assert!(matches!(
        parse_power(br#"{"error": "x"}"#),
        Err(OemError::InvalidResponse { .. })
    ));
}
