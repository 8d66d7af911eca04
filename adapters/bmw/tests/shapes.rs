//! The BMW mock answers in the shapes of `fixtures/bmw/` (the real API's, see its
//! SOURCES.md): a mock that drifts from what BMW sends fails here, not in production.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use keyway_adapter::mock::shape::differences;
use keyway_bmw::mock::MockCar;
use keyway_bmw::{BmwMock, BmwMockConfig};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/bmw/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    let vin = "WBY31AW090FP00001";
    let mock = BmwMock::new(BmwMockConfig {
        stage: Duration::from_millis(10),
        cars: vec![MockCar {
            vin: vin.into(),
            model: "i4 eDrive40".into(),
            year: 2023,
            account: "owner".into(),
            locked: true,
            latitude: 48.1,
            longitude: 11.5,
            heading: 0.0,
            asleep: false,
            refusing: false,
            open: Default::default(),
            timing: Default::default(),
        }],
        ..BmwMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let call = |method: Method, path: &str| {
        let req = cx
            .request(method, &format!("{}{path}", server.url()))
            .header("bmw-vin", vin)
            .body(Bytes::new());
        let cx = cx.clone();
        async move {
            let resp = cx.send(req).await.unwrap();
            serde_json::from_slice::<Value>(resp.body()).unwrap()
        }
    };
    let checks = [
        (
            "vehicle_list.json",
            call(Method::POST, "/eadrax-vcs/v5/vehicle-list").await,
        ),
        (
            "state.json",
            call(Method::GET, "/eadrax-vcs/v4/vehicles/state").await,
        ),
        (
            "command_accepted.json",
            call(
                Method::POST,
                "/eadrax-vrccs/v4/presentation/remote-commands/door-lock",
            )
            .await,
        ),
        (
            "profile.json",
            call(Method::GET, "/eadrax-vcs/v5/vehicle-data/profile").await,
        ),
    ];
    let event = checks[2].1["eventId"].as_str().unwrap().to_string();
    let status = call(
        Method::POST,
        &format!("/eadrax-vrccs/v3/presentation/remote-commands/eventStatus?eventId={event}"),
    )
    .await;
    for (name, answer) in checks
        .iter()
        .chain([&("event_status_pending.json", status)])
    {
        let diff = differences(&fixture(name), answer);
        assert!(diff.is_empty(), "{name}: {diff:?}\n{answer:#}");
    }
}
