//! The Smartcar adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_smartcar::mock::{MockCar, vehicle_id};
use keyway_smartcar::{SmartcarAdapter, SmartcarMock, SmartcarMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar::parked(vin, "I-PACE", 2022, lat, lon)
}

#[tokio::test]
async fn smartcar_passes_the_conformance_suite() {
    let mock = SmartcarMock::new(SmartcarMockConfig {
        cars: vec![
            car("SADHA2B18N1000001", 51.50735, -0.12776),
            car("SADHA2B18N1000002", 53.48095, -2.23743),
        ],
        ..SmartcarMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(SmartcarAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// A car whose make Smartcar cannot command is read as any other, and a command to it
/// is a certain no (`NotCapable`: nothing was sent to the car).
#[tokio::test]
async fn a_car_smartcar_cannot_command_says_so() {
    use keyway_adapter::{Adapter, Command, OemError, VehicleRef};

    let vin = "JTDKARFP0N3000001";
    let mock = SmartcarMock::new(SmartcarMockConfig {
        cars: vec![car(vin, 48.13743, 11.57549)],
        incapable: vec![vin.into()],
        ..SmartcarMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = SmartcarAdapter::new(server.url());
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let listed = adapter.vehicles(&cx).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].vin.as_deref(), Some(vin));
    assert_eq!(listed[0].model.as_deref(), Some("Toyota I-PACE"));
    let v = VehicleRef {
        oem_id: vehicle_id(vin),
    };
    assert!(adapter.security(&cx, &v).await.unwrap().locked.is_some());
    let sent = adapter.send(&cx, &v, Command::Unlock).await;
    assert!(matches!(sent, Err(OemError::NotCapable { .. })), "{sent:?}");
    assert!(
        mock.car(&v.oem_id).unwrap().locked,
        "nothing reached the car"
    );
}

/// Smartcar's compatibility API, asked with the application's credentials when the
/// cars are listed, says beforehand which car cannot lock or unlock: it is listed with
/// `locate` and `security` only. With credentials Smartcar refuses, nothing is assumed
/// (the command's answer still tells). The answer has the fixture's shape.
#[tokio::test]
async fn the_compatibility_api_says_beforehand_what_a_car_cannot_do() {
    use keyway_adapter::mock::shape::assert_shape;
    use keyway_adapter::{Adapter, Capability, Secret};
    use keyway_smartcar::compatibility::Compatibility;

    let (jaguar, toyota) = ("SADHA2B18N1000001", "JTDKARFP0N3000001");
    let mock = SmartcarMock::new(SmartcarMockConfig {
        cars: vec![car(jaguar, 51.50735, -0.12776), car(toyota, 48.1, 11.5)],
        incapable: vec![toyota.into()],
        ..SmartcarMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let with = |secret: &str| {
        SmartcarAdapter::new(server.url()).with_compatibility(Compatibility {
            client_id: "keyway".into(),
            client_secret: Secret::new(secret),
        })
    };
    let listed = with("secret").vehicles(&cx).await.unwrap();
    let of = |vin: &str| {
        listed
            .iter()
            .find(|v| v.vin.as_deref() == Some(vin))
            .unwrap()
            .capabilities
            .clone()
    };
    assert_eq!(of(jaguar), None, "all the adapter declares");
    assert_eq!(
        of(toyota),
        Some(vec![Capability::Locate, Capability::Security])
    );
    assert_eq!(mock.journal.count("GET", "/v2.0/compatibility"), 2);
    let refused = with("wrong").vehicles(&cx).await.unwrap();
    assert!(
        refused.iter().all(|v| v.capabilities.is_none()),
        "{refused:?}"
    );
    // Basic auth, as the adapter sends it.
    let basic = keyway_adapter::http::basic_auth("keyway", "secret").unwrap();
    let url = format!(
        "{}/v2.0/compatibility?vin={toyota}&scope=read_location%20read_security%20control_security&country=US",
        server.url()
    );
    let req = http::Request::get(&url)
        .header("authorization", basic)
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = loopback_http().send(req).await.unwrap();
    let got: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_shape("smartcar", "compatibility.json", &got);
}

/// The mock answers in the shapes of `fixtures/smartcar/` (Smartcar's v2.0 reference and
/// SDK test resources, see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;

    use keyway_adapter::mock::shape::{answer, assert_shape};

    let vin = "SADHA2B18N1000001";
    let id = vehicle_id(vin);
    let mock = SmartcarMock::new(SmartcarMockConfig {
        cars: vec![
            car(vin, 51.50735, -0.12776),
            car("JTDKARFP0N3000001", 48.1, 11.5),
        ],
        incapable: vec!["JTDKARFP0N3000001".into()],
        ..SmartcarMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let base = format!("{}/v2.0/vehicles", server.url());
    let lock = r#"{"action": "LOCK"}"#;
    for (name, method, url, body) in [
        (
            "vehicles.json",
            Method::GET,
            format!("{base}?limit=50&offset=0"),
            "",
        ),
        ("vehicle.json", Method::GET, format!("{base}/{id}"), ""),
        ("vin.json", Method::GET, format!("{base}/{id}/vin"), ""),
        (
            "security.json",
            Method::GET,
            format!("{base}/{id}/security"),
            "",
        ),
        (
            "location.json",
            Method::GET,
            format!("{base}/{id}/location"),
            "",
        ),
        (
            "command_success.json",
            Method::POST,
            format!("{base}/{id}/security"),
            lock,
        ),
        (
            "error_not_capable.json",
            Method::POST,
            format!("{base}/{}/security", vehicle_id("JTDKARFP0N3000001")),
            lock,
        ),
    ] {
        let got = answer(
            &cx,
            method,
            &url,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_shape("smartcar", name, &got);
    }
    let (state, _) = mock.vehicle_state(&id).unwrap();
    assert_shape(
        "smartcar",
        "webhook_vehicle_state.json",
        &serde_json::from_slice(&state).unwrap(),
    );
    let (verify, _, _) = mock.verify();
    assert_shape(
        "smartcar",
        "webhook_verify.json",
        &serde_json::from_slice(&verify).unwrap(),
    );
    mock.update(&id, |c| c.asleep = true);
    let got = answer(
        &cx,
        Method::POST,
        &format!("{base}/{id}/security"),
        &[("content-type", "application/json")],
        lock,
    )
    .await;
    assert_shape("smartcar", "error_asleep.json", &got);
}
