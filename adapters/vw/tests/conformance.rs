//! The Volkswagen adapter against its own mock: the shared conformance suite, the app
//! login, a car without an active access capability, a refused S-PIN, and the mock held
//! to the fixtures' shapes.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, owner_call, run_all};
use keyway_adapter::login::redirect_params;
use keyway_adapter::transport::loopback_http;
use keyway_adapter::{Adapter, Command, OemError, Secret, VehicleRef};
use keyway_vw::mock::MockCar;
use keyway_vw::{VwAdapter, VwMock, VwMockConfig};

const SPIN: &str = "4711";
const ID4: &str = "WVWZZZE1ZNP000001";
const GOLF: &str = "WVWZZZCDZPW000002";

fn car(vin: &str, model: &str, lat: f64, lon: f64) -> MockCar {
    MockCar::parked(vin, model, 2022, lat, lon)
}

fn mock(incapable: &[&str]) -> VwMock {
    VwMock::new(VwMockConfig {
        stage: Duration::from_millis(15),
        cars: vec![
            car(ID4, "ID.4", 52.42741, 10.78656),
            car(GOLF, "Golf", 48.13743, 11.57549),
        ],
        incapable: incapable.iter().map(|v| v.to_string()).collect(),
        spins: [("owner".to_string(), SPIN.to_string())].into(),
        ..VwMockConfig::default()
    })
}

