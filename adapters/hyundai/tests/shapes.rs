//! The Hyundai/Kia mock answers in the shapes of `fixtures/hyundai/` (the real SPA API's,
//! see its SOURCES.md), for a car on the older protocol and one on CCS2.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use keyway_adapter::mock::shape::differences;
use keyway_hyundai::mock::MockCar;
use keyway_hyundai::{HyundaiMock, HyundaiMockConfig};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/hyundai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn car(vin: &str) -> MockCar {
    MockCar::parked(vin, "IONIQ 5", 2023, 50.1, 8.6)
}

#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    let (old, new) = ("KMHKR81CFNU000001", "KNAC381AFR5000002");
    let mock = HyundaiMock::new(HyundaiMockConfig {
        stage: Duration::from_millis(10),
        cars: vec![car(old), car(new)],
        ccs2: vec![new.into()],
        ..HyundaiMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let call = |method: Method, path: String, body: &'static str| {
        let req = cx
            .request(method, &format!("{}{path}", server.url()))
            .header("Stamp", "spa-demo-stamp")
            .header("content-type", "application/json")
            .body(Bytes::from_static(body.as_bytes()));
        let cx = cx.clone();
        async move {
            let resp = cx.send(req).await.unwrap();
            serde_json::from_slice::<Value>(resp.body()).unwrap()
        }
    };
    let spa = "/api/v1/spa/vehicles";
    let checks = [
        ("vehicles.json", call(Method::GET, spa.into(), "").await),
        (
            "vehicles_ccs2.json",
            call(Method::GET, spa.into(), "").await,
        ),
        (
            "status.json",
            call(Method::GET, format!("{spa}/{old}/status/latest"), "").await,
        ),
        (
            "ccs2_carstatus.json",
            call(
                Method::GET,
                format!("{spa}/{new}/ccs2/carstatus/latest"),
                "",
            )
            .await,
        ),
        (
            "location.json",
            call(Method::GET, format!("{spa}/{old}/location/park"), "").await,
        ),
        (
            "command_accepted.json",
            call(
                Method::POST,
                format!("{spa}/{old}/control/door"),
                r#"{"action":"close"}"#,
            )
            .await,
        ),
    ];
    for (name, answer) in &checks {
        let diff = differences(&fixture(name), answer);
        assert!(diff.is_empty(), "{name}: {diff:?}\n{answer:#}");
    }
}
