//! The GM adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_gm::mock::MockCar;
use keyway_gm::{GmAdapter, GmMock, GmMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        heading: 217.0,
        ..MockCar::parked(vin, "Bolt EUV", 2023, lat, lon)
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

/// The mock answers in the shapes of `fixtures/gm/` (the v3 API's, see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;

    use keyway_adapter::mock::shape::{answer, assert_shape};

    let vin = "1G1FZ6S09P4000001";
    let mock = GmMock::new(GmMockConfig {
        stage: std::time::Duration::from_millis(1),
        cars: vec![car(vin, 42.33, -83.04)],
        ..GmMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let url = |p: &str| format!("{}{p}", server.url());
    let json = [("content-type", "application/json")];
    let garage = answer(
        &cx,
        Method::POST,
        &url(keyway_gm::adapter::GARAGE_PATH),
        &[("content-type", "text/plain")],
        keyway_gm::adapter::GARAGE_QUERY,
    )
    .await;
    assert_shape("gm", "vehicles_graphql.json", &garage);
    for (what, body) in [
        ("lock", r#"{"lockDoorRequest": {"delay": 0}}"#),
        ("location", "{}"),
    ] {
        let started = answer(
            &cx,
            Method::POST,
            &url(&format!("/veh/cmd/v3/{what}/{vin}")),
            &json,
            body,
        )
        .await;
        assert_shape("gm", "command_v3_in_progress.json", &started);
        let status = started["url"].as_str().unwrap();
        let path = &status[status.find("/api/").unwrap()..];
        let mut done = answer(&cx, Method::GET, &url(path), &[], "").await;
        for _ in 0..200 {
            if done["status"] != "IN_PROGRESS" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            done = answer(&cx, Method::GET, &url(path), &[], "").await;
        }
        let fixture = match what {
            "lock" => "command_v3_success.json",
            _ => "location_v3_success.json",
        };
        assert_shape("gm", fixture, &done);
    }
}
