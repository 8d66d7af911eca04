//! The Smartcar adapter calling API v3 against its own mock: the shared conformance
//! suite, the owner's cars only, the link check, a long-running command, and the
//! mock's answers in the shapes of `fixtures/smartcar/v3_*.json`.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use keyway_adapter::conformance::{Harness, run_all};
use keyway_adapter::mock::shape::{answer, assert_shape};
use keyway_adapter::mock::{MockControl, owner_id};
use keyway_adapter::transport::loopback_http;
use keyway_adapter::{Adapter, Call, Command, OemError, Secret, Sent, VehicleRef};
use keyway_smartcar::mock::v3::SmartcarV3Mock;
use keyway_smartcar::mock::{MockCar, vehicle_id};
use keyway_smartcar::{AppCredentials, SmartcarAdapter, SmartcarMock, SmartcarMockConfig};

fn car(vin: &str, account: &str) -> MockCar {
    MockCar {
        account: account.into(),
        ..MockCar::parked(vin, "I-PACE", 2022, 51.50735, -0.12776)
    }
}

async fn serve(cars: Vec<MockCar>) -> (SmartcarMock, keyway_adapter::mock::MockServer) {
    let mock = SmartcarMock::new(SmartcarMockConfig {
        cars,
        ..SmartcarMockConfig::default()
    });
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (mock, server)
}

fn adapter(base: &str, secret: &str) -> SmartcarAdapter {
    SmartcarAdapter::v3(
        base,
        AppCredentials {
            token_url: format!("{base}/oauth2/token"),
            client_id: "keyway".into(),
            client_secret: Secret::new(secret),
        },
    )
}

/// A call naming `account`'s Smartcar user.
fn as_owner(account: &str) -> Call {
    Call {
        http: loopback_http(),
        token: Secret::new(owner_id(account)),
        command_id: None,
        account: None,
        pin: None,
    }
}

#[tokio::test]
async fn smartcar_v3_passes_the_conformance_suite() {
    let (mock, server) = serve(vec![
        car("SADHA2B18N1000001", "owner"),
        car("SADHA2B18N1000002", "owner"),
    ])
    .await;
    let harness = Harness {
        adapter: Arc::new(adapter(&server.url(), "secret")),
        mock: Arc::new(SmartcarV3Mock(mock)),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// The application's token reaches every owner's cars: the adapter lists only those of
/// the owner the account names, and a link stands only on a connection made during it.
#[tokio::test]
async fn an_owner_sees_its_own_cars_and_a_link_needs_a_fresh_connection() {
    let (mock, server) = serve(vec![
        car("SADHA2B18N1000001", "owner"),
        car("SADHA2B18N1000002", "neighbour"),
    ])
    .await;
    let a = adapter(&server.url(), "secret");
    let listed = a.vehicles(&as_owner("owner")).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|v| v.oem_id.as_str()).collect();
    assert_eq!(ids, [vehicle_id("SADHA2B18N1000001")]);
    // The neighbour's car is not reached in the owner's name.
    let theirs = VehicleRef {
        oem_id: vehicle_id("SADHA2B18N1000002"),
    };
    let e = a.send(&as_owner("owner"), &theirs, Command::Unlock).await;
    assert!(matches!(e, Err(OemError::NotFound)), "{e:?}");
    assert!(mock.car(&theirs.oem_id).unwrap().locked);
    // The owner connected before the mock started (an hour ago), not during a link
    // started now; a link started before that stands on it, as does a fresh login.
    let now = time::OffsetDateTime::now_utc();
    let e = a.owner_connected(&as_owner("owner"), now).await;
    assert!(matches!(e, Err(OemError::Forbidden { .. })), "{e:?}");
    let before = now - time::Duration::hours(2);
    a.owner_connected(&as_owner("owner"), before).await.unwrap();
    mock.oauth.set_connected_at("owner", now);
    a.owner_connected(&as_owner("owner"), now).await.unwrap();
    // An unknown owner has no connection at all.
    let e = a.owner_connected(&as_owner("stranger"), before).await;
    assert!(matches!(e, Err(OemError::Forbidden { .. })), "{e:?}");
    // Wrong client credentials are the operator's to fix, not the owner's.
    let e = adapter(&server.url(), "wrong")
        .vehicles(&as_owner("owner"))
        .await;
    assert!(matches!(e, Err(OemError::ClientRejected { .. })), "{e:?}");
}

/// A command the make has not answered yet is `202`: pending, and the car acts later.
#[tokio::test]
async fn a_long_running_command_is_pending() {
    let vin = "SADHA2B18N1000001";
    let mut slow = car(vin, "owner");
    slow.timing.late_ms = 200;
    let (mock, server) = serve(vec![slow]).await;
    let a = adapter(&server.url(), "secret");
    let v = VehicleRef {
        oem_id: vehicle_id(vin),
    };
    let sent = a.send(&as_owner("owner"), &v, Command::Unlock).await;
    assert!(matches!(sent, Ok(Sent::Pending(_))), "{sent:?}");
    for _ in 0..100 {
        if !mock.locked(&v.oem_id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the car never executed the unlock");
}

/// The mock answers in the shapes of `fixtures/smartcar/v3_*.json` (see SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_v3_fixtures_shapes() {
    let vin = "SADHA2B18N1000001";
    let id = vehicle_id(vin);
    let (mock, server) = serve(vec![car(vin, "owner")]).await;
    let base = server.url();
    let token: serde_json::Value = {
        let cx = Call {
            token: Secret::new(""),
            ..as_owner("owner")
        };
        answer(
            &cx,
            Method::POST,
            &format!("{base}/oauth2/token"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "grant_type=client_credentials&client_id=keyway&client_secret=secret",
        )
        .await
    };
    let cx = Call {
        token: Secret::new(token["access_token"].as_str().unwrap()),
        ..as_owner("owner")
    };
    let user = owner_id("owner");
    let headers = [("sc-user-id", user.as_str())];
    for (name, method, path) in [
        (
            "v3_connections.json",
            Method::GET,
            format!("/v3/connections?user_id={user}&page=1&pageSize=50"),
        ),
        ("v3_vehicle.json", Method::GET, format!("/v3/vehicles/{id}")),
        (
            "v3_islocked.json",
            Method::GET,
            format!("/v3/vehicles/{id}/signals/closure-islocked"),
        ),
        (
            "v3_location.json",
            Method::GET,
            format!("/v3/vehicles/{id}/signals/location-preciselocation"),
        ),
        (
            "v3_command_success.json",
            Method::POST,
            format!("/v3/vehicles/{id}/commands/security/lock"),
        ),
    ] {
        let got = answer(&cx, method, &format!("{base}{path}"), &headers, "").await;
        assert_shape("smartcar", name, &got);
    }
    // An owner's v2.0 token is not the application's.
    let owner = Call {
        token: Secret::new(mock.access_token()),
        ..as_owner("owner")
    };
    let got = answer(
        &owner,
        Method::GET,
        &format!("{base}/v3/vehicles/{id}"),
        &headers,
        "",
    )
    .await;
    assert_eq!(got["type"], "AUTHENTICATION");
}
