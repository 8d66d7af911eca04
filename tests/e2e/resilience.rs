//! Resilience end to end: the gateway against the Tesla mock with injected faults —
//! retries that are safe for a door lock, reconciliation of lost answers, 429 storms,
//! the circuit breaker, OEM quotas, coalesced reads, per-car serialization, and a
//! seeded 20 % fault storm over 5,000 requests.

use crate::common;
use crate::common::DemoMocks;

use std::collections::HashMap;
use std::time::Duration;

use common::{Env, WAIT, send};
use http::Method;
use keyway::config::{Config, WindowConfig};
use keyway_adapter::mock::{Action, Fault, JournalEntry};

const FRESH: (&str, &str) = ("cache-control", "max-age=0");

/// Generous inbound limits (the tests are the only caller) and quick retries.
fn tuned(c: &mut Config) {
    c.inbound.caller_per_s = 100_000;
    c.inbound.caller_burst = 100_000;
    c.inbound.unlocks_per_vehicle_per_min = 100_000;
    c.inbound.unlock_burst = 100_000;
    c.inbound.max_in_flight = 10_000;
    let tesla = c.oems.get_mut("tesla").unwrap();
    tesla.retry.base = Duration::from_millis(5);
    tesla.retry.cap = Duration::from_millis(20);
    tesla.timeout = Duration::from_millis(2_000);
    // The Tesla mock answers from the car at once and holds no command: a lost answer
    // is settled by the car's state within seconds.
    tesla.timing.state_lag = Some(Duration::from_secs(1));
    tesla.timing.command_window = Some(Duration::from_secs(2));
}

/// The Tesla mock alone (tuned), answering requests to `path` after `ms`.
async fn slow_tesla(path: &str, ms: u64) -> Env {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(tuned)
        .start()
        .await;
    env.demo.tesla().faults.add(Fault::on(
        path,
        Action::Latency {
            ms,
            min_ms: None,
            max_ms: None,
        },
    ));
    env
}

fn entries(env: &Env, suffix: &str) -> Vec<JournalEntry> {
    env.demo
        .tesla()
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.path.ends_with(suffix))
        .collect()
}

#[tokio::test]
async fn a_read_survives_two_503s_and_a_reset() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            tuned(c);
            c.oems.get_mut("tesla").unwrap().retry.max_attempts = 4;
        })
        .start()
        .await;
    let faults = &env.demo.tesla().faults;
    faults.add(
        Fault::on(
            "/vehicle_data",
            Action::Status {
                status: 503,
                body: None,
                retry_after: None,
            },
        )
        .times(2),
    );
    faults.add(Fault::on("/vehicle_data", Action::ResetBefore).times(1));
    let a = send(
        &env.client,
        &env.base(),
        Method::GET,
        &format!("/v1/vehicles/{}/location", env.online().id),
        Some(&env.demo.token),
        &[FRESH],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    let statuses: Vec<u16> = entries(&env, "/vehicle_data")
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        statuses,
        vec![503, 503, 200, 200],
        "two 503s, a reset (200 head, broken body), a success"
    );
}

#[tokio::test]
async fn a_lock_whose_answer_is_lost_after_it_was_applied_is_not_sent_again() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(tuned)
        .start()
        .await;
    let v = env.online();
    env.demo.tesla().update(&v.oem_id, |m| m.locked = false);
    env.demo
        .tesla()
        .faults
        .add(Fault::on("/command/door_lock", Action::ResetAfter).times(1));
    let a = env.act(&v.id, "lock").await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
    let locks = entries(&env, "/command/door_lock");
    assert_eq!(locks.len(), 1, "not re-sent: {locks:#?}");
    assert!(locks[0].applied);
    assert_eq!(locks[0].command_id.as_deref(), a.json["id"].as_str());
    assert!(env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);
    // It was confirmed by reading the lock state after the lost answer.
    assert!(
        entries(&env, "/vehicle_data")
            .iter()
            .any(|e| e.started_ms >= locks[0].ended_ms)
    );
}

