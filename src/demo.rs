//! `keyway demo`: every mock OEM and the gateway in one process on real sockets, a demo
//! fleet from `fixtures/demo-fleet.json` (one Tesla starts asleep), and a development
//! token with every scope — so the unified API can be tried with curl at once.
//!
//! The demo owner's accounts are linked through the real flow over HTTP, the demo
//! playing the owner's browser: `POST /v1/accounts/{oem}/authorize` at the gateway, a GET
//! of the mock OEM's authorization URL (which consents and redirects), and a GET of the
//! gateway's callback with the code — no token is seeded behind the flow's back. The
//! demo's state lives in its data dir (with a generated token-encryption key and JWT
//! secret) and starts fresh each run: the mocks are new each run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use keyway_adapter::mock::MockServer;
use keyway_adapter::transport::loopback_http;
use keyway_adapter::{Call, Http, Secret};
use rand::RngCore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{DevToken, Scope, mint_hs256};
use crate::config::{
    AuthConfig, CommandsConfig, Config, CryptoConfig, HttpConfig, JwtAlgorithm, OemConfig,
};
use crate::gateway::Gateway;
use crate::mocks::{self, MockOem};
use crate::server;
use crate::store::VehicleRecord;

mod banner;

/// Adjusts the demo gateway's configuration before it starts (tests tune limits).
pub type Configure = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// Demo settings.
#[derive(Clone)]
pub struct DemoOptions {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where the demo keeps its database and dev secret.
    pub data_dir: PathBuf,
    /// How long a sleeping mock car takes to wake.
    pub wake_delay: Duration,
    /// OEM access-token lifetime in the mocks (short values show refreshes).
    pub token_ttl: Duration,
    /// Pause between wake-up calls to a sleeping car.
    pub wake_poll: Duration,
    /// Changes to the gateway's configuration.
    pub configure: Option<Configure>,
    /// A mock a benchmark drives: more cars for its owner beyond the fleet's, and where
    /// it listens.
    pub more: Option<More>,
    /// How long each stage of an asynchronous command takes in the mocks of OEMs whose
    /// commands are asynchronous.
    pub command_stage: Duration,
    /// Longest pause between polls of an asynchronous command.
    pub command_poll: Duration,
    /// The mocks to start, configure and link (default: every one in
    /// [`mocks::MOCKS`]); a test starts only those it uses.
    pub oems: Vec<&'static str>,
    /// Another fleet than `fixtures/demo-fleet.json`, in its shape (JSON).
    pub fleet: Option<Arc<str>>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("keyway-data"),
            wake_delay: Duration::from_secs(3),
            token_ttl: Duration::from_secs(8 * 3600),
            wake_poll: Duration::from_millis(500),
            configure: None,
            more: None,
            command_stage: Duration::from_secs(1),
            command_poll: Duration::from_secs(1),
            oems: mocks::oems(),
            fleet: None,
        }
    }
}

