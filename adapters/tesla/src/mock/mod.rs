//! A stateful fake of the Tesla Fleet API and its token endpoint, served by axum.
//!
//! It behaves as OEM-REFERENCE.md describes the real API: `/api/1/vehicles`,
//! `vehicle_data` (408 while asleep), `door_lock`/`door_unlock` answering
//! `{"result": bool, "reason"}` (a "user present" car refuses), `wake_up` that takes a
//! configurable moment, bearer tokens that expire (401), 404 for unknown VINs, and a
//! token endpoint whose refresh tokens rotate and are single-use (reuse answers 401
//! `login_required` and revokes the token family). Time is tokio's clock.
//!
//! Its OAuth server is the kit's ([`OAuthServer`]) with Tesla's profile: PKCE required,
//! client credentials in the body, rotating refresh tokens, and a rejected refresh
//! answered `401 {"error": "login_required"}`.
//!
//! Each car lives in the kit's timeline: `vehicle_data` reports the lock as Tesla's
//! servers last heard it (lagging by the car's `state_lag_ms`, with that time as its
//! `timestamp`); a command reaches the car late or twice when its timing or a fault says
//! so — then the answer is a 504, as when the car does not answer in time — and every
//! execution is journalled (`executions` in `/__mock/state`).
//!
//! Each car is on the Vehicle Command Protocol (`protocol: signed`, the default: every
//! Tesla since 2021) or not (`rest`: pre-2021 Model S/X). A signed car refuses REST
//! `door_lock`/`door_unlock` with Tesla's 403 "Tesla Vehicle Command Protocol
//! required", and its VCSEC verifies `signed_command` messages as the specification
//! says ([`crate::vcp::vehicle`]): handshake, keychain, epoch, expiry, counters, MAC.
//! `fleet_status` tells which cars need signing and which have the app's key (the key
//! the app registered, [`TeslaMock::register_app_key`]).
//!
//! Test and demo controls live under `/__mock/`: `GET /__mock/state`,
//! `PATCH /__mock/vehicles/{vin}` (`state`, `locked`, `user_present`, `latitude`,
//! `longitude`, `heading`, `timing`, `protocol`, `keys`), `POST /__mock/reset`,
//! `POST /__mock/token` (an owner's token pair, the kit's, for calling the mock directly), the
//! request journal at `/__mock/requests`, and fault injection at `/__mock/faults` (see
//! the kit's `faults`).

mod controls;
mod fleet;
mod signed;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use keyway_adapter::ClientAuth;
use keyway_adapter::mock::garage::Login;
use keyway_adapter::mock::timeline::{
    CarTiming, Delivery, DeliveryFault, Execution, Timeline, wall,
};
use keyway_adapter::mock::{
    AccessDenied, Faults, Journal, MockServer, OAuthServer, OAuthServerConfig, Rejection,
    TokenBook, bearer, instrument, lock,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Whether a mock car answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    /// Answers immediately.
    Online,
    /// Answers 408 until woken.
    Asleep,
    /// Answers 408 and does not wake.
    Offline,
}

/// How a car takes commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandProtocol {
    /// Only commands signed with the Vehicle Command Protocol (every Tesla since 2021).
    #[default]
    Signed,
    /// REST commands (pre-2021 Model S and X).
    Rest,
}

/// One mock car.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MockVehicle {
    /// Tesla's numeric id.
    pub id: u64,
    /// VIN (the Fleet API addresses cars by VIN).
    pub vin: String,
    /// The owner's name for it.
    pub display_name: String,
    /// The account (login) that owns it.
    #[serde(default = "default_account")]
    pub account: String,
    /// Online, asleep or offline.
    pub state: Power,
    /// Door lock.
    pub locked: bool,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Heading in degrees.
    #[serde(default)]
    pub heading: f64,
    /// A person in the car: the car refuses remote lock/unlock.
    #[serde(default)]
    pub user_present: bool,
    /// Trunk open.
    #[serde(default)]
    pub trunk_open: bool,
    /// The other openings (and the trunk, as `trunk_open`).
    #[serde(default)]
    pub open: keyway_adapter::mock::garage::Openings,
    /// How the car and Tesla's servers behave in time (the kit's timeline: the state
    /// `vehicle_data` reports lags, commands reach the car late or twice).
    #[serde(default)]
    pub timing: CarTiming,
    /// Signed or REST commands.
    #[serde(default)]
    pub protocol: CommandProtocol,
    /// The public keys in the car's VCSEC keychain (hex of the 65-byte points): the
    /// owner paired them.
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(skip)]
    waking_until: Option<Instant>,
}

