//! The Škoda adapter against its own mock: the shared conformance suite, the app login
//! with PKCE and the JSON refresh, a car without an active ACCESS capability, a refused
//! S-PIN, and the mock held to the fixtures' shapes.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, owner_call, run_all};
use keyway_adapter::login::redirect_params;
use keyway_adapter::transport::loopback_http;
use keyway_adapter::{Adapter, Command, LinkSecrets, OemError, Secret, Sent, VehicleRef};
use keyway_skoda::mock::MockCar;
use keyway_skoda::{SkodaAdapter, SkodaMock, SkodaMockConfig};

const SPIN: &str = "2468";
const ENYAQ: &str = "TMBJB9NY5RF000001";
const OCTAVIA: &str = "TMBJJ7NX1PY000002";

fn car(vin: &str, model: &str, lat: f64, lon: f64) -> MockCar {
    MockCar::parked(vin, model, 2024, lat, lon)
}

fn mock(incapable: &[&str]) -> SkodaMock {
    SkodaMock::new(SkodaMockConfig {
        stage: Duration::from_millis(15),
        cars: vec![
            car(ENYAQ, "Enyaq", 50.413513, 14.905102),
            car(OCTAVIA, "Octavia", 50.08804, 14.42076),
        ],
        incapable: incapable.iter().map(|v| v.to_string()).collect(),
        spins: [("owner".to_string(), SPIN.to_string())].into(),
        ..SkodaMockConfig::default()
    })
}

