//! Tenancy end to end, as an attacker with a valid token would try it: a second tenant
//! (every scope, `admin` included) against the first tenant's cars, commands, grants,
//! events and webhooks; a vehicle-restricted token and courier; the webhook egress
//! guard; relocks under a spent command quota; the per-car queue cap.
//!
//! Every route of the OpenAPI document must have a case here: a new route without one
//! fails `every_route_has_a_tenancy_case`.

use crate::common;
use crate::common::DemoMocks;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Answer, DEMO_TENANT, Env, WAIT};
use http::Method;
use keyway_adapter::mock::{Action, Fault};
use serde_json::{Value, json};

/// Every route (method, OpenAPI path) and how the second tenant's attempt is checked.
const CASES: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/v1/vehicles",
        "lists none of the first tenant's cars",
    ),
    ("GET", "/v1/vehicles/{id}", "404"),
    ("GET", "/v1/vehicles/{id}/location", "404"),
    ("GET", "/v1/vehicles/{id}/security", "404"),
    ("GET", "/v1/vehicles/{id}/state", "404"),
    ("POST", "/v1/vehicles/{id}/lock", "404"),
    ("POST", "/v1/vehicles/{id}/unlock", "404"),
    ("PUT", "/v1/vehicles/{id}/watch", "404"),
    ("DELETE", "/v1/vehicles/{id}/watch", "404"),
    ("GET", "/v1/watches", "lists none of the first tenant's"),
    ("GET", "/v1/commands/{id}", "404"),
    ("POST", "/v1/commands/{id}/acknowledge", "404"),
    (
        "GET",
        "/v1/accounts",
        "lists none of the first tenant's accounts",
    ),
    ("DELETE", "/v1/accounts/{id}", "404"),
    ("PUT", "/v1/accounts/{id}/pin", "404"),
    (
        "POST",
        "/v1/accounts/{oem}/authorize",
        "starts a link for its own tenant only",
    ),
    (
        "GET",
        "/v1/oauth/callback",
        "public: the single-use state is the credential",
    ),
    (
        "POST",
        "/v1/oauth/callback",
        "finishes only a link its own tenant started (vw::another_tenant_cannot_finish_…)",
    ),
    (
        "POST",
        "/v1/oauth/device",
        "polls only a link its own tenant started (audi::another_tenant_cannot_finish_…)",
    ),
    ("POST", "/v1/grants", "404 on the first tenant's car"),
    ("GET", "/v1/grants", "404 for the first tenant's car"),
    ("GET", "/v1/grants/{id}", "404"),
    ("GET", "/v1/grants/{id}/timeline", "404"),
    ("POST", "/v1/grants/{id}/revoke", "404"),
    ("POST", "/v1/grants/{id}/unlock", "404"),
    ("POST", "/v1/grants/{id}/complete", "404"),
    (
        "GET",
        "/v1/events",
        "streams none of the first tenant's events",
    ),
    (
        "POST",
        "/v1/webhooks",
        "its subscription receives none of them",
    ),
    ("GET", "/v1/webhooks", "lists none of the first tenant's"),
    ("DELETE", "/v1/webhooks/{id}", "404"),
    ("GET", "/v1/webhooks/{id}/deliveries", "404"),
    (
        "POST",
        "/v1/oem-webhooks/{oem}",
        "public: only a push signed with the OEM's secret is taken (watch::smartcar_pushes_…)",
    ),
    ("GET", "/healthz", "public"),
    ("GET", "/readyz", "public"),
    ("GET", "/openapi.json", "public"),
    ("GET", "/metrics", "public"),
    (
        "GET",
        "/.well-known/appspecific/com.tesla.3p.public-key.pem",
        "public: the application's public key",
    ),
];

#[test]
fn every_route_has_a_tenancy_case() {
    let doc: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let covered: BTreeSet<(String, String)> = CASES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without a tenancy case: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(stale.is_empty(), "cases for undocumented routes: {stale:?}");
}

