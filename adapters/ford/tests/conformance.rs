//! The Ford adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_ford::mock::MockCar;
use keyway_ford::{FordAdapter, FordMock, FordMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        heading: 217.0,
        ..MockCar::parked(vin, "Mustang Mach-E", 2023, lat, lon)
    }
}

#[tokio::test]
async fn ford_passes_the_conformance_suite() {
    let mock = FordMock::new(FordMockConfig {
        stage: std::time::Duration::from_millis(15),
        cars: vec![
            car("3FMTK3SU0PMA00001", 57.708870, 11.974560),
            car("3FMTK3SU0PMA00002", 59.329323, 18.068581),
        ],
        ..FordMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(FordAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// The mock answers in the shapes of `fixtures/ford/` (see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;

    use keyway_adapter::mock::shape::{answer, assert_shape};

    let vin = "3FMTK3SU0PMA00001";
    let mock = FordMock::new(FordMockConfig {
        stage: std::time::Duration::from_millis(1),
        cars: vec![car(vin, 42.3, -83.2)],
        ..FordMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let url = |p: &str| format!("{}{p}", server.url());
    let json = [("content-type", "application/json")];
    let list = answer(&cx, Method::GET, &url("/v1/vehicles"), &[], "").await;
    assert_shape("ford", "vehicles.json", &list);
    let accepted = answer(
        &cx,
        Method::POST,
        &url(&format!("/v1/command/vehicles/{vin}/commands")),
        &json,
        r#"{"type": "lock", "wakeUp": true}"#,
    )
    .await;
    assert_shape("ford", "command_accepted.json", &accepted);
    let telemetry = url(&format!("/v1/telemetry/sources/fordpass/vehicles/{vin}"));
    let mut t = answer(&cx, Method::GET, &telemetry, &[], "").await;
    for _ in 0..200 {
        if t["states"]["lockCommand"]["value"]["toState"] == "COMMAND_SUCCEEDED_ON_DEVICE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        t = answer(&cx, Method::GET, &telemetry, &[], "").await;
    }
    assert_shape("ford", "telemetry.json", &t);
}
