//! Škoda end to end: the account links through the app's own login with keyway's PKCE
//! pair (the redirect to `myskoda://redirect/login/` handed over at
//! `POST /v1/oauth/callback`; the mock checks the verifier), the owner's S-PIN is checked
//! before a command, a command the backend takes without ever reporting its outcome is
//! decided from the car's lock state read a state lag after the send — `succeeded` only
//! then —, an expired token refreshes with the backend's JSON `{"token"}`, and a car
//! whose ACCESS licence expired is a certain `not_capable` with nothing sent.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use keyway_adapter::mock::MockControl;
use keyway_adapter::transport::loopback_http;
use serde_json::{Value, json};

use crate::common::Env;

const ENYAQ: &str = "TMBJB9NY5RF000001";

/// Waits (bounded) until the backend's lagging view of the car shows `locked`.
async fn backend_shows(env: &Env, vin: &str, locked: bool) {
    let skoda: &keyway_skoda::SkodaMock = env.demo.mock("skoda");
    for _ in 0..400 {
        if skoda
            .garage
            .view(vin)
            .is_some_and(|(c, _)| c.locked == locked)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the backend never showed {vin} locked={locked}");
}

/// Unlocks the Enyaq under `key` without waiting: the command's id (taken, `202`).
async fn unlock_taken(env: &Env, key: &str) -> String {
    let car = env.by_vin(ENYAQ).id.to_string();
    let started = env
        .send(
            Method::POST,
            &format!("/v1/vehicles/{car}/unlock"),
            Some(&env.demo.token),
            &[("idempotency-key", key)],
            None,
        )
        .await;
    assert_eq!(started.status, 202, "{:#}", started.json);
    started.json["id"].as_str().unwrap().to_string()
}

/// Reads command `id` until it is no longer `pending` (bounded): the last view.
async fn settled(env: &Env, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = env
            .get(&format!("/v1/commands/{id}"), Some(&env.demo.token))
            .await
            .json;
        if last["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test]
async fn a_skoda_links_with_pkce_and_a_command_is_decided_from_the_car() {
    let env = Env::builder().mocks(&["skoda"]).start().await;
    // The demo linked it through the app login (the mock checked the PKCE verifier).
    let listed = env.get("/v1/accounts", Some(&env.demo.token)).await;
    let account = &listed.json["accounts"][0];
    assert_eq!(account["oem"], "skoda", "{:#}", listed.json);
    assert_eq!(account["pin"], "set");
    assert_eq!(account["vehicle_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.requests("skoda", Some("POST"), "/exchange-authorization-code"),
        1
    );

    // An unlock is taken with the S-PIN checked first; the backend says nothing more.
    let skoda: &keyway_skoda::SkodaMock = env.demo.mock("skoda");
    let car = env.by_vin(ENYAQ).id.to_string();
    let id = unlock_taken(&env, "skoda-1").await;
    backend_shows(&env, ENYAQ, false).await;
    assert_eq!(env.requests("skoda", Some("POST"), "/spin/verify"), 1);
    assert_eq!(
        env.requests("skoda", Some("POST"), &format!("{ENYAQ}/unlock")),
        1
    );
    // The car did it and the backend shows it, but a read within the declared state lag
    // could be older than the send: no verdict yet.
    let early = env
        .get(&format!("/v1/commands/{id}"), Some(&env.demo.token))
        .await;
    assert_eq!(early.json["status"], "pending", "{:#}", early.json);
    // Past the state lag by keyway's clock, the next read decides.
    env.demo.gateway.clock.advance(Duration::from_secs(31));
    let done = settled(&env, &id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert!(!skoda.locked(ENYAQ));
    assert_eq!(
        env.requests("skoda", Some("POST"), &format!("{ENYAQ}/unlock")),
        1,
        "sent once"
    );

    // An expired access token is refreshed with `{"token"}` as JSON, as the app does.
    skoda.expire_access_tokens();
    let read = env
        .send(
            Method::GET,
            &format!("/v1/vehicles/{car}/location"),
            Some(&env.demo.token),
            &[("cache-control", "max-age=0")],
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{:#}", read.json);
    assert_eq!(
        env.requests("skoda", Some("POST"), "/authentication/refresh-token"),
        1
    );

    // The Octavia's licence expired: keyway shows it, and refuses before sending.
    let octavia = keyway_skoda::demo::READ_ONLY;
    let shown = env
        .get(
            &format!("/v1/vehicles/{}", env.by_vin(octavia).id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(shown.json["capabilities"], json!(["locate", "security"]));
    let no = env.command_waiting(octavia, "unlock", "skoda-2").await;
    assert_eq!(no.status, 422, "{:#}", no.json);
    assert_eq!(no.json["code"], "not_capable");
    assert_eq!(
        env.requests("skoda", Some("POST"), &format!("{octavia}/unlock")),
        0
    );
}

/// A wrong S-PIN is named at the check, and nothing reaches the car.
#[tokio::test]
async fn a_wrong_s_pin_is_refused_at_the_check() {
    let env = Env::builder().mocks(&["skoda"]).start().await;
    let account_id = env.by_vin(ENYAQ).account_id.clone();
    let set = env
        .send(
            Method::PUT,
            &format!("/v1/accounts/{account_id}/pin"),
            Some(&env.demo.token),
            &[("content-type", "application/json")],
            Some(br#"{"pin": "0000"}"#.to_vec()),
        )
        .await;
    assert_eq!(set.status, 204);
    let wrong = env.command_waiting(ENYAQ, "unlock", "skoda-3").await;
    assert_eq!(wrong.json["code"], "pin_rejected", "{:#}", wrong.json);
    assert!(wrong.text.contains("2 tries left"), "{:#}", wrong.json);
    assert!(!wrong.text.contains("0000"));
    assert_eq!(env.requests("skoda", Some("POST"), "/vehicle-access/"), 0);
    let skoda: &keyway_skoda::SkodaMock = env.demo.mock("skoda");
    assert!(skoda.locked(ENYAQ));
}

/// The link as an owner does it: the login page carries keyway's state and challenge,
/// the mock refuses a code traded without the matching verifier — keyway's is the one
/// sealed with the link.
#[tokio::test]
async fn the_login_carries_keyways_state_and_challenge() {
    let env = Env::builder().mocks(&["skoda"]).start().await;
    let started = env
        .post("/v1/accounts/skoda/authorize", &env.demo.token, &[])
        .await;
    assert_eq!(started.status, 201, "{:#}", started.json);
    assert_eq!(started.json["app_redirect"], "myskoda://redirect/login/");
    let url = started.json["authorization_url"].as_str().unwrap();
    assert!(
        url.contains("code_challenge=") && url.contains("state="),
        "{url}"
    );
    let resp = loopback_http()
        .send(http::Request::get(url).body(Bytes::new()).unwrap())
        .await
        .unwrap();
    let redirect = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        redirect.starts_with("myskoda://redirect/login/?"),
        "{redirect}"
    );
    let linked = env
        .send(
            Method::POST,
            "/v1/oauth/callback",
            Some(&env.demo.token),
            &[("content-type", "application/json")],
            Some(json!({ "redirect_url": redirect }).to_string().into_bytes()),
        )
        .await;
    assert_eq!(linked.status, 200, "{:#}", linked.json);
    assert_eq!(linked.json["account"]["oem"], "skoda");
}

/// A command Škoda took that the car never ran (it refuses remote access): the backend
/// says nothing, the car's lock state never shows it, so once keyway can no longer wait
/// the command is `unknown` — never `failed`, which only the OEM's word could make it,
/// and never `succeeded`.
#[tokio::test]
async fn a_taken_command_the_car_never_runs_ends_unknown() {
    let env = Env::builder().mocks(&["skoda"]).start().await;
    let skoda: &keyway_skoda::SkodaMock = env.demo.mock("skoda");
    skoda.set_refusing(ENYAQ, true);
    let id = unlock_taken(&env, "skoda-4").await;
    // Once it was sent: past the command's whole timeout by keyway's clock.
    for _ in 0..400 {
        if env.requests("skoda", Some("POST"), &format!("{ENYAQ}/unlock")) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.demo.gateway.clock.advance(Duration::from_secs(3600));
    let last = settled(&env, &id).await;
    assert_eq!(last["status"], "unknown", "{last:#}");
    assert!(
        last["error"].to_string().contains("reports no outcome"),
        "{last:#}"
    );
    assert!(skoda.locked(ENYAQ), "the car stayed locked");
    assert_eq!(
        env.requests("skoda", Some("POST"), &format!("{ENYAQ}/unlock")),
        1
    );
}
