//! Audi end to end: the account links with RFC 8628's device grant — keyway asks the
//! identity server for a user code, the owner approves it at the OEM's page, the
//! caller polls `POST /v1/oauth/device` and keyway polls the OEM, never sooner than
//! the OEM's interval —; the state is the link's credential, for the tenant that
//! started it only and spent by the grant; a refusal ends the link; the linked car
//! unlocks through the BFF with the owner's S-PIN, as a Volkswagen does.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use keyway_adapter::mock::{Action, Fault};
use keyway_adapter::transport::loopback_http;
use serde_json::{Value, json};

use crate::common::{Answer, Env};

const Q4: &str = "WAUZZZF40RA000001";

async fn poll(env: &Env, token: &str, state: &str) -> Answer {
    env.send(
        Method::POST,
        "/v1/oauth/device",
        Some(token),
        &[("content-type", "application/json")],
        Some(json!({ "state": state }).to_string().into_bytes()),
    )
    .await
}

async fn open(url: &str) -> u16 {
    loopback_http()
        .send(http::Request::get(url).body(Bytes::new()).unwrap())
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Starts a device link for the demo tenant: the answer's JSON.
async fn start(env: &Env) -> Value {
    let started = env
        .post("/v1/accounts/audi/authorize", &env.demo.token, &[])
        .await;
    assert_eq!(started.status, 201, "{:#}", started.json);
    started.json
}

/// Starts a device link the owner approves at once, whose next poll the OEM answers
/// only a second later: the link's state.
async fn approved_slowly(env: &Env) -> String {
    let started = start(env).await;
    let url = started["authorization_url"].as_str().unwrap();
    assert_eq!(open(url).await, 200);
    let audi: &keyway_vw::audi::AudiMock = env.demo.mock("audi");
    let slow = Action::Latency {
        ms: 1000,
        min_ms: None,
        max_ms: None,
    };
    audi.bff
        .faults
        .add(Fault::on("/oidc/v1/token", slow).times(1));
    started["state"].as_str().unwrap().to_string()
}

/// The demo linked its Audi through the device grant, and its car reads.
#[tokio::test]
async fn the_demo_links_audi_with_the_device_grant() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    let car = env.by_vin(Q4).id.to_string();
    let read = env
        .get(
            &format!("/v1/vehicles/{car}/security"),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(read.status, 200, "{:#}", read.json);
    assert_eq!(
        env.requests("audi", Some("POST"), "/oidc/v1/device_authorization"),
        1
    );
    assert_eq!(env.requests("audi", Some("POST"), "/vgql/v1/graphql"), 1);
}

/// The link's start shows the owner a code and the OEM's page; polls before the owner
/// approved are `202` with `Retry-After`, and one inside the interval never reaches
/// the OEM; once approved, the poll links the account, and the state is spent.
#[tokio::test]
async fn a_device_link_is_pending_until_the_owner_approves_then_links_once() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    let started = start(&env).await;
    let device = &started["device"];
    let code = device["user_code"].as_str().unwrap();
    assert_eq!(code.len(), 9, "{device}");
    assert!(
        device["verification_uri"]
            .as_str()
            .unwrap()
            .contains("/__mock/device")
    );
    assert_eq!(device["interval_s"], 1);
    assert!(started["app_redirect"].is_null());
    let url = started["authorization_url"].as_str().unwrap().to_string();
    assert!(url.contains(code), "{url}");
    let state = started["state"].as_str().unwrap().to_string();
    let token_polls = || env.requests("audi", Some("POST"), "/oidc/v1/token");
    let before = token_polls();

    let first = poll(&env, &env.demo.token, &state).await;
    assert_eq!(first.status, 202, "{:#}", first.json);
    assert_eq!(first.json["status"], "pending");
    assert_eq!(first.headers["retry-after"], "1");
    assert_eq!(token_polls(), before + 1, "the first poll asks the OEM");
    let early = poll(&env, &env.demo.token, &state).await;
    assert_eq!(early.status, 202);
    assert_eq!(
        token_polls(),
        before + 1,
        "a poll inside the interval does not"
    );

    assert_eq!(
        open(&url).await,
        200,
        "the owner approves at the OEM's page"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let linked = poll(&env, &env.demo.token, &state).await;
    assert_eq!(linked.status, 200, "{:#}", linked.json);
    assert_eq!(linked.json["account"]["oem"], "audi");
    assert_eq!(
        linked.json["account"]["vehicle_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let again = poll(&env, &env.demo.token, &state).await;
    assert_eq!(again.status, 404, "the state is spent: {:#}", again.json);
}

/// Two polls at once (a client's retry racing its first try): one asks the OEM, the
/// other waits its turn (`202`) instead of finding the link taken; the link happens
/// once.
#[tokio::test]
async fn two_polls_at_once_link_once_and_neither_finds_the_link_gone() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    // The OEM takes a second to answer the poll that asks: the two overlap.
    let state = approved_slowly(&env).await;
    let (a, b) = tokio::join!(
        poll(&env, &env.demo.token, &state),
        poll(&env, &env.demo.token, &state)
    );
    let mut codes = [a.status.as_u16(), b.status.as_u16()];
    codes.sort_unstable();
    assert_eq!(codes, [200, 202], "{:#} {:#}", a.json, b.json);
    let accounts = env.get("/v1/accounts", Some(&env.demo.token)).await;
    let audi = accounts.json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["oem"] == "audi")
        .count();
    assert_eq!(
        audi, 1,
        "the relink replaced the demo's account: one Audi account"
    );
}

/// Another tenant that learned the state cannot poll the link (it finds none), and the
/// link stays for the tenant that started it.
#[tokio::test]
async fn another_tenant_cannot_finish_a_device_link() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    let started = start(&env).await;
    let state = started["state"].as_str().unwrap().to_string();
    assert_eq!(
        open(started["authorization_url"].as_str().unwrap()).await,
        200
    );
    let stranger = env.token_as("other-service", &["accounts:write"]);
    let theirs = poll(&env, &stranger, &state).await;
    assert_eq!(theirs.status, 404, "{:#}", theirs.json);
    let ours = poll(&env, &env.demo.token, &state).await;
    assert_eq!(ours.status, 200, "{:#}", ours.json);
}