const EVERY_SCOPE: &[&str] = &[
    "vehicles:read",
    "location:read",
    "security:read",
    "commands:lock",
    "commands:unlock",
    "accounts:write",
    "grants:write",
    "grants:use",
    "events:read",
    "webhooks:write",
    "admin",
];

async fn json_send(env: &Env, method: Method, path: &str, token: &str, body: Value) -> Answer {
    env.send(
        method,
        path,
        Some(token),
        &[("content-type", "application/json"), WAIT],
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// A loopback webhook receiver answering 200; counts what it got.
async fn receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { http::StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// A grant of the first tenant's `car` to courier-17 for the next 30 minutes; its id.
async fn courier_grant(env: &Env, car: &str) -> String {
    let body = json!({"vehicle_id": car, "grantee": "courier-17", "not_after": not_after(env)});
    let grant = json_send(env, Method::POST, "/v1/grants", &env.demo.token, body).await;
    assert_eq!(grant.status, 201, "{:#}", grant.json);
    grant.json["id"].as_str().unwrap().to_string()
}

fn not_after(env: &Env) -> String {
    (env.demo.gateway.grants.clock.now() + time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Reads the SSE stream from the start for a bounded time; returns its event types.
async fn stream_types(env: &Env, token: &str) -> Vec<String> {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("{}/v1/events", env.base()))
        .header("authorization", format!("Bearer {token}"))
        .header("last-event-id", "0")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = env.client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut text = String::new();
    // The stream answers stored events at once; a bounded read sees all of them.
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(1500), body.frame()).await
    {
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("event: ").map(str::to_string))
        .collect()
}

#[tokio::test]
async fn another_tenant_reaches_nothing_of_the_first() {
    let env = Env::tesla_with_loopback_webhooks().await;
    let a = env.demo.token.clone();
    let car = env.online().id.clone();
    let account = env.tesla_account().await.id;
    // The first tenant's objects: a command, a grant, a webhook, events.
    let cmd = json_send(
        &env,
        Method::POST,
        &format!("/v1/vehicles/{car}/lock"),
        &a,
        json!({}),
    )
    .await;
    assert_eq!(cmd.status, 200, "{:#}", cmd.json);
    let cmd = cmd.json["id"].as_str().unwrap().to_string();
    let grant = courier_grant(&env, &car).await;
    let (url, _) = receiver().await;
    let hook = json_send(&env, Method::POST, "/v1/webhooks", &a, json!({"url": url})).await;
    assert_eq!(hook.status, 201, "{:#}", hook.json);
    let hook = hook.json["id"].as_str().unwrap().to_string();
    let until = (time::OffsetDateTime::now_utc() + time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let watch = json_send(
        &env,
        Method::PUT,
        &format!("/v1/vehicles/{car}/watch"),
        &a,
        json!({ "until": until }),
    )
    .await;
    assert_eq!(watch.status, 200, "{:#}", watch.json);

    // The second tenant: every scope, admin too; and a courier of its own with the
    // first grant's grantee name in another tenant does not count (sub differs).
    let b = env.token_as("other-service", EVERY_SCOPE);
    let journal_before = env.demo.tesla().journal.entries().len();
    let mut refused = 0;
    let mut expect_404 = |ans: Answer, what: &str| {
        assert_eq!(ans.status, 404, "{what}: {:#}", ans.json);
        assert_eq!(
            ans.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        refused += 1;
    };
    for (method, path) in [
        (Method::GET, format!("/v1/vehicles/{car}")),
        (Method::GET, format!("/v1/vehicles/{car}/location")),
        (Method::GET, format!("/v1/vehicles/{car}/security")),
        (Method::GET, format!("/v1/vehicles/{car}/state")),
        (Method::POST, format!("/v1/vehicles/{car}/lock")),
        (Method::POST, format!("/v1/vehicles/{car}/unlock")),
        (Method::PUT, format!("/v1/vehicles/{car}/watch")),
        (Method::DELETE, format!("/v1/vehicles/{car}/watch")),
        (Method::GET, format!("/v1/commands/{cmd}")),
        (Method::POST, format!("/v1/commands/{cmd}/acknowledge")),
        (Method::DELETE, format!("/v1/accounts/{account}")),
        (Method::PUT, format!("/v1/accounts/{account}/pin")),
        (Method::GET, format!("/v1/grants?vehicle_id={car}")),
        (Method::GET, format!("/v1/grants/{grant}")),
        (Method::GET, format!("/v1/grants/{grant}/timeline")),
        (Method::POST, format!("/v1/grants/{grant}/revoke")),
        (Method::POST, format!("/v1/grants/{grant}/unlock")),
        (Method::POST, format!("/v1/grants/{grant}/complete")),
        (Method::DELETE, format!("/v1/webhooks/{hook}")),
        (Method::GET, format!("/v1/webhooks/{hook}/deliveries")),
    ] {
        let what = format!("{method} {path}");
        expect_404(
            env.send(method, &path, Some(&b), &[WAIT], None).await,
            &what,
        );
    }
    let created = json_send(
        &env,
        Method::POST,
        "/v1/grants",
        &b,
        json!({"vehicle_id": car, "grantee": "b-courier", "not_after": not_after(&env)}),
    )
    .await;
    expect_404(created, "POST /v1/grants on the first tenant's car");
    // Lists answer, with nothing of the first tenant's.
    let vehicles = env.get("/v1/vehicles", Some(&b)).await;
    assert_eq!(vehicles.status, 200);
    assert_eq!(vehicles.json["vehicles"], json!([]));
    let accounts = env.get("/v1/accounts", Some(&b)).await;
    assert_eq!(
        accounts.json["accounts"],
        json!([]),
        "admin is tenant-scoped"
    );
    let hooks = env.get("/v1/webhooks", Some(&b)).await;
    assert_eq!(hooks.json["webhooks"], json!([]));
    let watches = env.get("/v1/watches", Some(&b)).await;
    assert_eq!(watches.json["watches"], json!([]));
    assert!(
        stream_types(&env, &b).await.is_empty(),
        "the second tenant saw events"
    );
    assert!(!stream_types(&env, &a).await.is_empty());
    // Its own subscription gets none of the first tenant's events.
    let (b_url, b_got) = receiver().await;
    let b_hook = json_send(
        &env,
        Method::POST,
        "/v1/webhooks",
        &b,
        json!({"url": b_url}),
    )
    .await;
    assert_eq!(b_hook.status, 201);
    let b_hook = b_hook.json["id"].as_str().unwrap().to_string();
    let again = json_send(
        &env,
        Method::POST,
        &format!("/v1/vehicles/{car}/unlock"),
        &a,
        json!({}),
    )
    .await;
    assert_eq!(again.status, 200, "{:#}", again.json);
    let log = env
        .get(&format!("/v1/webhooks/{b_hook}/deliveries"), Some(&b))
        .await;
    assert_eq!(log.json["deliveries"], json!([]));
    assert_eq!(b_got.load(std::sync::atomic::Ordering::SeqCst), 0);

    // No OEM call came from any of it (the first tenant's own unlock is one command).
    let calls: Vec<_> = env.demo.tesla().journal.entries()[journal_before..]
        .iter()
        .filter(|e| e.path.contains("/command/"))
        .cloned()
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    // And the first tenant's objects are as they were.
    let g = env.get(&format!("/v1/grants/{grant}"), Some(&a)).await;
    assert_eq!(g.json["status"], "active", "{:#}", g.json);
    assert_eq!(
        env.get(&format!("/v1/webhooks/{hook}/deliveries"), Some(&a))
            .await
            .status,
        200
    );
    assert_eq!(
        env.get("/v1/accounts", Some(&a)).await.json["accounts"]
            .as_array()
            .unwrap()
            .len(),
        env.demo.mocks.len(),
        "the first tenant still sees every account it linked"
    );
    eprintln!("cross-tenant attempts refused: {}", refused);
    assert_eq!(refused, 21);
    // The first tenant's watch stands.
    let mine = env.get("/v1/watches", Some(&a)).await;
    assert_eq!(
        mine.json["watches"][0]["vehicle_id"],
        car.as_str(),
        "{:#}",
        mine.json
    );
}

#[tokio::test]
async fn a_vehicle_restricted_token_and_courier_stay_on_their_cars() {
    let env = Env::tesla_only().await;
    let (car1, car2) = (env.online().id.to_string(), env.asleep().id.to_string());
    let a = env.demo.token.clone();
    let restricted = env.mint(
        "dispatch",
        Some(DEMO_TENANT),
        EVERY_SCOPE,
        Some(vec![car1.clone()]),
    );
    // A grant on car 2 (by the unrestricted service) for courier-9.
    let g2 = json_send(
        &env,
        Method::POST,
        "/v1/grants",
        &a,
        json!({"vehicle_id": car2, "grantee": "courier-9", "not_after": not_after(&env)}),
    )
    .await;
    assert_eq!(g2.status, 201, "{:#}", g2.json);
    let g2 = g2.json["id"].as_str().unwrap().to_string();
    let created = json_send(
        &env,
        Method::POST,
        "/v1/grants",
        &restricted,
        json!({"vehicle_id": car2, "grantee": "x", "not_after": not_after(&env)}),
    )
    .await;
    created.assert_problem(403, "forbidden");
    env.get(&format!("/v1/grants/{g2}"), Some(&restricted))
        .await
        .assert_problem(404, "grant_not_found");
    let account = env.tesla_account().await.id;
    env.send(
        Method::DELETE,
        &format!("/v1/accounts/{account}"),
        Some(&restricted),
        &[],
        None,
    )
    .await
    .assert_problem(403, "forbidden");
    env.get("/v1/accounts", Some(&restricted))
        .await
        .assert_problem(403, "forbidden");
    // A courier restricted to car 1 cannot use a grant on car 2, though it names it.
    let courier = env.mint("courier-9", None, &["grants:use"], Some(vec![car1.clone()]));
    let journal_before = env.demo.tesla().journal.entries().len();
    env.post(&format!("/v1/grants/{g2}/unlock"), &courier, &[WAIT])
        .await
        .assert_problem(404, "grant_not_found");
    assert_eq!(
        env.demo.tesla().journal.entries().len(),
        journal_before,
        "an OEM call was made"
    );
    // Its subscription and its stream see only car 1.
    let lock2 = env
        .post(&format!("/v1/vehicles/{car2}/lock"), &a, &[WAIT])
        .await;
    assert_eq!(lock2.status, 200, "{:#}", lock2.json);
    let lock1 = env
        .post(&format!("/v1/vehicles/{car1}/lock"), &a, &[WAIT])
        .await;
    assert_eq!(lock1.status, 200, "{:#}", lock1.json);
    let caller = keyway::auth::Caller::new(
        "dispatch",
        &[keyway::auth::Scope::EventsRead],
        Some(vec![car1.clone()]),
    )
    .in_tenant(DEMO_TENANT);
    let seen = env
        .demo
        .gateway
        .events
        .after(&caller, 0, 1000)
        .await
        .unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|e| e.vehicle_id.as_deref() == Some(car1.as_str())),
        "{seen:?}"
    );
    let hook = keyway::store::WebhookRecord {
        id: "whk_restricted".into(),
        url: "http://127.0.0.1:9/hook".into(),
        secret: "sealed".into(),
        types: keyway::store::EventTypes::All,
        created_by: "dispatch".into(),
        tenant: DEMO_TENANT.into(),
        vehicles: Some(vec![car1.clone()]),
        created_at: env.demo.gateway.clock.now(),
    };
    env.demo.gateway.store.insert_webhook(&hook).await.unwrap();
    env.demo.gateway.events.hooks_changed();
    /// An event about one car (a payload of the test's own).
    #[derive(serde::Serialize)]
    struct AboutCar<'a>(#[serde(skip)] &'a str);
    impl keyway::events::Payload for AboutCar<'_> {
        fn kind(&self) -> keyway::events::Kind {
            keyway::events::Kind::CommandSucceeded
        }
        fn subject(&self) -> keyway::events::Subject<'_> {
            keyway::events::Subject {
                tenant: DEMO_TENANT,
                vehicle_id: Some(self.0),
                ..Default::default()
            }
        }
    }
    let about =
        |v: &str| keyway::events::Events::record(&AboutCar(v), env.demo.gateway.clock.now());
    assert!(
        env.demo
            .gateway
            .events
            .hooks_for(&about(&car1))
            .await
            .contains(&hook.id)
    );
    assert!(
        !env.demo
            .gateway
            .events
            .hooks_for(&about(&car2))
            .await
            .contains(&hook.id)
    );
}

