//! The Tesla adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_tesla::mock::MockVehicle;
use keyway_tesla::vcp::AppKey;
use keyway_tesla::{TeslaAdapter, TeslaMock, TeslaMockConfig};

async fn conformance(legacy: bool) {
    let key = AppKey::generate();
    let car = |id, vin, name, lat, lon| {
        let v = MockVehicle::new(id, vin, name, lat, lon).paired_with(&key.public_bytes());
        if legacy { v.legacy() } else { v }
    };
    let mock = TeslaMock::new(TeslaMockConfig {
        wake_delay: Duration::from_millis(30),
        vehicles: vec![
            car(1, "5YJ3E1EA7LF000001", "One", 52.520008, 13.404954),
            car(2, "5YJYGDEE1MF000002", "Two", 48.137154, 11.576124),
        ],
        ..TeslaMockConfig::default()
    });
    mock.register_app_key(&key.public_bytes());
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(TeslaAdapter::new(server.url()).with_signing(key, None)),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
    // Every command went the car's way: signed to a signed car, REST to a legacy one.
    let rest = mock.journal.count("POST", "/command/door_");
    let signed = mock.journal.count("POST", "/signed_command");
    assert!(mock.commands_seen() > 0);
    if legacy {
        assert_eq!(signed, 0);
    } else {
        assert_eq!(rest, 0, "no unsigned command to a signed car");
    }
}

#[tokio::test]
async fn tesla_passes_the_conformance_suite_with_signed_commands() {
    conformance(false).await;
}

#[tokio::test]
async fn tesla_passes_the_conformance_suite_over_rest_for_legacy_cars() {
    conformance(true).await;
}