/// The owner refuses at the OEM's page: the poll says `authorization_denied` with the
/// OEM's `access_denied`, and the link is over.
#[tokio::test]
async fn a_refused_device_link_is_authorization_denied() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    let started = start(&env).await;
    let state = started["state"].as_str().unwrap().to_string();
    let url = format!(
        "{}&consent=deny",
        started["authorization_url"].as_str().unwrap()
    );
    assert_eq!(open(&url).await, 200);
    let refused = poll(&env, &env.demo.token, &state).await;
    assert_eq!(refused.status, 403, "{:#}", refused.json);
    assert_eq!(refused.json["code"], "authorization_denied");
    assert_eq!(refused.json["oauth_error"], "access_denied");
    let again = poll(&env, &env.demo.token, &state).await;
    assert_eq!(again.status, 404);
}

/// A poll for a link that is not a device link finds no device link (`404`, as any
/// unknown state; schemathesis's stateful phase chains these), and that link is left
/// to finish its own way.
#[tokio::test]
async fn a_code_flow_link_is_not_polled() {
    let env = Env::builder().mocks(&["audi", "bmw"]).start().await;
    let started = env
        .post("/v1/accounts/bmw/authorize", &env.demo.token, &[])
        .await;
    let state = started.json["state"].as_str().unwrap().to_string();
    let polled = poll(&env, &env.demo.token, &state).await;
    assert_eq!(polled.status, 404, "{:#}", polled.json);
    assert_eq!(polled.json["code"], "not_found");
    assert!(
        polled.json["detail"].as_str().unwrap().contains("redirect"),
        "{:#}",
        polled.json
    );
}

/// The linked Audi unlocks through the BFF with the owner's S-PIN given at the link, as
/// a Volkswagen does: `succeeded` on the backend's word, sent once.
#[tokio::test]
async fn an_audi_unlocks_through_the_bff_with_the_spin() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    let car = env.by_vin(Q4).id.to_string();
    let done = env
        .send(
            Method::POST,
            &format!("/v1/vehicles/{car}/unlock"),
            Some(&env.demo.token),
            &[("prefer", "wait=30")],
            None,
        )
        .await;
    assert_eq!(done.status, 200, "{:#}", done.json);
    assert_eq!(done.json["status"], "succeeded", "{:#}", done.json);
    assert_eq!(env.requests("audi", Some("POST"), "/access/unlock"), 1);
}

/// The id of the tenant's Audi account.
async fn audi_account(env: &Env) -> Option<String> {
    let accounts = env.get("/v1/accounts", Some(&env.demo.token)).await;
    accounts.json["accounts"]
        .as_array()?
        .iter()
        .find(|a| a["oem"] == "audi")
        .and_then(|a| a["id"].as_str())
        .map(str::to_string)
}

/// A caller that gives up while its poll is asking the OEM (its connection closed)
/// does not leave the link taken: the poll finishes in its own task, and the owner's
/// approval links the account.
#[tokio::test]
async fn a_caller_gone_mid_poll_does_not_lose_the_link() {
    let env = Env::builder().mocks(&["audi"]).start().await;
    let before = audi_account(&env).await.expect("the demo's Audi account");
    let state = approved_slowly(&env).await;
    let gone = tokio::time::timeout(
        Duration::from_millis(200),
        poll(&env, &env.demo.token, &state),
    )
    .await;
    assert!(gone.is_err(), "the caller gave up before the OEM answered");
    let mut after = before.clone();
    for _ in 0..50 {
        after = audi_account(&env).await.unwrap_or_default();
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(after, before, "the poll finished and linked the account");
}