#[tokio::test]
async fn webhooks_cannot_reach_internal_addresses() {
    let env = Env::tesla_only().await;
    let a = env.demo.token.clone();
    let (open, _) = receiver().await;
    let port = open
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let own = format!("http://{}/v1/vehicles", env.demo.addr);
    let mock = format!("{}/__mock/reset", env.demo.server("tesla").url());
    for url in [
        open.clone(),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://127.0.0.2:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://10.0.0.1/hook".into(),
        "http://0.0.0.0/hook".into(),
        own.clone(),
        mock,
    ] {
        let ans = json_send(&env, Method::POST, "/v1/webhooks", &a, json!({"url": url})).await;
        // An IPv6 literal is not a URL keyway takes (400); the others name an address
        // keyway may not reach (403).
        let want = if url.contains('[') { 400 } else { 403 };
        assert_eq!(ans.status, want, "{url}: {:#}", ans.json);
    }
    for bad in ["http://x/\u{0}", "http://example.com/a\r\nb"] {
        let ans = json_send(&env, Method::POST, "/v1/webhooks", &a, json!({"url": bad})).await;
        ans.assert_problem(400, "invalid_request");
    }
    assert_eq!(
        env.get("/v1/webhooks", Some(&a)).await.json["webhooks"],
        json!([])
    );

    // With an explicit exception the loopback receiver is allowed; keyway itself never.
    let allowed = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| c.events.webhook_allow = vec!["127.0.0.0/8".into()])
        .start()
        .await;
    let t = allowed.demo.token.clone();
    let ok = json_send(
        &allowed,
        Method::POST,
        "/v1/webhooks",
        &t,
        json!({"url": open}),
    )
    .await;
    assert_eq!(ok.status, 201, "{:#}", ok.json);
    let own = format!("http://{}/v1/vehicles", allowed.demo.addr);
    let ans = json_send(
        &allowed,
        Method::POST,
        "/v1/webhooks",
        &t,
        json!({"url": own}),
    )
    .await;
    ans.assert_problem(403, "forbidden");
}