/// A mock a benchmark drives.
#[derive(Clone, Debug)]
pub struct More {
    /// Its OEM.
    pub oem: &'static str,
    /// Cars for the demo owner beyond the fleet's.
    pub cars: usize,
    /// Where it listens (default: a free loopback port; benchmarks put a proxy in front
    /// of it and need to know where).
    pub listen: Option<SocketAddr>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The gateway could not start.
    #[error(transparent)]
    Start(#[from] crate::gateway::StartError),
    /// Linking the demo accounts failed.
    #[error("linking the demo accounts: {0}")]
    Link(String),
    /// The fleet is broken.
    #[error("the demo fleet: {0}")]
    Fleet(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// The demo's app domain, for an OEM whose commands are signed with the application's
/// key (pairing links; the public key's well-known path).
const DEMO_APP_DOMAIN: &str = "keyway-demo.example";

/// A running demo.
pub struct Demo {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// Where the gateway listens.
    pub addr: SocketAddr,
    /// A development token with every scope.
    pub token: String,
    /// A courier's token: `sub` `demo-courier`, scope `grants:use` only.
    pub courier_token: String,
    /// The mocks it started, in [`mocks::MOCKS`]'s order.
    pub mocks: Vec<Running>,
    /// keyway's application keys (PEM), by OEM, for the OEMs whose commands are signed
    /// with one (the demo's cars are paired with it, but one).
    pub app_keys: std::collections::BTreeMap<&'static str, Secret>,
    /// The demo vehicles as keyway knows them.
    pub vehicles: Vec<VehicleRecord>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

/// One mock of the demo and where it listens.
pub struct Running {
    /// Its OEM id.
    pub oem: &'static str,
    /// The mock.
    pub mock: Arc<dyn MockOem>,
    /// Its server.
    pub server: MockServer,
}

impl Demo {
    /// The running mock of `oem` (panics when the demo did not start it: a test that
    /// uses a mock asks for it in [`DemoOptions::oems`]).
    pub fn running(&self, oem: &str) -> &Running {
        self.mocks
            .iter()
            .find(|m| m.oem == oem)
            .unwrap_or_else(|| panic!("the demo did not start the {oem} mock"))
    }

    /// Where the mock of `oem` listens.
    pub fn server(&self, oem: &str) -> &MockServer {
        &self.running(oem).server
    }

    /// The mock of `oem` as its own type, for its OEM-specific controls.
    pub fn mock<M: MockOem>(&self, oem: &str) -> &M {
        let any: &dyn std::any::Any = self.running(oem).mock.as_ref();
        any.downcast_ref()
            .unwrap_or_else(|| panic!("the {oem} mock is not a {}", std::any::type_name::<M>()))
    }

    /// Stops the gateway cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }

    /// Stops the gateway and starts a new one on the same configuration, store and
    /// mock OEMs (a gateway restart; the new one listens on a new port of the same host).
    pub async fn restart(&mut self) -> Result<(), DemoError> {
        let (stop, stopped) = oneshot::channel::<()>();
        let _ = std::mem::replace(&mut self.stop, stop).send(());
        let old = std::mem::replace(&mut self.server, tokio::spawn(async { Ok(()) }));
        let _ = old.await;
        let mut config = self.gateway.config.clone();
        let listener =
            server::listen(SocketAddr::new(self.addr.ip(), 0)).map_err(io("listening again"))?;
        self.addr = listener.local_addr().map_err(io("reading the address"))?;
        config.listen = self.addr;
        self.gateway = Gateway::start(config).await?;
        self.server = tokio::spawn(server::serve(self.gateway.clone(), listener, async move {
            let _ = stopped.await;
        }));
        Ok(())
    }
}

/// A secret kept in the data dir (made on first use, mode 0600).
fn dev_secret(dir: &Path, name: &str, make: impl FnOnce() -> String) -> Result<Secret, DemoError> {
    let path = dir.join(name);
    if let Ok(s) = std::fs::read_to_string(&path)
        && !s.trim().is_empty()
    {
        return Ok(Secret::new(s.trim()));
    }
    let secret = make();
    std::fs::write(&path, &secret).map_err(io(format!("writing {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(Secret::new(secret))
}

/// Writes `<data dir>/keyway.toml`: enough configuration for `keyway token --config`
/// to mint tokens the demo accepts (e.g. a second tenant's). Mode 0600: it holds the
/// demo's development secrets, like the files beside it.
fn write_token_config(dir: &Path, c: &Config) -> Result<(), DemoError> {
    let secret = c.auth.hs256_secret.as_ref().map(|s| s.expose().to_string());
    let key = c.crypto.keys.get("demo").map(|k| k.expose().to_string());
    let text = format!(
        "# Written by `keyway demo` for `keyway token --config {}`; development only.\n\
         listen = \"{}\"\n\
         [auth]\nissuer = {:?}\naudience = {:?}\nalgorithm = \"HS256\"\nhs256_secret = {:?}\n\
         [crypto]\nactive_key = \"demo\"\nkeys = {{ demo = {:?} }}\n",
        dir.join("keyway.toml").display(),
        c.listen,
        c.auth.issuer,
        c.auth.audience,
        secret.unwrap_or_default(),
        key.unwrap_or_default(),
    );
    let path = dir.join("keyway.toml");
    std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// Starts mocks, gateway and demo accounts.
pub async fn start(opts: DemoOptions) -> Result<Demo, DemoError> {
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(io(format!("creating {}", opts.data_dir.display())))?;
    for name in ["keyway.db", "keyway.db-wal", "keyway.db-shm"] {
        let _ = std::fs::remove_file(opts.data_dir.join(name));
    }
    let fleet: mocks::Fleet = match &opts.fleet {
        Some(json) => serde_json::from_str(json),
        None => mocks::Fleet::load(),
    }
    .map_err(|e| DemoError::Fleet(e.to_string()))?;
    let jwt_secret = dev_secret(&opts.data_dir, "dev-jwt-secret", || {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    })?;
    let token_key = dev_secret(&opts.data_dir, "dev-token-key", || {
        crate::crypto::generate_key().unwrap_or_default()
    })?;
    // Bind first: the OAuth redirect URI names the real port.
    let listener =
        server::listen(opts.listen).map_err(io(format!("listening on {}", opts.listen)))?;
    let addr = listener.local_addr().map_err(io("reading the address"))?;

    let settings = mocks::Settings {
        token_ttl: opts.token_ttl,
        wake_delay: opts.wake_delay,
        stage: opts.command_stage,
        app_key: None,
        extra_cars: 0,
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut running = Vec::new();
    let mut oems = std::collections::BTreeMap::new();
    let mut app_keys = std::collections::BTreeMap::new();
    for entry in mocks::MOCKS.iter().filter(|m| opts.oems.contains(&m.oem)) {
        // keyway's application key, for an OEM whose commands are signed with one:
        // paired with every demo car of it but one (which shows the pairing link).
        let signing = crate::registry::known_adapter(entry.oem).and_then(|k| k.signing.as_ref());
        let app_key = match signing {
            Some(signing) => {
                let name = format!("dev-{}-app-key", entry.oem);
                Some(dev_secret(&opts.data_dir, &name, signing.generate)?)
            }
            None => None,
        };
        if let Some(key) = &app_key {
            app_keys.insert(entry.oem, key.clone());
        }
        let more = opts.more.as_ref().filter(|m| m.oem == entry.oem);
        let s = mocks::Settings {
            extra_cars: more.map_or(0, |m| m.cars),
            app_key: app_key.as_ref().map(|k| k.expose().to_string()),
            ..settings.clone()
        };
        let mock = fleet.build(entry, &s).map_err(DemoError::Fleet)?;
        let listen = more.and_then(|m| m.listen).unwrap_or(loopback);
        let server = mock
            .spawn(listen)
            .await
            .map_err(io(format!("starting the {} mock", entry.name)))?;
        oems.insert(
            entry.oem.to_string(),
            OemConfig {
                api_base_url: server.url(),
                auth_base_url: None,
                login_base_url: None,
                vehicles_base_url: None,
                client_id: mocks::CLIENT_ID.into(),
                client_secret: Some(Secret::new(mocks::CLIENT_SECRET)),
                api_key: entry.api_key.map(Secret::new),
                timeout: Duration::from_millis(10_000),
                limits: Default::default(),
                retry: Default::default(),
                breaker: Default::default(),
                reads: Default::default(),
                // The demo's mocks lag by 1.5 s and hold no commands: small windows, so
                // a lost answer settles within seconds (real OEMs: the adapters' own).
                timing: crate::config::TimingConfig {
                    state_lag: Some(Duration::from_secs(3)),
                    command_window: Some(Duration::from_secs(15)),
                },
                app_domain: app_key.is_some().then(|| DEMO_APP_DOMAIN.to_string()),
                app_key,
                app_key_file: None,
                prices: Default::default(),
                webhook_secret: entry.webhook_secret.map(Secret::new),
                api_version: None,
            },
        );
        running.push(Running {
            oem: entry.oem,
            mock,
            server,
        });
    }
    let mut config = Config {
        listen: addr,
        store: Secret::new(format!(
            "sqlite://{}",
            opts.data_dir.join("keyway.db").display()
        )),
        public_url: Some(format!("http://{addr}")),
        crypto: CryptoConfig {
            active_key: Some("demo".into()),
            keys: [("demo".to_string(), token_key)].into_iter().collect(),
        },
        auth: AuthConfig {
            issuer: "keyway-demo".into(),
            audience: "keyway".into(),
            algorithm: JwtAlgorithm::HS256,
            hs256_secret: Some(jwt_secret),
            public_key_file: None,
            jwks_file: None,
            leeway: Duration::from_secs(30),
        },
        commands: CommandsConfig {
            wake_poll: opts.wake_poll.max(Duration::from_millis(1)),
            max_poll_interval: opts.command_poll.max(Duration::from_millis(1)),
            ..CommandsConfig::default()
        },
        http: HttpConfig::default(),
        inbound: Default::default(),
        cluster: Default::default(),
        grants: Default::default(),
        events: Default::default(),
        // Watched demo cars are read every 5 s, so a change made through a mock's
        // `PATCH /__mock/vehicles/{vin}` shows quickly (production default: 30 s), and a
        // sleeping one at least every 30 s (production: up to 10 min); a car whose
        // delivery is unlocking or relocking every 2 s (production: 5 s).
        watch: crate::config::WatchConfig {
            min_period: Duration::from_millis(5000),
            busy_period: Duration::from_millis(2000),
            asleep_max_period: Duration::from_millis(30_000),
            ..Default::default()
        },
        routes: Default::default(),
        oems,
    };
    if let Some(configure) = &opts.configure {
        configure(&mut config);
    }
    let gateway = Gateway::start(config).await?;
    write_token_config(&opts.data_dir, &gateway.config)?;

    let scopes: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_string()).collect();
    let token = mint_hs256(
        &gateway.config.auth,
        &DevToken {
            sub: "demo-delivery-service",
            tenant: None,
            scopes: &scopes,
            vehicles: None,
            ttl_s: 24 * 3600,
        },
    )
    .map_err(|e| DemoError::Start(e.into()))?;
    let courier_token = mint_hs256(
        &gateway.config.auth,
        &DevToken {
            sub: "demo-courier",
            tenant: None,
            scopes: &["grants:use".to_string()],
            vehicles: None,
            ttl_s: 24 * 3600,
        },
    )
    .map_err(|e| DemoError::Start(e.into()))?;

    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(gateway.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    for m in &running {
        link_as_owner(&base, &token, m.oem).await?;
    }
    let vehicles = gateway
        .store
        .vehicles()
        .await
        .map_err(|e| DemoError::Link(e.to_string()))?;
    Ok(Demo {
        gateway,
        addr,
        token,
        courier_token,
        mocks: running,
        app_keys,
        vehicles,
        stop,
        server,
    })
}

/// Links the demo owner's `oem` account the way an owner would: the service asks keyway
/// for an authorization URL, the owner's browser follows it to the OEM (the mock
/// consents at once) and is redirected to keyway's callback.
pub async fn link_as_owner(base: &str, token: &str, oem: &str) -> Result<(), DemoError> {
    let service = Call {
        http: loopback_http(),
        token: Secret::new(token),
        command_id: None,
        account: None,
        pin: None,
    };
    // The owner gives keyway the PIN its OEM's commands need (Hyundai/Kia's for a CCS2
    // car's door control, Volkswagen's S-PIN), as set in the OEM's app.
    let body = match mocks::entry(oem).and_then(|m| m.owner_pin) {
        Some(pin) => serde_json::json!({ "pin": pin }),
        None => serde_json::json!({}),
    };
    let started = service
        .post_json(&format!("{base}/v1/accounts/{oem}/authorize"), &body)
        .await
        .map_err(|e| link_failed("authorize", e.to_string()))?;
    let started: serde_json::Value = serde_json::from_slice(started.body())
        .map_err(|e| link_failed("authorize answer", e.to_string()))?;
    let url = started["authorization_url"]
        .as_str()
        .ok_or_else(|| link_failed("authorize answer", started.to_string()))?;
    let browser = loopback_http();
    let consent = browse(&browser, url)
        .await
        .map_err(|e| link_failed("OEM login", e))?;
    // A device login (RFC 8628): the owner approved at the OEM's page; the service
    // polls keyway, which polls the OEM, at the interval asked (a few bounded tries).
    if started["device"].is_object() {
        return finish_device(&service, base, &started, consent.status()).await;
    }
    let back = consent
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| link_failed("OEM login", format!("no redirect ({})", consent.status())))?
        .to_string();
    // An OEM with its own app login ends at the app's URI: the app catches it and the
    // service hands it to keyway; the others redirect the browser to keyway's callback.
    let done = match started["app_redirect"].as_str() {
        Some(_) => service
            .post_json(
                &format!("{base}/v1/oauth/callback"),
                &serde_json::json!({ "redirect_url": back }),
            )
            .await
            .map_err(|e| e.to_string()),
        None => browse(&browser, &back).await,
    }
    .map_err(|e| link_failed("callback", e))?;
    if !done.status().is_success() {
        return Err(link_failed(
            "callback",
            String::from_utf8_lossy(done.body()).into_owned(),
        ));
    }
    Ok(())
}

/// A demo link that failed at step `what`, and why.
fn link_failed(what: &str, detail: String) -> DemoError {
    DemoError::Link(format!("{what}: {detail}"))
}

/// Polls a device link until it is linked: at most ten polls, `Retry-After` apart.
async fn finish_device(
    service: &Call,
    base: &str,
    started: &serde_json::Value,
    approved: http::StatusCode,
) -> Result<(), DemoError> {
    if !approved.is_success() {
        return Err(link_failed("OEM device page", approved.to_string()));
    }
    let body = serde_json::json!({ "state": started["state"] });
    for _ in 0..10 {
        let polled = service
            .post_json(&format!("{base}/v1/oauth/device"), &body)
            .await
            .map_err(|e| link_failed("device poll", e.to_string()))?;
        match polled.status().as_u16() {
            200 => return Ok(()),
            202 => {
                let wait: serde_json::Value =
                    serde_json::from_slice(polled.body()).unwrap_or_default();
                let secs = wait["retry_after_s"].as_u64().unwrap_or(1).clamp(1, 10);
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            _ => {
                return Err(link_failed(
                    "device poll",
                    String::from_utf8_lossy(polled.body()).into_owned(),
                ));
            }
        }
    }
    Err(link_failed(
        "device poll",
        "the owner's approval never arrived".into(),
    ))
}

async fn browse(http: &Http, url: &str) -> Result<http::Response<Bytes>, String> {
    let req = Request::get(url)
        .header(header::ACCEPT, "text/html,application/json")
        .body(Bytes::new())
        .map_err(|e| e.to_string())?;
    http.send(req).await.map_err(|e| e.to_string())
}

/// Runs the demo until Ctrl-C / SIGTERM.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let demo = start(opts).await?;
    print!("{}", demo.banner());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server::signal().await;
    demo.stop().await;
    Ok(())
}
