//! The BMW adapter against its own mock, through the shared conformance suite.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_bmw::mock::MockCar;
use keyway_bmw::{BmwAdapter, BmwMock, BmwMockConfig};

fn car(vin: &str, lat: f64, lon: f64) -> MockCar {
    MockCar {
        heading: 90.0,
        ..MockCar::parked(vin, "i4 eDrive40", 2023, lat, lon)
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

/// Today's vehicle list names VINs only: model and year come from each car's profile.
/// A car whose state has no position is found with the vehicle finder: its event runs,
/// then `eventPosition` gives the place.
#[tokio::test]
async fn profiles_name_the_model_and_the_vehicle_finder_locates() {
    use keyway_adapter::{Adapter, OemError, VehicleRef};

    let vin = "WBY31AW090FP00001";
    let mock = BmwMock::new(BmwMockConfig {
        stage: Duration::from_millis(15),
        cars: vec![car(vin, 48.177655, 11.556216)],
        state_without_location: vec![vin.into()],
        ..BmwMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = BmwAdapter::new(server.url());
    let cx = keyway_adapter::conformance::owner_call(&mock);
    let listed = adapter.vehicles(&cx).await.unwrap();
    assert_eq!(listed[0].model.as_deref(), Some("i4 eDrive40"));
    assert_eq!(listed[0].year, Some(2023));
    // A car's profile is read once: BMW counts every request against a daily quota.
    let again = adapter.vehicles(&cx).await.unwrap();
    assert_eq!(again[0].model.as_deref(), Some("i4 eDrive40"));
    assert_eq!(mock.journal.count("GET", "/vehicle-data/profile"), 1);

    let v = VehicleRef { oem_id: vin.into() };
    assert!(matches!(
        adapter.locate(&cx, &v).await,
        Err(OemError::NoFix { .. })
    ));
    let pending = adapter.request_location(&cx, &v).await.unwrap();
    let mut found = None;
    for _ in 0..100 {
        if let Some(l) = adapter.poll_location(&cx, &v, &pending).await.unwrap() {
            found = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let l = found.expect("the vehicle finder ends within 100 polls");
    assert!((l.latitude - 48.177655).abs() < 1e-9 && (l.longitude - 11.556216).abs() < 1e-9);
    assert_eq!(l.recorded_at, None, "BMW gives no time: none is claimed");
    assert_eq!(mock.journal.count("POST", "/eventPosition"), 1);
    // The mock's answer is in the structure of `fixtures/bmw/event_position.json`.
    let url = format!(
        "{}/eadrax-vrccs/v4/presentation/remote-commands/eventPosition?eventId={}",
        server.url(),
        pending.handle
    );
    let got =
        keyway_adapter::mock::shape::answer(&cx, http::Method::POST, &url, &[("bmw-vin", vin)], "")
            .await;
    keyway_adapter::mock::shape::assert_shape("bmw", "event_position.json", &got);
    // Once the state carries the position again, the state answers.
    mock.set_position_in_state(vin, true);
    assert!(adapter.locate(&cx, &v).await.is_ok());
}