#[tokio::test]
async fn a_lock_lost_on_its_way_is_never_sent_again_and_stays_unknown_once_its_window_passed() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(tuned)
        .start()
        .await;
    let v = env.online();
    env.demo.tesla().update(&v.oem_id, |m| m.locked = false);
    env.demo
        .tesla()
        .faults
        .add(Fault::on("/command/door_lock", Action::ResetBefore).times(1));
    let a = env.act(&v.id, "lock").await;
    // keyway cannot tell a request lost on its way from an answer lost on its way back:
    // it does not send again and watches the car. Once the OEM's command window has
    // passed with the car still open, the command cannot run any more, but the open car
    // does not prove it never ran (its owner may have unlocked it since): `unknown`,
    // with the open state it saw. Only the OEM's word makes a command `failed`.
    a.assert_problem(504, "outcome_unknown");
    assert_eq!(a.json["command_status"], "unknown");
    assert_eq!(a.json["last_observed"]["locked"], false, "{:#}", a.json);
    let locks = entries(&env, "/command/door_lock");
    assert_eq!(locks.len(), 1, "{locks:#?}");
    assert!(!env.demo.tesla().vehicle(&v.oem_id).unwrap().locked);
}

#[tokio::test]
async fn a_429_storm_is_waited_out_and_retries_stay_within_budget() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(tuned)
        .start()
        .await;
    env.demo.tesla().faults.add(Fault {
        until_ms: Some(2_000),
        ..Fault::on(
            "/vehicle_data",
            Action::Status {
                status: 429,
                body: Some(serde_json::json!({"response": null, "error": "Rate limit exceeded"})),
                retry_after: Some(2),
            },
        )
    });
    let retries_before =
        keyway::metrics::counter("keyway_upstream_retries_total", &[("oem", "tesla")]);
    let car = env.online().id.clone();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (client, base, token) = (env.client.clone(), env.base(), env.demo.token.clone());
            let path = format!(
                "/v1/vehicles/{car}/{}",
                if i % 2 == 0 { "location" } else { "security" }
            );
            tokio::spawn(async move {
                send(
                    &client,
                    &base,
                    Method::GET,
                    &path,
                    Some(&token),
                    &[FRESH],
                    None,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{:#}", a.json);
    }
    let calls = entries(&env, "/vehicle_data");
    let first_429 = calls
        .iter()
        .filter(|e| e.status == 429)
        .map(|e| e.ended_ms)
        .min()
        .unwrap();
    for e in calls.iter().filter(|e| e.status != 429) {
        assert!(
            e.started_ms >= first_429 + 1_990,
            "a call at {} ms, within Retry-After of the 429 at {first_429} ms",
            e.started_ms
        );
    }
    // 100 callers, 2 distinct reads (coalesced): each read is tried at most twice.
    assert!(calls.len() <= 4, "{} upstream calls", calls.len());
    let retries = keyway::metrics::counter("keyway_upstream_retries_total", &[("oem", "tesla")])
        - retries_before;
    assert!(retries <= 2, "{retries} retries");
}

#[tokio::test]
async fn the_breaker_opens_on_a_dead_oem_fails_fast_and_closes_after_recovery() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            tuned(c);
            let t = c.oems.get_mut("tesla").unwrap();
            t.retry.max_attempts = 1;
            t.breaker.failures = 3;
            t.breaker.open = Duration::from_millis(300);
        })
        .start()
        .await;
    let path = format!("/v1/vehicles/{}/location", env.online().id);
    let base = env.base();
    let read = || {
        send(
            &env.client,
            &base,
            Method::GET,
            &path,
            Some(&env.demo.token),
            &[FRESH],
            None,
        )
    };
    env.demo.tesla().faults.add(Fault::on(
        "/",
        Action::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
    ));
    for _ in 0..3 {
        read().await.assert_problem(502, "upstream_error");
    }
    let seen = env.demo.tesla().journal.entries().len();
    let open = read().await;
    open.assert_problem(503, "circuit_open");
    assert!(open.header("retry-after").is_some());
    assert_eq!(
        env.demo.tesla().journal.entries().len(),
        seen,
        "an open breaker sends nothing"
    );

    env.demo.tesla().faults.clear();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        read().await.status,
        200,
        "the probe succeeds and closes the breaker"
    );
    assert_eq!(read().await.status, 200);
}

