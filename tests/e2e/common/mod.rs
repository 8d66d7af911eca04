//! Shared set-up for end-to-end tests: the demo assembly (gateway + Tesla mock) on
//! ephemeral loopback ports with short timings and a private data dir, and a small
//! HTTP client built on the project's own hyper stack.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyway::demo::{self, Demo, DemoOptions};
use serde_json::Value;

/// `Prefer: wait=30`: the longest a test waits for a command's outcome in one request
/// (commands against the mocks finish in seconds; a wait only ends early).
pub const WAIT: (&str, &str) = ("prefer", "wait=30");

/// A private data dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(keyway::ids::new("keyway-test"));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running demo for one test.
/// The tenant that links the demo's accounts (the demo token's `sub`).
pub const DEMO_TENANT: &str = "demo-delivery-service";

pub struct Env {
    pub demo: Demo,
    pub dir: TempDir,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

pub fn options(dir: &TempDir) -> DemoOptions {
    DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.0.clone(),
        wake_delay: Duration::from_millis(40),
        wake_poll: Duration::from_millis(10),
        command_stage: Duration::from_millis(15),
        command_poll: Duration::from_millis(10),
        ..DemoOptions::default()
    }
}

/// The tests' HTTP client. It drops a pooled connection idle for 5 s: keyway closes an
/// idle keep-alive connection after `http.header_timeout` (10 s), and a request sent
/// on one just as it closes fails with `IncompleteMessage` (the keep-alive race).
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build(HttpConnector::new())
}

/// What an [`Env`] starts: which mocks (default every one) and the gateway's
/// configuration changes.
#[derive(Default)]
pub struct EnvBuilder {
    mocks: Option<Vec<&'static str>>,
    configure: Option<keyway::demo::Configure>,
    fleet: Option<std::sync::Arc<str>>,
}

impl EnvBuilder {
    /// Starts only these mocks (and links only their accounts).
    pub fn mocks(mut self, oems: &[&'static str]) -> Self {
        self.mocks = Some(oems.to_vec());
        self
    }

    /// Another fleet (JSON in `fixtures/demo-fleet.json`'s shape).
    pub fn fleet(mut self, json: &str) -> Self {
        self.fleet = Some(json.into());
        self
    }

    /// Adjusts the gateway's configuration.
    pub fn configure(
        mut self,
        f: impl Fn(&mut keyway::config::Config) + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(std::sync::Arc::new(f));
        self
    }

    pub async fn start(self) -> Env {
        let dir = TempDir::new();
        let mut opts = options(&dir);
        opts.configure = self.configure;
        opts.fleet = self.fleet;
        if let Some(oems) = self.mocks {
            opts.oems = oems;
        }
        let demo = demo::start(opts).await.expect("demo starts");
        Env {
            demo,
            dir,
            client: client(),
        }
    }
}

impl Env {
    /// The demo with every mock.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The demo with every mock, its gateway configuration adjusted by `configure`.
    pub async fn start_with(
        configure: impl Fn(&mut keyway::config::Config) + Send + Sync + 'static,
    ) -> Self {
        Self::builder().configure(configure).start().await
    }

    /// A demo of the chosen mocks and configuration.
    pub fn builder() -> EnvBuilder {
        EnvBuilder::default()
    }

    /// The demo with only the Tesla mock (most tests need no other).
    pub async fn tesla_only() -> Self {
        Self::builder().mocks(&["tesla"]).start().await
    }

    /// The demo with only the Tesla mock, delivering webhooks every 20 ms and allowing
    /// receivers on loopback (the tests' own).
    pub async fn tesla_with_loopback_webhooks() -> Self {
        Self::builder()
            .mocks(&["tesla"])
            .configure(|c| {
                c.events.delivery_tick = Duration::from_millis(20);
                c.events.webhook_allow = vec!["127.0.0.1/32".into()];
            })
            .start()
            .await
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.demo.addr)
    }

