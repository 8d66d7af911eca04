//! The Hyundai/Kia adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::Secret;
use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_hyundai::mock::MockCar;
use keyway_hyundai::{HyundaiAdapter, HyundaiMock, HyundaiMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        heading: 270.0,
        ..MockCar::parked(vin, "IONIQ 5", 2023, lat, lon)
    }
}

async fn conformance(ccs2: Vec<String>) {
    let mock = HyundaiMock::new(HyundaiMockConfig {
        stage: std::time::Duration::from_millis(15),
        cars: vec![
            car("KMHKR81CFNU000001", 50.110922, 8.682127),
            car("KNDC4DLC0N5000002", 52.520008, 13.404954),
        ],
        ccs2,
        pins: [("owner".to_string(), "2468".to_string())].into(),
        ..HyundaiMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(HyundaiAdapter::new(
            server.url(),
            Secret::new("spa-demo-stamp"),
        )),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

#[tokio::test]
async fn hyundai_passes_the_conformance_suite() {
    conformance(Vec::new()).await;
}

/// Cars on the newer CCS2 protocol: the list flags them, their lock state comes from
/// `ccs2/carstatus/latest`, their door control takes a control token made from the
/// owner's PIN.
#[tokio::test]
async fn hyundai_ccs2_cars_pass_the_conformance_suite() {
    conformance(vec!["KMHKR81CFNU000001".into(), "KNDC4DLC0N5000002".into()]).await;
}
