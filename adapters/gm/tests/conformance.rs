//! The GM adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_gm::mock::MockCar;
use keyway_gm::{GmAdapter, GmMock, GmMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        vin: vin.into(),
        model: "Bolt EUV".into(),
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
async fn gm_passes_the_conformance_suite() {
    let mock = GmMock::new(GmMockConfig {
        stage: std::time::Duration::from_millis(15),
        cars: vec![
            car("1G1FZ6S09P4000001", 57.708870, 11.974560),
            car("1G1FZ6S09P4000002", 59.329323, 18.068581),
        ],
        ..GmMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(GmAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}