/// Tesla with 4 commands an hour, 2 of them reserved, and callers' 2 spent (on the
/// online car).
async fn callers_spent_their_share() -> Env {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.grants.tick = Duration::from_millis(10);
            let tesla = c.oems.get_mut("tesla").unwrap();
            tesla.limits.commands = Some(vec![keyway::config::WindowConfig {
                max: 4,
                per: Duration::from_secs_f64(3600.0),
            }]);
            tesla.limits.reserved_commands = 2;
            tesla.limits.max_wait = Duration::from_millis(0);
        })
        .start()
        .await;
    let car = env.online().id.clone();
    for _ in 0..2 {
        let ans = env
            .post(
                &format!("/v1/vehicles/{car}/lock"),
                &env.demo.token,
                &[WAIT],
            )
            .await;
        assert_eq!(ans.status, 200, "{:#}", ans.json);
    }
    env
}

#[tokio::test]
async fn a_relock_succeeds_while_callers_have_spent_the_command_quota() {
    let env = callers_spent_their_share().await;
    let a = env.demo.token.clone();
    let car = env.online().id.clone();
    // Callers' share is spent; the reserve is not theirs.
    env.post(&format!("/v1/vehicles/{car}/lock"), &a, &[WAIT])
        .await
        .assert_problem(429, "rate_limited");
    let grant = courier_grant(&env, &car).await;
    let courier = env.token_as("courier-17", &["grants:use"]);
    let unlock = env
        .post(&format!("/v1/grants/{grant}/unlock"), &courier, &[WAIT])
        .await;
    assert_eq!(unlock.status, 200, "the owed unlock: {:#}", unlock.json);
    let done = env
        .post(&format!("/v1/grants/{grant}/complete"), &courier, &[WAIT])
        .await;
    assert_eq!(done.json["relock"]["state"], "watching", "{:#}", done.json);
}