fn default_account() -> String {
    "owner".into()
}

impl MockVehicle {
    /// An online, locked car at a position.
    pub fn new(id: u64, vin: &str, name: &str, latitude: f64, longitude: f64) -> Self {
        Self {
            id,
            vin: vin.into(),
            display_name: name.into(),
            account: default_account(),
            state: Power::Online,
            locked: true,
            latitude,
            longitude,
            heading: 0.0,
            user_present: false,
            trunk_open: false,
            open: Default::default(),
            timing: CarTiming::default(),
            protocol: CommandProtocol::Signed,
            keys: Vec::new(),
            waking_until: None,
        }
    }

    /// The same car on the REST command path (a pre-2021 Model S/X).
    pub fn legacy(mut self) -> Self {
        self.protocol = CommandProtocol::Rest;
        self
    }

    /// The same car with `public_key` (65 bytes) paired.
    pub fn paired_with(mut self, public_key: &[u8]) -> Self {
        self.keys.push(hex::encode(public_key));
        self
    }
}

/// Mock settings.
#[derive(Clone, Debug)]
pub struct TeslaMockConfig {
    /// How long `wake_up` takes to bring an asleep car online.
    pub wake_delay: Duration,
    /// The cars.
    pub vehicles: Vec<MockVehicle>,
    /// The OAuth side: client, secret, default login, access-token lifetime (Tesla: 8 h).
    pub login: Login,
}

impl Default for TeslaMockConfig {
    fn default() -> Self {
        Self {
            wake_delay: Duration::from_secs(5),
            vehicles: Vec::new(),
            login: Login {
                client_id: "keyway".into(),
                client_secret: None,
                default_account: default_account(),
                access_ttl: Duration::from_secs(8 * 3600),
            },
        }
    }
}

#[derive(Debug)]
struct World {
    vehicles: BTreeMap<String, MockVehicle>,
    /// Each car's life in time; its lock is the truth `locked` mirrors.
    lives: BTreeMap<String, Timeline>,
    executions: Vec<Execution>,
    deliveries: u64,
    wake_delay: Duration,
    /// Each signed car's vehicle-security domain (keys, epoch, counters).
    vcsec: BTreeMap<String, crate::vcp::vehicle::VehicleDomain>,
    /// The public key the app registered with Tesla (what `fleet_status` looks for).
    app_key: Option<String>,
    /// Signed messages that carried a command (handshakes do not count).
    signed_commands: usize,
}

impl MockVehicle {
    /// Finishes a wake-up that is due.
    fn tick(&mut self) {
        if let Some(t) = self.waking_until
            && Instant::now() >= t
        {
            self.waking_until = None;
            if self.state == Power::Asleep {
                self.state = Power::Online;
            }
        }
    }
}

impl World {
    /// Advances every wake-up and command that is due (listings; single-car paths tick
    /// that car).
    fn tick(&mut self) {
        let vins: Vec<String> = self.vehicles.keys().cloned().collect();
        for vin in vins {
            self.sync(&vin);
        }
    }

    /// One car, with its wake-up and commands advanced.
    fn car(&mut self, vin: &str) -> Option<&mut MockVehicle> {
        self.sync(vin);
        self.vehicles.get_mut(vin)
    }

    /// Brings one car's timeline and its record together: a lock changed on the record
    /// (a key fob, a test) enters the timeline; commands that reached the car by now
    /// change the lock.
    fn sync(&mut self, vin: &str) {
        let Some(v) = self.vehicles.get_mut(vin) else {
            return;
        };
        v.tick();
        let now = Instant::now();
        let life = self
            .lives
            .entry(vin.to_string())
            .or_insert_with(|| Timeline::new(v.locked, v.timing));
        if life.timing() != v.timing {
            life.set_timing(v.timing);
        }
        if life.current() != v.locked {
            life.set(v.locked, now);
        }
        for (delivery, lock_to, at) in life.settle(v.state != Power::Online) {
            self.executions.push(Execution {
                vin: vin.to_string(),
                command: if lock_to { "lock" } else { "unlock" }.into(),
                delivery,
                at: wall(at),
            });
        }
        v.locked = life.current();
    }

