//! Honest outcomes end to end, against the HTTP mocks with realistic timing: a lost
//! answer is never followed by a second send, even while the OEM's view of the car still
//! shows the old state; `unknown` is an answer, and an unlock in doubt blocks the next.

use crate::common;
use crate::common::DemoMocks;

use common::Env;
use keyway_adapter::mock::timeline::CarTiming;
use keyway_adapter::mock::{Action, Fault};

/// The demo BMW, `locked` or not, its cloud's view lagging the car by 4 s.
fn lagging_bmw(env: &Env, locked: bool) -> keyway::store::VehicleRecord {
    let v = env.by_vin("WBY31AW090FP00001").clone();
    env.demo.bmw().update(&v.oem_id, |c| {
        c.locked = locked;
        c.timing = CarTiming {
            state_lag_ms: 4_000,
            ..CarTiming::default()
        };
    });
    v
}

/// Locks the BMW `vehicle` while the OEM's answer to the lock is lost (the car runs
/// it): the outcome is `succeeded`, and the lock was sent once. Its answer.
async fn lock_with_its_answer_lost(env: &Env, vehicle: &str) -> common::Answer {
    env.demo
        .bmw()
        .faults
        .add(Fault::on("/door-lock", Action::ResetAfter).times(1));
    let a = env.act(vehicle, "lock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    assert_eq!(env.demo.bmw().journal.count("POST", "/door-lock"), 1);
    a
}

#[tokio::test]
async fn a_bmw_lock_whose_answer_is_lost_is_sent_once_and_confirmed_by_a_later_state() {
    let env = Env::start().await;
    // BMW's view of the car lags it by 4 s: right after the lost answer the cloud still
    // says "unlocked" — the state that made keyway send again before.
    let v = lagging_bmw(&env, false);
    let a = lock_with_its_answer_lost(&env, &v.id).await;
    assert_eq!(a.json["last_observed"]["locked"], true, "{:#}", a.json);
    // The car ran it once; the cloud showed the old state for 4 s after.
    let runs = env.demo.bmw().garage.executions();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(env.demo.bmw().car(&v.oem_id).unwrap().locked);
}

/// The lost answer opens BMW's breaker (one failure opens it here, for ten minutes):
/// the reads that watch the command do not go through the breaker, so the lock is still
/// confirmed by a later state instead of ending `unknown` after the command timeout.
#[tokio::test]
async fn a_lost_answer_that_opens_the_breaker_is_still_confirmed_by_reads() {
    let env = Env::start_with(|c| {
        let bmw = c.oems.get_mut("bmw").unwrap();
        bmw.breaker.failures = 1;
        bmw.breaker.open = std::time::Duration::from_millis(600_000);
    })
    .await;
    let v = env.by_vin("WBY31AW090FP00001").clone();
    env.demo.bmw().update(&v.oem_id, |c| c.locked = false);
    lock_with_its_answer_lost(&env, &v.id).await;
    // The breaker is open for everything else.
    let read = env
        .get(
            &format!("/v1/vehicles/{}/location", v.id),
            Some(&env.demo.token),
        )
        .await;
    read.assert_problem(503, "circuit_open");
}

/// The demo GM (its OEM reads no lock state).
const GM: &str = "1G1FZ6S09P4000001";

/// Unlocks the GM `vehicle` while the OEM's answer is lost: nothing can settle it, so
/// the caller is answered `504 outcome_unknown`. Its answer.
async fn unlock_gm_with_its_answer_lost(env: &Env, vehicle: &str) -> common::Answer {
    env.demo
        .gm()
        .faults
        .add(Fault::on("/unlock/", Action::ResetAfter).times(1));
    let a = env.act(vehicle, "unlock").await;
    a.assert_problem(504, "outcome_unknown");
    a
}

#[tokio::test]
async fn an_unlock_lost_at_an_oem_that_cannot_read_the_lock_is_unknown_and_blocks_the_next() {
    let env = Env::start().await;
    // GM reports no lock state: nothing can settle a lost answer.
    let v = env.by_vin(GM).clone();
    let a = unlock_gm_with_its_answer_lost(&env, &v.id).await;
    assert_eq!(a.json["command_status"], "unknown");
    assert_eq!(a.json["retryable"], false);
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=15).contains(&retry), "{retry}");
    let id = a.json["command_id"].as_str().unwrap().to_string();
    let c = env
        .get(&format!("/v1/commands/{id}"), Some(&env.demo.token))
        .await;
    assert_eq!(c.json["status"], "unknown", "{:#}", c.json);

    // A second unlock while the first may still run is refused, not sent.
    let again = env.act(&v.id, "unlock").await;
    again.assert_problem(409, "command_in_doubt");
    assert_eq!(again.json["command_status"], "failed");
    assert!(again.header("retry-after").is_some());
    let unlocks = env
        .demo
        .gm()
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.method == "POST" && e.path.contains("/unlock/"))
        .count();
    assert_eq!(unlocks, 1);
    // A lock is never blocked: it is what makes the car safe.
    let lock = env.act(&v.id, "lock").await;
    assert_eq!(lock.status, 200, "{:#}", lock.json);
}

