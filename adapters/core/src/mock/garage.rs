//! A garage of simple mock cars for OEM mocks: the state most OEMs expose (lock,
//! position, sleep, a "refusing" flag), kept per VIN and owned by a login; an OAuth
//! server configured from the adapter's own profile; the `/__mock/state` document; and
//! [`GarageMock`], which gives a mock the conformance suite's [`MockControl`] for free.
//! An OEM with richer state (Tesla's power states and wake-up) keeps its own model.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Faults, Journal, OAuthServer, OAuthServerConfig, Rejection, TokenBook, lock};
use crate::OAuthProfile;
use crate::conformance::MockControl;

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
}

/// The cars of one mock, by VIN (cheap to clone; clones share the cars).
#[derive(Clone, Debug, Default)]
pub struct Garage(Arc<Mutex<BTreeMap<String, Car>>>);

impl Garage {
    /// A garage holding `cars`.
    pub fn new(cars: Vec<Car>) -> Self {
        Self(Arc::new(Mutex::new(
            cars.into_iter().map(|c| (c.vin.clone(), c)).collect(),
        )))
    }

    /// A snapshot of one car.
    pub fn car(&self, vin: &str) -> Option<Car> {
        lock(&self.0).get(vin).cloned()
    }

    /// Changes one car.
    pub fn update(&self, vin: &str, f: impl FnOnce(&mut Car)) {
        if let Some(c) = lock(&self.0).get_mut(vin) {
            f(c);
        }
    }

    /// Runs `f` on `vin` if `account` owns it.
    pub fn with_owned<T>(
        &self,
        account: &str,
        vin: &str,
        f: impl FnOnce(&mut Car) -> T,
    ) -> Option<T> {
        lock(&self.0)
            .get_mut(vin)
            .filter(|c| c.account == account)
            .map(f)
    }

    /// The cars `account` owns.
    pub fn owned_by(&self, account: &str) -> Vec<Car> {
        lock(&self.0)
            .values()
            .filter(|c| c.account == account)
            .cloned()
            .collect()
    }

    /// Every car.
    pub fn all(&self) -> Vec<Car> {
        lock(&self.0).values().cloned().collect()
    }
}

/// An OAuth server (and its token book) configured from the adapter's own profile:
/// client authentication, scopes, rotation and token exchange as the adapter declares.
pub fn oauth_server(
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
        },
        tokens.clone(),
    );
    (server, tokens)
}

/// The `/__mock/state` document: cars, refresh counters, OEM requests seen.
pub fn state_document(garage: &Garage, tokens: &TokenBook, journal: &Journal) -> Value {
    json!({
        "vehicles": garage.all(),
        "refreshes_served": tokens.refreshes_served(),
        "refresh_replays_seen": tokens.replays_seen(),
        "requests_seen": journal.oem_requests(),
    })
}

/// What a garage-based mock provides; [`MockControl`] follows from it.
pub trait GarageMock: Send + Sync {
    /// The cars.
    fn garage(&self) -> &Garage;
    /// The token book.
    fn tokens(&self) -> &TokenBook;
    /// The fault rules.
    fn faults(&self) -> &Faults;
    /// Makes the next request answer in this OEM's rate-limit style; the announced wait.
    fn limit_next(&self) -> Option<Duration>;
    /// Applies whatever is due (async command progress) before a state is read.
    fn settle(&self) {}
}

impl<T: GarageMock> MockControl for T {
    fn vehicle_ids(&self) -> Vec<String> {
        self.garage()
            .owned_by("owner")
            .into_iter()
            .map(|c| c.vin)
            .collect()
    }

    fn position(&self, oem_id: &str) -> (f64, f64) {
        let c = self.garage().car(oem_id).expect("known car");
        (c.latitude, c.longitude)
    }

    fn locked(&self, oem_id: &str) -> bool {
        self.settle();
        self.garage().car(oem_id).expect("known car").locked
    }

    fn set_locked(&self, oem_id: &str, locked: bool) {
        self.settle();
        self.garage().update(oem_id, |c| c.locked = locked);
    }

    fn set_asleep(&self, oem_id: &str) {
        self.garage().update(oem_id, |c| c.asleep = true);
    }

    fn set_awake(&self, oem_id: &str) {
        self.garage().update(oem_id, |c| c.asleep = false);
    }

    fn set_refusing(&self, oem_id: &str, refusing: bool) {
        self.garage().update(oem_id, |c| c.refusing = refusing);
    }

    fn access_token(&self) -> String {
        GarageMock::tokens(self).issue("owner").access_token
    }

    fn expire_access_tokens(&self) {
        GarageMock::tokens(self).expire_access_tokens();
    }

    fn faults(&self) -> &Faults {
        GarageMock::faults(self)
    }

    fn limit_next(&self) -> Option<Duration> {
        GarageMock::limit_next(self)
    }
}