/// A tenant's grant unlocks take at most one reserved command slot per OEM window: a
/// second grant's unlock is refused like a caller's once callers spent their share, and
/// the reserve is left for the relock (before, the second unlock took the last slot).
#[tokio::test]
async fn a_tenants_grant_unlocks_cannot_crowd_the_relock_reserve() {
    let env = callers_spent_their_share().await;
    let car = env.online().id.clone();
    let courier = env.token_as("courier-17", &["grants:use"]);
    let grants = [
        courier_grant(&env, &car).await,
        courier_grant(&env, &car).await,
    ];
    let first = env
        .post(
            &format!("/v1/grants/{}/unlock", grants[0]),
            &courier,
            &[WAIT],
        )
        .await;
    assert_eq!(first.status, 200, "the owed unlock: {:#}", first.json);
    env.post(
        &format!("/v1/grants/{}/unlock", grants[1]),
        &courier,
        &[WAIT],
    )
    .await
    .assert_problem(429, "rate_limited");
    let done = env
        .post(
            &format!("/v1/grants/{}/complete", grants[0]),
            &courier,
            &[WAIT],
        )
        .await;
    assert_eq!(done.json["relock"]["state"], "watching", "{:#}", done.json);
}

/// Tesla only, with at most `cap` commands queued per car.
async fn queue_capped(cap: usize) -> Env {
    Env::builder()
        .mocks(&["tesla"])
        .configure(move |c| c.commands.max_queued_per_vehicle = cap)
        .start()
        .await
}

