//! The Ford adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_ford::mock::MockCar;
use keyway_ford::{FordAdapter, FordMock, FordMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        vin: vin.into(),
        model: "Mustang Mach-E".into(),
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
