//! A garage of simple mock cars for OEM mocks: the state most OEMs expose (lock,
//! position, sleep, a "refusing" flag), kept per VIN and owned by a login; an OAuth
//! server configured from the adapter's own profile, together in [`Parts`] with the
//! journal and faults; and [`GarageMock`], which gives a mock the conformance suite's
//! [`MockControl`] for free.
//! An OEM with richer state (Tesla's power states and wake-up) keeps its own model.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Faults, Journal, OAuthServer, OAuthServerConfig, Rejection, TokenBook, instrument, lock,
};
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
            api.merge(self.oauth.routes(authorize_path, token_path)),
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
        })
    }
}

/// What a garage-based mock provides; [`MockControl`] follows from it.
pub trait GarageMock: Send + Sync {
    /// Its parts.
    fn parts(&self) -> &Parts;
    /// Makes the next request answer in this OEM's rate-limit style; the announced wait.
    fn limit_next(&self) -> Option<Duration>;
    /// Applies whatever is due (async command progress) before a state is read.
    fn settle(&self) {}
}

impl<T: GarageMock> MockControl for T {
    fn vehicle_ids(&self) -> Vec<String> {
        self.parts()
            .garage
            .owned_by("owner")
            .into_iter()
            .map(|c| c.vin)
            .collect()
    }

    fn position(&self, oem_id: &str) -> (f64, f64) {
        let c = self.parts().garage.car(oem_id).expect("known car");
        (c.latitude, c.longitude)
    }

    fn locked(&self, oem_id: &str) -> bool {
        self.settle();
        self.parts().garage.car(oem_id).expect("known car").locked
    }

    fn set_locked(&self, oem_id: &str, locked: bool) {
        self.settle();
        self.parts().garage.update(oem_id, |c| c.locked = locked);
    }

    fn set_asleep(&self, oem_id: &str) {
        self.parts().garage.update(oem_id, |c| c.asleep = true);
    }

    fn set_awake(&self, oem_id: &str) {
        self.parts().garage.update(oem_id, |c| c.asleep = false);
    }

    fn set_refusing(&self, oem_id: &str, refusing: bool) {
        self.parts()
            .garage
            .update(oem_id, |c| c.refusing = refusing);
    }

    fn access_token(&self) -> String {
        self.parts().tokens.issue("owner").access_token
    }

    fn expire_access_tokens(&self) {
        self.parts().tokens.expire_access_tokens();
    }

    fn faults(&self) -> &Faults {
        &self.parts().faults
    }

    fn limit_next(&self) -> Option<Duration> {
        GarageMock::limit_next(self)
    }
}
