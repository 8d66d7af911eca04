//! A garage of simple mock cars for OEM mocks: the state most OEMs expose (lock,
//! position, sleep, a "refusing" flag), kept per VIN and owned by a login, each car
//! living in time ([`Timeline`]: what it executed when, and its OEM's lagging view); an OAuth
//! server configured from the adapter's own profile, together in [`Parts`] with the
//! journal and faults; and [`GarageMock`], which gives a mock the conformance suite's
//! [`MockControl`] for free.
//! An OEM with richer state (Tesla's power states and wake-up) keeps its own model.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use time::OffsetDateTime;
use tokio::time::Instant;

use super::timeline::{CarTiming, Delivery, DeliveryFault, Execution, History, Timeline, wall};
use super::{
    Faults, Journal, OAuthServer, OAuthServerConfig, Rejection, TokenBook, instrument, lock,
};
use crate::OAuthProfile;

/// One mock car.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Car {
    /// VIN.
    pub vin: String,
    /// Model name.
    pub model: String,
    /// Model year.
    pub year: u16,
    /// The login that owns it.
    pub account: String,
    /// Door lock.
    pub locked: bool,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Heading in degrees.
    #[serde(default)]
    pub heading: f64,
    /// Sleeping (what that means is the OEM's: queued commands, an error, …).
    #[serde(default)]
    pub asleep: bool,
    /// Refuses remote commands.
    #[serde(default)]
    pub refusing: bool,
    /// Which openings stand open (default: all closed).
    #[serde(default)]
    pub open: Openings,
    /// How its OEM behaves in time (default: instant).
    #[serde(default)]
    pub timing: CarTiming,
}

impl Car {
    /// A car of the login `owner` parked at (`latitude`, `longitude`), heading north:
    /// locked, closed, awake, taking commands, its OEM instant (what a test starts
    /// from, changing what it is about).
    pub fn parked(vin: &str, model: &str, year: u16, latitude: f64, longitude: f64) -> Self {
        Self {
            vin: vin.into(),
            model: model.into(),
            year,
            account: "owner".into(),
            locked: true,
            latitude,
            longitude,
            heading: 0.0,
            asleep: false,
            refusing: false,
            open: Openings::default(),
            timing: CarTiming::default(),
        }
    }
}

/// Which openings of a car stand open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Openings {
    /// The driver's door of a left-hand-drive car.
    pub front_left: bool,
    /// Front right.
    pub front_right: bool,
    /// Rear left.
    pub rear_left: bool,
    /// Rear right.
    pub rear_right: bool,
    /// Trunk, tailgate.
    pub trunk: bool,
    /// Frunk, hood.
    pub frunk: bool,
}

/// A change of some openings: each `Some` is set, each `None` stays.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpeningsChange {
    /// Front left.
    pub front_left: Option<bool>,
    /// Front right.
    pub front_right: Option<bool>,
    /// Rear left.
    pub rear_left: Option<bool>,
    /// Rear right.
    pub rear_right: Option<bool>,
    /// Trunk.
    pub trunk: Option<bool>,
    /// Frunk.
    pub frunk: Option<bool>,
}

impl OpeningsChange {
    /// Sets the openings it names.
    pub fn apply(&self, o: &mut Openings) {
        for (to, from) in [
            (&mut o.front_left, self.front_left),
            (&mut o.front_right, self.front_right),
            (&mut o.rear_left, self.rear_left),
            (&mut o.rear_right, self.rear_right),
            (&mut o.trunk, self.trunk),
            (&mut o.frunk, self.frunk),
        ] {
            if let Some(v) = from {
                *to = v;
            }
        }
    }
}

/// One car and its life in time.
#[derive(Debug)]
struct Slot {
    car: Car,
    life: Timeline,
    /// The openings as the car lived them.
    opened: History<Openings>,
}

impl Slot {
    /// The openings as the OEM's cloud sees them now: lagging the car like its lock.
    fn seen_open(&self) -> Openings {
        let lag = Duration::from_millis(self.car.timing.state_lag_ms);
        self.opened.seen(lag).0
    }
}

