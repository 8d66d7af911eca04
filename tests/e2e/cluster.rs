//! Cluster mode end to end: three keyway replicas — the demo's gateway and two more,
//! each on its own tokio runtime with its own PostgreSQL pool — on one set of mock
//! OEMs, the real PostgreSQL (a private schema per test) and the real Redis (a private
//! key prefix per test). Killing a replica drops its runtime mid-flight, as a crash
//! would: no shutdown code runs.

use crate::common;
use crate::common::DemoMocks;
mod redis_server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::Method;
use keyway::config::{Config, WindowConfig};
use keyway::gateway::Gateway;
use keyway::store::CommandStatus;
use keyway_adapter::Secret;
use tokio::net::{TcpListener, TcpStream};

use common::{Answer, PgSchema, TempDir};

fn redis_url() -> String {
    std::env::var("KEYWAY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One more replica: its own runtime, gateway, pool and socket.
struct Replica {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    async fn start(config: &Config) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let addr = runtime
            .spawn(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let gateway = Gateway::start(config).await.expect("replica starts");
                tokio::spawn(keyway::server::serve(
                    gateway.clone(),
                    listener,
                    std::future::pending(),
                ));
                addr
            })
            .await
            .unwrap();
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    /// Kills the replica: its tasks are dropped wherever they are.
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three replicas on one PostgreSQL schema and one Redis prefix.
struct Cluster {
    env: common::Env,
    others: Vec<Replica>,
    _schema: PgSchema,
}

impl Cluster {
    async fn start(tune: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        Self::start_with(tune, |_| {}).await
    }

    async fn start_with(
        tune: impl Fn(&mut Config) + Send + Sync + 'static,
        options: impl FnOnce(&mut keyway::demo::DemoOptions),
    ) -> Self {
        let schema = PgSchema::new();
        let (url, prefix) = (schema.url(), schema.name.clone());
        let dir = TempDir::new();
        let mut opts = common::options(&dir);
        options(&mut opts);
        opts.configure = Some(Arc::new(move |c: &mut Config| {
            c.store = Secret::new(url.clone());
            c.cluster.redis = Some(Secret::new(redis_url()));
            c.cluster.prefix = prefix.clone();
            c.cluster.replicas = 3;
            c.cluster.lease = Duration::from_millis(1000);
            c.cluster.sweep = Duration::from_millis(100);
            c.cluster.pool_size = 8;
            // A killed replica's open transaction ends within a second.
            c.cluster.idle_in_transaction = Duration::from_millis(1000);
            c.inbound.caller_per_s = 100_000;
            c.inbound.caller_burst = 100_000;
            tune(c);
        }));
        let demo = keyway::demo::start(opts).await.expect("demo starts");
        let env = common::Env {
            demo,
            dir,
            client: common::client(),
        };
        let config = env.demo.gateway.config.clone();
        let mut others = Vec::new();
        for _ in 0..2 {
            others.push(Replica::start(&config).await);
        }
        Self {
            env,
            others,
            _schema: schema,
        }
    }

    /// Base URLs of the three replicas.
    fn bases(&self) -> Vec<String> {
        let mut v = vec![self.env.base()];
        v.extend(self.others.iter().map(|r| format!("http://{}", r.addr)));
        v
    }

    async fn send(
        &self,
        replica: usize,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send_as(&self.env.demo.token, replica, method, path, headers)
            .await
    }

    async fn send_as(
        &self,
        token: &str,
        replica: usize,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let bases = self.bases();
        common::send(
            &self.env.client,
            &bases[replica % bases.len()],
            method,
            path,
            Some(token),
            headers,
            None,
        )
        .await
    }

    fn vehicle(&self, vin: &str) -> String {
        self.env.by_vin(vin).id.to_string()
    }

    /// Waits until the command is final in the shared store.
    async fn final_record(&self, id: &str, within: Duration) -> keyway::store::CommandRecord {
        self.env
            .demo
            .gateway
            .commands
            .wait(id, within)
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn three_hundred_requests_over_three_replicas_on_an_expired_token_refresh_once() {
    let c = Cluster::start(|_| {}).await;
    let car = c.vehicle("5YJSA1E26JF000004");
    let book = c.env.demo.tesla().tokens.clone();
    let before = book.refreshes_served();
    // Every replica has read (and cached) the access token before it expires.
    for r in 0..3 {
        let a = c
            .send(
                r,
                Method::GET,
                &format!("/v1/vehicles/{car}/location"),
                &[("cache-control", "no-cache")],
            )
            .await;
        assert_eq!(a.status, 200, "{:#}", a.json);
    }
    book.expire_access_tokens();

    let c = Arc::new(c);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (c, car) = (c.clone(), car.clone());
            tokio::spawn(async move {
                c.send(
                    i,
                    Method::GET,
                    &format!("/v1/vehicles/{car}/location"),
                    &[("cache-control", "no-cache")],
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{:#}", a.json);
    }
    let refreshes = book.refreshes_served() - before;
    println!(
        "refreshes at the mock: {refreshes}, replays: {}",
        book.replays_seen()
    );
    assert_eq!(refreshes, 1, "one refresh for the whole cluster");
    assert_eq!(book.replays_seen(), 0, "no refresh token presented twice");
}

#[tokio::test]
async fn one_idempotency_key_sent_to_three_replicas_makes_one_oem_command() {
    let c = Cluster::start(|_| {}).await;
    let car = c.vehicle("5YJSA1E26JF000004");
    let c = Arc::new(c);
    let path = format!("/v1/vehicles/{car}/lock");
    let tasks: Vec<_> = (0..3)
        .map(|r| {
            let (c, path) = (c.clone(), path.clone());
            tokio::spawn(async move {
                c.send(
                    r,
                    Method::POST,
                    &path,
                    &[("idempotency-key", "order-7-lock"), ("prefer", "wait=10")],
                )
                .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{:#}", a.json);
        assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
        ids.insert(a.json["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "the same command from every replica: {ids:?}");
    // A later retry on any replica still answers with that command.
    let again = c
        .send(
            2,
            Method::POST,
            &path,
            &[("idempotency-key", "order-7-lock")],
        )
        .await;
    assert!(ids.contains(again.json["id"].as_str().unwrap()));
    let sent = c
        .env
        .demo
        .tesla()
        .journal
        .count("POST", "/command/door_lock");
    println!("OEM lock commands for one key over three replicas: {sent}");
    assert_eq!(sent, 1);
}

#[tokio::test]
async fn thirty_commands_over_three_replicas_keep_a_ten_per_window_quota() {
    // The OEM allows 10 commands per window; four seconds stand for its minute. The
    // send-to-arrival margin is 10 % of the window: 400 ms of scheduling jitter here
    // (a 2 s window's 200 ms was once exceeded under the whole suite's load).
    let c = Cluster::start(|c| {
        let volvo = c.oems.get_mut("volvo").unwrap();
        volvo.limits.commands = Some(vec![WindowConfig {
            max: 10,
            per: Duration::from_secs_f64(4.0),
        }]);
        volvo.limits.requests = Some(vec![WindowConfig {
            max: 10_000,
            per: Duration::from_secs_f64(1.0),
        }]);
        volvo.limits.max_wait = Duration::from_millis(30_000);
        // Ten commands per replica wait for the one car: lift the queue cap.
        c.commands.max_queued_per_vehicle = 100;
    })
    .await;
    let car = c.vehicle("YV1XZK9V0P2000001");
    c.env.demo.volvo().journal.clear();
    let mut ids = Vec::new();
    for i in 0..30 {
        let a = c
            .send(i, Method::POST, &format!("/v1/vehicles/{car}/lock"), &[])
            .await;
        assert_eq!(a.status, 202, "{:#}", a.json);
        ids.push(a.json["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let r = c.final_record(id, Duration::from_secs(60)).await;
        assert_eq!(r.status, CommandStatus::Succeeded, "{r:?}");
    }
    let posts: Vec<_> = c
        .env
        .demo
        .volvo()
        .journal
        .entries()
        .into_iter()
        .filter(|e| e.method == "POST" && e.path.ends_with("/commands/lock"))
        .collect();
    let shown = || {
        posts
            .iter()
            .map(|e| {
                format!(
                    "{} ms {} {:?} applied={}",
                    e.started_ms, e.status, e.command_id, e.applied
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Each command ran at the OEM exactly once (a request the OEM refused before running
    // it, e.g. a 5xx, is no second run), …
    for id in &ids {
        let runs = posts
            .iter()
            .filter(|e| e.applied && e.command_id.as_deref() == Some(id))
            .count();
        assert_eq!(runs, 1, "{id} ran {runs} times:\n{}", shown());
    }
    assert_eq!(
        posts.len(),
        30,
        "a command was sent more than once:\n{}",
        shown()
    );
    // … and every request that reached the OEM counts against its quota.
    let sent: Vec<u64> = posts.iter().map(|e| e.started_ms).collect();
    let most = sent
        .iter()
        .map(|t| sent.iter().filter(|u| **u >= *t && **u < t + 4000).count())
        .max()
        .unwrap();
    println!("30 commands over 3 replicas; most in any window at the mock: {most}");
    assert!(
        most <= 10,
        "{most} commands reached the OEM in one window:\n{}",
        shown()
    );
}

#[tokio::test]
async fn a_replica_killed_mid_command_is_finished_by_another() {
    let mut c = Cluster::start_with(
        |_| {},
        |o| {
            // Each stage of BMW's asynchronous command lasts long enough to crash in.
            o.command_stage = Duration::from_millis(400);
        },
    )
    .await;
    let car = c.vehicle("WBY31AW090FP00001");
    let a = c
        .send(1, Method::POST, &format!("/v1/vehicles/{car}/lock"), &[])
        .await;
    assert_eq!(a.status, 202, "{:#}", a.json);
    let id = a.json["id"].as_str().unwrap().to_string();
    let store = c.env.demo.gateway.store.clone();
    // Wait until the OEM accepted it (its handle is stored), then kill that replica.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = store.command(&id).await.unwrap().unwrap();
        if r.oem_handle.is_some() {
            assert_eq!(r.status, CommandStatus::Pending);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.others[0].kill();
    let done = c.final_record(&id, Duration::from_secs(20)).await;
    assert_eq!(done.status, CommandStatus::Succeeded, "{done:?}");
    let sent = c
        .env
        .demo
        .bmw()
        .journal
        .entries()
        .iter()
        .filter(|e| e.method == "POST" && e.path.ends_with("/remote-commands/door-lock"))
        .count();
    println!("command finished by another replica after a crash; OEM commands sent: {sent}");
    assert_eq!(sent, 1, "taken over by polling, never sent again");
    assert!(
        keyway::metrics::render().contains("keyway_cluster_commands_taken_over_total 1"),
        "finished by a replica that took it over"
    );
    // The survivors serve the car's new state.
    let s = c
        .send(2, Method::GET, &format!("/v1/vehicles/{car}/security"), &[])
        .await;
    assert_eq!(s.json["locked"], true, "{:#}", s.json);
}

/// A TCP relay to Redis that the test can cut, as a network partition would.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (flag, list) = (cut.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let to = to.clone();
                list.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self {
            addr,
            cut,
            conns,
            task,
        }
    }

    /// Closes every relayed connection and refuses new ones from now on.
    async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in conns {
            c.abort();
            let _ = c.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn with_redis_unreachable_requests_keep_working_on_local_limits() {
    let relay = Relay::start(redis_url().trim_start_matches("redis://").to_string()).await;
    let redis = format!("redis://{}", relay.addr);
    let c = Cluster::start(move |c| {
        c.cluster.redis = Some(Secret::new(redis.clone()));
        c.inbound.caller_per_s = 1;
        // The demo's set-up links ten OEMs as its own caller within this burst
        // (thirteen requests: Volkswagen's and Škoda's app logins hand their redirects
        // over in a second one, Audi's device login is polled once).
        c.inbound.caller_burst = 13;
    })
    .await;
    // A caller the demo's set-up did not charge.
    let token = c.env.token(&["vehicles:read"], None);
    let list = async |replica: usize| {
        let a = c
            .send_as(&token, replica, Method::GET, "/v1/vehicles", &[])
            .await;
        if a.status != 200 {
            println!("{}", a.json);
        }
        a.status.as_u16()
    };
    // Cluster-wide: thirteen requests spread over three replicas spend the caller's burst.
    let mut codes = Vec::new();
    for i in 0..15 {
        codes.push(list(i).await);
    }
    println!("through Redis, 15 requests over 3 replicas: {codes:?}");
    assert_eq!(codes.iter().filter(|s| **s == 200).count(), 13, "{codes:?}");
    assert_eq!(codes.iter().filter(|s| **s == 429).count(), 2, "{codes:?}");

    // Redis becomes unreachable: every replica falls back to its own limiter.
    relay.cut().await;
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(list(i).await);
    }
    println!("Redis cut, 6 requests over 3 replicas: {codes:?}");
    assert!(codes.iter().all(|s| *s == 200), "no outage: {codes:?}");
    // Local limits still hold: a burst at one replica beyond its local burst is refused.
    let mut codes = Vec::new();
    for _ in 0..14 {
        codes.push(list(1).await);
    }
    println!("Redis cut, 14 more at one replica: {codes:?}");
    assert!(codes.contains(&429), "local limits apply: {codes:?}");
    let text = keyway::metrics::render();
    assert!(text.contains("keyway_cluster_redis_up 0"), "{text}");
    assert!(
        text.contains("keyway_cluster_limits_degraded_total{kind=\"caller\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn an_owed_relock_is_done_by_another_replica_when_its_replica_dies() {
    let mut c = Cluster::start(|c| c.grants.tick = Duration::from_millis(10)).await;
    let car = c.vehicle("5YJSA1E26JF000004");
    let courier = c.env.token_as("courier-3", &["grants:use"]);
    let not_after = c.env.demo.gateway.grants.clock.now() + time::Duration::minutes(30);
    let body = serde_json::json!({
        "vehicle_id": car,
        "grantee": "courier-3",
        "not_after": not_after.format(&time::format_description::well_known::Rfc3339).unwrap(),
    });
    let bases = c.bases();
    let created = common::send(
        &c.env.client,
        &bases[1],
        Method::POST,
        "/v1/grants",
        Some(&c.env.demo.token),
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    )
    .await;
    assert_eq!(created.status, 201, "{:#}", created.json);
    let grant = created.json["id"].as_str().unwrap().to_string();
    let opened = c
        .send_as(
            &courier,
            1,
            Method::POST,
            &format!("/v1/grants/{grant}/unlock"),
            &[("prefer", "wait=10")],
        )
        .await;
    assert_eq!(opened.status, 200, "{:#}", opened.json);
    let tesla = c.env.demo.tesla();
    assert!(!tesla.vehicle("5YJSA1E26JF000004").unwrap().locked);

    // The replica that unlocked dies; the relock is owed to the cluster, not to it.
    c.others[0].kill();
    c.env
        .demo
        .gateway
        .grants
        .clock
        .advance(Duration::from_secs(121));
    let g = c
        .env
        .demo
        .gateway
        .grants
        .wait_relock(&grant, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        g.relock_state,
        keyway::store::RelockState::Watching,
        "{g:?}"
    );
    assert!(tesla.vehicle("5YJSA1E26JF000004").unwrap().locked);
}

#[tokio::test]
async fn a_command_on_one_replica_refreshes_the_cached_state_on_the_others() {
    let c = Cluster::start(|_| {}).await;
    let car = c.vehicle("5YJSA1E26JF000004");
    c.env
        .demo
        .tesla()
        .update("5YJSA1E26JF000004", |v| v.locked = false);
    let security = format!("/v1/vehicles/{car}/security");
    // Replicas 0 and 2 read (and cache, for 10 s) the unlocked state.
    for r in [0, 2] {
        let s = c
            .send(r, Method::GET, &security, &[("cache-control", "no-cache")])
            .await;
        assert_eq!(s.json["locked"], false, "{:#}", s.json);
    }
    let reads = c.env.demo.tesla().journal.count("GET", "/vehicle_data");
    // Replica 1 locks the car.
    let a = c
        .send(
            1,
            Method::POST,
            &format!("/v1/vehicles/{car}/lock"),
            &[("prefer", "wait=10")],
        )
        .await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    // The others were told: their next plain read is not the stale cached one.
    for r in [0, 2] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let s = c.send(r, Method::GET, &security, &[]).await;
            if s.json["locked"] == true {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replica {r} kept stale state"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(c.env.demo.tesla().journal.count("GET", "/vehicle_data") > reads);
}