/// An unlock in doubt at an OEM that cannot read the lock (GM: the vehicle says
/// `outcome_confirmable: false`) is lifted by a caller's acknowledgement, audited; a
/// lock, or another tenant's command, cannot be acknowledged.
#[tokio::test]
async fn an_acknowledged_unlock_in_doubt_no_longer_blocks_the_next() {
    let env = Env::start().await;
    let v = env.by_vin(GM).clone();
    let car = env
        .get(&format!("/v1/vehicles/{}", v.id), Some(&env.demo.token))
        .await;
    assert_eq!(car.json["outcome_confirmable"], false, "{:#}", car.json);
    let a = unlock_gm_with_its_answer_lost(&env, &v.id).await;
    let id = a.json["command_id"].as_str().unwrap().to_string();
    env.act(&v.id, "unlock")
        .await
        .assert_problem(409, "command_in_doubt");

    let path = format!("/v1/commands/{id}/acknowledge");
    let stranger = env.token_as("other-tenant", &["commands:unlock", "commands:lock"]);
    env.post(&path, &stranger, &[])
        .await
        .assert_problem(404, "command_not_found");
    let reader = env.token(&["commands:lock"], None);
    env.post(&path, &reader, &[])
        .await
        .assert_problem(403, "forbidden");
    let ack = env.post(&path, &env.demo.token, &[]).await;
    assert_eq!(ack.status, 200, "{:#}", ack.json);
    assert!(ack.json["acknowledged_at"].is_string(), "{:#}", ack.json);
    assert_eq!(ack.json["status"], "unknown");

    let next = env.act(&v.id, "unlock").await;
    assert_eq!(next.status, 200, "{:#}", next.json);
    assert_eq!(next.json["status"], "succeeded");
    let log = env.demo.gateway.store.audit_log().await.unwrap();
    assert!(
        log.iter().any(|e| e.entry.action == "command.acknowledge"
            && e.entry.command_id.as_deref() == Some(&id)),
        "the acknowledgement is audited"
    );
    // A lock is never in doubt.
    let lock = env.act(&v.id, "lock").await;
    let lock_id = lock.json["id"].as_str().unwrap();
    env.post(
        &format!("/v1/commands/{lock_id}/acknowledge"),
        &env.demo.token,
        &[],
    )
    .await
    .assert_problem(409, "command_not_in_doubt");
}

/// A read right after a confirmed unlock shows the car unlocked, from the command —
/// not the locked state of the OEM's older snapshot (its cloud lags the car by 4 s).
#[tokio::test]
async fn a_read_right_after_a_confirmed_unlock_does_not_contradict_it() {
    let env = Env::start().await;
    let v = lagging_bmw(&env, true);
    let a = env.act(&v.id, "unlock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    let read = env
        .send(
            http::Method::GET,
            &format!("/v1/vehicles/{}/security", v.id),
            Some(&env.demo.token),
            &[("cache-control", "max-age=0")],
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{:#}", read.json);
    assert_eq!(read.json["locked"], false, "{:#}", read.json);
    assert_eq!(read.json["source"], "last_command", "{:#}", read.json);
    // The OEM itself still says locked: the cloud's view lags the car.
    assert!(
        env.demo
            .bmw()
            .garage
            .view(&v.oem_id)
            .is_some_and(|(c, _)| c.locked)
    );
}