/// A car Smartcar cannot command answers `501 VEHICLE_NOT_CAPABLE` every time: a definite
/// answer, not an outage. However often it is asked, the breaker stays closed for the
/// OEM's other cars (schemathesis found a Smartcar car answered `503 circuit_open`
/// after another car's `not_capable`s).
#[tokio::test]
async fn not_capable_answers_open_no_breaker_for_the_oems_other_cars() {
    let env = Env::builder()
        .mocks(&["smartcar"])
        .configure(|c| {
            if let Some(o) = c.oems.get_mut("smartcar") {
                o.breaker.failures = 2;
            }
        })
        .start()
        .await;
    let car = |vin: &str| {
        env.demo
            .vehicles
            .iter()
            .find(|v| v.vin.as_deref() == Some(vin))
            .unwrap()
            .id
            .clone()
    };
    let read_only = car(keyway_smartcar::demo::READ_ONLY);
    // What the compatibility API said at the link is forgotten: the OEM answers each
    // command `not_capable` itself.
    for _ in 0..4 {
        env.forget_capabilities(&read_only).await;
        env.post(
            &format!("/v1/vehicles/{read_only}/lock"),
            &env.demo.token,
            &[WAIT],
        )
        .await
        .assert_problem(422, "not_capable");
    }
    let jaguar = car("SADHA2B18N1000001");
    let a = env
        .post(
            &format!("/v1/vehicles/{jaguar}/lock"),
            &env.demo.token,
            &[WAIT],
        )
        .await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(a.json["status"], "succeeded");
}

