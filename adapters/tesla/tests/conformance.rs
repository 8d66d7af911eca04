//! The Tesla adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_tesla::mock::MockVehicle;
use keyway_tesla::{TeslaAdapter, TeslaMock, TeslaMockConfig};

#[tokio::test]
async fn tesla_passes_the_conformance_suite() {
    let mock = TeslaMock::new(TeslaMockConfig {
        wake_delay: Duration::from_millis(30),
        vehicles: vec![
            MockVehicle::new(1, "5YJ3E1EA7LF000001", "One", 52.520008, 13.404954),
            MockVehicle::new(2, "5YJYGDEE1MF000002", "Two", 48.137154, 11.576124),
        ],
        ..TeslaMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(TeslaAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// The mock answers in the shapes of `fixtures/tesla/` (the Fleet API's, see its
/// SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;
    use keyway_adapter::conformance::MockControl;
    use keyway_adapter::mock::shape::{answer, assert_shape};
    use keyway_adapter::{Call, Secret};

    let vin = "5YJ3E1EA7LF000001";
    let mock = TeslaMock::new(TeslaMockConfig {
        wake_delay: Duration::from_millis(1),
        vehicles: vec![MockVehicle::new(1, vin, "One", 52.52, 13.40)],
        ..TeslaMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = Call {
        http: loopback_http(),
        token: Secret::new(mock.access_token()),
        command_id: None,
    };
    let api = format!("{}/api/1/vehicles", server.url());
    let json = [("content-type", "application/json")];
    for (name, method, url) in [
        ("vehicles.json", Method::GET, api.clone()),
        ("wake_up.json", Method::POST, format!("{api}/{vin}/wake_up")),
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
}