#[derive(Debug, Default)]
struct Cars {
    by_vin: BTreeMap<String, Slot>,
    executions: Vec<Execution>,
    next_delivery: u64,
}

impl Cars {
    /// Applies every command due by now, in every car.
    fn settle(&mut self) {
        for (vin, slot) in self.by_vin.iter_mut() {
            for (delivery, lock_to, at) in slot.life.settle(slot.car.asleep) {
                self.executions.push(Execution {
                    vin: vin.clone(),
                    command: if lock_to { "lock" } else { "unlock" }.into(),
                    delivery,
                    at: wall(at),
                });
            }
            slot.car.locked = slot.life.current();
        }
    }

    /// Runs `f` on one car and records what it changed in the car's timeline.
    fn change<T>(&mut self, vin: &str, f: impl FnOnce(&mut Car) -> T) -> Option<T> {
        self.settle();
        let slot = self.by_vin.get_mut(vin)?;
        let before = slot.car.clone();
        let out = f(&mut slot.car);
        let now = Instant::now();
        if slot.car.timing != before.timing {
            slot.life.set_timing(slot.car.timing);
        }
        if slot.car.locked != before.locked {
            slot.life.set(slot.car.locked, now);
        }
        slot.opened.set(slot.car.open, now);
        if before.asleep && !slot.car.asleep {
            slot.life.woke(now);
        }
        self.settle();
        Some(out)
    }
}

/// The cars of one mock, by VIN (cheap to clone; clones share the cars). Every read
/// first applies the commands whose time has come.
#[derive(Clone, Debug, Default)]
pub struct Garage(Arc<Mutex<Cars>>);

impl Garage {
    /// A garage holding `cars`.
    pub fn new(cars: Vec<Car>) -> Self {
        let by_vin = cars
            .into_iter()
            .map(|c| {
                let life = Timeline::new(c.locked, c.timing);
                let opened = History::new(c.open);
                (
                    c.vin.clone(),
                    Slot {
                        car: c,
                        life,
                        opened,
                    },
                )
            })
            .collect();
        Self(Arc::new(Mutex::new(Cars {
            by_vin,
            ..Cars::default()
        })))
    }

    /// A snapshot of one car (as it is, not as its OEM sees it: [`Garage::view`]).
    pub fn car(&self, vin: &str) -> Option<Car> {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.by_vin.get(vin).map(|s| s.car.clone())
    }

    /// One car as its OEM's cloud sees it now: the lock and the openings lag the car
    /// by its `state_lag_ms`; with the time the car reported them.
    pub fn view(&self, vin: &str) -> Option<(Car, OffsetDateTime)> {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.by_vin.get(vin).map(|s| {
            let (locked, at) = s.life.view();
            (
                Car {
                    locked,
                    open: s.seen_open(),
                    ..s.car.clone()
                },
                at,
            )
        })
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut Car)) {
        lock(&self.0).change(vin, f);
    }

    /// Runs `f` on `vin` if `account` owns it.
    pub fn with_owned<T>(
        &self,
        account: &str,
        vin: &str,
        f: impl FnOnce(&mut Car) -> T,
    ) -> Option<T> {
        let mut cars = lock(&self.0);
        if cars.by_vin.get(vin)?.car.account != account {
            return None;
        }
        cars.change(vin, f)
    }

    /// The OEM hands a lock (`lock_to`) or unlock to the car now; the car executes it
    /// `after` from now, or later as its timing and `fault` say (queued while it sleeps,
    /// late, twice). Returns the delivery id for [`Garage::delivery`].
    pub fn deliver(&self, vin: &str, lock_to: bool, after: Duration, fault: DeliveryFault) -> u64 {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.next_delivery += 1;
        let id = cars.next_delivery;
        if let Some(slot) = cars.by_vin.get_mut(vin) {
            slot.life
                .deliver(id, lock_to, after, slot.car.asleep, fault);
        }
        cars.settle();
        id
    }

    /// An OEM backend that wakes a car itself hands it a lock (`lock_to`) or unlock, as
    /// `car` stood when the request came: a sleeping car is woken (the command takes
    /// three times `stage`) unless its timing queues commands for it; a car that
    /// refuses gets nothing. The delivery id, if one was made.
    pub fn deliver_waking(
        &self,
        car: &Car,
        lock_to: bool,
        stage: Duration,
        fault: DeliveryFault,
    ) -> Option<u64> {
        let stage = stage * if car.asleep { 3 } else { 1 };
        if car.asleep && car.timing.queue_ms == 0 {
            self.update(&car.vin, |c| c.asleep = false);
        }
        (!car.refusing).then(|| self.deliver(&car.vin, lock_to, stage, fault))
    }

    /// Where a delivered command stands.
    pub fn delivery(&self, vin: &str, id: u64) -> Option<Delivery> {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.by_vin.get(vin)?.life.delivery(id)
    }

    /// Every command the cars executed, in order.
    pub fn executions(&self) -> Vec<Execution> {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.executions.clone()
    }

    /// The cars `account` owns.
    pub fn owned_by(&self, account: &str) -> Vec<Car> {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.by_vin
            .values()
            .filter(|s| s.car.account == account)
            .map(|s| s.car.clone())
            .collect()
    }

    /// Every car.
    pub fn all(&self) -> Vec<Car> {
        let mut cars = lock(&self.0);
        cars.settle();
        cars.by_vin.values().map(|s| s.car.clone()).collect()
    }
}

