//! Volkswagen end to end: the account links through the app's own login (the redirect to
//! `weconnect://authenticated` is handed over at `POST /v1/oauth/callback`, by the tenant
//! that started the link and no other), lock and unlock go to the car with the owner's
//! S-PIN, a car without an active access capability is a certain `not_capable` with
//! nothing sent, and a refused S-PIN is never sent again.

use bytes::Bytes;
use hyper::Method;
use keyway_adapter::mock::MockControl;
use keyway_adapter::transport::loopback_http;
use serde_json::json;

use crate::common::{Answer, Env};

const ID4: &str = "WVWZZZE1ZNP000001";

async fn hand_over(env: &Env, token: &str, redirect: &str) -> Answer {
    env.send(
        Method::POST,
        "/v1/oauth/callback",
        Some(token),
        &[("content-type", "application/json")],
        Some(json!({ "redirect_url": redirect }).to_string().into_bytes()),
    )
    .await
}

/// Starts a link as `token` and logs the owner in at the mock: the URL the login ends at.
async fn log_in(env: &Env, token: &str) -> String {
    let started = env.post("/v1/accounts/vw/authorize", token, &[]).await;
    assert_eq!(started.status, 201, "{:#}", started.json);
    assert_eq!(started.json["app_redirect"], "weconnect://authenticated");
    let url = started.json["authorization_url"].as_str().unwrap();
    let resp = loopback_http()
        .send(http::Request::get(url).body(Bytes::new()).unwrap())
        .await
        .unwrap();
    let redirect = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        redirect.starts_with("weconnect://authenticated#"),
        "{redirect}"
    );
    redirect
}

#[tokio::test]
async fn a_volkswagen_links_through_the_app_login_and_locks_with_the_owners_s_pin() {
    let env = Env::builder().mocks(&["vw"]).start().await;
    // The demo linked it as an owner does, S-PIN included.
    let listed = env.get("/v1/accounts", Some(&env.demo.token)).await;
    let account = &listed.json["accounts"][0];
    assert_eq!(account["oem"], "vw", "{:#}", listed.json);
    assert_eq!(account["pin"], "set");
    assert!(!listed.text.contains(keyway_vw::demo::OWNER_SPIN));
    assert_eq!(account["vehicle_ids"].as_array().unwrap().len(), 2);

    let vw: &keyway_vw::VwMock = env.demo.mock("vw");
    let a = env.command_waiting(ID4, "unlock", "vw-1").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    assert!(!vw.locked(ID4), "the car is unlocked");
    assert_eq!(
        env.requests("vw", Some("POST"), &format!("{ID4}/access/unlock")),
        1
    );
    let a = env.command_waiting(ID4, "lock", "vw-2").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    assert!(vw.locked(ID4));

    // An expired access token is refreshed at the BFF's token path, as the app does.
    vw.expire_access_tokens();
    let car = &env.by_vin(ID4).id;
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
    assert_eq!(env.requests("vw", Some("POST"), "/login/v1/idk/token"), 1);

    // The Golf's access capability is not active: the vehicle list said so, keyway shows
    // it, and a command is a certain no before anything is sent.
    let golf = keyway_vw::demo::READ_ONLY;
    let shown = env
        .get(
            &format!("/v1/vehicles/{}", env.by_vin(golf).id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(
        shown.json["capabilities"],
        json!(["locate", "security"]),
        "{:#}",
        shown.json
    );
    let id4 = env
        .get(
            &format!("/v1/vehicles/{}", env.by_vin(ID4).id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(
        id4.json["capabilities"],
        json!(["locate", "security", "lock", "unlock"])
    );
    let no = env.command_waiting(golf, "unlock", "vw-3").await;
    assert_eq!(no.status, 422, "{:#}", no.json);
    assert_eq!(no.json["code"], "not_capable");
    assert!(
        no.json["command_status"].is_null(),
        "refused before any command: {:#}",
        no.json
    );
    assert_eq!(
        env.requests("vw", Some("POST"), &format!("{golf}/access")),
        0
    );
    assert!(vw.locked(golf));

    // A wrong S-PIN is refused once, and not sent again until replaced.
    let account_id = env.by_vin(ID4).account_id.clone();
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
    for key in ["vw-4", "vw-5"] {
        let wrong = env.command_waiting(ID4, "unlock", key).await;
        assert_eq!(wrong.json["code"], "pin_rejected", "{:#}", wrong.json);
        assert_eq!(wrong.json["account_id"], account_id.as_str());
        assert!(!wrong.text.contains("0000"));
    }
    assert_eq!(vw.wrong_spins(vw.oauth.default_account()), 1);
    assert!(vw.locked(ID4), "the car stayed locked");
}

#[tokio::test]
async fn another_tenant_cannot_finish_a_link_it_did_not_start() {
    let env = Env::builder().mocks(&["vw"]).start().await;
    let owner = env.demo.token.clone();
    let other = env.token_as("other-service", &["accounts:write"]);

    // Not an app login's redirect at all, and no caller: refused before any link.
    let stray = hand_over(&env, &owner, "https://example.test/#state=x&code=y").await;
    stray.assert_problem(400, "invalid_request");
    let long = format!("weconnect://authenticated#state={}", "x".repeat(16_400));
    hand_over(&env, &owner, &long)
        .await
        .assert_problem(400, "invalid_request");
    let redirect = log_in(&env, &owner).await;
    let anonymous = env
        .send(
            Method::POST,
            "/v1/oauth/callback",
            None,
            &[("content-type", "application/json")],
            Some(json!({ "redirect_url": redirect }).to_string().into_bytes()),
        )
        .await;
    assert_eq!(anonymous.status, 401, "{:#}", anonymous.json);

    // Another tenant holding the redirect finishes nothing; the state is spent.
    let theirs = hand_over(&env, &other, &redirect).await;
    theirs.assert_problem(404, "not_found");
    let spent = hand_over(&env, &owner, &redirect).await;
    spent.assert_problem(404, "not_found");
    let listed = env.get("/v1/accounts", Some(&other)).await;
    assert_eq!(listed.json["accounts"], json!([]), "{:#}", listed.json);

    // The owner's tenant starts again and finishes its own link.
    let redirect = log_in(&env, &owner).await;
    let linked = hand_over(&env, &owner, &redirect).await;
    assert_eq!(linked.status, 200, "{:#}", linked.json);
    assert_eq!(linked.json["account"]["oem"], "vw");
    assert_eq!(
        linked.json["account"]["vehicle_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The owner declining at the login is the OEM's answer, named.
    let started = env.post("/v1/accounts/vw/authorize", &owner, &[]).await;
    let url = format!(
        "{}&consent=deny",
        started.json["authorization_url"].as_str().unwrap()
    );
    let resp = loopback_http()
        .send(http::Request::get(&url).body(Bytes::new()).unwrap())
        .await
        .unwrap();
    let declined = hand_over(&env, &owner, resp.headers()["location"].to_str().unwrap()).await;
    declined.assert_problem(403, "authorization_denied");
    assert_eq!(declined.json["oauth_error"], "access_denied");
}