/// The OEM holds each door lock for 3 s before answering.
fn slow_lock() -> Fault {
    Fault::on(
        "/command/door_lock",
        Action::Latency {
            ms: 3000,
            min_ms: None,
            max_ms: None,
        },
    )
}

#[tokio::test]
async fn commands_beyond_the_per_car_queue_cap_answer_vehicle_busy() {
    let env = queue_capped(1).await;
    let a = env.demo.token.clone();
    let car = env.online().id.clone();
    env.demo.tesla().faults.add(slow_lock().times(1));
    let first = env.post(&format!("/v1/vehicles/{car}/lock"), &a, &[]).await;
    assert_eq!(first.status, 202, "{:#}", first.json);
    let second = env.post(&format!("/v1/vehicles/{car}/lock"), &a, &[]).await;
    second.assert_problem(429, "vehicle_busy");
    assert!(second.header("retry-after").is_some());
    // A replay of the first (same key would return it) is not refused: the queued one
    // finishes and the car takes commands again.
    let id = first.json["id"].as_str().unwrap();
    let done = env
        .demo
        .gateway
        .commands
        .wait(id, Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status.as_str(), "succeeded");
    let third = env
        .post(&format!("/v1/vehicles/{car}/lock"), &a, &[WAIT])
        .await;
    assert_eq!(third.status, 200, "{:#}", third.json);
}

