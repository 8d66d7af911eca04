//! A mock OEM as a product: what every mock offers ([`MockOem`]: the conformance
//! controls and a server), and how each OEM crate describes its mock to keyway
//! ([`Mock`]: its name, the keys keyway must be configured with, what its demo owner set
//! in the app, the demo lines worth showing, and how it is built from its part of a
//! fleet file ([`Section`]) and the demo's [`MockSettings`]). keyway's demo, its tests
//! and `keyway mock <oem>` go through this description and name no OEM themselves.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::garage::{Car, Login};
use super::{MockControl, MockServer};

/// The OAuth client every demo mock registers (the demo's gateway uses it).
pub const CLIENT_ID: &str = "keyway-demo";
/// Its secret (a development value).
pub const CLIENT_SECRET: &str = "demo-client-secret";

/// What every mock OEM offers: the conformance controls (cars, faults, tokens) and a
/// server on an address. `Any` lets a test reach its OEM's own controls.
pub trait MockOem: MockControl + Any + Send + Sync {
    /// Serves the mock on `addr` (port 0: a free one).
    fn spawn(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<MockServer>> + Send + '_>>;
}

/// One OEM's part of a fleet file: its owner's login and cars, each in the shape the
/// OEM's mock reads (most use the garage's [`Car`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The owner's login.
    pub account: String,
    /// The cars.
    pub vehicles: Vec<serde_json::Value>,
}

impl Default for Section {
    fn default() -> Self {
        Self {
            account: "demo-owner".into(),
            vehicles: Vec::new(),
        }
    }
}

impl Section {
    /// The cars, read as `C`.
    pub fn cars<C: serde::de::DeserializeOwned>(&self) -> Result<Vec<C>, String> {
        self.vehicles
            .iter()
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| e.to_string()))
            .collect()
    }

    /// The garage's cars and `extra` more like the first (VINs keep the first car's
    /// 11-character prefix; serials from 100000 do not meet a fleet's), spread over
    /// [`grid`].
    pub fn garage(&self, extra: usize) -> Result<Vec<Car>, String> {
        let mut cars: Vec<Car> = self.cars()?;
        if let Some(first) = cars.first().cloned() {
            let prefix: String = first.vin.chars().take(11).collect();
            for i in 0..extra {
                let (latitude, longitude) = grid(i);
                cars.push(Car {
                    vin: format!("{prefix}{:06}", 100_000 + i % 900_000),
                    account: self.account.clone(),
                    latitude,
                    longitude,
                    ..first.clone()
                });
            }
        }
        Ok(cars)
    }

    /// The demo's OAuth login as this section's owner.
    pub fn login(&self, s: &MockSettings) -> Login {
        Login {
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            default_account: self.account.clone(),
            access_ttl: s.token_ttl,
        }
    }
}

/// The position of the `i`th extra car: a grid of ~100 m steps north of Berlin.
pub fn grid(i: usize) -> (f64, f64) {
    (
        52.0 + (i % 1000) as f64 * 1e-3,
        13.0 + (i / 1000) as f64 * 1e-3,
    )
}

/// How the demo's mocks behave in time, and the application key their cars know.
#[derive(Clone, Debug)]
pub struct MockSettings {
    /// OEM access-token lifetime.
    pub token_ttl: Duration,
    /// How long a car takes to wake.
    pub wake_delay: Duration,
    /// How long an asynchronous OEM's command stays pending.
    pub stage: Duration,
    /// keyway's application key (private PEM), for an OEM whose commands are signed:
    /// its mock's cars are paired with it (all but the one the demo shows unpaired).
    pub app_key: Option<String>,
    /// Cars for the owner beyond the fleet's (benchmarks, `keyway mock --cars`), like
    /// the fleet's first car of that OEM, spread over [`grid`].
    pub extra_cars: usize,
}