    /// Hands a lock or unlock to an awake car; whether it ran by now.
    fn deliver(&mut self, vin: &str, lock_to: bool, fault: DeliveryFault) -> bool {
        self.sync(vin);
        self.deliveries += 1;
        let id = self.deliveries;
        let Some(life) = self.lives.get_mut(vin) else {
            return false;
        };
        life.deliver(id, lock_to, Duration::ZERO, false, fault);
        self.sync(vin);
        self.lives.get(vin).and_then(|l| l.delivery(id)) == Some(Delivery::Executed)
    }

    /// The lock as `vehicle_data` reports it (lagging the car), and when.
    fn view(&mut self, vin: &str) -> Option<(bool, time::OffsetDateTime)> {
        self.sync(vin);
        self.lives.get(vin).map(Timeline::view)
    }
}

/// The mock: cheap to clone, all clones share one world.
#[derive(Clone, Debug)]
pub struct TeslaMock {
    world: Arc<Mutex<World>>,
    /// Issued tokens (refresh counters, replays, expiry controls).
    pub tokens: TokenBook,
    /// The authorization server.
    pub oauth: OAuthServer,
    /// Every request seen.
    pub journal: Journal,
    /// Injected faults.
    pub faults: Faults,
    initial: Arc<BTreeMap<String, MockVehicle>>,
    /// Each account's home region (its base URL), where regions are set.
    homes: Arc<Mutex<std::collections::HashMap<String, String>>>,
    /// The default account (the conformance suite's owner).
    owner: Arc<str>,
}

impl TeslaMock {
    /// A mock with the given cars and settings.
    pub fn new(config: TeslaMockConfig) -> Self {
        let vehicles: BTreeMap<String, MockVehicle> = config
            .vehicles
            .into_iter()
            .map(|v| (v.vin.clone(), v))
            .collect();
        let login = config.login;
        let owner = login.default_account.clone();
        let tokens = TokenBook::new(login.access_ttl, true);
        let oauth = OAuthServer::new(
            OAuthServerConfig {
                client_id: login.client_id,
                client_secret: login.client_secret,
                client_auth: ClientAuth::Body,
                scopes: crate::adapter::INFO
                    .oauth
                    .scopes
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                require_pkce: true,
                default_account: login.default_account,
                code_ttl: Duration::from_secs(600),
                token_exchange: false,
                refresh_rejection: Rejection {
                    status: 401,
                    body: json!({"error": "login_required", "error_description": "The refresh_token is invalid"}),
                },
                owner_param: None,
            },
            tokens.clone(),
        );
        Self {
            initial: Arc::new(vehicles.clone()),
            world: Arc::new(Mutex::new(World {
                vehicles,
                lives: BTreeMap::new(),
                executions: Vec::new(),
                deliveries: 0,
                wake_delay: config.wake_delay,
                vcsec: BTreeMap::new(),
                app_key: None,
                signed_commands: 0,
            })),
            tokens,
            oauth,
            journal: Journal::default(),
            faults: Faults::default(),
            homes: Arc::default(),
            owner: Arc::from(owner.as_str()),
        }
    }

