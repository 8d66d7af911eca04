//! The Volvo adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::Secret;
use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_volvo::mock::MockCar;
use keyway_volvo::{VolvoAdapter, VolvoMock, VolvoMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        vin: vin.into(),
        model: "XC40 Recharge".into(),
        year: 2023,
        account: "owner".into(),
        locked: true,
        latitude: lat,
        longitude: lon,
        heading: 217.0,
        asleep: false,
        refusing: false,
        timing: Default::default(),
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
