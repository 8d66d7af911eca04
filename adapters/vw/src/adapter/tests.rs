use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/vw/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap()
}

fn answer(status: u16, body: &[u8]) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .body(Bytes::copy_from_slice(body))
        .unwrap()
}

#[test]
fn the_vehicle_list_reads_each_cars_access_capability() {
    let listed = parse_vehicles(&fixture("vehicles.json")).unwrap();
    assert_eq!(listed.len(), 2);
    let (id4, can) = &listed[0];
    assert_eq!(id4.oem_id, "WVWZZZE1ZNP000001");
    assert_eq!(id4.model.as_deref(), Some("ID.4"));
    assert_eq!(id4.display_name.as_deref(), Some("Family ID.4"));
    assert_eq!(id4.year, Some(2022));
    assert!(can);
    let (golf, can) = &listed[1];
    assert_eq!(golf.display_name, None, "an empty nickname is none");
    assert!(
        !can,
        "access with a status (missing licence) cannot command"
    );
    assert_eq!(
        golf.capabilities,
        Some(vec![Capability::Locate, Capability::Security])
    );
    assert_eq!(id4.capabilities, None, "all the adapter declares");
}

#[test]
fn the_access_job_reads_the_lock_doors_and_the_cars_time() {
    let s = parse_security(&fixture("selectivestatus_access.json")).unwrap();
    assert_eq!(s.locked, Some(true));
    let doors = s.doors.unwrap();
    assert_eq!(doors.len(), 6);
    assert!(doors.iter().all(|d| !d.open));
    assert!(doors.iter().any(|d| d.position == DoorPosition::Frunk));
    assert_eq!(
        s.recorded_at.unwrap(),
        OffsetDateTime::parse("2026-11-30T17:42:08Z", &Rfc3339).unwrap()
    );
    let no_door_lock_status = |doors: &str, overall: &str| {
        let body = format!(
            r#"{{"access": {{"accessStatus": {{"value": {{"overallStatus": "{overall}", "doors": [{doors}]}}}}}}}}"#
        );
        parse_security(body.as_bytes()).unwrap().locked
    };
    let door = |name: &str, status: &str| format!(r#"{{"name": "{name}", "status": [{status}]}}"#);
    let locked = door("frontLeft", r#""locked", "closed""#);
    let unlocked = door("rearLeft", r#""unlocked", "closed""#);
    let bonnet = door("bonnet", r#""closed""#);
    assert_eq!(
        no_door_lock_status(&format!("{locked}, {bonnet}"), "unsafe"),
        Some(true)
    );
    assert_eq!(
        no_door_lock_status(&format!("{locked}, {unlocked}"), "safe"),
        Some(false)
    );
    assert_eq!(no_door_lock_status(&bonnet, "safe"), Some(true));
    assert_eq!(no_door_lock_status(&bonnet, "unsafe"), None);
    let invalid = br#"{"access": {"accessStatus": {"value": {"doorLockStatus": "invalid", "carCapturedTimestamp": "2026-11-30T17:42:08Z"}}}}"#;
    assert_eq!(parse_security(invalid).unwrap().locked, None);
    let job_error = br#"{"access": {"error": {"message": "Service unavailable", "code": 4111}}}"#;
    assert!(matches!(
        parse_security(job_error),
        Err(OemError::Upstream { status: 207, .. })
    ));
}

#[test]
fn the_parking_position_or_no_fix_while_driving() {
    let l = parse_parking(200, &fixture("parkingposition.json")).unwrap();
    assert_eq!((l.latitude, l.longitude), (52.42741, 10.78656));
    assert!(l.recorded_at.is_some());
    assert!(matches!(
        parse_parking(204, b""),
        Err(OemError::NoFix { .. })
    ));
    assert!(matches!(
        parse_parking(200, br#"{"data": null}"#),
        Err(OemError::NoFix { .. })
    ));
}

#[test]
fn a_commands_progress_is_read_from_its_request_only_when_certain() {
    let accepted = parse_accepted(&fixture("command_accepted.json")).unwrap();
    let Sent::Pending(p) = accepted else {
        panic!("{accepted:?}")
    };
    assert_eq!(p.handle, "b9d4f1e2-6a3c-4f8e-9d21-0c7a5e3b8f14");
    let status = |s: &str| {
        format!(
            r#"{{"access": {{"accessStatus": {{"value": {{}}, "requests": [{{"requestId": "r1", "operation": "unlock", "status": "{s}"}}]}}}}}}"#
        )
    };
    let progress = |s: &str| parse_progress(status(s).as_bytes(), "r1").unwrap();
    assert_eq!(progress("successful"), Progress::Succeeded);
    assert!(matches!(
        progress("fail_vehicle_is_offline"),
        Progress::Failed(OemError::Unreachable { .. })
    ));
    assert!(matches!(
        progress("fail_ignition_on"),
        Progress::Failed(OemError::Refused { .. })
    ));
    assert!(matches!(
        progress("fail"),
        Progress::Failed(OemError::Refused { .. })
    ));
    for open in [
        "in_progress",
        "queued",
        "delayed",
        "error",
        "timeout",
        "polling_timeout",
    ] {
        assert!(matches!(progress(open), Progress::Pending { .. }), "{open}");
    }
    // Another request's status says nothing of this one.
    assert!(matches!(
        parse_progress(status("successful").as_bytes(), "r2").unwrap(),
        Progress::Pending { .. }
    ));
}

#[test]
fn errors_map_by_status_and_the_spin_fields() {
    let spin = classify(&answer(403, &fixture("error_spin.json")), true);
    assert!(
        matches!(&spin, OemError::PinRejected { detail } if detail.contains("2 tries left")),
        "{spin:?}"
    );
    assert_eq!(spin.delivered(), Delivered::No);
    let worded = classify(
        &answer(
            403,
            br#"{"error": {"message": "Forbidden", "info": "Invalid S-PIN"}}"#,
        ),
        true,
    );
    assert!(matches!(worded, OemError::PinRejected { .. }), "{worded:?}");
    let forbidden = classify(
        &answer(403, br#"{"error": {"message": "Forbidden"}}"#),
        true,
    );
    assert!(matches!(forbidden, OemError::Forbidden { .. }));
    let bad = classify(&answer(400, &fixture("error_bad_request.json")), true);
    assert_eq!(bad.delivered(), Delivered::No, "{bad:?}");
    let down = classify(&answer(502, b""), true);
    assert_eq!(down.delivered(), Delivered::Unknown);
    assert!(matches!(
        classify(&answer(401, b""), false),
        OemError::Unauthorized { .. }
    ));
    assert!(matches!(
        classify(&answer(429, b"{}"), false),
        OemError::RateLimited { .. }
    ));
}

#[test]
fn the_logins_answer_is_read_in_camel_case() {
    let t =
        keyway_adapter::login::read_tokens(&answer(200, &fixture("login_tokens.json"))).unwrap();
    assert!(t.access_token.expose().starts_with("eyJ"));
    assert!(t.refresh_token.is_some());
    assert!(matches!(
        keyway_adapter::login::read_tokens(&answer(401, b"{}")),
        Err(OemError::Unauthorized { .. })
    ));
    assert!(matches!(
        keyway_adapter::login::read_tokens(&answer(503, b"")),
        Err(OemError::Upstream { .. })
    ));
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = parse_vehicles(&body);
        let _ = parse_security(&body);
        let _ = parse_parking(200, &body);
        let _ = parse_accepted(&body);
        let _ = parse_progress(&body, "r1");
        let _ = classify(&answer(403, &body), true);
    }
}