/// The mock answers in the shapes of `fixtures/tesla/` (the Fleet API's, see its
/// SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;

    use keyway_adapter::mock::shape::{answer, assert_shape};

    let (vin, signed_vin) = ("5YJ3E1EA7LF000001", "5YJYGDEE1MF000002");
    let mock = TeslaMock::new(TeslaMockConfig {
        wake_delay: Duration::from_millis(1),
        vehicles: vec![
            MockVehicle::new(1, vin, "One", 52.52, 13.40).legacy(),
            MockVehicle::new(2, signed_vin, "Two", 52.52, 13.40),
        ],
        ..TeslaMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let api = format!("{}/api/1/vehicles", server.url());
    let json = [("content-type", "application/json")];
    for (name, method, url) in [
        ("vehicles.json", Method::GET, api.clone()),
        ("wake_up.json", Method::POST, format!("{api}/{vin}/wake_up")),
        ("vehicle.json", Method::GET, format!("{api}/{vin}")),
        (
            "vehicle_data_location.json",
            Method::GET,
            format!("{api}/{vin}/vehicle_data?endpoints=location_data"),
        ),
        (
            "vehicle_data_state.json",
            Method::GET,
            format!("{api}/{vin}/vehicle_data?endpoints=vehicle_state"),
        ),
        (
            "command_ok.json",
            Method::POST,
            format!("{api}/{vin}/command/door_lock"),
        ),
    ] {
        let got = answer(&cx, method, &url, &json, "{}").await;
        assert_shape("tesla", name, &got);
    }
    // A signed car: REST refused as Tesla refuses it, signed_command answers base64,
    // fleet_status says which cars need signing.
    let refused = answer(
        &cx,
        Method::POST,
        &format!("{api}/{signed_vin}/command/door_lock"),
        &json,
        "{}",
    )
    .await;
    assert_shape("tesla", "error_protocol_required_403.json", &refused);
    let hs = keyway_tesla::vcp::session::handshake(
        &keyway_tesla::vcp::AppKey::generate(),
        keyway_tesla::vcp::Domain::VehicleSecurity,
    );
    let body = serde_json::json!({"routable_message": keyway_tesla::vcp::to_base64(&hs.request)});
    let signed = answer(
        &cx,
        Method::POST,
        &format!("{api}/{signed_vin}/signed_command"),
        &json,
        Box::leak(body.to_string().into_boxed_str()),
    )
    .await;
    assert_shape("tesla", "signed_command.json", &signed);
    assert!(keyway_tesla::vcp::from_base64(signed["response"].as_str().unwrap()).is_some());
    let status = answer(
        &cx,
        Method::POST,
        &format!("{api}/fleet_status"),
        &json,
        r#"{"vins": ["5YJ3E1EA7LF000001", "5YJYGDEE1MF000002"]}"#,
    )
    .await;
    assert_shape("tesla", "fleet_status.json", &status);
}

/// A mock with one signed car that knows a fresh application key (registered with the
/// mock as the app's key).
fn one_paired_car(vin: &str) -> (AppKey, TeslaMock) {
    let key = AppKey::generate();
    let mock = TeslaMock::new(TeslaMockConfig {
        vehicles: vec![
            MockVehicle::new(1, vin, "One", 52.52, 13.40).paired_with(&key.public_bytes()),
        ],
        ..TeslaMockConfig::default()
    });
    mock.register_app_key(&key.public_bytes());
    (key, mock)
}

/// The mock car verifies signed commands over HTTP as the specification says: a signed
/// lock runs; the same message again (a replay), an unsigned message and a message from
/// an unknown key are refused with the specification's faults; REST is refused.
#[tokio::test]
async fn the_mock_car_verifies_signed_commands_and_refuses_the_rest() {
    use http::Method;
    use keyway_adapter::conformance::MockControl;
    use keyway_adapter::mock::shape::answer;

    use keyway_tesla::vcp::proto::universal_message::MessageFaultE;
    use keyway_tesla::vcp::session::{Session, handshake};
    use keyway_tesla::vcp::{Domain, RoutableMessage, from_base64, rke_payload, to_base64};

    let vin = "5YJ3E1EA7LF000001";
    let (key, mock) = one_paired_car(vin);
    mock.set_locked(vin, false);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let url = format!("{}/api/1/vehicles/{vin}/signed_command", server.url());
    let json = [("content-type", "application/json")];
    let send = |m: &RoutableMessage| {
        let body = serde_json::json!({"routable_message": to_base64(m)}).to_string();
        let (cx, url) = (cx.clone(), url.clone());
        async move {
            let got = answer(
                &cx,
                Method::POST,
                &url,
                &json,
                Box::leak(body.into_boxed_str()),
            )
            .await;
            from_base64(got["response"].as_str().expect("a base64 answer")).unwrap()
        }
    };
    let fault = |m: &RoutableMessage| {
        m.signed_message_status
            .unwrap_or_default()
            .signed_message_fault()
    };

    let hs = handshake(&key, Domain::VehicleSecurity);
    let mut session = Session::accept(&key, vin, &hs, &send(&hs.request).await).unwrap();
    let lock = session.authorize(&key, rke_payload(true));
    let ok = send(&lock.request).await;
    assert_eq!(fault(&ok), MessageFaultE::MessagefaultErrorNone);
    session.open(&lock, &ok).unwrap();
    assert!(mock.locked(vin), "the car locked");
    assert_eq!(mock.commands_seen(), 1);

    // The same message again: a replay.
    mock.set_locked(vin, false);
    let replay = send(&lock.request).await;
    assert_eq!(
        fault(&replay),
        MessageFaultE::MessagefaultErrorInvalidTokenOrCounter
    );
    assert!(!mock.locked(vin), "the replay did not run");
    // No signature at all.
    let mut unsigned = session.authorize(&key, rke_payload(true)).request;
    unsigned.sub_sig_data = None;
    assert_eq!(
        fault(&send(&unsigned).await),
        MessageFaultE::MessagefaultErrorInvalidSignature
    );
    // A key the car does not know.
    let stranger = AppKey::generate();
    let mut theirs = session.clone();
    let foreign = theirs.authorize(&stranger, rke_payload(true));
    assert_eq!(
        fault(&send(&foreign.request).await),
        MessageFaultE::MessagefaultErrorUnknownKeyId
    );
    assert!(!mock.locked(vin));
    // An unsigned REST lock: Tesla's refusal.
    let rest = answer(
        &cx,
        Method::POST,
        &format!("{}/api/1/vehicles/{vin}/command/door_lock", server.url()),
        &json,
        "{}",
    )
    .await;
    assert!(
        rest["error"]
            .as_str()
            .unwrap()
            .contains("Vehicle Command Protocol required")
    );
    assert!(!mock.locked(vin));
}

/// An account in another region: the first call meets a 421 naming the account's base
/// URL, is repeated there, and every later call for the account goes there directly.
#[tokio::test]
async fn a_421_moves_the_account_to_its_region_for_every_later_call() {
    use keyway_adapter::conformance::MockControl;
    use keyway_adapter::{Adapter, Call, Command, Secret, VehicleRef};

    let vin = "5YJ3E1EA7LF000001";
    let (key, mock) = one_paired_car(vin);
    let na = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let eu = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    mock.set_region("owner", &eu.url());
    let adapter = TeslaAdapter::new(na.url())
        .with_signing(key, None)
        .with_regions(vec![eu.url()]);
    let cx = Call {
        http: loopback_http(),
        token: Secret::new(mock.access_token()),
        command_id: None,
        account: Some("acc_eu".into()),
        pin: None,
    };
    let listed = adapter.vehicles(&cx).await.unwrap();
    assert_eq!(listed.len(), 1);
    let car = VehicleRef { oem_id: vin.into() };
    adapter.locate(&cx, &car).await.unwrap();
    adapter.send(&cx, &car, Command::Unlock).await.unwrap();
    assert!(!mock.locked(vin));
    let statuses: Vec<u16> = mock.journal.entries().iter().map(|e| e.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 421).count(),
        1,
        "one 421, then the account's region: {statuses:?}"
    );
    // Another account of the same adapter still starts at the configured region.
    let other = Call {
        account: Some("acc_other".into()),
        ..cx.clone()
    };
    mock.set_region("owner", &na.url());
    adapter.locate(&other, &car).await.unwrap();
    // The remembered region goes away: after three failed calls in a row the account
    // starts at the configured base again.
    drop(eu);
    for _ in 0..keyway_tesla::adapter::FORGET_REGION_AFTER {
        assert!(adapter.locate(&cx, &car).await.is_err());
    }
    adapter.locate(&cx, &car).await.unwrap();
}