/// An OAuth server (and its token book) configured from the adapter's own profile:
/// client authentication, scopes, rotation and token exchange as the adapter declares.
fn oauth_server(
    profile: &OAuthProfile,
    client_id: String,
    client_secret: Option<String>,
    default_account: String,
    access_ttl: Duration,
    refresh_rejection: Rejection,
) -> (OAuthServer, TokenBook) {
    let tokens = TokenBook::new(access_ttl, profile.rotating_refresh);
    let server = OAuthServer::new(
        OAuthServerConfig {
            client_id,
            client_secret,
            client_auth: profile.client_auth,
            scopes: profile.scopes.iter().map(|s| s.to_string()).collect(),
            require_pkce: true,
            default_account,
            code_ttl: Duration::from_secs(600),
            token_exchange: profile.token_exchange,
            refresh_rejection,
            owner_param: profile.linking.owner_param(),
        },
        tokens.clone(),
    );
    (server, tokens)
}

/// What every garage-based mock is made of: its cars, its token book and OAuth server,
/// its request journal and its fault rules. A mock holds one and derefs to it.
#[derive(Clone, Debug)]
pub struct Parts {
    /// The cars.
    pub garage: Garage,
    /// Issued tokens.
    pub tokens: TokenBook,
    /// The authorization server.
    pub oauth: OAuthServer,
    /// Every request seen.
    pub journal: Journal,
    /// Injected faults.
    pub faults: Faults,
}

/// The OAuth side of a mock's settings.
#[derive(Clone, Debug)]
pub struct Login {
    /// The registered OAuth client.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Option<String>,
    /// The login at `/authorize` unless `login_hint` names another.
    pub default_account: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
}

impl Parts {
    /// Parts with `cars`, and an OAuth server from the adapter's `profile`.
    pub fn new(
        profile: &OAuthProfile,
        cars: Vec<Car>,
        login: Login,
        refresh_rejection: Rejection,
    ) -> Self {
        let (oauth, tokens) = oauth_server(
            profile,
            login.client_id,
            login.client_secret,
            login.default_account,
            login.access_ttl,
            refresh_rejection,
        );
        Self {
            garage: Garage::new(cars),
            tokens,
            oauth,
            journal: Journal::default(),
            faults: Faults::default(),
        }
    }

    /// Finishes a mock's router: the OAuth routes at the OEM's paths, then the journal
    /// and the fault layer around everything.
    pub fn finish(&self, api: Router, authorize_path: &str, token_path: &str) -> Router {
        instrument(
            api.merge(self.oauth.routes(authorize_path, token_path))
                .merge(timing_routes(&self.garage))
                .merge(world_routes(&self.garage)),
            &self.journal,
            &self.faults,
        )
    }