    /// How many requests the mock of `oem` took with `method` (any, when `None`) whose
    /// path contains `part`.
    pub fn requests(&self, oem: &str, method: Option<&str>, part: &str) -> usize {
        self.demo
            .mocks
            .iter()
            .find(|m| m.oem == oem)
            .unwrap_or_else(|| panic!("no {oem} mock"))
            .mock
            .journal()
            .entries()
            .iter()
            .filter(|e| method.is_none_or(|m| e.method == m) && e.path.contains(part))
            .count()
    }

    /// Forgets what the OEM of vehicle `id` said, when the car was listed, that it cannot
    /// do (as if it had not said it): its OEM's command answer tells again.
    pub async fn forget_capabilities(&self, id: &str) {
        self.demo
            .gateway
            .store
            .set_capabilities(id, None)
            .await
            .unwrap();
        self.demo.gateway.fleet.invalidate_vehicle(id);
    }

    /// The online demo Tesla and the asleep one.
    /// The online Tesla that takes REST commands (a pre-2021 Model S): each command
    /// shows in the mock's journal by its path (`/command/door_lock`), which the
    /// lifecycle tests count.
    pub fn online(&self) -> &keyway::store::VehicleRecord {
        self.by_vin("5YJSA1E26JF000004")
    }

    /// The online Tesla on the Vehicle Command Protocol, paired with keyway's key.
    pub fn signed(&self) -> &keyway::store::VehicleRecord {
        self.by_vin("5YJ3E1EA7LF000001")
    }

    /// The online Tesla whose owner never paired keyway's key.
    pub fn unpaired(&self) -> &keyway::store::VehicleRecord {
        self.by_vin(keyway_tesla::demo::UNPAIRED)
    }

    pub fn asleep(&self) -> &keyway::store::VehicleRecord {
        self.by_vin("5YJYGDEE1MF000002")
    }

    /// Ids of the demo's Tesla cars.
    pub fn tesla_ids(&self) -> Vec<String> {
        self.demo
            .vehicles
            .iter()
            .filter(|v| v.oem == "tesla")
            .map(|v| v.id.to_string())
            .collect()
    }

    /// Ids of the demo's Tesla cars keyway can command (not the unpaired one).
    pub fn commandable_tesla_ids(&self) -> Vec<String> {
        self.demo
            .vehicles
            .iter()
            .filter(|v| v.oem == "tesla" && v.oem_id != keyway_tesla::demo::UNPAIRED)
            .map(|v| v.id.to_string())
            .collect()
    }

    /// The demo's Tesla account, as the gateway stores it.
    pub async fn tesla_account(&self) -> keyway::store::AccountRecord {
        self.demo
            .gateway
            .store
            .accounts()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.oem == "tesla")
            .expect("a linked Tesla account")
    }

    /// A lock or unlock (`action`) of the demo car `vin` (its OEM id) under an
    /// idempotency key, waiting up to a minute for the outcome.
    pub async fn command_waiting(&self, vin: &str, action: &str, key: &str) -> Answer {
        let car = &self.by_vin(vin).id;
        self.send(
            Method::POST,
            &format!("/v1/vehicles/{car}/{action}"),
            Some(&self.demo.token),
            &[("prefer", "wait=60"), ("idempotency-key", key)],
            None,
        )
        .await
    }

    pub fn by_vin(&self, vin: &str) -> &keyway::store::VehicleRecord {
        self.demo
            .vehicles
            .iter()
            .find(|v| v.oem_id == vin)
            .expect("demo vehicle")
    }

    /// A token of the demo's test service, acting for the demo tenant (which linked the
    /// demo accounts), with `scopes` and optionally only `vehicles`.
    pub fn token(&self, scopes: &[&str], vehicles: Option<Vec<String>>) -> String {
        self.mint("test-service", Some(DEMO_TENANT), scopes, vehicles)
    }

    /// A token of `sub` acting for its own tenant with `scopes` on every vehicle (another
    /// service, a courier).
    pub fn token_as(&self, sub: &str, scopes: &[&str]) -> String {
        self.mint(sub, None, scopes, None)
    }

    /// Any token the demo accepts (the demo's secret, ten minutes).
    pub fn mint(
        &self,
        sub: &str,
        tenant: Option<&str>,
        scopes: &[&str],
        vehicles: Option<Vec<String>>,
    ) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        keyway::auth::mint_hs256(
            &self.demo.gateway.config.auth,
            &keyway::auth::DevToken {
                sub,
                tenant,
                scopes: &scopes,
                vehicles,
                ttl_s: 600,
            },
        )
        .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, token, &[], None).await
    }

    /// `GET path` with the demo token, in its own task (to overlap requests).
    pub fn spawn_get(&self, path: &str) -> tokio::task::JoinHandle<Answer> {
        let (client, base, token, path) = (
            self.client.clone(),
            self.base(),
            self.demo.token.clone(),
            path.to_string(),
        );
        tokio::spawn(async move {
            send(&client, &base, Method::GET, &path, Some(&token), &[], None).await
        })
    }

    /// `POST /v1/vehicles/{id}/{action}` with the demo token, waiting for the outcome.
    pub async fn act(&self, vehicle: &str, action: &str) -> Answer {
        self.post(
            &format!("/v1/vehicles/{vehicle}/{action}"),
            &self.demo.token,
            &[WAIT],
        )
        .await
    }

    /// `method path` with a JSON body.
    pub async fn json(&self, method: Method, path: &str, token: &str, body: Value) -> Answer {
        self.send(
            method,
            path,
            Some(token),
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, path, Some(token), headers, None)
            .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        send(
            &self.client,
            &self.base(),
            method,
            path,
            token,
            headers,
            body,
        )
        .await
    }
}

