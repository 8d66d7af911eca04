//! Smartcar through API v3 (`api_version = "3"`) end to end: Connect's redirect names the
//! owner and keyway links that owner only once Smartcar confirms a connection made during
//! the link; every call then carries the application's own token (granted for the client
//! credentials) with the owner in `sc-user-id`, never a per-owner token.

use keyway_adapter::mock::owner_id;
use keyway_adapter::transport::loopback_http;
use keyway_smartcar::mock::vehicle_id;

use crate::common::Env;

async fn v3() -> Env {
    Env::builder()
        .mocks(&["smartcar"])
        .configure(|c| {
            if let Some(o) = c.oems.get_mut("smartcar") {
                o.api_version = Some("3".into());
            }
        })
        .start()
        .await
}

fn mock(env: &Env) -> &keyway_smartcar::SmartcarMock {
    env.demo.mock("smartcar")
}

#[tokio::test]
async fn smartcar_v3_links_by_the_owner_and_commands_with_the_application_token() {
    let env = v3().await;
    let listed = env.get("/v1/accounts", Some(&env.demo.token)).await;
    let account = &listed.json["accounts"][0];
    assert_eq!(account["oem"], "smartcar", "{:#}", listed.json);
    assert_eq!(account["vehicle_ids"].as_array().unwrap().len(), 3);
    // No code was exchanged: the account's credential is the owner Connect named.
    let m = mock(&env);
    assert_eq!(m.journal.count("POST", "/oauth/token"), 0);
    assert!(m.journal.count("POST", "/oauth2/token") >= 1);

    let jaguar = vehicle_id("SADHA2B18N1000001");
    let a = env.command_waiting(&jaguar, "unlock", "sc3-1").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    assert!(!m.car(&jaguar).unwrap().locked, "the car is unlocked");
    let a = env.command_waiting(&jaguar, "lock", "sc3-2").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    assert!(m.car(&jaguar).unwrap().locked);
    let path = format!("/v3/vehicles/{jaguar}/commands/security/unlock");
    assert_eq!(m.journal.count("POST", &path), 1, "sent once");
    assert_eq!(m.journal.count("GET", "/v2.0/"), 0, "nothing went to v2.0");

    let car = &env.by_vin(&jaguar).id;
    let read = env
        .get(
            &format!("/v1/vehicles/{car}/location"),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(read.status, 200, "{:#}", read.json);
    assert_eq!(read.json["latitude"], 51.50735);

    // The make Smartcar cannot command answers so, before anything reaches the car.
    let toyota = vehicle_id(keyway_smartcar::demo::READ_ONLY);
    let a = env.command_waiting(&toyota, "unlock", "sc3-3").await;
    a.assert_problem(422, "not_capable");
}

/// A caller presenting someone else's Smartcar user id with its own link gets nothing:
/// the owner did not connect during that link. A real login through Connect links.
#[tokio::test]
async fn a_callback_naming_an_owner_who_did_not_connect_during_the_link_links_nothing() {
    let env = v3().await;
    let m = mock(&env);
    m.oauth.set_connected_at(
        "demo-owner",
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let intruder = env.token_as("intruder-svc", &["accounts:write", "vehicles:read"]);
    let started = env
        .post("/v1/accounts/smartcar/authorize", &intruder, &[])
        .await;
    assert_eq!(started.status, 201, "{:#}", started.json);
    let url = started.json["authorization_url"].as_str().unwrap();
    let state = url
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let forged = format!(
        "/v1/oauth/callback?state={state}&code=anything&user_id={}",
        owner_id("demo-owner")
    );
    let answer = env.get(&forged, None).await;
    answer.assert_problem(403, "authorization_denied");
    assert_eq!(answer.json["oem"], "smartcar", "{:#}", answer.json);
    let theirs = env.get("/v1/accounts", Some(&intruder)).await;
    assert_eq!(theirs.json["accounts"].as_array().unwrap().len(), 0);
    // The state is spent.
    env.get(&forged, None)
        .await
        .assert_problem(404, "not_found");

    // The owner logging in through Connect during a link links it.
    let started = env
        .post("/v1/accounts/smartcar/authorize", &intruder, &[])
        .await;
    let url = started.json["authorization_url"].as_str().unwrap();
    let browser = loopback_http();
    let login = browser
        .send(http::Request::get(url).body(bytes::Bytes::new()).unwrap())
        .await
        .unwrap();
    let back = login.headers()["location"].to_str().unwrap().to_string();
    assert!(back.contains("user_id="), "{back}");
    let done = browser
        .send(http::Request::get(&back).body(bytes::Bytes::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        200,
        "{:?}",
        String::from_utf8_lossy(done.body())
    );
    let theirs = env.get("/v1/accounts", Some(&intruder)).await;
    assert_eq!(theirs.json["accounts"].as_array().unwrap().len(), 1);
}