#[tokio::test]
async fn a_command_quota_is_never_exceeded_under_fifty_concurrent_commands() {
    // Volvo publishes 10 commands per minute; the same rule on a half-second window.
    // The 50 commands go to a few cars at once and the quota spreads them over ~2.5 s,
    // so each car's queue would pass the default cap (4 per car, answered `429
    // vehicle_busy`, tested in tenancy.rs): the cap is raised so that this test checks
    // the quota alone.
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            tuned(c);
            c.commands.max_queued_per_vehicle = 100;
            let t = c.oems.get_mut("tesla").unwrap();
            t.limits.commands = Some(vec![WindowConfig {
                max: 10,
                per: Duration::from_secs_f64(0.5),
            }]);
            t.limits.max_wait = Duration::from_millis(30_000);
        })
        .start()
        .await;
    let ids = env.commandable_tesla_ids();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (client, base, token) = (env.client.clone(), env.base(), env.demo.token.clone());
            let action = if i % 2 == 0 { "lock" } else { "unlock" };
            let path = format!("/v1/vehicles/{}/{action}", ids[(i / 2) % ids.len()]);
            tokio::spawn(async move {
                send(
                    &client,
                    &base,
                    Method::POST,
                    &path,
                    Some(&token),
                    &[WAIT],
                    None,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{:#}", a.json);
    }
    let mut starts: Vec<u64> = env
        .demo
        .tesla()
        .journal
        .entries()
        .into_iter()
        // Commands, REST or signed (a signed car's handshake is not a command).
        .filter(|e| {
            e.path.contains("/command/")
                || (e.path.ends_with("/signed_command") && e.note != Some("handshake"))
        })
        .map(|e| e.started_ms)
        .collect();
    starts.sort_unstable();
    // 50 commands (the asleep car's first attempt was a handshake, answered 408).
    assert_eq!(starts.len(), 50);
    for (i, t) in starts.iter().enumerate() {
        let in_window = starts[i..].iter().filter(|u| **u < t + 500).count();
        assert!(
            in_window <= 10,
            "{in_window} commands in the 500 ms from {t} ms"
        );
    }
}

#[tokio::test]
async fn a_thousand_concurrent_locates_of_one_car_make_one_upstream_call() {
    let env = slow_tesla("/vehicle_data", 200).await;
    let path = format!("/v1/vehicles/{}/location", env.online().id);
    let coalesced_before = keyway::metrics::counter(
        "keyway_read_cache_total",
        &[("read", "location"), ("result", "coalesced")],
    );
    let tasks: Vec<_> = (0..1000).map(|_| env.spawn_get(&path)).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert_eq!(entries(&env, "/vehicle_data").len(), 1);
    let coalesced = keyway::metrics::counter(
        "keyway_read_cache_total",
        &[("read", "location"), ("result", "coalesced")],
    ) - coalesced_before;
    assert!(coalesced > 0, "some callers shared the in-flight read");
}

#[tokio::test]
async fn a_reader_that_goes_away_does_not_strand_the_one_waiting_for_its_read() {
    let env = slow_tesla("/vehicle_data", 300).await;
    let path = format!("/v1/vehicles/{}/location", env.online().id);
    // The first caller leads the read, the second waits for it; then the first hangs up.
    let leader = env.spawn_get(&path);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = env.spawn_get(&path);
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let answer = follower.await.unwrap();
    assert_eq!(answer.status, 200, "{:#}", answer.json);
}

#[tokio::test]
async fn when_the_leading_read_is_dropped_its_waiter_leads_the_next_one() {
    let env = slow_tesla("/vehicle_data", 300).await;
    let fleet = env.demo.gateway.fleet.clone();
    let car = env.online().clone();
    let fresh = Some(Duration::ZERO);
    let misses = || {
        keyway::metrics::counter(
            "keyway_read_cache_total",
            &[("read", "location"), ("result", "miss")],
        )
    };
    let before = misses();
    // Below HTTP: aborting the task drops the leader's read mid-flight, for certain.
    let leader = tokio::spawn({
        let (fleet, car) = (fleet.clone(), car.clone());
        async move { fleet.locate(&car, fresh).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = tokio::spawn(async move { fleet.locate(&car, fresh).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let read = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is not stranded")
        .unwrap();
    assert!(read.is_ok(), "{read:?}");
    // The waiter led a read of its own after the leader went away.
    assert!(misses() - before >= 2, "{}", misses() - before);
}

#[tokio::test]
async fn two_concurrent_commands_to_one_car_are_serialized() {
    let env = slow_tesla("/command/", 150).await;
    let v = env.online();
    let (lock_path, unlock_path) = (
        format!("/v1/vehicles/{}/lock", v.id),
        format!("/v1/vehicles/{}/unlock", v.id),
    );
    let (lock, unlock) = tokio::join!(
        env.post(&lock_path, &env.demo.token, &[WAIT]),
        env.post(&unlock_path, &env.demo.token, &[WAIT]),
    );
    assert_eq!(lock.status, 200);
    assert_eq!(unlock.status, 200);
    let cmds = entries(&env, "");
    let cmds: Vec<&JournalEntry> = cmds
        .iter()
        .filter(|e| e.path.contains("/command/"))
        .collect();
    assert_eq!(cmds.len(), 2);
    let (a, b) = (cmds[0], cmds[1]);
    assert!(
        a.ended_ms <= b.started_ms || b.ended_ms <= a.started_ms,
        "overlapping: {cmds:#?}"
    );
}

#[tokio::test]
async fn two_thousand_mixed_requests_with_seeded_faults_never_duplicate_a_command() {
    // A command whose answer was lost and that did not run is only known `failed` once
    // the OEM's command window has passed (2 s here): each such command holds its car
    // for ~3 s, which bounds how many waves a test run can afford.
    // Each wave sends ~7 commands to each car at once: above the default queue cap
    // (4 per car, answered `429 vehicle_busy`, tested elsewhere), which would make the
    // count of commands depend on scheduling.
    let env = Env::start_with(|c| {
        tuned(c);
        c.commands.max_queued_per_vehicle = 100;
    })
    .await;
    let faults = &env.demo.tesla().faults;
    faults.seed(20_261_126);
    for action in [
        Action::ResetBefore,
        Action::ResetAfter,
        Action::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
        Action::Malformed,
        Action::Truncated,
        Action::Latency {
            ms: 0,
            min_ms: Some(1),
            max_ms: Some(20),
        },
    ] {
        // Six rules tried in turn, each at 1/24 of what reaches it: about 20 % in all.
        faults.add(Fault::on("/api/1/", action).probability(0.037));
    }
    let ids = env.commandable_tesla_ids();
    let mut command_ids = Vec::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for wave in 0..20 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let n = wave * 100 + i;
                let (client, base, token) =
                    (env.client.clone(), env.base(), env.demo.token.clone());
                let car = &ids[n % ids.len()];
                let (method, path, headers): (Method, String, Vec<(&str, &str)>) = match n % 10 {
                    0 => (Method::POST, format!("/v1/vehicles/{car}/lock"), vec![WAIT]),
                    1 => (
                        Method::POST,
                        format!("/v1/vehicles/{car}/unlock"),
                        vec![WAIT],
                    ),
                    2..=5 => (
                        Method::GET,
                        format!("/v1/vehicles/{car}/location"),
                        vec![FRESH],
                    ),
                    _ => (
                        Method::GET,
                        format!("/v1/vehicles/{car}/security"),
                        vec![FRESH],
                    ),
                };
                tokio::spawn(async move {
                    let a = send(
                        &client,
                        &base,
                        method.clone(),
                        &path,
                        Some(&token),
                        &headers,
                        None,
                    )
                    .await;
                    (method, a)
                })
            })
            .collect();
        for t in tasks {
            let (method, a) = t.await.unwrap();
            *statuses.entry(a.status.as_u16()).or_default() += 1;
            if method == Method::POST {
                let id = a.json["id"].as_str().or(a.json["command_id"].as_str());
                let id = id.unwrap_or_else(|| {
                    panic!("every command answer names its command: {:#}", a.json)
                });
                command_ids.push(id.to_string());
            }
        }
    }
    assert_eq!(command_ids.len(), 400);
    // Every command has a final, recorded outcome.
    for id in &command_ids {
        let c = env.demo.gateway.store.command(id).await.unwrap().unwrap();
        assert_ne!(c.status, keyway::store::CommandStatus::Pending, "{c:?}");
    }
    // No command was applied twice by the OEM.
    let mut applied: HashMap<String, usize> = HashMap::new();
    let journals = env
        .demo
        .tesla()
        .journal
        .entries()
        .into_iter()
        .chain(env.demo.bmw().journal.entries());
    for e in journals.filter(|e| e.applied) {
        *applied
            .entry(e.command_id.expect("commands carry their id"))
            .or_default() += 1;
    }
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let faults_seen = env.demo.tesla().journal.entries().len();
    eprintln!(
        "statuses: {statuses:?}; OEM requests: {faults_seen}; commands applied: {}",
        applied.len()
    );
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 1_600,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn metrics_show_the_listed_series() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(tuned)
        .start()
        .await;
    let v = env.online();
    env.demo.tesla().tokens.expire_access_tokens();
    env.get(
        &format!("/v1/vehicles/{}/location", v.id),
        Some(&env.demo.token),
    )
    .await;
    env.get(
        &format!("/v1/vehicles/{}/location", v.id),
        Some(&env.demo.token),
    )
    .await;
    env.act(&v.id, "lock").await;
    let body = {
        let resp = env
            .client
            .request(
                http::Request::get(format!("{}/metrics", env.base()))
                    .body(Default::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        use http_body_util::BodyExt;
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    };
    for series in [
        "keyway_upstream_request_seconds_count{oem=\"tesla\"",
        "keyway_oem_operation_seconds_count{oem=\"tesla\",operation=\"location\"",
        "keyway_upstream_breaker_state{oem=\"tesla\"} 0",
        "keyway_read_cache_total{read=\"location\",result=\"hit\"}",
        "keyway_commands_total{oem=\"tesla\",action=\"lock\",status=\"succeeded\"}",
        "keyway_http_requests_total{route=\"/v1/vehicles/{id}/location\",status=\"200\"}",
        "keyway_token_refreshes_total{oem=\"tesla\",outcome=\"ok\"}",
    ] {
        assert!(body.contains(series), "missing {series}");
    }
}

#[tokio::test]
async fn a_sleeping_car_answers_its_last_reading_instead_of_being_woken() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(tuned)
        .start()
        .await;
    let v = env.online();
    let path = format!("/v1/vehicles/{}/location", v.id);
    assert_eq!(env.get(&path, Some(&env.demo.token)).await.status, 200);
    env.demo
        .tesla()
        .update(&v.oem_id, |m| m.state = keyway_tesla::mock::Power::Asleep);
    let wakes = entries(&env, "/wake_up").len();
    // Too old for the caller, but the car sleeps: the last reading, with its age.
    let a = send(
        &env.client,
        &env.base(),
        Method::GET,
        &path,
        Some(&env.demo.token),
        &[("cache-control", "max-age=1")],
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = send(
        &env.client,
        &env.base(),
        Method::GET,
        &path,
        Some(&env.demo.token),
        &[("cache-control", "max-age=1")],
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(stale.status, 200, "{:#}", stale.json);
    assert_eq!(
        entries(&env, "/wake_up").len(),
        wakes,
        "not woken for a read with a cached value"
    );
    // max-age=0 insists: the car is woken.
    let fresh = send(
        &env.client,
        &env.base(),
        Method::GET,
        &path,
        Some(&env.demo.token),
        &[FRESH],
        None,
    )
    .await;
    assert_eq!(fresh.status, 200, "{:#}", fresh.json);
    assert!(entries(&env, "/wake_up").len() > wakes);
}

#[tokio::test]
async fn inbound_limits_refuse_a_burst_of_unlocks_with_ratelimit_headers() {
    let env = Env::tesla_only().await;
    let v = env.online();
    let path = format!("/v1/vehicles/{}/unlock", v.id);
    for _ in 0..3 {
        assert_eq!(env.post(&path, &env.demo.token, &[WAIT]).await.status, 200);
    }
    let a = env.post(&path, &env.demo.token, &[WAIT]).await;
    a.assert_problem(429, "rate_limited");
    assert!(a.header("retry-after").is_some());
    assert!(
        a.header("ratelimit-policy")
            .unwrap()
            .contains("unlocks_per_vehicle")
    );
    assert!(a.header("ratelimit").is_some());
    assert_eq!(env.demo.tesla().commands_seen(), 3);
}

/// Volvo's own pre-check turns open outcomes into certain ones. A car Volvo cannot
/// reach takes commands that time out undecided (`TIMEOUT`); with Volvo's command
/// accessibility unavailable (a 404, as for callers without that scope) each lock ends
/// `unknown`, with it answered each ends at once as `vehicle_unreachable` and nothing is
/// sent. The counts are the closing note's before/after.
#[tokio::test]
async fn volvos_precheck_turns_open_outcomes_into_certain_ones() {
    let env = Env::builder()
        .mocks(&["volvo"])
        .configure(|c| {
            c.inbound.caller_per_s = 100_000;
            c.inbound.caller_burst = 100_000;
            let volvo = c.oems.get_mut("volvo").unwrap();
            volvo.retry.base = Duration::from_millis(5);
            volvo.retry.cap = Duration::from_millis(20);
            volvo.timing.state_lag = Some(Duration::from_secs(1));
            volvo.timing.command_window = Some(Duration::from_secs(2));
        })
        .start()
        .await;
    let v = env.demo.vehicles.iter().find(|v| v.oem == "volvo").unwrap();
    let volvo = env.demo.volvo();
    // An open car Volvo cannot reach (a lock of a car already locked would read as done),
    // whose cloud view lags it by no more than keyway is told (1 s).
    volvo.update(&v.oem_id, |c| {
        c.timing = Default::default();
        c.locked = false;
    });
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    volvo.set_connected(&v.oem_id, false);
    let mut outcomes: Vec<(bool, String)> = Vec::new();
    for check in [false, true] {
        volvo.faults.clear();
        if !check {
            volvo.faults.add(Fault::on(
                "/command-accessibility",
                Action::Status {
                    status: 404,
                    body: None,
                    retry_after: None,
                },
            ));
        }
        for _ in 0..3 {
            let a = env.act(&v.id, "lock").await;
            let got = if a.json["command_status"] == "unknown" {
                "unknown"
            } else {
                a.json["code"].as_str().unwrap_or("?")
            };

            let got = got.to_string();
            outcomes.push((check, got));
        }
    }
    let count = |check: bool, what: &str| {
        outcomes
            .iter()
            .filter(|(c, o)| *c == check && o == what)
            .count()
    };
    eprintln!("precheck outcomes: {outcomes:?}");
    assert_eq!(count(false, "unknown"), 3, "{outcomes:?}");
    assert_eq!(count(true, "vehicle_unreachable"), 3, "{outcomes:?}");
    let sent = volvo
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.path.ends_with("/commands/lock"))
        .count();
    assert_eq!(
        sent, 3,
        "only the locks sent without the check reached Volvo"
    );
}