impl Default for MockSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(8 * 3600),
            wake_delay: Duration::from_secs(5),
            stage: Duration::from_secs(2),
            app_key: None,
            extra_cars: 0,
        }
    }
}

/// A line of the demo's banner worth showing for this OEM: `curl` lines (or a comment)
/// about one of its demo cars, with `{base}`, `{auth}`, `{id}` (the car), `{model}`,
/// `{account}` (its account) and `{pin}` (the owner's PIN) filled in.
#[derive(Clone, Copy, Debug)]
pub struct Showcase {
    /// The car, by VIN; `None`: the first demo car of this OEM no other line names.
    pub vin: Option<&'static str>,
    /// The line.
    pub line: &'static str,
}

/// One OEM's mock as its crate describes it (`keyway_bmw::MOCK`, …, behind each crate's
/// `mock` feature).
#[derive(Debug)]
pub struct Mock {
    /// The OEM id (as in keyway's registry and API).
    pub oem: &'static str,
    /// The name people know it by.
    pub name: &'static str,
    /// The application key the mock wants beside OAuth (Volvo `vcc-api-key`,
    /// Hyundai/Kia `Stamp`), which keyway's `oems.<oem>.api_key` must carry.
    pub api_key: Option<&'static str>,
    /// The secret the mock signs its pushes with (Smartcar's management token), which
    /// keyway's `oems.<oem>.webhook_secret` must carry.
    pub webhook_secret: Option<&'static str>,
    /// The PIN the demo owner set in the OEM's app, which commands need (the demo gives
    /// it to keyway with the link).
    pub owner_pin: Option<&'static str>,
    /// Demo cars that cannot take remote commands (the OEM reads them only).
    pub read_only: &'static [&'static str],
    /// The demo's banner lines for this OEM.
    pub showcase: &'static [Showcase],
    /// Builds the mock from its part of a fleet.
    pub build: Build,
}

impl Mock {
    /// A mock with no keys, no PIN, no read-only cars and no banner lines of its own
    /// (`..Mock::new(…)` fills in what an OEM does not set).
    pub const fn new(oem: &'static str, name: &'static str, build: Build) -> Self {
        Self {
            oem,
            name,
            api_key: None,
            webhook_secret: None,
            owner_pin: None,
            read_only: &[],
            showcase: &[],
            build,
        }
    }
}

/// How a mock is built from its part of a fleet (an error names what did not read).
pub type Build = fn(&Section, &MockSettings) -> Result<Arc<dyn MockOem>, String>;

/// Implements [`MockOem`] for mock types with an inherent
/// `async fn spawn(&self, SocketAddr) -> io::Result<MockServer>`.
#[macro_export]
macro_rules! mock_oem {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::mock::product::MockOem for $t {
            fn spawn(
                &self,
                addr: ::std::net::SocketAddr,
            ) -> ::std::pin::Pin<
                Box<
                    dyn ::std::future::Future<
                            Output = ::std::io::Result<$crate::mock::MockServer>,
                        > + Send
                        + '_,
                >,
            > {
                Box::pin(<$t>::spawn(self, addr))
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_adds_cars_like_its_first_and_refuses_a_car_it_cannot_read() {
        let s: Section = serde_json::from_value(serde_json::json!({
            "account": "owner",
            "vehicles": [{"vin": "WBY00000000000001", "model": "iX", "year": 2024,
                "account": "owner", "locked": true, "latitude": 1.0, "longitude": 2.0}]
        }))
        .unwrap();
        let cars = s.garage(2).unwrap();
        assert_eq!(cars.len(), 3);
        assert_eq!(cars[1].vin, "WBY00000000100000");
        assert_eq!((cars[2].latitude, cars[2].model.as_str()), (52.001, "iX"));
        let bad: Section = serde_json::from_value(serde_json::json!({
            "account": "owner", "vehicles": [{"vin": 7}]
        }))
        .unwrap();
        assert!(bad.garage(0).is_err());
    }
}