    /// The axum router serving the Fleet API, the token endpoint and `/__mock/`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .merge(self.fleet_routes())
            .merge(self.signed_routes())
            .merge(self.control_routes())
            .with_state(self.clone())
            .merge(
                self.oauth
                    .routes("/oauth2/v3/authorize", "/oauth2/v3/token"),
            );
        instrument(api, &self.journal, &self.faults)
    }

    /// Serves the mock on `addr`.
    pub async fn spawn(&self, addr: std::net::SocketAddr) -> std::io::Result<MockServer> {
        MockServer::spawn(self.router(), addr).await
    }

    /// A snapshot of one car.
    pub fn vehicle(&self, vin: &str) -> Option<MockVehicle> {
        lock(&self.world).car(vin).map(|v| v.clone())
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut MockVehicle)) {
        if let Some(v) = lock(&self.world).car(vin) {
            f(v);
        }
    }

    /// Lock and unlock commands received so far, REST or signed (whatever their
    /// outcome; signed handshakes are not commands).
    pub fn commands_seen(&self) -> usize {
        self.journal.count("POST", "/command/door_lock")
            + self.journal.count("POST", "/command/door_unlock")
            + lock(&self.world).signed_commands
    }

    /// The app's public key as registered with Tesla (what `fleet_status` reports as
    /// paired when a car's keychain holds it).
    pub fn register_app_key(&self, public_key: &[u8]) {
        lock(&self.world).app_key = Some(hex::encode(public_key));
    }

    /// The owner pairs `public_key` with the car (its VCSEC keychain).
    pub fn pair(&self, vin: &str, public_key: &[u8]) {
        let key = hex::encode(public_key);
        self.update(vin, |v| {
            if !v.keys.contains(&key) {
                v.keys.push(key);
            }
        });
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<String, TeslaError> {
        let token = bearer(headers)
            .ok_or_else(|| tesla_error(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
        let account = self.tokens.check(token).map_err(|e| match e {
            AccessDenied::Expired => tesla_error(StatusCode::UNAUTHORIZED, "token expired (401)"),
            AccessDenied::Unknown => tesla_error(StatusCode::UNAUTHORIZED, "invalid bearer token"),
        })?;
        // An account lives in one region: elsewhere Tesla answers 421 with its base URL.
        if let Some(home) = lock(&self.homes).get(&account) {
            let here = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !home.ends_with(&format!("//{here}")) {
                return Err(tesla_error(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "user out of region, use base URL: {home}, see https://developer.tesla.com/docs/fleet-api#endpoints-and-regional-requirements"
                    ),
                ));
            }
        }
        Ok(account)
    }

    /// Puts `account` in the region served at `base_url` (one of this mock's servers):
    /// requests for it to any other server answer 421 naming `base_url`.
    pub fn set_region(&self, account: &str, base_url: &str) {
        lock(&self.homes).insert(
            account.to_string(),
            base_url.trim_end_matches('/').to_string(),
        );
    }

    /// Runs `f` on an owned car that is awake; 404 / 408 otherwise.
    fn with_awake_car<T>(
        &self,
        headers: &HeaderMap,
        vin: &str,
        f: impl FnOnce(&mut MockVehicle) -> T,
    ) -> Result<T, TeslaError> {
        let account = self.authorize(headers)?;
        let mut w = lock(&self.world);
        let v = w
            .car(vin)
            .filter(|v| v.account == account)
            .ok_or_else(|| tesla_error(StatusCode::NOT_FOUND, "not_found"))?;
        if v.state != Power::Online {
            return Err(tesla_error(
                StatusCode::REQUEST_TIMEOUT,
                "vehicle unavailable: vehicle is offline or asleep",
            ));
        }
        Ok(f(v))
    }
}

/// A Fleet API error answer: `{"response": null, "error": ..., "error_description": ""}`.
#[derive(Debug)]
struct TeslaError {
    status: StatusCode,
    error: std::borrow::Cow<'static, str>,
}

fn tesla_error(status: StatusCode, error: impl Into<std::borrow::Cow<'static, str>>) -> TeslaError {
    TeslaError {
        status,
        error: error.into(),
    }
}

impl IntoResponse for TeslaError {
    fn into_response(self) -> Response {
        let body = json!({"response": null, "error": self.error, "error_description": ""});
        (self.status, Json(body)).into_response()
    }
}

fn listed(v: &MockVehicle) -> Value {
    json!({
        "id": v.id, "vehicle_id": v.id + 1000, "user_id": 800001, "vin": v.vin, "display_name": v.display_name,
        "state": v.state, "in_service": false, "id_s": v.id.to_string(),
        "access_type": "OWNER", "api_version": 71, "option_codes": null, "color": null,
        "granular_access": {"hide_private": false}, "tokens": null, "calendar_enabled": true,
        "backseat_token": null, "backseat_token_updated_at": null,
    })
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}
