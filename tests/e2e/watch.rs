//! Watching cars end to end: a tenant watches a car of each OEM, the world changes it
//! through the mock's `PATCH /__mock/vehicles/{vin}` (the owner's app, a key fob, a
//! drive, a door, sleep), and each change arrives as exactly one
//! `vehicle.state_changed` event — with no wake-up in the mock's journal. Waits are
//! bounded loops on what the store holds, never timed assertions.

use crate::common;

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use common::{DEMO_TENANT, Env, send};

async fn env() -> Env {
    Env::builder()
        .configure(|c| {
            c.watch.tick = Duration::from_millis(20);
            c.watch.min_period = Duration::from_millis(100);
            // A sleeping car's reads back off to at most this (the default is minutes).
            c.watch.asleep_max_period = Duration::from_millis(400);
        })
        .start()
        .await
}

fn until(minutes: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn watch(env: &Env, vehicle_id: &str) -> common::Answer {
    env.json(
        Method::PUT,
        &format!("/v1/vehicles/{vehicle_id}/watch"),
        &env.demo.token,
        json!({ "until": until(30) }),
    )
    .await
}

/// The world changes a car, through its mock's own control route.
async fn patch(env: &Env, oem: &str, vin: &str, body: Value) {
    let a = send(
        &common::client(),
        &env.demo.server(oem).url(),
        Method::PATCH,
        &format!("/__mock/vehicles/{vin}"),
        None,
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    )
    .await;
    assert_eq!(a.status, 200, "{oem}: {}", a.text);
}

/// The demo tenant's events of type `kind` so far.
async fn events_of(env: &Env, kind: &str) -> Vec<keyway::store::EventRecord> {
    let tenant = DEMO_TENANT.into();
    let all = env
        .demo
        .gateway
        .store
        .events_after(&tenant, None, 0, 10_000);
    let mut all = all.await.unwrap();
    all.retain(|e| e.kind == kind);
    all
}

/// The car's `vehicle.state_changed` events so far, their data.
async fn changes(env: &Env, vehicle_id: &str) -> Vec<Value> {
    events_of(env, "vehicle.state_changed")
        .await
        .into_iter()
        .filter(|e| e.vehicle_id.as_deref() == Some(vehicle_id))
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

/// Waits (bounded) until `f` holds of what the store keeps.
async fn until_true<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

/// Waits for the next change event after the `seen` ones; it must name `signal`.
async fn next_change(env: &Env, v: &str, seen: usize, signal: &str) -> Value {
    for _ in 0..1200 {
        if changes(env, v).await.len() > seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let state = env
        .demo
        .gateway
        .store
        .vehicle_state(&v.into())
        .await
        .unwrap();
    assert!(
        changes(env, v).await.len() > seen,
        "no {signal} change of {v}: {:#?}, kept {state:?}",
        changes(env, v).await
    );
    let all = changes(env, v).await;
    let c = all[seen].clone();
    assert!(
        c["changed"].as_array().unwrap().iter().any(|s| s == signal),
        "{c:#}"
    );
    c
}

/// Someone opens one of the car's doors; the next change event (after `seen`) shows
/// it open.
async fn open_door(env: &Env, v: &keyway::store::VehicleRecord, seen: usize, door: &str) {
    let oem = v.oem.as_str();
    patch(env, oem, &v.oem_id, json!({ "doors": { door: true } })).await;
    let c = next_change(env, &v.id, seen, "doors").await;
    let open = c["state"]["lock"]["open"].as_array().unwrap();
    assert!(open.contains(&json!(door)), "{oem}: {c:#}");
}

/// Waits (bounded) until the watcher kept a first reading of the car.
async fn baseline(env: &Env, vehicle_id: &str) {
    until_true("the baseline", || async {
        let kept = env
            .demo
            .gateway
            .store
            .vehicle_state(&vehicle_id.into())
            .await;
        kept.unwrap().is_some()
    })
    .await;
}

/// A grant for courier-1 on the car for the next 30 minutes, with `extra` fields; its id.
async fn grant(env: &Env, vehicle_id: &str, extra: Value) -> String {
    let not_after = (env.demo.gateway.grants.clock.now() + time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut body =
        json!({"vehicle_id": vehicle_id, "grantee": "courier-1", "not_after": not_after});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let g = env
        .json(Method::POST, "/v1/grants", &env.demo.token, body)
        .await;
    assert_eq!(g.status, 201, "{:#}", g.json);
    g.json["id"].as_str().unwrap().to_string()
}

fn wakes(env: &Env, oem: &str) -> usize {
    env.requests(oem, None, "wake")
}

#[tokio::test]
async fn each_change_of_a_watched_car_arrives_once_without_a_wake_up() {
    let env = env().await;
    let tesla = env.online().clone();
    let cars: Vec<_> = ["bmw", "volvo", "ford", "hyundai"]
        .iter()
        .map(|oem| {
            env.demo
                .vehicles
                .iter()
                .find(|v| v.oem == *oem)
                .unwrap()
                .clone()
        })
        .chain([tesla.clone()])
        .collect();
    for v in &cars {
        let a = watch(&env, &v.id).await;
        assert_eq!(a.status, 200, "{:#}", a.json);
        assert_eq!(a.json["vehicle_id"], v.id.as_str());
    }
    let listed = env.get("/v1/watches", Some(&env.demo.token)).await;
    assert_eq!(listed.json["watches"].as_array().unwrap().len(), cars.len());
    // The first reading is the baseline: no event.
    for v in &cars {
        baseline(&env, &v.id).await;
        assert!(changes(&env, &v.id).await.is_empty());
    }
    for v in &cars {
        let oem = v.oem.as_str();
        let locked = env
            .demo
            .mocks
            .iter()
            .find(|m| m.oem == oem)
            .unwrap()
            .mock
            .locked(&v.oem_id);
        patch(&env, oem, &v.oem_id, json!({ "locked": !locked })).await;
        let c = next_change(&env, &v.id, 0, "locked").await;
        assert_eq!(c["state"]["lock"]["locked"], !locked, "{oem}: {c:#}");
        assert_eq!(c["previous"]["lock"]["locked"], locked, "{oem}: {c:#}");

        // Hyundai/Kia's CCS2 car reports its boot as `Body.Trunk.Open`.
        let door = if oem == "hyundai" {
            "trunk"
        } else {
            "front_left"
        };
        open_door(&env, v, 1, door).await;
        let seen = changes(&env, &v.id).await.len();
        assert_eq!(seen, 2, "{oem}: each change once");
        assert_eq!(wakes(&env, oem), 0, "{oem}: watching woke the car");
        // What watching costs shows per OEM (the registry is the process's: other tests'
        // reads may add to it, never take away).
        let asked = keyway::metrics::counter("keyway_watch_requests_total", &[("oem", oem)]);
        assert!(asked >= 2, "{oem}: watch requests counted: {asked}");
        let text = keyway::metrics::render();
        assert!(
            text.contains(&format!("keyway_watched_cars{{oem=\"{oem}\"}}")),
            "{oem}"
        );
    }
    // A drive, where the OEM answers the position directly.
    let volvo = &cars[1];
    patch(
        &env,
        "volvo",
        &volvo.oem_id,
        json!({"latitude": 48.137, "longitude": 11.575}),
    )
    .await;
    let c = next_change(&env, &volvo.id, 2, "location").await;
    assert_eq!(c["state"]["location"]["latitude"], 48.137, "{c:#}");
    // Tesla tells when its car falls asleep; the car is not woken for it.
    patch(&env, "tesla", &tesla.oem_id, json!({"state": "asleep"})).await;
    let c = next_change(&env, &tesla.id, 2, "connectivity").await;
    assert_eq!(c["state"]["connectivity"], "asleep", "{c:#}");
    assert_eq!(c["previous"]["connectivity"], "online", "{c:#}");
    // Callers see it too, learned by the watcher: no read of theirs woke the car.
    let path = format!("/v1/vehicles/{}/state", tesla.id);
    let state = env.get(&path, Some(&env.demo.token)).await;
    assert_eq!(state.status, 200, "{}", state.text);
    assert_eq!(
        state.json["connectivity"]["state"], "asleep",
        "{:#}",
        state.json
    );
    // Settled: nothing more is emitted, and no car was ever woken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for v in &cars {
        let n = changes(&env, &v.id).await.len();
        let expected = if v.id == volvo.id || v.id == tesla.id {
            3
        } else {
            2
        };
        assert_eq!(n, expected, "{}: {:#?}", v.oem, changes(&env, &v.id).await);
        assert_eq!(wakes(&env, &v.oem), 0, "{}", v.oem);
    }
    // The event reached the stream's readers as `vehicle.state_changed`.
    let delete = env
        .send(
            Method::DELETE,
            &format!("/v1/vehicles/{}/watch", tesla.id),
            Some(&env.demo.token),
            &[],
            None,
        )
        .await;
    assert_eq!(delete.status, 204);
}

#[tokio::test]
async fn a_watch_must_end_ahead_and_not_too_far() {
    let env = env().await;
    let v = env.online().id.clone();
    let path = format!("/v1/vehicles/{v}/watch");
    for bad in [until(-1), until(60 * 24 * 2)] {
        env.json(Method::PUT, &path, &env.demo.token, json!({ "until": bad }))
            .await
            .assert_problem(400, "invalid_request");
    }
    env.send(Method::DELETE, &path, Some(&env.demo.token), &[], None)
        .await
        .assert_problem(404, "not_found");
    // Watching is for event readers.
    let reader = env.token(&["vehicles:read"], None);
    env.json(Method::PUT, &path, &reader, json!({ "until": until(5) }))
        .await
        .assert_problem(403, "forbidden");
}

/// A car is watched for as long as a grant on it is in use, without anyone asking: a
/// door opened during the delivery window arrives as an event.
#[tokio::test]
async fn a_grants_car_is_watched_during_its_window() {
    let env = env().await;
    let v = env.online().clone();
    grant(&env, &v.id, json!({})).await;
    baseline(&env, &v.id).await;
    open_door(&env, &v, 0, "rear_left").await;
    assert_eq!(wakes(&env, "tesla"), 0);
}

/// A grant's car that leaves the grant's geofence while the grant is in use is reported
/// once (`grant.vehicle_moved`), and the courier's unlock is refused while it is away.
#[tokio::test]
async fn a_grants_car_that_leaves_its_geofence_is_reported_once() {
    let env = env().await;
    let v = env.online().clone();
    let tesla = env.demo.mocks.iter().find(|m| m.oem == "tesla").unwrap();
    let (lat, lon) = tesla.mock.position(&v.oem_id);
    let fence = json!({"latitude": lat, "longitude": lon, "radius_m": 200.0});
    let grant = grant(&env, &v.id, json!({ "geofence": fence })).await;
    baseline(&env, &v.id).await;
    // Driven 5 km away, then a little further: one departure.
    for step in [0.045, 0.05] {
        let seen = changes(&env, &v.id).await.len();
        patch(&env, "tesla", &v.oem_id, json!({"latitude": lat + step})).await;
        next_change(&env, &v.id, seen, "location").await;
    }
    let moved = || events_of(&env, "grant.vehicle_moved");
    until_true("grant.vehicle_moved", || async {
        !moved().await.is_empty()
    })
    .await;
    let events = moved().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].grant_id.as_deref(), Some(grant.as_str()));
    let courier = env.token_as("courier-1", &["grants:use"]);
    env.post(
        &format!("/v1/grants/{grant}/unlock"),
        &courier,
        &[common::WAIT],
    )
    .await
    .assert_problem(403, "outside_geofence");
}

/// Smartcar pushes a car's state to keyway's callback (the mock delivers it signed, as
/// Smartcar does): the first push is the baseline, a change arrives as one
/// `vehicle.state_changed`, the same delivery again (a replay) is no news, and a
/// delivery that is not signed with the management token is refused and changes
/// nothing. The callback passes Smartcar's `VERIFY` check.
#[tokio::test]
async fn smartcar_pushes_are_verified_and_each_change_arrives_once() {
    let env = env().await;
    let v = env
        .demo
        .vehicles
        .iter()
        .find(|v| v.oem == "smartcar")
        .unwrap()
        .clone();
    let mock = env.demo.server("smartcar").url();
    let callback = format!("{}/v1/oem-webhooks/smartcar", env.base());
    let deliver = |event: &str| {
        let body = json!({"callback": callback, "event": event, "vehicle": v.oem_id});
        let mock = mock.clone();
        async move {
            let a = send(
                &common::client(),
                &mock,
                Method::POST,
                "/__mock/webhooks/deliver",
                None,
                &[("content-type", "application/json")],
                Some(body.to_string().into_bytes()),
            )
            .await;
            assert_eq!(a.status, 200, "{}", a.text);
            a.json
        }
    };
    let verified = deliver("VERIFY").await;
    assert_eq!(verified["verified"], true, "{verified:#}");

    // Nobody watches the car: only pushes change its kept state.
    let first = deliver("VEHICLE_STATE").await;
    assert_eq!(
        (first["status"].as_u64(), &first["answer"]["known"]),
        (Some(200), &json!(1)),
        "{first:#}"
    );
    baseline(&env, &v.id).await;
    let smartcar: &keyway_smartcar::SmartcarMock = env.demo.mock("smartcar");
    smartcar.update(&v.oem_id, |c| c.locked = false);
    let (body, signature) = smartcar.vehicle_state(&v.oem_id).unwrap();
    let post = |body: Vec<u8>, signature: Option<String>| {
        let env = &env;
        async move {
            let mut headers = vec![("content-type", "application/json".to_string())];
            if let Some(s) = signature {
                headers.push(("sc-signature", s));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let path = "/v1/oem-webhooks/smartcar";
            env.send(Method::POST, path, None, &headers, Some(body))
                .await
        }
    };
    // A forged delivery (no signature, or another secret) is refused.
    let forged = post(body.clone(), None).await;
    assert_eq!(forged.status, 401, "{}", forged.text);
    assert_eq!(forged.json["code"], "unauthenticated");
    let other = keyway_smartcar::push::sign("not-the-token", &body);
    assert_eq!(post(body.clone(), Some(other)).await.status, 401);
    assert!(
        changes(&env, &v.id).await.is_empty(),
        "a refused push changed nothing"
    );

    let taken = post(body.clone(), Some(signature.clone())).await;
    assert_eq!(taken.status, 200, "{}", taken.text);
    let c = next_change(&env, &v.id, 0, "locked").await;
    assert_eq!(c["state"]["lock"]["locked"], false, "{c:#}");
    // A caller's read within the TTL answers the pushed state, with no OEM call.
    let reads = || env.requests("smartcar", None, "/security");
    let before = reads();
    let path = format!("/v1/vehicles/{}/security", v.id);
    let read = env.get(&path, Some(&env.demo.token)).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        (&read.json["locked"], &read.json["source"]),
        (&json!(false), &json!("push")),
        "{:#}",
        read.json
    );
    assert_eq!(reads(), before, "the read asked the OEM");
    // The same delivery again: taken, and no second event.
    assert_eq!(post(body, Some(signature)).await.status, 200);
    let kept = env.demo.gateway.store.vehicle_state(&v.id).await.unwrap();
    assert_eq!(changes(&env, &v.id).await.len(), 1, "kept {kept:?}");
}
