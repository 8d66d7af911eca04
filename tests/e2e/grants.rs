//! Delivery grants end to end: the demo gateway and mock OEMs on loopback, a service
//! token (`grants:write`) creating grants and a courier token (`grants:use`) using them.
//! Grant time is moved with the gateway's clock, never by sleeping.

use crate::common;
use crate::common::DemoMocks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use keyway::store::RelockState;
use keyway_adapter::mock::{Action, Fault};
use serde_json::{Value, json};

use common::{Answer, Env, WAIT};

/// The legacy (REST) Tesla: its commands show in the journal by path.
const CAR: &str = "5YJSA1E26JF000004";

async fn env() -> Env {
    Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.grants.tick = Duration::from_millis(10);
            c.grants.relock_backoff = Duration::from_millis(20);
            c.grants.relock_max_attempts = 3;
            c.events.delivery_tick = Duration::from_millis(20);
            c.events.webhook_backoff = Duration::from_millis(20);
            // The test's receivers listen on loopback: an explicit exception.
            c.events.webhook_allow = vec!["127.0.0.1/32".into()];
        })
        .start()
        .await
}

fn courier(env: &Env) -> String {
    env.token_as("courier-17", &["grants:use"])
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn json_post(
    env: &Env,
    path: &str,
    token: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Answer {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    env.send(
        Method::POST,
        path,
        Some(token),
        &h,
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// Creates a grant on the online Tesla for courier-17; `extra` adds or overrides fields.
async fn grant(env: &Env, extra: Value) -> Value {
    let now = env.demo.gateway.grants.clock.now();
    let mut body = json!({
        "vehicle_id": env.by_vin(CAR).id,
        "grantee": "courier-17",
        "not_after": rfc3339(now + time::Duration::minutes(30)),
        "purpose": "parcel 4711",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let a = json_post(env, "/v1/grants", &env.demo.token, body, &[]).await;
    assert_eq!(a.status, 201, "{:#}", a.json);
    a.json
}

async fn unlock(env: &Env, grant: &str, token: &str) -> Answer {
    env.post(&format!("/v1/grants/{grant}/unlock"), token, &[WAIT])
        .await
}

fn locked(env: &Env) -> bool {
    env.demo.tesla().vehicle(CAR).unwrap().locked
}

async fn settled(env: &Env, id: &str) -> keyway::store::GrantRecord {
    env.demo
        .gateway
        .grants
        .wait_relock(id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap()
}

/// Waits (bounded) until an event of `kind` was emitted: events follow the state change
/// they report.
async fn wait_event(env: &Env, kind: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !event_types(env).await.iter().any(|t| t == kind) {
        assert!(tokio::time::Instant::now() < deadline, "no {kind} event");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn event_types(env: &Env) -> Vec<String> {
    env.demo
        .gateway
        .store
        .events_after(&common::DEMO_TENANT.into(), None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_string())
        .collect()
}

/// Concurrent unlocks under one Idempotency-Key (a courier app retrying on a slow
/// network) all get the one unlock, not `grant_exhausted` for all but the first.
#[tokio::test]
async fn concurrent_unlocks_under_one_key_get_the_same_answer() {
    let env = env().await;
    env.demo.tesla().update(CAR, |v| v.locked = true);
    let g = grant(&env, json!({})).await;
    let courier = courier(&env);
    let path = format!("/v1/grants/{}/unlock", g["id"].as_str().unwrap());
    let key = [WAIT, ("idempotency-key", "order-7-unlock")];
    let answers =
        futures_util::future::join_all((0..5).map(|_| env.post(&path, &courier, &key))).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{:#}", a.json);
        assert_eq!(a.json["id"], answers[0].json["id"]);
    }
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        1
    );
}

/// A grant's unlock passes the same abuse guard as a caller's: three unlocks of the car
/// in a minute spend its burst, the grant's unlock is then refused `429` with the
/// limiter's headers, nothing is sent, and the grant keeps its unlock. A replay of an
/// unlock already made is not charged.
#[tokio::test]
async fn a_grants_unlock_passes_the_cars_unlock_guard() {
    let env = env().await;
    let path = format!("/v1/vehicles/{}/unlock", env.by_vin(CAR).id);
    let key = [WAIT, ("idempotency-key", "owner-unlock")];
    for _ in 0..2 {
        assert_eq!(env.post(&path, &env.demo.token, &[WAIT]).await.status, 200);
    }
    assert_eq!(env.post(&path, &env.demo.token, &key).await.status, 200);
    // The replay is the same unlock and spends nothing.
    assert_eq!(env.post(&path, &env.demo.token, &key).await.status, 200);
    let sent = env
        .demo
        .tesla()
        .journal
        .count("POST", "/command/door_unlock");
    assert_eq!(sent, 3);

    let g = grant(&env, json!({})).await;
    let id = g["id"].as_str().unwrap();
    let a = unlock(&env, id, &courier(&env)).await;
    a.assert_problem(429, "rate_limited");
    assert!(
        a.header("ratelimit-policy")
            .unwrap()
            .contains("unlocks_per_vehicle")
    );
    assert!(a.header("retry-after").is_some());
    let journal = env
        .demo
        .tesla()
        .journal
        .count("POST", "/command/door_unlock");
    assert_eq!(journal, sent, "nothing more was sent");
    let seen = env
        .get(&format!("/v1/grants/{id}"), Some(&env.demo.token))
        .await;
    assert_eq!(seen.json["unlocks_used"], 0, "{:#}", seen.json);
    assert_eq!(seen.json["status"], "active");
}

#[tokio::test]
async fn an_unlock_inside_the_window_works_once_then_the_grant_is_exhausted() {
    let env = env().await;
    env.demo.tesla().update(CAR, |v| v.locked = true);
    let g = grant(&env, json!({})).await;
    assert_eq!(g["status"], "active");
    assert_eq!(g["max_unlocks"], 1);
    assert_eq!(g["relock_after_s"], 120);
    let courier = courier(&env);
    let id = g["id"].as_str().unwrap();

    let key = [WAIT, ("idempotency-key", "order-1-unlock")];
    let path = format!("/v1/grants/{id}/unlock");
    let a = env.post(&path, &courier, &key).await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    assert!(!locked(&env), "the car is open");

    // A retry with the same key is the same unlock, not a second one.
    let replay = env.post(&path, &courier, &key).await;
    assert_eq!(replay.json["id"], a.json["id"], "{:#}", replay.json);
    let again = unlock(&env, id, &courier).await;
    again.assert_problem(403, "grant_exhausted");
    assert_eq!(again.json["grant_id"], id);
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        1
    );
    // The key cannot be spent on another grant.
    let other = grant(&env, json!({})).await;
    let other_path = format!("/v1/grants/{}/unlock", other["id"].as_str().unwrap());
    let reused = env.post(&other_path, &courier, &key).await;
    reused.assert_problem(422, "idempotency_key_reused");

    // The grantee sees its grant; the relock is owed.
    let seen = env.get(&format!("/v1/grants/{id}"), Some(&courier)).await;
    assert_eq!(seen.json["status"], "exhausted");
    assert_eq!(seen.json["relock"]["state"], "due");
    // The service lists the car's grants.
    let list = env
        .get(
            &format!("/v1/grants?vehicle_id={}", env.by_vin(CAR).id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(list.json["grants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn before_and_after_the_window_unlocks_are_refused() {
    let env = env().await;
    let courier = courier(&env);
    let now = env.demo.gateway.grants.clock.now();
    let later = grant(
        &env,
        json!({
            "not_before": rfc3339(now + time::Duration::hours(1)),
            "not_after": rfc3339(now + time::Duration::hours(2)),
        }),
    )
    .await;
    assert_eq!(later["status"], "scheduled");
    let early = unlock(&env, later["id"].as_str().unwrap(), &courier).await;
    early.assert_problem(403, "grant_not_active");
    assert!(early.json["not_before"].is_string());

    let g = grant(
        &env,
        json!({ "not_after": rfc3339(now + time::Duration::minutes(10)) }),
    )
    .await;
    env.demo
        .gateway
        .grants
        .clock
        .advance(Duration::from_secs(601));
    let late = unlock(&env, g["id"].as_str().unwrap(), &courier).await;
    late.assert_problem(403, "grant_not_active");
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        0
    );
    // Refusals are audited.
    let refused = env
        .demo
        .gateway
        .store
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.action == "grant.unlock" && r.entry.decision == "refused")
        .count();
    assert_eq!(refused, 2);
}

#[tokio::test]
async fn a_car_moved_outside_the_geofence_is_not_unlocked() {
    let env = env().await;
    let courier = courier(&env);
    let here = env.demo.tesla().vehicle(CAR).unwrap();
    let g = grant(
        &env,
        json!({ "max_unlocks": 2, "geofence": {
            "latitude": here.latitude, "longitude": here.longitude, "radius_m": 100.0,
        }}),
    )
    .await;
    let id = g["id"].as_str().unwrap();
    // The car is driven about 2 km away.
    env.demo.tesla().update(CAR, |v| v.latitude += 0.018);
    let moved = unlock(&env, id, &courier).await;
    moved.assert_problem(403, "outside_geofence");
    let d = moved.json["distance_m"].as_f64().unwrap();
    assert!((1900.0..2100.0).contains(&d), "{d}");
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        0
    );
    // Back where it should be: the unlock works (the refusal cost no unlock).
    env.demo.tesla().update(CAR, |v| v.latitude = here.latitude);
    let a = unlock(&env, id, &courier).await;
    assert_eq!(a.status, 200, "{:#}", a.json);
}

#[tokio::test]
async fn the_car_relocks_at_relock_after_s_and_the_lock_is_read_back() {
    let env = env().await;
    let courier = courier(&env);
    let g = grant(&env, json!({})).await;
    let id = g["id"].as_str().unwrap();
    assert_eq!(unlock(&env, id, &courier).await.status, 200);
    assert!(!locked(&env));
    let grants = &env.demo.gateway.grants;

    grants.clock.advance(Duration::from_secs(119));
    grants.relock_due().await;
    let g1 = env.demo.gateway.store.grant(id).await.unwrap().unwrap();
    assert_eq!(g1.relock_state, RelockState::Due);
    assert!(!locked(&env), "not before relock_after_s");

    grants.clock.advance(Duration::from_secs(1));
    let g2 = settled(&env, id).await;
    // Locked, read back, and watched for a late unlock for the OEM's command window.
    assert_eq!(g2.relock_state, RelockState::Watching, "{g2:?}");
    assert!(locked(&env), "the mock shows the car locked");
    assert_eq!(g2.relock_attempts, 1);
    // Locked, then read back from the car.
    let journal = env.demo.tesla().journal.entries();
    let lock_at = journal
        .iter()
        .rposition(|e| e.path.ends_with("/command/door_lock"))
        .unwrap();
    assert!(
        journal[lock_at..]
            .iter()
            .any(|e| e.path.ends_with("/vehicle_data"))
    );
    for t in [
        "grant.created",
        "grant.unlocked",
        "grant.relocked",
        "command.succeeded",
    ] {
        wait_event(&env, t).await;
    }
}

/// A grant's timeline is the delivery in order: created, the courier's unlock command
/// and `grant.unlocked`, keyway's relock command and `grant.relocked` — and nothing of
/// the car that was not done for the grant. Only the grant's creator reads it.
#[tokio::test]
async fn a_grants_timeline_tells_the_delivery_in_order() {
    let env = env().await;
    let courier = courier(&env);
    let g = grant(&env, json!({})).await;
    let id = g["id"].as_str().unwrap();
    // The service locks the car itself before the delivery: not the grant's.
    let own = env
        .post(
            &format!("/v1/vehicles/{}/lock", env.by_vin(CAR).id),
            &env.demo.token,
            &[WAIT],
        )
        .await;
    assert_eq!(own.status, 200, "{:#}", own.json);
    assert_eq!(unlock(&env, id, &courier).await.status, 200);
    env.demo
        .gateway
        .grants
        .clock
        .advance(Duration::from_secs(120));
    settled(&env, id).await;
    wait_event(&env, "grant.relocked").await;

    let path = format!("/v1/grants/{id}/timeline");
    let t = env.get(&path, Some(&env.demo.token)).await;
    assert_eq!(t.status, 200, "{:#}", t.json);
    assert_eq!(t.json["grant"]["id"], id);
    let events = t.json["events"].as_array().unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let at = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind}: {kinds:?}"))
    };
    assert!(at("grant.created") < at("grant.unlocked"), "{kinds:?}");
    assert!(at("grant.unlocked") < at("grant.relocked"), "{kinds:?}");
    let commands: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "command.succeeded")
        .collect();
    let actions: Vec<&str> = commands
        .iter()
        .map(|e| e["data"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["unlock", "lock"],
        "the courier's unlock and the relock: {kinds:?}"
    );
    assert!(
        commands.iter().all(|e| e["command_id"] != own.json["id"]),
        "the service's own lock is not the grant's"
    );
    // The courier uses the grant but does not read its timeline.
    let c = env.get(&path, Some(&courier)).await;
    c.assert_problem(403, "forbidden");
}

/// The owner locks the car themselves a while after the courier's unlock: the watcher
/// (which reads every grant's car in use) sees it, a fresh read confirms it after the
/// unlock, and the grant's relock is settled without a lock command of keyway's —
/// `grant.relocked` with `relocked_by: "owner"` — then watched for a late unlock; a
/// trunk opened meanwhile is `grant.opened_after_relock`.
#[tokio::test]
async fn the_owners_own_lock_settles_the_relock() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.grants.tick = Duration::from_millis(10);
            c.watch.tick = Duration::from_millis(20);
            c.watch.min_period = Duration::from_millis(100);
            // The relocked car stays watched for the OEM's command window: a long one, so
            // the trunk below is opened inside it however slow the machine.
            if let Some(t) = c.oems.get_mut("tesla") {
                t.timing.command_window = Some(Duration::from_secs(300));
            }
        })
        .start()
        .await;
    let courier = courier(&env);
    let g = grant(&env, json!({})).await;
    let id = g["id"].as_str().unwrap();
    assert_eq!(unlock(&env, id, &courier).await.status, 200);
    assert!(!locked(&env));
    // A while later (the OEM's declared state lag: a read after it shows the car as it
    // is since the unlock), the owner locks it with the key fob.
    let lag = env
        .demo
        .gateway
        .registry
        .get("tesla")
        .unwrap()
        .timing
        .state_lag;
    tokio::time::sleep(lag).await;
    keyway_adapter::mock::MockControl::set_locked(env.demo.tesla(), CAR, true);
    let store = &env.demo.gateway.store;
    let mut settled = None;
    for _ in 0..1200 {
        let g = store.grant(id).await.unwrap().unwrap();
        if g.relock_state != RelockState::Due {
            settled = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let g = settled.expect("the relock was never settled");
    assert_eq!(g.relock_state, RelockState::Watching, "{g:?}");
    assert_eq!(g.relock_attempts, 0, "keyway sent no relock");
    let journal = env.demo.tesla().journal.entries();
    assert!(
        !journal
            .iter()
            .any(|e| e.path.ends_with("/command/door_lock")),
        "no lock command was sent"
    );
    wait_event(&env, "grant.relocked").await;
    let relocked = store
        .events_after(&common::DEMO_TENANT.into(), None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "grant.relocked")
        .unwrap();
    let data: Value = serde_json::from_str(&relocked.data).unwrap();
    assert_eq!(data["relocked_by"], "owner", "{data:#}");
    assert_eq!(relocked.command_id, None);

    // While the relocked car is still watched, someone opens its trunk: the grant says so.
    let tesla = env.demo.server("tesla").url();
    let a = common::send(
        &common::client(),
        &tesla,
        Method::PATCH,
        &format!("/__mock/vehicles/{CAR}"),
        None,
        &[("content-type", "application/json")],
        Some(json!({"doors": {"trunk": true}}).to_string().into_bytes()),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    wait_event(&env, "grant.opened_after_relock").await;
    let opened = store
        .events_after(&common::DEMO_TENANT.into(), None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "grant.opened_after_relock")
        .unwrap();
    assert_eq!(opened.grant_id.as_deref(), Some(id));
    let data: Value = serde_json::from_str(&opened.data).unwrap();
    assert_eq!(data["opened"], json!(["trunk"]), "{data:#}");
}

#[tokio::test]
async fn an_owed_relock_survives_a_gateway_restart() {
    let mut env = env().await;
    let courier = courier(&env);
    let g = grant(&env, json!({})).await;
    let id = g["id"].as_str().unwrap().to_string();
    assert_eq!(unlock(&env, &id, &courier).await.status, 200);
    assert!(!locked(&env));

    env.demo.restart().await.unwrap();
    // The new process's clock starts at the real time; the relock is due 120 s on.
    env.demo
        .gateway
        .grants
        .clock
        .advance(Duration::from_secs(121));
    let g = settled(&env, &id).await;
    assert_eq!(g.relock_state, RelockState::Watching, "{g:?}");
    assert!(locked(&env));
}

#[tokio::test]
async fn a_failing_relock_is_retried_then_escalated() {
    let env = env().await;
    let courier = courier(&env);
    let g = grant(&env, json!({})).await;
    let id = g["id"].as_str().unwrap();
    assert_eq!(unlock(&env, id, &courier).await.status, 200);
    // The car refuses every lock: certainly not done, so each attempt fails at once.
    env.demo.tesla().faults.add(Fault::on(
        "/command/door_lock",
        Action::Status {
            status: 200,
            body: Some(json!({"response": {"result": false, "reason": "vehicle is in use"}})),
            retry_after: None,
        },
    ));
    let done = env
        .post(&format!("/v1/grants/{id}/complete"), &courier, &[])
        .await;
    assert_eq!(done.status, 200, "{:#}", done.json);
    assert_eq!(done.json["status"], "completed");
    let g = settled(&env, id).await;
    assert_eq!(g.relock_state, RelockState::Failed, "{g:?}");
    assert_eq!(g.relock_attempts, 3);
    assert!(env.demo.tesla().journal.count("POST", "/command/door_lock") >= 3);
    wait_event(&env, "grant.relock_failed").await;
    assert!(!locked(&env));
}

#[tokio::test]
async fn revoking_a_used_grant_relocks_the_car() {
    let env = env().await;
    let courier = courier(&env);
    let g = grant(&env, json!({ "max_unlocks": 2 })).await;
    let id = g["id"].as_str().unwrap();
    assert_eq!(unlock(&env, id, &courier).await.status, 200);
    assert!(!locked(&env));
    let r = env
        .send(
            Method::POST,
            &format!("/v1/grants/{id}/revoke"),
            Some(&env.demo.token),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.json);
    assert_eq!(r.json["status"], "revoked");
    let g = settled(&env, id).await;
    assert_eq!(g.relock_state, RelockState::Watching);
    assert!(locked(&env));
    unlock(&env, id, &courier)
        .await
        .assert_problem(403, "grant_revoked");
}

#[tokio::test]
async fn a_grants_use_token_can_only_use_its_own_grants() {
    let env = env().await;
    let courier = courier(&env);
    let car = env.by_vin(CAR).id.clone();
    let direct = env
        .post(&format!("/v1/vehicles/{car}/unlock"), &courier, &[])
        .await;
    direct.assert_problem(403, "forbidden");
    let create = json_post(
        &env,
        "/v1/grants",
        &courier,
        json!({
            "vehicle_id": car, "grantee": "courier-17",
            "not_after": rfc3339(env.demo.gateway.grants.clock.now() + time::Duration::minutes(5)),
        }),
        &[],
    )
    .await;
    create.assert_problem(403, "forbidden");
    // Someone else's grant does not exist for this courier.
    let other = grant(&env, json!({ "grantee": "courier-99" })).await;
    let id = other["id"].as_str().unwrap();
    unlock(&env, id, &courier)
        .await
        .assert_problem(404, "grant_not_found");
    env.get(&format!("/v1/grants/{id}"), Some(&courier))
        .await
        .assert_problem(404, "grant_not_found");
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        0
    );
}

/// A webhook receiver: answers 500 to the first delivery, 200 after; keeps what it got.
async fn receiver() -> (String, Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>) {
    let got: Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                let mut all = seen.lock().unwrap();
                all.push((headers, body));
                if all.len() == 1 {
                    http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_logged() {
    let env = env().await;
    let (url, got) = receiver().await;
    let sub = json_post(
        &env,
        "/v1/webhooks",
        &env.demo.token,
        json!({ "url": url, "events": ["grant.created"] }),
        &[],
    )
    .await;
    assert_eq!(sub.status, 201, "{:#}", sub.json);
    // Every documented type can be subscribed to (these three were refused as unknown
    // while the list of types was kept by hand).
    let others = json_post(
        &env,
        "/v1/webhooks",
        &env.demo.token,
        json!({ "url": url, "events": ["command.unknown", "command.resolved", "grant.relock_repeated"] }),
        &[],
    )
    .await;
    assert_eq!(others.status, 201, "{:#}", others.json);
    let secret = sub.json["secret"].as_str().unwrap().to_string();
    let hook = sub.json["id"].as_str().unwrap().to_string();
    let g = grant(&env, json!({})).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second delivery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (headers, body) = got.lock().unwrap()[1].clone();
    let header = headers.get("keyway-signature").unwrap().to_str().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    use keyway::events::webhooks::{SignatureError, verify};
    assert_eq!(verify(&secret, header, &body, now, 300), Ok(()));
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "grant.created");
    assert_eq!(event["grant_id"], g["id"]);
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert_eq!(
        verify(&secret, header, &tampered, now, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify("whsec_wrong", header, &body, now, 300),
        Err(SignatureError::Mismatch)
    );

    // The delivery log shows the failed first attempt and the delivery (recorded just
    // after the receiver answered).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = env
            .get(
                &format!("/v1/webhooks/{hook}/deliveries"),
                Some(&env.demo.token),
            )
            .await;
        if log.json["deliveries"][0]["status"] == "delivered"
            || tokio::time::Instant::now() >= deadline
        {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let d = &log.json["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{:#}", log.json);
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_status"], 200);
}

/// Reads an SSE stream until `n` events arrived; returns (id, type) pairs.
async fn read_events(env: &Env, headers: &[(&str, &str)], n: usize) -> Vec<(i64, String)> {
    let mut req = http::Request::get(format!("{}/v1/events", env.base()))
        .header("authorization", format!("Bearer {}", env.demo.token))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = env
        .client
        .request(req.body(http_body_util::Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            if let (Some(id), Some(kind)) = (field("id:"), field("event:")) {
                out.push((id.parse().unwrap(), kind));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_event_stream_resumes_after_the_last_event_id() {
    let env = env().await;
    for _ in 0..3 {
        grant(&env, json!({})).await;
    }
    let first = read_events(&env, &[], 2).await;
    assert_eq!(first.len(), 2);
    let last = first[1].0.to_string();
    let resumed = read_events(&env, &[("last-event-id", &last)], 1).await;
    assert!(resumed[0].0 > first[1].0);
    let all = env
        .demo
        .gateway
        .store
        .events_after(&common::DEMO_TENANT.into(), None, 0, 100)
        .await
        .unwrap();
    let next = all.iter().find(|e| e.seq > first[1].0).unwrap();
    assert_eq!(resumed[0], (next.seq, next.kind.as_str().to_string()));
    // A live event reaches an open stream.
    let env = Arc::new(env);
    let reader = {
        let env = env.clone();
        let after = all.last().unwrap().seq.to_string();
        tokio::spawn(async move { read_events(&env, &[("last-event-id", &after)], 1).await })
    };
    grant(&env, json!({})).await;
    let live = reader.await.unwrap();
    assert_eq!(live[0].1, "grant.created");
    // Filters and a bad Last-Event-ID.
    let bad = env
        .get("/v1/events?types=nope", Some(&env.demo.token))
        .await;
    bad.assert_problem(400, "invalid_request");
}

#[tokio::test]
async fn editing_one_audit_row_makes_audit_verify_fail() {
    let env = env().await;
    let courier = courier(&env);
    let g = grant(&env, json!({})).await;
    assert_eq!(
        unlock(&env, g["id"].as_str().unwrap(), &courier)
            .await
            .status,
        200
    );
    let store = env.demo.gateway.store.clone();
    let ok = keyway::audit::verify(store.as_ref()).await.unwrap();
    assert!(ok.rows >= 3, "{ok:?}");

    // The same check through the binary, on the gateway's database file.
    let db = env.dir.0.join("keyway.db");
    let config = env.dir.0.join("audit.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\n[crypto]\nkeys = {{ k1 = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\" }}\n\
             [auth]\nissuer = \"x\"\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\n",
            db.display()
        ),
    )
    .unwrap();
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
            .args(["audit", "verify", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));

    // One field of one row is edited behind keyway's back.
    use sqlx::{Connection, Executor};
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    c.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
        .await
        .unwrap();
    assert_eq!(
        keyway::audit::verify(store.as_ref()).await,
        Err(keyway::audit::Broken::Edited { seq: 2 })
    );
    let out = verify();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit row 2 was changed"));

    // A deleted row breaks the chain too.
    c.execute("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    assert!(matches!(
        keyway::audit::verify(store.as_ref()).await,
        Err(keyway::audit::Broken::Unchained { seq: 3, .. })
    ));
}