#[tokio::test]
async fn vw_passes_the_conformance_suite() {
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(VwAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// The app login as the clients do it: the BFF names the login page and its state, the
/// login ends at `weconnect://authenticated#…`, and what that carries is traded once for
/// tokens that open the API.
#[tokio::test]
async fn the_app_login_trades_the_redirect_for_tokens_once() {
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = VwAdapter::new(server.url());
    let http = loopback_http();
    let link = keyway_adapter::LinkSecrets {
        state: Secret::new("unused"),
        code_challenge: "unused".into(),
    };
    let login = adapter
        .app_login(&http, &server.url(), &link)
        .await
        .unwrap();
    assert_ne!(login.state.expose(), "unused", "the BFF picks the state");
    assert!(login.url.contains("/oidc/v1/authorize?"), "{}", login.url);
    // The owner logs in (the mock consents at once) and the browser is sent to the app.
    let req = http::Request::get(&login.url)
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = http.send(req).await.unwrap();
    assert_eq!(resp.status(), 302);
    let redirect = resp.headers()["location"].to_str().unwrap();
    let params = redirect_params(redirect, keyway_vw::login::REDIRECT_URI).unwrap();
    assert_eq!(
        keyway_adapter::login::param(&params, "state"),
        Some(login.state.expose())
    );
    let tokens = adapter
        .finish_app_login(&http, &server.url(), &params, &Secret::new(""))
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_some());
    let cx = keyway_adapter::Call {
        http: http.clone(),
        token: tokens.access_token.clone(),
        command_id: None,
        account: None,
        pin: None,
    };
    assert_eq!(adapter.vehicles(&cx).await.unwrap().len(), 2);
    let again = adapter
        .finish_app_login(&http, &server.url(), &params, &Secret::new(""))
        .await;
    assert!(
        matches!(again, Err(OemError::Unauthorized { .. })),
        "a code works once: {again:?}"
    );
}

/// A car whose access capability is not active (a missing licence) is read like any
/// other, and told no before anything is sent: `NotCapable`, certain.
#[tokio::test]
async fn a_car_without_access_is_not_capable_and_nothing_is_sent() {
    let mock = mock(&[GOLF]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = VwAdapter::new(server.url());
    let cx = owner_call(&mock);
    let v = VehicleRef {
        oem_id: GOLF.into(),
    };
    assert_eq!(adapter.security(&cx, &v).await.unwrap().locked, Some(true));
    let sent = adapter.send(&cx, &v, Command::Unlock).await;
    assert!(matches!(sent, Err(OemError::NotCapable { .. })), "{sent:?}");
    assert_eq!(mock.journal.count("POST", "/access/unlock"), 0);
    assert!(mock.garage.car(GOLF).unwrap().locked);
}

/// A wrong S-PIN is `PinRejected` with the tries left, never the PIN; the third locks
/// the owner out, and then even the right one is refused.
#[tokio::test]
async fn a_wrong_spin_is_refused_with_the_tries_left() {
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = VwAdapter::new(server.url());
    let mut cx = owner_call(&mock);
    cx.pin = Some(Secret::new("0000"));
    let v = VehicleRef { oem_id: ID4.into() };
    for left in [2, 1, 0] {
        match adapter.send(&cx, &v, Command::Unlock).await {
            Err(OemError::PinRejected { detail }) => {
                assert!(detail.contains(&format!("{left} tries left")), "{detail}");
                assert!(!detail.contains("0000"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
    cx.pin = Some(Secret::new(SPIN));
    let locked_out = adapter.send(&cx, &v, Command::Unlock).await;
    assert!(
        matches!(&locked_out, Err(OemError::PinRejected { detail }) if detail.contains("locked for")),
        "{locked_out:?}"
    );
    assert_eq!(mock.wrong_spins("owner"), 4);
    assert!(
        mock.garage.car(ID4).unwrap().locked,
        "nothing reached the car"
    );
}

/// The mock answers in the shapes of `fixtures/vw/` (see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;
    use keyway_adapter::mock::shape::{answer, assert_shape};

    let mock = mock(&[GOLF]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = owner_call(&mock);
    let base = format!("{}/vehicle/v1/vehicles", server.url());
    let json = [("content-type", "application/json")];
    let spin = r#"{"spin": "4711"}"#;
    for (name, method, url, body) in [
        ("vehicles.json", Method::GET, base.clone(), ""),
        (
            "command_accepted.json",
            Method::POST,
            format!("{base}/{ID4}/access/lock"),
            spin,
        ),
        (
            "selectivestatus_access.json",
            Method::GET,
            format!("{base}/{ID4}/selectivestatus?jobs=access"),
            "",
        ),
        (
            "parkingposition.json",
            Method::GET,
            format!("{base}/{ID4}/parkingposition"),
            "",
        ),
        (
            "error_bad_request.json",
            Method::POST,
            format!("{base}/{ID4}/access/unlock"),
            "{}",
        ),
        (
            "error_spin.json",
            Method::POST,
            format!("{base}/{ID4}/access/unlock"),
            r#"{"spin": "0000"}"#,
        ),
    ] {
        let got = answer(&cx, method, &url, &json, body).await;
        assert_shape("vw", name, &got);
    }
}

/// The access job lists a car's recent requests, not every one since the mock started:
/// the oldest go beyond `REQUESTS_KEPT`, and the newest is always there.
#[tokio::test]
async fn the_access_job_lists_a_cars_recent_requests() {
    use keyway_adapter::Sent;

    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = VwAdapter::new(server.url());
    let cx = owner_call(&mock);
    let v = VehicleRef { oem_id: ID4.into() };
    let mut last = None;
    for _ in 0..keyway_vw::mock::REQUESTS_KEPT + 5 {
        last = match adapter.send(&cx, &v, Command::Lock).await.unwrap() {
            Sent::Pending(p) => Some(p.handle),
            other => panic!("{other:?}"),
        };
    }
    let url = format!(
        "{}/vehicle/v1/vehicles/{ID4}/selectivestatus?jobs=access",
        server.url()
    );
    let got = keyway_adapter::mock::shape::answer(&cx, http::Method::GET, &url, &[], "").await;
    let requests = got["access"]["accessStatus"]["requests"]
        .as_array()
        .unwrap();
    assert_eq!(requests.len(), keyway_vw::mock::REQUESTS_KEPT);
    assert_eq!(
        requests.last().unwrap()["requestId"].as_str(),
        last.as_deref()
    );
}
