//! The BMW adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_bmw::mock::MockCar;
use keyway_bmw::{BmwAdapter, BmwMock, BmwMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        vin: vin.into(),
        model: "i4 eDrive40".into(),
        year: 2023,
        account: "owner".into(),
        locked: true,
        latitude: lat,
        longitude: lon,
        heading: 90.0,
        asleep: false,
        refusing: false,
        timing: Default::default(),
    }
}

#[tokio::test]
async fn bmw_passes_the_conformance_suite() {
    let mock = BmwMock::new(BmwMockConfig {
        stage: Duration::from_millis(15),
        cars: vec![
            car("WBY31AW090FP00001", 48.177655, 11.556216),
            car("WBA11AA010CH00002", 48.137154, 11.576124),
        ],
        ..BmwMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(BmwAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}