#[tokio::test]
async fn callers_arriving_together_cannot_all_pass_the_per_car_queue_cap() {
    // The cap's check and its count are one step: twelve commands sent to one car at
    // once (the first held at the OEM for 3 s, so none finishes meanwhile) make at most
    // two commands; the rest are refused.
    let env = queue_capped(2).await;
    let a = env.demo.token.clone();
    let car = env.online().id.clone();
    env.demo.tesla().faults.add(slow_lock());
    let path = format!("/v1/vehicles/{car}/lock");
    let answers = futures_util::future::join_all((0..12).map(|_| env.post(&path, &a, &[]))).await;
    let accepted = answers.iter().filter(|r| r.status == 202).count();
    for r in answers.iter().filter(|r| r.status != 202) {
        r.assert_problem(429, "vehicle_busy");
    }
    assert!(
        (1..=2).contains(&accepted),
        "{accepted} commands accepted with a cap of 2"
    );
}

#[tokio::test]
async fn small_holes_are_closed() {
    let env = Env::tesla_only().await;
    let a = env.demo.token.clone();
    let car = env.online().id.clone();
    // Two Authorization headers: 400, whichever comes first.
    let b = env.token_as("other-service", EVERY_SCOPE);
    let ans = env
        .send(
            Method::GET,
            "/v1/vehicles",
            None,
            &[
                ("authorization", &format!("Bearer {b}")),
                ("authorization", &format!("Bearer {a}")),
            ],
            None,
        )
        .await;
    ans.assert_problem(400, "invalid_request");
    // Query extraction errors are problem+json too.
    env.get("/v1/vehicles?limit=abc", Some(&a))
        .await
        .assert_problem(400, "invalid_request");
    env.get("/v1/events?after=x", Some(&a))
        .await
        .assert_problem(400, "invalid_request");
    // Control characters in free text are refused.
    let ans = json_send(
        &env,
        Method::POST,
        &format!("/v1/vehicles/{car}/lock"),
        &a,
        json!({"reference": "order\r\n42"}),
    )
    .await;
    ans.assert_problem(400, "invalid_request");
    for grantee in ["cour\u{0}ier", "courier\nx"] {
        let ans = json_send(
            &env,
            Method::POST,
            "/v1/grants",
            &a,
            json!({"vehicle_id": car, "grantee": grantee, "not_after": not_after(&env)}),
        )
        .await;
        ans.assert_problem(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_delays_only_its_own_deliveries() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.events.delivery_tick = Duration::from_millis(20);
            c.events.webhook_timeout = Duration::from_millis(120_000);
            c.events.webhook_allow = vec!["127.0.0.1/32".into()];
        })
        .start()
        .await;
    let a = env.demo.token.clone();
    // The dead receiver accepts the connection and never answers (until released).
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (held, hits) = (release.clone(), reached.clone());
    let dead = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let held = held.clone();
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                held.notified().await;
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, dead).await });
    let (live_url, live_got) = receiver().await;
    let car = env.online().id.clone();
    // First an event only the dead receiver subscribed to; it holds that delivery.
    let ans = json_send(
        &env,
        Method::POST,
        "/v1/webhooks",
        &a,
        json!({"url": dead_url}),
    )
    .await;
    assert_eq!(ans.status, 201, "{:#}", ans.json);
    let lock = env
        .post(&format!("/v1/vehicles/{car}/lock"), &a, &[WAIT])
        .await;
    assert_eq!(lock.status, 200, "{:#}", lock.json);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reached.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery to the dead receiver"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Then the live one subscribes, and a later event must reach it.
    let ans = json_send(
        &env,
        Method::POST,
        "/v1/webhooks",
        &a,
        json!({"url": live_url}),
    )
    .await;
    assert_eq!(ans.status, 201, "{:#}", ans.json);
    let unlock = env
        .post(&format!("/v1/vehicles/{car}/unlock"), &a, &[WAIT])
        .await;
    assert_eq!(unlock.status, 200, "{:#}", unlock.json);
    // The live receiver gets the event while the dead one still holds its delivery
    // (bounded wait: the dead delivery's own timeout is two minutes).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while live_got.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live receiver waited for the dead one"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    release.notify_waiters();
}