#[tokio::test]
async fn skoda_passes_the_conformance_suite() {
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(SkodaAdapter::new(server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

/// The app login as myskoda does it, with keyway's state and PKCE pair: the login page
/// is built locally, the redirect to `myskoda://redirect/login/` brings the state back,
/// and the code with the right verifier is traded once; a wrong verifier is refused.
/// The refresh is the profile's JSON `{"token"}`.
#[tokio::test]
async fn the_app_login_trades_the_code_with_its_verifier_once() {
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = SkodaAdapter::new(server.url());
    let http = loopback_http();
    // RFC 7636 appendix B's verifier and its S256 challenge.
    let verifier = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    let link = LinkSecrets {
        state: Secret::new("st_keyway"),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
    };
    let login = adapter
        .app_login(&http, &server.url(), &link)
        .await
        .unwrap();
    assert!(login.url.contains("/oidc/v1/authorize?"), "{}", login.url);
    assert_eq!(login.state.expose(), "st_keyway");
    let sign_in = |url: &str| {
        let http = http.clone();
        let req = http::Request::get(url).body(bytes::Bytes::new()).unwrap();
        async move {
            let resp = http.send(req).await.unwrap();
            assert_eq!(resp.status(), 302);
            let to = resp.headers()["location"].to_str().unwrap().to_string();
            redirect_params(&to, keyway_skoda::login::REDIRECT_URI).unwrap()
        }
    };
    let params = sign_in(&login.url).await;
    assert_eq!(
        keyway_adapter::login::param(&params, "state"),
        Some("st_keyway")
    );
    let wrong = adapter
        .finish_app_login(
            &http,
            &server.url(),
            &params,
            &Secret::new("not-the-verifier"),
        )
        .await;
    assert!(
        matches!(wrong, Err(OemError::Unauthorized { .. })),
        "{wrong:?}"
    );
    let params = sign_in(&login.url).await;
    let tokens = adapter
        .finish_app_login(&http, &server.url(), &params, &verifier)
        .await
        .unwrap();
    let cx = keyway_adapter::Call {
        http: http.clone(),
        token: tokens.access_token.clone(),
        command_id: None,
        account: None,
        pin: None,
    };
    assert_eq!(adapter.vehicles(&cx).await.unwrap().len(), 2);
    let again = adapter
        .finish_app_login(&http, &server.url(), &params, &verifier)
        .await;
    assert!(
        matches!(again, Err(OemError::Unauthorized { .. })),
        "a code works once: {again:?}"
    );
    // The refresh: `{"token"}` at the profile's token path, new tokens in camel case.
    let refresh = tokens.refresh_token.unwrap();
    let req = http::Request::post(format!(
        "{}{}",
        server.url(),
        keyway_skoda::adapter::INFO.oauth.token_path
    ))
    .header("content-type", "application/json")
    .body(bytes::Bytes::from(
        serde_json::json!({"token": refresh.expose()}).to_string(),
    ))
    .unwrap();
    let resp = http.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let fresh = keyway_adapter::login::read_tokens(&resp).unwrap();
    assert_ne!(
        fresh.refresh_token.unwrap().expose(),
        refresh.expose(),
        "it rotates"
    );
}

/// A car whose ACCESS licence expired is read like any other, and told no before
/// anything is sent: `NotCapable`, certain.
#[tokio::test]
async fn a_car_without_access_is_not_capable_and_nothing_is_sent() {
    let mock = mock(&[OCTAVIA]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = SkodaAdapter::new(server.url());
    let cx = owner_call(&mock);
    let v = VehicleRef {
        oem_id: OCTAVIA.into(),
    };
    assert_eq!(adapter.security(&cx, &v).await.unwrap().locked, Some(true));
    let sent = adapter.send(&cx, &v, Command::Unlock).await;
    assert!(matches!(sent, Err(OemError::NotCapable { .. })), "{sent:?}");
    assert_eq!(mock.journal.count("POST", "/unlock"), 0);
    assert_eq!(mock.journal.count("POST", "/spin/verify"), 0);
}

/// A wrong S-PIN is `PinRejected` with the tries left at the check, and no command is
/// sent; the third locks the owner out, and then even the right one is refused.
#[tokio::test]
async fn a_wrong_spin_is_refused_at_the_check_and_nothing_is_sent() {
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = SkodaAdapter::new(server.url());
    let mut cx = owner_call(&mock);
    cx.pin = Some(Secret::new("0000"));
    let v = VehicleRef {
        oem_id: ENYAQ.into(),
    };
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
    assert_eq!(mock.journal.count("POST", "/unlock"), 0);
    assert!(
        mock.garage.car(ENYAQ).unwrap().locked,
        "nothing reached the car"
    );
}

/// A taken command is `Accepted` — the backend says nothing of its outcome — and the car
/// acts later; a command the backend's server fails on (`5xx`) leaves it open.
#[tokio::test]
async fn a_command_is_accepted_and_a_5xx_leaves_it_open() {
    use keyway_adapter::mock::{Action, Fault};
    let mock = mock(&[]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = SkodaAdapter::new(server.url());
    let cx = owner_call(&mock);
    let v = VehicleRef {
        oem_id: ENYAQ.into(),
    };
    assert_eq!(
        adapter.send(&cx, &v, Command::Unlock).await,
        Ok(Sent::Accepted)
    );
    mock.faults.add(
        Fault::on(
            "/vehicle-access/",
            Action::Status {
                status: 502,
                body: None,
                retry_after: None,
            },
        )
        .times(1),
    );
    let failed = adapter.send(&cx, &v, Command::Lock).await;
    assert_eq!(
        failed.map_err(|e| e.delivered()),
        Err(keyway_adapter::Delivered::Unknown)
    );
}

/// The mock answers in the shapes of `fixtures/skoda/` (see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;
    use keyway_adapter::mock::shape::{answer, assert_shape};

    let mock = mock(&[OCTAVIA]);
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cx = owner_call(&mock);
    let api = format!("{}/api", server.url());
    let json = [("content-type", "application/json")];
    for (name, method, url, body) in [
        ("garage.json", Method::GET, format!("{api}/v2/garage"), ""),
        (
            "garage_vehicle.json",
            Method::GET,
            format!("{api}/v2/garage/vehicles/{ENYAQ}"),
            "",
        ),
        (
            "garage_vehicle_no_access.json",
            Method::GET,
            format!("{api}/v2/garage/vehicles/{OCTAVIA}"),
            "",
        ),
        (
            "vehicle_status.json",
            Method::GET,
            format!("{api}/v2/vehicle-status/{ENYAQ}"),
            "",
        ),
        (
            "positions.json",
            Method::GET,
            format!("{api}/v1/maps/positions?vin={ENYAQ}"),
            "",
        ),
        (
            "spin_verify_correct.json",
            Method::POST,
            format!("{api}/v1/spin/verify"),
            r#"{"currentSpin": "2468"}"#,
        ),
        (
            "spin_verify_incorrect.json",
            Method::POST,
            format!("{api}/v1/spin/verify"),
            r#"{"currentSpin": "0000"}"#,
        ),
    ] {
        let got = answer(&cx, method, &url, &json, body).await;
        assert_shape("skoda", name, &got);
    }
}