    /// The `/__mock/state` document: cars, refresh counters, OEM requests seen.
    pub fn state_document(&self) -> Value {
        json!({
            "vehicles": self.garage.all(),
            "refreshes_served": self.tokens.refreshes_served(),
            "refresh_replays_seen": self.tokens.replays_seen(),
            "requests_seen": self.journal.oem_requests(),
            "executions": self.garage.executions(),
        })
    }
}

/// `PUT /__mock/timing` (every car) and `PUT /__mock/timing/{vin}` (one car) with a
/// [`CarTiming`] document: how the OEM behaves in time from now on.
fn timing_routes(garage: &Garage) -> Router {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::put;
    async fn all(State(g): State<Garage>, Json(t): Json<CarTiming>) -> StatusCode {
        for c in g.all() {
            g.update(&c.vin, |c| c.timing = t);
        }
        StatusCode::NO_CONTENT
    }
    async fn one(
        State(g): State<Garage>,
        Path(vin): Path<String>,
        Json(t): Json<CarTiming>,
    ) -> StatusCode {
        if g.car(&vin).is_none() {
            return StatusCode::NOT_FOUND;
        }
        g.update(&vin, |c| c.timing = t);
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/__mock/timing", put(all))
        .route("/__mock/timing/{vin}", put(one))
        .with_state(garage.clone())
}

/// A change the world makes to one car, as the owner's app, a key fob or a drive
/// would: every field is optional. The OEM's cloud sees a lock change with the car's
/// usual state lag ([`CarTiming`]), as it sees the car's own commands.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldChange {
    /// Locked (`true`) or unlocked by someone other than keyway.
    pub locked: Option<bool>,
    /// A new latitude (the car was driven).
    pub latitude: Option<f64>,
    /// A new longitude.
    pub longitude: Option<f64>,
    /// A new heading in degrees.
    pub heading: Option<f64>,
    /// Fell asleep (`true`) or was woken (`false`) by its owner.
    pub asleep: Option<bool>,
    /// Refuses remote commands from now on (someone sits in it, …).
    pub refusing: Option<bool>,
    /// Openings opened (`true`) or closed (`false`): `front_left`, `front_right`,
    /// `rear_left`, `rear_right`, `trunk`, `frunk`.
    pub doors: Option<OpeningsChange>,
}

impl WorldChange {
    /// Applies the change to `car`.
    pub fn apply(&self, car: &mut Car) {
        if let Some(v) = self.locked {
            car.locked = v;
        }
        if let Some(v) = self.latitude {
            car.latitude = v;
        }
        if let Some(v) = self.longitude {
            car.longitude = v;
        }
        if let Some(v) = self.heading {
            car.heading = v;
        }
        if let Some(v) = self.asleep {
            car.asleep = v;
        }
        if let Some(v) = self.refusing {
            car.refusing = v;
        }
        if let Some(d) = &self.doors {
            d.apply(&mut car.open);
        }
    }

    /// Whether the change names a place on Earth (when it names one).
    fn sane(&self) -> bool {
        self.latitude.is_none_or(|l| (-90.0..=90.0).contains(&l))
            && self.longitude.is_none_or(|l| (-180.0..=180.0).contains(&l))
            && self.heading.is_none_or(|h| (0.0..360.0).contains(&h))
    }
}

/// `PATCH /__mock/vehicles/{vin}` with a [`WorldChange`]: a test acts as the world
/// around the car; answers the car as it now is.
fn world_routes(garage: &Garage) -> Router {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::patch;
    async fn steer(
        State(g): State<Garage>,
        Path(vin): Path<String>,
        Json(change): Json<WorldChange>,
    ) -> Result<Json<Car>, StatusCode> {
        if !change.sane() {
            return Err(StatusCode::BAD_REQUEST);
        }
        if g.car(&vin).is_none() {
            return Err(StatusCode::NOT_FOUND);
        }
        g.update(&vin, |c| change.apply(c));
        g.car(&vin).map(Json).ok_or(StatusCode::NOT_FOUND)
    }
    Router::new()
        .route("/__mock/vehicles/{vin}", patch(steer))
        .with_state(garage.clone())
}
