//! End-to-end: the unified API on a real socket in front of the Tesla mock on another,
//! exercised as an internal service would — locate, lock, unlock, sleeping cars,
//! refusals, caller auth, idempotency, bad input, restarts.

use crate::common;
use crate::common::DemoMocks;

use std::time::Duration;

use common::{Env, WAIT, send};
use http::Method;
use keyway::store::{CommandRecord, CommandStatus};
use keyway_adapter::Command;
use keyway_tesla::mock::Power;
use serde_json::json;

#[tokio::test]
async fn lists_and_describes_vehicles() {
    let env = Env::start().await;
    let a = env.get("/v1/vehicles", Some(&env.demo.token)).await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    let list = a.json["vehicles"].as_array().unwrap();
    assert_eq!(
        list.len(),
        17,
        "four Teslas (signed, asleep, unpaired, legacy), one car of each other OEM, three behind Smartcar, two Volkswagens, an Audi and two Škodas"
    );
    let one = env
        .get(
            &format!("/v1/vehicles/{}", env.signed().id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(one.json["oem"], "tesla");
    assert_eq!(one.json["make"], "Tesla");
    assert_eq!(one.json["model"], "Model 3");
    assert_eq!(one.json["year"], 2020);
    assert_eq!(
        one.json["capabilities"],
        json!(["locate", "security", "lock", "unlock", "wake"])
    );
    // The command path as keyway learned it with the vehicle list (fleet_status).
    assert_eq!(one.json["command_protocol"], "signed");
    assert_eq!(one.json["key_paired"], true);
    for (v, protocol, paired) in [
        (env.unpaired(), json!("signed"), json!(false)),
        (env.online(), json!("rest"), serde_json::Value::Null),
    ] {
        let a = env
            .get(&format!("/v1/vehicles/{}", v.id), Some(&env.demo.token))
            .await;
        assert_eq!(
            (&a.json["command_protocol"], &a.json["key_paired"]),
            (&protocol, &paired)
        );
    }
    // Other OEMs have one command path and say nothing about it.
    let bmw = env.demo.vehicles.iter().find(|v| v.oem == "bmw").unwrap();
    let a = env
        .get(&format!("/v1/vehicles/{}", bmw.id), Some(&env.demo.token))
        .await;
    assert!(a.json.get("command_protocol").is_none());
}

#[tokio::test]
async fn locates_a_car() {
    let env = Env::start().await;
    let v = env.signed();
    let a = env
        .get(
            &format!("/v1/vehicles/{}/location", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    let mock = env.demo.tesla().vehicle(&v.oem_id).unwrap();
    assert!((a.json["latitude"].as_f64().unwrap() - mock.latitude).abs() < 1e-6);
    assert!((a.json["longitude"].as_f64().unwrap() - mock.longitude).abs() < 1e-6);
    assert_eq!(a.json["heading"], 289.0);
    assert!(a.json["age_s"].as_i64().unwrap() >= 0);
    assert!(a.json["recorded_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn lock_then_unlock_and_security_follows() {
    let env = Env::start().await;
    let v = env.online();
    env.demo.tesla().update(&v.oem_id, |m| m.locked = false);

    let a = env.act(&v.id, "lock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    assert_eq!(a.json["action"], "lock");
    assert!(a.json["completed_at"].is_string());
    assert!(env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);
    let s = env
        .get(
            &format!("/v1/vehicles/{}/security", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.json["locked"], true);
    assert_eq!(s.json["source"], "vehicle");

    let a = env.act(&v.id, "unlock").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    assert!(!env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);
    let s = env
        .get(
            &format!("/v1/vehicles/{}/security", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(s.json["locked"], false);
}

#[tokio::test]
async fn without_prefer_wait_a_command_is_accepted_and_can_be_followed() {
    let env = Env::start().await;
    let v = env.online();
    let a = env
        .post(&format!("/v1/vehicles/{}/lock", v.id), &env.demo.token, &[])
        .await;
    assert_eq!(a.status, 202, "{:#}", a.json);
    assert_eq!(a.json["status"], "pending");
    let location = a.header("location").unwrap().to_string();
    assert_eq!(
        location,
        format!("/v1/commands/{}", a.json["id"].as_str().unwrap())
    );
    let mut last = a.json;
    for _ in 0..200 {
        let c = env.get(&location, Some(&env.demo.token)).await;
        assert_eq!(c.status, 200);
        last = c.json;
        if last["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last["status"], "succeeded", "{last:#}");
}

#[tokio::test]
async fn an_asleep_car_is_woken_then_commanded() {
    let env = Env::start().await;
    let v = env.asleep();
    assert_eq!(
        env.demo.tesla().vehicle(&v.oem_id).unwrap().state,
        Power::Asleep
    );
    let a = env.act(&v.id, "lock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    let mock = env.demo.tesla().vehicle(&v.oem_id).unwrap();
    assert_eq!(mock.state, Power::Online);
    assert!(mock.locked);
    // One billed wake-up; the car is then watched with data-priced reads until online.
    assert_eq!(env.demo.tesla().journal.count("POST", "/wake_up"), 1);
    // The car is on the Vehicle Command Protocol: the handshake met the sleeping car
    // (408), then, awake, a handshake and one signed lock — never a REST command.
    assert_eq!(
        env.demo.tesla().journal.count("POST", "/command/door_lock"),
        0
    );
    let signed: Vec<u16> = env
        .demo
        .tesla()
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.path.ends_with("/signed_command"))
        .map(|e| e.status)
        .collect();
    assert_eq!(
        signed,
        [408, 200, 200],
        "handshake (asleep), handshake, lock"
    );
    assert_eq!(
        env.demo.tesla().commands_seen(),
        1,
        "one lock reached the car"
    );
    // Every wake-up is counted as Tesla bills it (this gateway's count: the metric sums
    // every gateway of the process).
    let bill = env.demo.gateway.registry.get("tesla").unwrap().bill.clone();
    assert_eq!(
        bill.unwrap().billed("wake"),
        env.demo.tesla().journal.count("POST", "/wake_up") as u64
    );
}

#[tokio::test]
async fn an_offline_car_is_reported_unreachable() {
    let env = Env::start().await;
    let v = env.online();
    env.demo
        .tesla()
        .update(&v.oem_id, |m| m.state = Power::Offline);
    // Without asking, a read does not wake the car: it is asleep as far as keyway knows.
    let path = format!("/v1/vehicles/{}/location", v.id);
    env.get(&path, Some(&env.demo.token))
        .await
        .assert_problem(409, "vehicle_asleep");
    assert_eq!(env.demo.tesla().journal.count("POST", "/wake_up"), 0);
    // Asked for a fresh reading, keyway tries to wake it and learns it is offline.
    let a = env
        .send(
            Method::GET,
            &path,
            Some(&env.demo.token),
            &[("cache-control", "max-age=0")],
            None,
        )
        .await;
    a.assert_problem(409, "vehicle_unreachable");
    assert_eq!(a.json["oem"], "tesla");
    assert_eq!(a.json["retryable"], true);
}

#[tokio::test]
async fn a_refused_command_fails_with_command_failed() {
    let env = Env::start().await;
    let v = env.online();
    env.demo.tesla().update(&v.oem_id, |m| {
        m.locked = true;
        m.user_present = true;
    });
    let a = env.act(&v.id, "unlock").await;
    a.assert_problem(422, "command_failed");
    assert_eq!(a.json["retryable"], false);
    assert!(a.json["detail"].as_str().unwrap().contains("user_present"));
    let id = a.json["command_id"].as_str().unwrap();
    let c = env
        .get(&format!("/v1/commands/{id}"), Some(&env.demo.token))
        .await;
    assert_eq!(c.json["status"], "failed");
    assert_eq!(c.json["error"]["code"], "command_failed");
    assert!(env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);
}

#[tokio::test]
async fn unknown_vehicle_route_and_method() {
    let env = Env::start().await;
    let t = &env.demo.token;
    env.get("/v1/vehicles/veh_nope/location", Some(t))
        .await
        .assert_problem(404, "vehicle_not_found");
    env.get("/v1/commands/cmd_nope", Some(t))
        .await
        .assert_problem(404, "command_not_found");
    env.get("/v2/elsewhere", Some(t))
        .await
        .assert_problem(404, "not_found");
    env.send(Method::DELETE, "/v1/vehicles", Some(t), &[], None)
        .await
        .assert_problem(405, "method_not_allowed");
}

fn forge(claims: serde_json::Value, secret: &[u8], alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_caller_tokens_get_401() {
    let env = Env::start().await;
    let path = "/v1/vehicles";
    let auth = &env.demo.gateway.config.auth;
    let secret = auth
        .hs256_secret
        .as_ref()
        .unwrap()
        .expose()
        .as_bytes()
        .to_vec();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |aud: &str, exp: u64| json!({"sub": "svc", "scope": "admin", "iss": auth.issuer, "aud": aud, "exp": exp});

    let missing = env.get(path, None).await;
    missing.assert_problem(401, "unauthenticated");
    assert!(
        missing
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );

    let expired = forge(
        claims("keyway", now - 3600),
        &secret,
        jsonwebtoken::Algorithm::HS256,
    );
    let a = env.get(path, Some(&expired)).await;
    a.assert_problem(401, "unauthenticated");
    assert!(a.json["detail"].as_str().unwrap().contains("expired"));

    let forged = forge(
        claims("keyway", now + 600),
        b"not-the-secret-not-the-secret-!!",
        jsonwebtoken::Algorithm::HS256,
    );
    env.get(path, Some(&forged))
        .await
        .assert_problem(401, "unauthenticated");

    let wrong_aud = forge(
        claims("someone-else", now + 600),
        &secret,
        jsonwebtoken::Algorithm::HS256,
    );
    let a = env.get(path, Some(&wrong_aud)).await;
    a.assert_problem(401, "unauthenticated");
    assert!(a.json["detail"].as_str().unwrap().contains("aud"));

    let other_alg = forge(
        claims("keyway", now + 600),
        &secret,
        jsonwebtoken::Algorithm::HS384,
    );
    env.get(path, Some(&other_alg))
        .await
        .assert_problem(401, "unauthenticated");

    let valid = forge(
        claims("keyway", now + 600),
        &secret,
        jsonwebtoken::Algorithm::HS256,
    );
    let payload = valid.split('.').nth(1).unwrap();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    env.get(path, Some(&alg_none))
        .await
        .assert_problem(401, "unauthenticated");

    env.get(path, Some("not.a.jwt"))
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(env.get(path, Some(&valid)).await.status, 200);
}

#[tokio::test]
async fn scopes_and_vehicle_restrictions_give_403() {
    let env = Env::start().await;
    let v = env.online();
    let reader = env.token(&["vehicles:read", "location:read"], None);
    let a = env
        .post(&format!("/v1/vehicles/{}/unlock", v.id), &reader, &[WAIT])
        .await;
    a.assert_problem(403, "forbidden");
    assert_eq!(a.json["required_scope"], "commands:unlock");
    env.get(&format!("/v1/vehicles/{}/security", v.id), Some(&reader))
        .await
        .assert_problem(403, "forbidden");
    // A lock-only token cannot unlock.
    let locker = env.token(&["commands:lock"], None);
    env.post(&format!("/v1/vehicles/{}/unlock", v.id), &locker, &[])
        .await
        .assert_problem(403, "forbidden");

    let restricted = env.token(&["admin"], Some(vec![v.id.to_string()]));
    let other = env.asleep();
    for path in [
        format!("/v1/vehicles/{}", other.id),
        format!("/v1/vehicles/{}/location", other.id),
        "/v1/vehicles/veh_does_not_exist".to_string(),
    ] {
        env.get(&path, Some(&restricted))
            .await
            .assert_problem(403, "forbidden");
    }
    env.post(
        &format!("/v1/vehicles/{}/unlock", other.id),
        &restricted,
        &[WAIT],
    )
    .await
    .assert_problem(403, "forbidden");
    assert!(!env.demo.tesla().vehicle(&other.oem_id).unwrap().locked);
    // The list shows only the allowed car; the allowed car works.
    let list = env.get("/v1/vehicles", Some(&restricted)).await;
    assert_eq!(list.json["vehicles"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.get(
            &format!("/v1/vehicles/{}/location", v.id),
            Some(&restricted)
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn idempotent_replay_returns_the_same_command_and_sends_once() {
    let env = Env::start().await;
    let v = env.online();
    let path = format!("/v1/vehicles/{}/unlock", v.id);
    let key = ("idempotency-key", "\"order-42-unlock\"");
    let first = env.post(&path, &env.demo.token, &[WAIT, key]).await;
    assert_eq!(first.status, 200, "{:#}", first.json);
    let again = env.post(&path, &env.demo.token, &[WAIT, key]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(env.demo.tesla().commands_seen(), 1);

    // Same key, different request: refused, nothing sent.
    let lock = format!("/v1/vehicles/{}/lock", v.id);
    let a = env.post(&lock, &env.demo.token, &[WAIT, key]).await;
    a.assert_problem(422, "idempotency_key_reused");
    assert_eq!(a.json["command_id"], first.json["id"]);
    let a = env
        .send(
            Method::POST,
            &path,
            Some(&env.demo.token),
            &[WAIT, key, ("content-type", "application/json")],
            Some(br#"{"reference":"another-order"}"#.to_vec()),
        )
        .await;
    a.assert_problem(422, "idempotency_key_reused");
    assert_eq!(env.demo.tesla().commands_seen(), 1);
}

#[tokio::test]
async fn concurrent_replays_while_in_flight_share_one_command() {
    let env = Env::start().await;
    // The asleep car makes the first attempt slow (wake-up), so replays overlap it.
    let v = env.asleep();
    let path = format!("/v1/vehicles/{}/lock", v.id);
    let key = ("idempotency-key", "courier-7-lock");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, token, path) = (
                env.client.clone(),
                env.base(),
                env.demo.token.clone(),
                path.clone(),
            );
            tokio::spawn(async move {
                send(
                    &client,
                    &base,
                    Method::POST,
                    &path,
                    Some(&token),
                    &[WAIT, key],
                    None,
                )
                .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{:#}", a.json);
        assert_eq!(a.json["status"], "succeeded");
        ids.push(a.json["id"].as_str().unwrap().to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one command for one key");
    assert_eq!(
        env.demo.tesla().commands_seen(),
        1,
        "one signed lock reached the car"
    );
    // One decision and one outcome in the audit log: replays add nothing.
    let audit = env.demo.gateway.store.audit_log().await.unwrap();
    let lock_rows: Vec<_> = audit
        .iter()
        .filter(|r| r.entry.action == "command.lock")
        .map(|r| r.entry.decision.as_str())
        .collect();
    assert_eq!(lock_rows, ["accepted", "succeeded"]);
}

#[tokio::test]
async fn bad_bodies_get_clear_problems_and_change_nothing() {
    let env = Env::start().await;
    let v = env.online();
    let path = format!("/v1/vehicles/{}/unlock", v.id);
    let t = Some(env.demo.token.as_str());
    let json_ct = ("content-type", "application/json");

    let a = env
        .send(
            Method::POST,
            &path,
            t,
            &[json_ct, WAIT],
            Some(b"{\"reference\": ".to_vec()),
        )
        .await;
    a.assert_problem(400, "invalid_request");
    assert!(a.json["detail"].as_str().unwrap().contains("JSON"));

    let a = env
        .send(
            Method::POST,
            &path,
            t,
            &[json_ct, WAIT],
            Some(br#"{"referense":"x"}"#.to_vec()),
        )
        .await;
    a.assert_problem(400, "invalid_request");
    assert!(a.json["detail"].as_str().unwrap().contains("referense"));

    // Just over the 64 KiB limit: small enough to be written whole before keyway answers
    // (a far larger body raced the early 413 and sometimes met a closed socket).
    let huge = format!("{{\"reference\":\"{}\"}}", "x".repeat(70_000));
    env.send(
        Method::POST,
        &path,
        t,
        &[json_ct, WAIT],
        Some(huge.into_bytes()),
    )
    .await
    .assert_problem(413, "payload_too_large");

    env.send(
        Method::POST,
        &path,
        t,
        &[("content-type", "text/plain"), WAIT],
        Some(b"unlock please".to_vec()),
    )
    .await
    .assert_problem(415, "unsupported_media_type");

    env.send(
        Method::POST,
        &path,
        t,
        &[("idempotency-key", "\"\""), WAIT],
        None,
    )
    .await
    .assert_problem(400, "invalid_request");

    assert_eq!(
        env.demo.tesla().commands_seen(),
        0,
        "bad requests reach no car"
    );
    assert!(env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);

    // A good body with a reference is kept on the record.
    let a = env
        .send(
            Method::POST,
            &path,
            t,
            &[json_ct, WAIT],
            Some(br#"{"reference":"order-9"}"#.to_vec()),
        )
        .await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["reference"], "order-9");
}

#[tokio::test]
async fn command_records_survive_a_restart() {
    let env = Env::start().await;
    let v = env.online();
    let a = env.act(&v.id, "unlock").await;
    assert_eq!(a.status, 200);
    let id = a.json["id"].as_str().unwrap().to_string();
    let config = env.demo.gateway.config.clone();
    let common::Env { demo, dir, client } = env;
    let token = demo.token.clone();
    let _mock = demo.server("tesla").url();
    demo.stop().await;

    // A new gateway process on the same data dir.
    let gateway = keyway::gateway::Gateway::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keyway::server::serve(
        gateway,
        listener,
        std::future::pending(),
    ));
    let c = send(
        &client,
        &base,
        Method::GET,
        &format!("/v1/commands/{id}"),
        Some(&token),
        &[],
        None,
    )
    .await;
    assert_eq!(c.status, 200, "{:#}", c.json);
    assert_eq!(c.json["status"], "succeeded");
    assert_eq!(c.json["action"], "unlock");
    drop(dir);
}

#[tokio::test]
async fn a_command_interrupted_after_sending_is_reconciled_not_resent() {
    let env = Env::start().await;
    let v = env.online();
    // As if a previous process sent a lock, the car applied it, and the process died
    // before recording the answer.
    env.demo.tesla().update(&v.oem_id, |m| m.locked = true);
    let t = env.demo.gateway.clock.now();
    let interrupted = CommandRecord {
        id: "cmd_interrupted".into(),
        vehicle_id: v.id.clone(),
        action: Command::Lock,
        status: CommandStatus::Pending,
        caller: "test-service".into(),
        tenant: "test-service".into(),
        reserved: false,
        reference: None,
        request_id: None,
        sent_at: Some(t),
        oem_handle: None,
        error_code: None,
        error_detail: None,
        error_members: serde_json::Map::new(),
        created_at: t,
        updated_at: t,
        completed_at: None,
        observed: None,
        retry_at: None,
        acknowledged: None,
    };
    let never_sent = CommandRecord {
        id: "cmd_never_sent".into(),
        action: Command::Unlock,
        sent_at: None,
        ..interrupted.clone()
    };
    let store = env.demo.gateway.store.clone();
    // Leased to the process that died: its lease has not lapsed, but a process owning
    // the SQLite store takes every pending command at start.
    let previous = keyway::store::Lease {
        holder: "rep_previous".into(),
        until: t + time::Duration::seconds(30),
    };
    store
        .create_command(&interrupted, None, &previous, None)
        .await
        .unwrap();
    store
        .create_command(&never_sent, None, &previous, None)
        .await
        .unwrap();
    let resumed = env.demo.gateway.commands.resume().await.unwrap();
    assert_eq!(resumed, 2);
    let done = env
        .demo
        .gateway
        .commands
        .wait("cmd_interrupted", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, CommandStatus::Succeeded, "{done:?}");
    let done = env
        .demo
        .gateway
        .commands
        .wait("cmd_never_sent", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, CommandStatus::Succeeded, "{done:?}");
    // The interrupted lock was confirmed by reading, never re-sent; the unsent unlock was sent.
    assert_eq!(
        env.demo.tesla().journal.count("POST", "/command/door_lock"),
        0
    );
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        1
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let env = Env::start().await;
    let h = env.get("/healthz", None).await;
    assert_eq!(h.status, 200);
    let r = env.get("/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json["oems"],
        json!([
            "audi", "bmw", "ford", "gm", "hyundai", "skoda", "smartcar", "tesla", "volvo", "vw"
        ])
    );
}

#[tokio::test]
async fn every_documented_route_exists() {
    let env = Env::start().await;
    let doc = env.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json["openapi"], "3.1.0");
    let paths = doc.json["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 33);
    for (path, item) in paths {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            let mut concrete = path
                .replace("/vehicles/{id}", &format!("/vehicles/{}", env.online().id))
                .replace("{id}", "cmd_unknown");
            if path == "/v1/events" {
                // The stream never ends; a bad filter answers at once.
                concrete.push_str("?types=none");
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = env
                .send(m, &concrete, Some(&env.demo.token), &[], None)
                .await;
            let missing = (a.json["code"] == "not_found" && a.json["detail"] == "no such resource")
                || a.json["code"] == "method_not_allowed";
            assert!(
                !missing,
                "{method} {path} is documented but not routed: {:#}",
                a.json
            );
        }
    }
}

/// After a successful `DELETE` the resource is gone: every documented read or change
/// under its path answers `404`, and its collection no longer lists it (schemathesis's
/// ST301 found a grant readable after `DELETE /v1/grants/{id}`; revoking is now a
/// `POST`). A new `DELETE` route fails the first assertion until it gets its case here.
#[tokio::test]
async fn a_deleted_resource_is_gone() {
    let env = Env::tesla_with_loopback_webhooks().await;
    let token = &env.demo.token;
    let doc = env.get("/openapi.json", None).await.json;
    let paths = doc["paths"].as_object().unwrap();
    let deletable: Vec<&String> = paths
        .iter()
        .filter(|(_, item)| item.get("delete").is_some())
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        deletable,
        [
            "/v1/accounts/{id}",
            "/v1/vehicles/{id}/watch",
            "/v1/webhooks/{id}"
        ]
    );

    let account = env.tesla_account().await.id;
    let hook = env
        .send(
            Method::POST,
            "/v1/webhooks",
            Some(token),
            &[("content-type", "application/json")],
            Some(
                json!({"url": "http://127.0.0.1:9/hook"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(hook.status, 201, "{:#}", hook.json);
    let hook = hook.json["id"].as_str().unwrap().to_string();
    let car = env.online().id.to_string();
    let until = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let watch = env
        .send(
            Method::PUT,
            &format!("/v1/vehicles/{car}/watch"),
            Some(token),
            &[("content-type", "application/json")],
            Some(json!({ "until": until }).to_string().into_bytes()),
        )
        .await;
    assert_eq!(watch.status, 200, "{:#}", watch.json);

    for (template, id, collection, member, key) in [
        (
            "/v1/vehicles/{id}/watch",
            car,
            "/v1/watches",
            "watches",
            "vehicle_id",
        ),
        (
            "/v1/accounts/{id}",
            account,
            "/v1/accounts",
            "accounts",
            "id",
        ),
        ("/v1/webhooks/{id}", hook, "/v1/webhooks", "webhooks", "id"),
    ] {
        let path = template.replace("{id}", &id);
        let gone = env
            .send(Method::DELETE, &path, Some(token), &[], None)
            .await;
        assert!(gone.status.is_success(), "DELETE {path}: {:#}", gone.json);
        for (other, item) in paths.iter().filter(|(p, _)| p.starts_with(template)) {
            for method in ["get", "patch"].iter().filter(|m| item.get(**m).is_some()) {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let concrete = other.replace("{id}", &id);
                let a = env.send(m, &concrete, Some(token), &[], None).await;
                assert_eq!(
                    a.status, 404,
                    "{method} {concrete} after DELETE: {:#}",
                    a.json
                );
            }
        }
        let listed = env.get(collection, Some(token)).await;
        let ids: Vec<&str> = listed.json[member]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x[key].as_str())
            .collect();
        assert!(!ids.contains(&id.as_str()), "{collection} still lists {id}");
    }
}

#[tokio::test]
async fn an_asynchronous_bmw_command_is_followed_until_executed() {
    let env = Env::start().await;
    let v = env.by_vin("WBY31AW090FP00001");
    assert_eq!(v.oem, "bmw");
    env.demo.bmw().update(&v.oem_id, |c| c.locked = false);
    let a = env.act(&v.id, "lock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    assert!(env.demo.bmw().car(&v.oem_id).unwrap().locked);
    let journal = env.demo.bmw().journal.entries();
    let sent: Vec<_> = journal
        .iter()
        .filter(|e| e.path.ends_with("/door-lock"))
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].command_id.as_deref(), a.json["id"].as_str());
    let polls = journal
        .iter()
        .filter(|e| e.path.ends_with("/eventStatus"))
        .count();
    assert!(
        polls >= 2,
        "followed through PENDING/DELIVERED to EXECUTED: {polls} polls"
    );
    assert_eq!(journal.iter().filter(|e| e.applied).count(), 1);
    let s = env
        .get(
            &format!("/v1/vehicles/{}/security", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(s.json["locked"], true);
    assert_eq!(s.json["source"], "vehicle");

    // A refusal on the car ends the command as command_failed.
    env.demo.bmw().update(&v.oem_id, |c| c.refusing = true);
    env.act(&v.id, "unlock")
        .await
        .assert_problem(422, "command_failed");
    assert!(env.demo.bmw().car(&v.oem_id).unwrap().locked);
}

#[tokio::test]
async fn gm_locations_are_polled_and_its_security_is_the_last_command() {
    let env = Env::start().await;
    let v = env.by_vin("1G1FZ6S09P4000001");
    assert_eq!(v.oem, "gm");
    // Linking went through GM's token exchange: the code, then the exchange.
    let token_calls = env.demo.gm().journal.count("POST", "/oauth2/v2.0/token");
    assert!(token_calls >= 2, "{token_calls} token endpoint calls");
    // No lock-state read and no command yet: unknown (null, source `none`), never a
    // guess.
    let s = env
        .get(
            &format!("/v1/vehicles/{}/security", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(s.status, 200, "{:#}", s.json);
    let s = s.json;
    assert_eq!(s["locked"], serde_json::Value::Null);
    assert_eq!(s["source"], "none");
    assert_eq!(s["recorded_at"], serde_json::Value::Null);
    // The location is an OnStar request keyway follows to its end.
    let l = env
        .get(
            &format!("/v1/vehicles/{}/location", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(l.status, 200, "{:#}", l.json);
    assert!((l.json["latitude"].as_f64().unwrap() - 42.331427).abs() < 1e-6);
    let journal = env.demo.gm().journal.entries();
    assert_eq!(
        journal
            .iter()
            .filter(|e| e.path.ends_with(&format!("/location/{}", v.oem_id)))
            .count(),
        1
    );
    assert!(
        journal
            .iter()
            .any(|e| e.method == "GET" && e.path.contains("/requests/")),
        "the request was polled"
    );
    // After a confirmed unlock, security reports it — and says where it comes from.
    let a = env.act(&v.id, "unlock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert!(!env.demo.gm().car(&v.oem_id).unwrap().locked);
    let s = env
        .get(
            &format!("/v1/vehicles/{}/security", v.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(s.status, 200, "{:#}", s.json);
    assert_eq!(s.json["locked"], false);
    assert_eq!(s.json["source"], "last_command");
}

#[tokio::test]
async fn the_vehicle_list_pages_by_id() {
    let env = Env::start().await;
    let t = Some(env.demo.token.as_str());
    let all = env.get("/v1/vehicles", t).await;
    assert_eq!(all.json["next"], serde_json::Value::Null);
    let every: Vec<String> = all.json["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(every.len(), 17);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(a) => format!("/v1/vehicles?limit=3&after={a}"),
            None => "/v1/vehicles?limit=3".to_string(),
        };
        let page = env.get(&path, t).await;
        assert_eq!(page.status, 200, "{:#}", page.json);
        let ids: Vec<String> = page.json["vehicles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        assert!(ids.len() <= 3);
        paged.extend(ids);
        match page.json["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, every, "pages cover the list once, in order");
    env.get("/v1/vehicles?limit=0", t)
        .await
        .assert_problem(400, "invalid_request");
    env.get("/v1/vehicles?limit=abc", t)
        .await
        .assert_problem(400, "invalid_request");
    // A restricted token pages through its own vehicles only.
    let mine = env.token(
        &["vehicles:read"],
        Some(vec![every[5].clone(), every[1].clone()]),
    );
    let p1 = env.get("/v1/vehicles?limit=1", Some(&mine)).await;
    assert_eq!(p1.json["vehicles"][0]["id"], every[1].as_str());
    let p2 = env
        .get(
            &format!("/v1/vehicles?limit=1&after={}", every[1]),
            Some(&mine),
        )
        .await;
    assert_eq!(p2.json["vehicles"][0]["id"], every[5].as_str());
}

/// A Tesla on the Vehicle Command Protocol is locked and unlocked through
/// `signed_command` only: a handshake and the command on a cold session, the command
/// alone on a warm one; the unpaired car answers 409 with its pairing link and sends
/// nothing to the car.
#[tokio::test]
async fn signed_teslas_are_commanded_through_signed_command_only() {
    let env = Env::start().await;
    let v = env.signed();
    let signed_posts = |env: &Env| {
        env.demo
            .tesla()
            .journal
            .entries()
            .into_iter()
            .filter(|e| e.path.ends_with("/signed_command"))
            .map(|e| e.note.unwrap_or("command"))
            .collect::<Vec<_>>()
    };
    let lock = env.act(&v.id, "lock").await;
    assert_eq!(lock.json["status"], "succeeded", "{:#}", lock.json);
    assert_eq!(
        signed_posts(&env),
        ["handshake", "command"],
        "cold: two round trips"
    );
    let unlock = env.act(&v.id, "unlock").await;
    assert_eq!(unlock.json["status"], "succeeded", "{:#}", unlock.json);
    assert_eq!(
        signed_posts(&env),
        ["handshake", "command", "command"],
        "warm: one round trip"
    );
    assert!(!env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);
    assert_eq!(
        env.demo.tesla().journal.count("POST", "/command/door_lock"),
        0
    );
    assert_eq!(
        env.demo
            .tesla()
            .journal
            .count("POST", "/command/door_unlock"),
        0
    );
    assert_eq!(env.demo.tesla().commands_seen(), 2);

    let u = env.unpaired();
    let a = env.act(&u.id, "unlock").await;
    a.assert_problem(409, "virtual_key_not_paired");
    assert_eq!(a.json["retryable"], false);
    let link = a.json["pairing_url"].as_str().unwrap();
    assert!(
        link.starts_with("https://tesla.com/_ak/") && link.ends_with(&u.oem_id),
        "{link}"
    );
    assert_eq!(
        env.demo.tesla().commands_seen(),
        2,
        "nothing reached the unpaired car"
    );
    // Once the owner pairs the key, the next command goes through.
    let key = keyway_tesla::vcp::AppKey::from_pem(env.demo.app_keys["tesla"].expose()).unwrap();
    env.demo.tesla().pair(&u.oem_id, &key.public_bytes());
    let a = env.act(&u.id, "unlock").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    let d = env
        .get(&format!("/v1/vehicles/{}", u.id), Some(&env.demo.token))
        .await;
    assert_eq!(d.json["key_paired"], true);
    // Billing: every answered signed_command (handshakes too) is a command request.
    let answered = env
        .demo
        .tesla()
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.path.ends_with("/signed_command") && e.status < 500 && e.status != 429)
        .count() as u64;
    // This gateway's own count: the metric sums every gateway of the process, and under
    // `cargo test` other tests' gateways bill Tesla requests at the same time.
    let bill = env.demo.gateway.registry.get("tesla").unwrap().bill.clone();
    let billed = |class| bill.as_ref().unwrap().billed(class);
    assert_eq!(billed("command"), answered);
    assert!(billed("data") >= 1, "the vehicle list and fleet_status");
}

/// The first `200` answer of a fresh (`no-cache`) read of the car's `what`
/// (`location`, `security`) that `shows` what is expected, within 40 reads a quarter
/// second apart (the OEM's cloud lags the car).
async fn fresh_read_until(
    env: &Env,
    vehicle: &str,
    what: &str,
    shows: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    for _ in 0..40 {
        let a = env
            .send(
                Method::GET,
                &format!("/v1/vehicles/{vehicle}/{what}"),
                Some(&env.demo.token),
                &[("cache-control", "no-cache")],
                None,
            )
            .await;
        if a.status == 200 && shows(&a.json) {
            return Some(a.json);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Every garage mock lets a test act as the world around a car through `PATCH
/// /__mock/vehicles/{vin}`: the owner's app locks or unlocks it, it is driven, it falls
/// asleep. keyway's fresh reads show each change once the OEM's cloud has it (after the
/// mock's usual state lag), as they show keyway's own commands.
#[tokio::test]
async fn every_mock_lets_a_test_act_as_the_world() {
    let env = Env::start().await;
    let client = common::client();
    for oem in ["bmw", "volvo", "gm", "ford", "hyundai", "smartcar"] {
        let v = env.demo.vehicles.iter().find(|v| v.oem == oem).unwrap();
        let mock = env.demo.server(oem).url();
        let path = format!("/__mock/vehicles/{}", v.oem_id);
        let patch = |body: serde_json::Value| {
            send(
                &client,
                &mock,
                Method::PATCH,
                &path,
                None,
                &[("content-type", "application/json")],
                Some(body.to_string().into_bytes()),
            )
        };
        // A drive.
        let moved = patch(json!({"latitude": 48.137, "longitude": 11.575, "heading": 90.0})).await;
        assert_eq!(moved.status, 200, "{oem}: {}", moved.text);
        let seen = fresh_read_until(&env, &v.id, "location", |l| l["latitude"] == 48.137)
            .await
            .unwrap_or_else(|| panic!("{oem}: the move never showed"));
        assert_eq!(seen["longitude"], 11.575, "{oem}");
        // The owner's app flips the lock (GM has no lock-state read to show it).
        if oem != "gm" {
            let to = !moved.json["locked"].as_bool().unwrap();
            assert_eq!(patch(json!({"locked": to})).await.status, 200, "{oem}");
            let shown = fresh_read_until(&env, &v.id, "security", |s| s["locked"] == to).await;
            assert!(
                shown.is_some(),
                "{oem}: the owner's lock change never showed"
            );
        }
        // Someone opens the driver's door (GM has no state read to show it).
        if oem != "gm" {
            let opened = patch(json!({"doors": {"front_left": true}})).await;
            assert_eq!(
                opened.json["open"]["front_left"], true,
                "{oem}: {}",
                opened.text
            );
            let shown = fresh_read_until(&env, &v.id, "security", |s| {
                s["doors"].as_array().is_some_and(|d| {
                    d.iter()
                        .any(|d| d["position"] == "front_left" && d["open"] == true)
                })
            })
            .await;
            assert!(shown.is_some(), "{oem}: the open door never showed");
            patch(json!({"doors": {"front_left": false}})).await;
        }
        // It falls asleep, as the mock's state shows.
        let slept = patch(json!({"asleep": true})).await;
        assert_eq!(slept.json["asleep"], true, "{oem}: {}", slept.text);
        patch(json!({"asleep": false})).await;
    }
    // Tesla's mock steers its own cars the same way.
    let t = env.online();
    let opened = send(
        &client,
        &env.demo.server("tesla").url(),
        Method::PATCH,
        &format!("/__mock/vehicles/{}", t.oem_id),
        None,
        &[("content-type", "application/json")],
        Some(
            json!({"doors": {"rear_right": true}})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    let shown = fresh_read_until(&env, &t.id, "security", |s| {
        s["doors"].as_array().is_some_and(|d| {
            d.iter()
                .any(|d| d["position"] == "rear_right" && d["open"] == true)
        })
    })
    .await;
    assert!(shown.is_some(), "tesla: the open door never showed");
    // Nowhere on Earth, or no such car: refused.
    let bmw = env.demo.server("bmw").url();
    let bad = send(
        &client,
        &bmw,
        Method::PATCH,
        "/__mock/vehicles/NOPE",
        None,
        &[("content-type", "application/json")],
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(bad.status, 404);
    let vin = &env
        .demo
        .vehicles
        .iter()
        .find(|v| v.oem == "bmw")
        .unwrap()
        .oem_id;
    let bad = send(
        &client,
        &bmw,
        Method::PATCH,
        &format!("/__mock/vehicles/{vin}"),
        None,
        &[("content-type", "application/json")],
        Some(br#"{"latitude": 91}"#.to_vec()),
    )
    .await;
    assert_eq!(bad.status, 400);
}

/// Read paths beyond the state answer: a BMW whose state has no position is found with
/// BMW's vehicle finder (its event, then `eventPosition`); a Volvo that Volvo's own
/// check says cannot take a command now is not sent one — the caller learns it at once
/// and for certain, instead of an outcome nobody knows.
#[tokio::test]
async fn a_separate_locate_flow_and_the_oems_own_precheck() {
    let env = Env::start().await;
    let bmw = env.demo.vehicles.iter().find(|v| v.oem == "bmw").unwrap();
    env.demo.bmw().set_position_in_state(&bmw.oem_id, false);
    let car = env.demo.bmw().car(&bmw.oem_id).unwrap();
    let r = env
        .get(
            &format!("/v1/vehicles/{}/location", bmw.id),
            Some(&env.demo.token),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.json);
    assert_eq!(r.json["latitude"], car.latitude, "{:#}", r.json);
    assert_eq!(r.json["longitude"], car.longitude);
    assert_eq!(env.demo.bmw().journal.count("POST", "/vehicle-finder"), 1);
    assert_eq!(env.demo.bmw().journal.count("POST", "/eventPosition"), 1);

    let volvo = env.demo.vehicles.iter().find(|v| v.oem == "volvo").unwrap();
    env.demo.volvo().update(&volvo.oem_id, |c| c.asleep = true);
    let a = env.act(&volvo.id, "unlock").await;
    assert_eq!(a.status, 409, "{:#}", a.json);
    assert_eq!(a.json["code"], "vehicle_asleep", "{:#}", a.json);
    let journal = env.demo.volvo().journal.entries();
    assert!(
        journal
            .iter()
            .any(|e| e.path.ends_with("/command-accessibility")),
        "Volvo's check was asked"
    );
    assert!(
        !journal.iter().any(|e| e.path.contains("/commands/")),
        "no command was sent to a car Volvo cannot reach"
    );
}

/// `GET /v1/vehicles/{id}/state`: every signal in one answer, each as its own route
/// answers it; right after a confirmed unlock the lock signal shows it (never the OEM's
/// older snapshot); a signal that cannot be read now is null with its reason, and only
/// a car of which nothing can be read is a problem; signals outside the token's scopes
/// are left out.
#[tokio::test]
async fn the_state_answers_every_signal_and_says_why_one_is_missing() {
    let env = Env::start().await;
    let token = env.demo.token.clone();
    let v = env.demo.vehicles.iter().find(|v| v.oem == "bmw").unwrap();
    let a = env.act(&v.id, "unlock").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    let s = env
        .get(&format!("/v1/vehicles/{}/state", v.id), Some(&token))
        .await;
    assert_eq!(s.status, 200, "{:#}", s.json);
    assert_eq!(s.json["lock"]["locked"], false, "{:#}", s.json);
    let car = env.demo.bmw().car(&v.oem_id).unwrap();
    assert_eq!(s.json["location"]["latitude"], car.latitude);
    assert!(s.json.get("unavailable").is_none(), "{:#}", s.json);

    // A signal outside the token's scopes is left out; neither scope is a 403.
    let only_location = env.token(&["location:read"], None);
    let s = env
        .get(
            &format!("/v1/vehicles/{}/state", v.id),
            Some(&only_location),
        )
        .await;
    assert_eq!(s.status, 200, "{:#}", s.json);
    assert!(s.json.get("lock").is_none(), "{:#}", s.json);
    assert!(s.json["location"]["latitude"].is_number());
    let neither = env.token(&["vehicles:read"], None);
    let s = env
        .get(&format!("/v1/vehicles/{}/state", v.id), Some(&neither))
        .await;
    assert_eq!(s.status, 403, "{:#}", s.json);

    // A car whose position cannot be read now: that signal is null with its reason.
    env.demo.bmw().set_position_in_state(&v.oem_id, false);
    env.demo.bmw().faults.add(keyway_adapter::mock::Fault::on(
        "/vehicle-finder",
        keyway_adapter::mock::Action::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
    ));
    let s = env
        .send(
            Method::GET,
            &format!("/v1/vehicles/{}/state", v.id),
            Some(&token),
            &[("cache-control", "no-cache")],
            None,
        )
        .await;
    assert_eq!(s.status, 200, "{:#}", s.json);
    assert!(s.json["location"].is_null(), "{:#}", s.json);
    assert!(
        s.json["unavailable"]["location"]["code"].is_string(),
        "{:#}",
        s.json
    );
    assert_eq!(s.json["lock"]["locked"], false, "{:#}", s.json);

    // GM reads no lock state: the lock signal says so (source), the position is there.
    let g = env.demo.vehicles.iter().find(|v| v.oem == "gm").unwrap();
    let s = env
        .get(&format!("/v1/vehicles/{}/state", g.id), Some(&token))
        .await;
    assert_eq!(s.status, 200, "{:#}", s.json);
    assert!(s.json["lock"]["source"] != "vehicle", "{:#}", s.json);
    assert!(s.json["location"]["latitude"].is_number(), "{:#}", s.json);
}

/// A car its OEM says it cannot command (Smartcar's COMPATIBILITY for a make it cannot
/// unlock) when keyway could not learn that beforehand (its compatibility API did not
/// answer at the link): the first unlock fails `not_capable`, keyway keeps that with
/// the car — its capabilities drop `unlock` — and the next unlock is refused before a
/// command exists.
#[tokio::test]
async fn what_an_oem_says_a_car_cannot_do_is_kept_with_the_car() {
    let env = Env::builder().mocks(&["smartcar"]).start().await;
    let id = env
        .demo
        .vehicles
        .iter()
        .find(|v| v.vin.as_deref() == Some(keyway_smartcar::demo::READ_ONLY))
        .expect("the car Smartcar cannot command")
        .id
        .clone();
    // The link learned it from the compatibility API; forget that, as if it had not
    // answered.
    let car = env
        .get(&format!("/v1/vehicles/{id}"), Some(&env.demo.token))
        .await;
    assert_eq!(car.json["capabilities"], json!(["locate", "security"]));
    env.forget_capabilities(&id).await;
    let path = format!("/v1/vehicles/{id}/unlock");
    let unlock = || {
        env.send(
            Method::POST,
            &path,
            Some(&env.demo.token),
            &[("prefer", "wait=30")],
            None,
        )
    };
    let first = unlock().await;
    first.assert_problem(422, "not_capable");
    assert_eq!(first.json["command_status"], "failed", "{:#}", first.json);
    let car = env
        .get(&format!("/v1/vehicles/{id}"), Some(&env.demo.token))
        .await;
    assert_eq!(
        car.json["capabilities"],
        json!(["locate", "security", "lock"]),
        "{:#}",
        car.json
    );
    let smartcar: &keyway_smartcar::SmartcarMock = env.demo.mock("smartcar");
    let sent = smartcar.journal.count("POST", "/security");
    let again = unlock().await;
    again.assert_problem(422, "not_capable");
    assert!(again.json["command_status"].is_null(), "{:#}", again.json);
    assert_eq!(
        smartcar.journal.count("POST", "/security"),
        sent,
        "nothing sent"
    );
}
