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
