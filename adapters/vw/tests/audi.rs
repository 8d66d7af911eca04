//! The Audi adapter against its own mock: the shared conformance suite, the device
//! grant as RFC 8628 has it (pending, slow down, approval once, refusal), the GraphQL
//! list's failure, and the mock held to the fixtures' shapes.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::conformance::{Harness, owner_call, run_all};
use keyway_adapter::transport::loopback_http;
use keyway_adapter::{Adapter, Call, OemError, Secret};
use keyway_vw::audi::AudiMock;
use keyway_vw::mock::MockCar;
use keyway_vw::{VwMock, VwMockConfig};
use serde_json::Value;

const CLIENT: &str = "09b6cbec-cd19-4589-82fd-363dfa8c24da@apps_vw-dilab_com";
const Q4: &str = "WAUZZZF40RA000001";
const A6: &str = "WAUZZZF20SN000002";

fn car(vin: &str, model: &str) -> MockCar {
    MockCar::parked(vin, model, 2024, 48.76508, 11.42372)
}

fn mock(interval: Duration) -> AudiMock {
    let mut config = VwMockConfig {
        stage: Duration::from_millis(15),
        cars: vec![car(Q4, "Q4 e-tron"), car(A6, "A6 Avant e-tron")],
        spins: [("owner".to_string(), "8642".to_string())].into(),
        ..VwMockConfig::default()
    };
    config.login.client_id = CLIENT.into();
    AudiMock::new(VwMock::new(config), CLIENT, interval)
}

#[tokio::test]
async fn audi_passes_the_conformance_suite() {
    let mock = mock(Duration::from_secs(5));
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let harness = Harness {
        adapter: Arc::new(keyway_vw::audi::adapter::new(&server.url(), &server.url())),
        mock: Arc::new(mock.clone()),
        http: loopback_http(),
    };
    run_all(&harness).await;
}

async fn form(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_urlencoded::to_string(form).unwrap();
    let req = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bytes::Bytes::from(body))
        .unwrap();
    let resp = loopback_http().send(req).await.unwrap();
    let json = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), json)
}

async fn get(url: &str) -> u16 {
    let req = http::Request::get(url).body(bytes::Bytes::new()).unwrap();
    loopback_http().send(req).await.unwrap().status().as_u16()
}

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 as the identity server plays it for myAudi's client: `authorization_pending`
/// until the owner approves, `slow_down` for a poll inside the interval, the tokens
/// once (a spent device code is unknown), and those tokens open the vehicle list.
#[tokio::test(start_paused = true)]
async fn the_device_grant_answers_pending_slow_down_then_tokens_once() {
    let mock = mock(Duration::from_secs(5));
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = server.url();
    let (status, started) = form(
        &format!("{base}/oidc/v1/device_authorization"),
        &[("client_id", CLIENT), ("scope", "openid")],
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["interval"], 5);
    let code = started["device_code"].as_str().unwrap().to_string();
    let poll = [
        ("grant_type", GRANT),
        ("device_code", code.as_str()),
        ("client_id", CLIENT),
    ];
    let token = format!("{base}/oidc/v1/token");
    let (status, pending) = form(&token, &poll).await;
    assert_eq!(
        (status, pending["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (_, early) = form(&token, &poll).await;
    assert_eq!(early["error"], "slow_down", "a poll inside the interval");
    let page = started["verification_uri_complete"].as_str().unwrap();
    assert_eq!(get(page).await, 200);
    // The interval grew by 5 s with the `slow_down`.
    tokio::time::advance(Duration::from_secs(6)).await;
    let (_, still) = form(&token, &poll).await;
    assert_eq!(still["error"], "slow_down", "10 s now");
    tokio::time::advance(Duration::from_secs(16)).await;
    let (status, tokens) = form(&token, &poll).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
    let (_, spent) = form(&token, &poll).await;
    assert_eq!(
        spent["error"], "invalid_grant",
        "a device code is spent by its grant"
    );
    let cx = Call {
        http: loopback_http(),
        token: Secret::new(tokens["access_token"].as_str().unwrap()),
        command_id: None,
        account: None,
        pin: None,
    };
    let adapter = keyway_vw::audi::adapter::new(&base, &base);
    assert_eq!(adapter.vehicles(&cx).await.unwrap().len(), 2);
}

/// An owner who refuses at the page ends the grant (`access_denied`); another client
/// is not served.
#[tokio::test]
async fn a_refused_device_grant_is_access_denied() {
    let mock = mock(Duration::from_secs(0));
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = server.url();
    let (status, _) = form(
        &format!("{base}/oidc/v1/device_authorization"),
        &[("client_id", "someone-else"), ("scope", "openid")],
    )
    .await;
    assert_eq!(status, 401);
    let (_, started) = form(
        &format!("{base}/oidc/v1/device_authorization"),
        &[("client_id", CLIENT), ("scope", "openid")],
    )
    .await;
    let page = started["verification_uri_complete"].as_str().unwrap();
    assert_eq!(get(&format!("{page}&consent=deny")).await, 200);
    let code = started["device_code"].as_str().unwrap();
    let (_, denied) = form(
        &format!("{base}/oidc/v1/token"),
        &[
            ("grant_type", GRANT),
            ("device_code", code),
            ("client_id", CLIENT),
        ],
    )
    .await;
    assert_eq!(denied["error"], "access_denied");
}

/// A token the backend does not know: GraphQL's `UNAUTHENTICATED` in a `200`, read as
/// a stale token (keyway refreshes), not as an owner without cars.
#[tokio::test]
async fn a_refused_vehicle_list_is_an_error_not_an_empty_garage() {
    let mock = mock(Duration::from_secs(5));
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let adapter = keyway_vw::audi::adapter::new(&server.url(), &server.url());
    let mut cx = owner_call(&mock);
    cx.token = Secret::new("not-a-token");
    let listed = adapter.vehicles(&cx).await;
    assert!(
        matches!(listed, Err(OemError::Unauthorized { .. })),
        "{listed:?}"
    );
}

/// The mock answers in the shapes of `fixtures/audi/` (see its SOURCES.md).
#[tokio::test]
async fn the_mock_answers_in_the_fixtures_shapes() {
    use http::Method;
    use keyway_adapter::mock::shape::{answer, assert_shape};

    let mock = mock(Duration::from_secs(5));
    let server = mock.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = server.url();
    let json = [("content-type", "application/json")];
    let query: &'static str =
        serde_json::json!({ "query": keyway_vw::audi::adapter::USER_VEHICLES })
            .to_string()
            .leak();
    let cx = owner_call(&mock);
    let got = answer(
        &cx,
        Method::POST,
        &format!("{base}/vgql/v1/graphql"),
        &json,
        query,
    )
    .await;
    assert_shape("audi", "user_vehicles.json", &got);
    let mut stranger = owner_call(&mock);
    stranger.token = Secret::new("not-a-token");
    let got = answer(
        &stranger,
        Method::POST,
        &format!("{base}/vgql/v1/graphql"),
        &json,
        query,
    )
    .await;
    assert_shape("audi", "user_vehicles_error.json", &got);
    let (_, started) = form(
        &format!("{base}/oidc/v1/device_authorization"),
        &[("client_id", CLIENT), ("scope", "openid")],
    )
    .await;
    assert_shape("audi", "device_authorization.json", &started);
    let code = started["device_code"].as_str().unwrap();
    let (_, pending) = form(
        &format!("{base}/oidc/v1/token"),
        &[
            ("grant_type", GRANT),
            ("device_code", code),
            ("client_id", CLIENT),
        ],
    )
    .await;
    assert_shape("audi", "device_pending.json", &pending);
}