/// A response with its body parsed as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    /// The body as text (lossy).
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with the code, and the members every problem has.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.json);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.json["code"], code, "{:#}", self.json);
        assert_eq!(self.json["status"], status);
        assert!(self.json["type"].as_str().unwrap().ends_with(code));
        assert!(self.json["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(
            self.json["request_id"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert!(self.json["retryable"].is_boolean());
        assert_eq!(
            self.header("x-request-id"),
            self.json["request_id"].as_str()
        );
    }
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("answer within 30 s")
        .expect("request");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The PostgreSQL the cluster and store tests use (`KEYWAY_TEST_POSTGRES_URL`, default
/// the machine's `test` database).
pub fn postgres_base() -> String {
    std::env::var("KEYWAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// A private PostgreSQL schema for one test, dropped (with everything in it) on drop.
pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    pub fn new() -> Self {
        Self {
            name: keyway::ids::new("kwt")
                .replace('-', "_")
                .to_ascii_lowercase(),
        }
    }

    /// A store URL whose connections use this schema (keyway creates it).
    pub fn url(&self) -> String {
        format!(
            "{}?options=-c%20search_path%3D{}",
            postgres_base(),
            self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: drop may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::{Connection, Executor};
                if let Ok(mut c) = sqlx::PgConnection::connect(&postgres_base()).await {
                    // Never hang a test's clean-up on a lock (fail the drop instead).
                    let _ = c.execute("SET lock_timeout = '10s'").await;
                    let _ = c
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {name} CASCADE"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The demo's mocks as their own types, for their OEM-specific controls.
pub trait DemoMocks {
    /// The Tesla mock.
    fn tesla(&self) -> &keyway_tesla::TeslaMock;
    /// The BMW mock.
    fn bmw(&self) -> &keyway_bmw::BmwMock;
    /// The Volvo mock.
    fn volvo(&self) -> &keyway_volvo::VolvoMock;
    /// The GM mock.
    fn gm(&self) -> &keyway_gm::GmMock;
}

impl DemoMocks for keyway::demo::Demo {
    fn tesla(&self) -> &keyway_tesla::TeslaMock {
        self.mock("tesla")
    }
    fn bmw(&self) -> &keyway_bmw::BmwMock {
        self.mock("bmw")
    }
    fn volvo(&self) -> &keyway_volvo::VolvoMock {
        self.mock("volvo")
    }
    fn gm(&self) -> &keyway_gm::GmMock {
        self.mock("gm")
    }
}
