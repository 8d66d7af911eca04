//! The Volvo adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::Secret;
use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_volvo::mock::MockCar;
use keyway_volvo::{VolvoAdapter, VolvoMock, VolvoMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        heading: 217.0,
        ..MockCar::parked(vin, "XC40 Recharge", 2023, lat, lon)
    }
}

#[tokio::test]
async fn volvo_passes_the_conformance_suite() {
    let mock = VolvoMock::new(VolvoMockConfig {
        cars: vec![
            car("YV1XZK9V0P2000001", 57.708870, 11.974560),
            car("YV1XZK9V0P2000002", 59.329323, 18.068581),
        ],
        ..VolvoMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(VolvoAdapter::new(server.url(), Secret::new("vcc-demo-key"))),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// The mock answers in the shapes of `fixtures/volvo/` (the Connected Vehicle API v2 and
/// Location API v1, see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;

    use keyway_adapter::mock::shape::{answer, assert_shape};

    let vin = "YV1XZK9V0P2000001";
    let mock = VolvoMock::new(VolvoMockConfig {
        cars: vec![car(vin, 57.70887, 11.97456)],
        ..VolvoMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let key = [("vcc-api-key", "vcc-demo-key")];
    let v2 = format!("{}/connected-vehicle/v2/vehicles", server.url());
    for (name, method, url) in [
        ("vehicles.json", Method::GET, v2.clone()),
        ("vehicle_details.json", Method::GET, format!("{v2}/{vin}")),
        ("doors.json", Method::GET, format!("{v2}/{vin}/doors")),
        (
            "command_accessibility.json",
            Method::GET,
            format!("{v2}/{vin}/command-accessibility"),
        ),
        (
            "location.json",
            Method::GET,
            format!("{}/location/v1/vehicles/{vin}/location", server.url()),
        ),
        (
            "command_completed.json",
            Method::POST,
            format!("{v2}/{vin}/commands/lock"),
        ),
    ] {
        let got = answer(&cx, method, &url, &key, "{}").await;
        assert_shape("volvo", name, &got);
    }
}
