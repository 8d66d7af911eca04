//! The mock OEMs as products: [`MOCKS`] lists each beside [`crate::registry::ADAPTERS`]
//! — its OEM id, the application key it wants and how it is built from a fleet
//! (`fixtures/demo-fleet.json` or a file of the same shape) — and [`MockOem`] is what
//! every mock offers: the conformance controls, a server, an owner token. The demo,
//! the tests and `keyway mock <oem>` iterate the table; adding an OEM's mock is one
//! line in it.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::mock::MockControl;
use keyway_adapter::mock::MockServer;
use keyway_adapter::mock::garage::Car;
use keyway_tesla::mock::MockVehicle;
use keyway_tesla::{TeslaMock, TeslaMockConfig};
use serde::Deserialize;

const FLEET: &str = include_str!("../fixtures/demo-fleet.json");

/// The OAuth client the mocks register (the demo's gateway uses it).
pub const CLIENT_ID: &str = "keyway-demo";
/// Its secret (a development value).
pub const CLIENT_SECRET: &str = "demo-client-secret";
/// The Volvo mock's application key (`vcc-api-key`).
pub const VOLVO_KEY: &str = "vcc-demo-key";
/// The Hyundai/Kia mock's application stamp.
pub const HYUNDAI_STAMP: &str = "spa-demo-stamp";
/// The Smartcar mock's application management token (what its webhooks are signed with).
pub const SMARTCAR_MANAGEMENT_TOKEN: &str = "sc-demo-management-token";
/// The demo car behind Smartcar whose make Smartcar reads but cannot command.
pub const SMARTCAR_READ_ONLY: &str = "JTMAB3FV0ND000001";
/// The demo Volkswagen whose access capability is not active (it cannot lock or unlock
/// remotely).
pub const VW_READ_ONLY: &str = "WVWZZZCDZPW000002";
/// The S-PIN the Volkswagen demo owner set in the app (lock and unlock need it; the demo
/// gives it to keyway with the link).
pub const VW_OWNER_SPIN: &str = "4711";
/// The demo Tesla whose owner has not paired keyway's key.
pub const UNPAIRED_TESLA: &str = "5YJYGDEE5MF000003";

/// What every mock OEM offers: the conformance controls (cars, faults, tokens) and a
/// server on an address. `Any` lets a test reach its OEM's own controls.
pub trait MockOem: MockControl + Any + Send + Sync {
    /// Serves the mock on `addr` (port 0: a free one).
    fn spawn(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<MockServer>> + Send + '_>>;
}

macro_rules! mock_oem {
    ($($t:ty),*) => {$(
        impl MockOem for $t {
            fn spawn(
                &self,
                addr: SocketAddr,
            ) -> Pin<Box<dyn Future<Output = std::io::Result<MockServer>> + Send + '_>> {
                Box::pin(<$t>::spawn(self, addr))
            }
        }
    )*};
}

mock_oem!(
    TeslaMock,
    keyway_bmw::BmwMock,
    keyway_volvo::VolvoMock,
    keyway_gm::GmMock,
    keyway_ford::FordMock,
    keyway_hyundai::HyundaiMock,
    keyway_smartcar::SmartcarMock,
    keyway_vw::VwMock
);

/// One OEM's mock in the table.
pub struct MockEntry {
    /// The OEM id (as in the registry and the API).
    pub oem: &'static str,
    /// The name people know it by.
    pub name: &'static str,
    /// The application key the mock wants beside OAuth (Volvo `vcc-api-key`,
    /// Hyundai/Kia `Stamp`), which keyway's `oems.<oem>.api_key` must carry.
    pub api_key: Option<&'static str>,
    /// The secret the mock signs its pushes with (Smartcar's management token), which
    /// keyway's `oems.<oem>.webhook_secret` must carry.
    pub webhook_secret: Option<&'static str>,
    /// Builds the mock from a fleet.
    pub build: fn(&Fleet, &Settings) -> Arc<dyn MockOem>,
}

/// Every mock OEM, in the registry's order.
pub static MOCKS: &[MockEntry] = &[
    MockEntry {
        oem: "tesla",
        name: "Tesla",
        api_key: None,
        webhook_secret: None,
        build: |f, s| Arc::new(tesla(f, s)),
    },
    MockEntry {
        oem: "bmw",
        name: "BMW",
        api_key: None,
        webhook_secret: None,
        build: |f, s| Arc::new(bmw(f, s)),
    },
    MockEntry {
        oem: "volvo",
        name: "Volvo",
        api_key: Some(VOLVO_KEY),
        webhook_secret: None,
        build: |f, s| Arc::new(volvo(f, s)),
    },
    MockEntry {
        oem: "gm",
        name: "GM",
        api_key: None,
        webhook_secret: None,
        build: |f, s| Arc::new(gm(f, s)),
    },
    MockEntry {
        oem: "ford",
        name: "Ford",
        api_key: None,
        webhook_secret: None,
        build: |f, s| Arc::new(ford(f, s)),
    },
    MockEntry {
        oem: "hyundai",
        name: "Hyundai/Kia",
        api_key: Some(HYUNDAI_STAMP),
        webhook_secret: None,
        build: |f, s| Arc::new(hyundai(f, s)),
    },
    MockEntry {
        oem: "smartcar",
        name: "Smartcar",
        api_key: None,
        webhook_secret: Some(SMARTCAR_MANAGEMENT_TOKEN),
        build: |f, s| Arc::new(smartcar(f, s)),
    },
    MockEntry {
        oem: "vw",
        name: "Volkswagen",
        api_key: None,
        webhook_secret: None,
        build: |f, s| Arc::new(vw(f, s)),
    },
];

/// The table's entry for `oem`.
pub fn entry(oem: &str) -> Option<&'static MockEntry> {
    MOCKS.iter().find(|m| m.oem == oem)
}

/// The OEM ids that have a mock.
pub fn oems() -> Vec<&'static str> {
    MOCKS.iter().map(|m| m.oem).collect()
}

/// A fleet: each OEM's owner account and cars (the demo's, or a file of the same
/// shape, where a missing OEM has no cars).
#[derive(Deserialize)]
pub struct Fleet {
    #[serde(default)]
    tesla: Owned<MockVehicle>,
    #[serde(default)]
    bmw: Owned<Car>,
    #[serde(default)]
    volvo: Owned<Car>,
    #[serde(default)]
    gm: Owned<Car>,
    #[serde(default)]
    ford: Owned<Car>,
    #[serde(default)]
    hyundai: Owned<Car>,
    #[serde(default)]
    smartcar: Owned<Car>,
    #[serde(default)]
    vw: Owned<Car>,
}

#[derive(Deserialize)]
struct Owned<C> {
    account: String,
    vehicles: Vec<C>,
}

impl<C> Default for Owned<C> {
    fn default() -> Self {
        Self {
            account: "demo-owner".into(),
            vehicles: Vec::new(),
        }
    }
}

impl Fleet {
    /// The embedded demo fleet.
    pub fn load() -> Result<Self, serde_json::Error> {
        serde_json::from_str(FLEET)
    }

    /// A fleet file in the demo fleet's shape.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How the mocks behave in time, and the Tesla key their cars know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// OEM access-token lifetime.
    pub token_ttl: Duration,
    /// How long a Tesla takes to wake.
    pub wake_delay: Duration,
    /// How long an asynchronous OEM's command stays pending.
    pub stage: Duration,
    /// keyway's Tesla public key, paired with every demo Tesla but the unpaired one.
    pub tesla_key: Option<Vec<u8>>,
    /// Cars for the owner beyond the fleet's (benchmarks, `keyway mock --cars`), like
    /// the fleet's first car of that OEM, spread over a grid of positions.
    pub extra_cars: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(8 * 3600),
            wake_delay: Duration::from_secs(5),
            stage: Duration::from_secs(2),
            tesla_key: None,
            extra_cars: 0,
        }
    }
}

/// The position of the `i`th extra car: a grid of ~100 m steps north of Berlin.
fn grid(i: usize) -> (f64, f64) {
    (
        52.0 + (i % 1000) as f64 * 1e-3,
        13.0 + (i / 1000) as f64 * 1e-3,
    )
}

/// The fleet's cars of one garage OEM and `extra` more like its first (VINs keep the
/// first car's 11-character prefix; serials from 100000 do not meet the fleet's).
fn garage(o: &Owned<Car>, extra: usize) -> Vec<Car> {
    let mut cars = o.vehicles.clone();
    if let Some(first) = o.vehicles.first() {
        let prefix: String = first.vin.chars().take(11).collect();
        for i in 0..extra {
            let (latitude, longitude) = grid(i);
            cars.push(Car {
                vin: format!("{prefix}{:06}", 100_000 + i % 900_000),
                account: o.account.clone(),
                latitude,
                longitude,
                ..first.clone()
            });
        }
    }
    cars
}

/// The Tesla mock: the fleet's cars (paired with `tesla_key` but the unpaired one) and
/// the extra ones.
pub fn tesla(f: &Fleet, s: &Settings) -> TeslaMock {
    let pair = |v: MockVehicle| match &s.tesla_key {
        Some(k) if v.vin != UNPAIRED_TESLA => v.paired_with(k),
        _ => v,
    };
    let mut vehicles: Vec<MockVehicle> = f.tesla.vehicles.iter().cloned().map(pair).collect();
    for i in 0..s.extra_cars {
        let (lat, lon) = grid(i);
        let mut v = MockVehicle::new(
            200_000 + i as u64,
            &format!("5YJ3E1EA0LF{:06}", i % 1_000_000),
            &format!("Fleet car {i}"),
            lat,
            lon,
        );
        v.account = f.tesla.account.clone();
        vehicles.push(pair(v));
    }
    let mock = TeslaMock::new(TeslaMockConfig {
        wake_delay: s.wake_delay,
        access_ttl: s.token_ttl,
        vehicles,
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: f.tesla.account.clone(),
    });
    if let Some(k) = &s.tesla_key {
        mock.register_app_key(k);
    }
    mock
}

/// The OAuth login every mock of the fleet shares, as `account`.
fn login(account: &str, s: &Settings) -> keyway_adapter::mock::garage::Login {
    keyway_adapter::mock::garage::Login {
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: account.to_string(),
        access_ttl: s.token_ttl,
    }
}

/// The BMW mock.
pub fn bmw(f: &Fleet, s: &Settings) -> keyway_bmw::BmwMock {
    keyway_bmw::BmwMock::new(keyway_bmw::BmwMockConfig {
        stage: s.stage,
        login: login(&f.bmw.account, s),
        cars: garage(&f.bmw, s.extra_cars),
        state_without_location: Vec::new(),
    })
}

/// The Volvo mock.
pub fn volvo(f: &Fleet, s: &Settings) -> keyway_volvo::VolvoMock {
    keyway_volvo::VolvoMock::new(keyway_volvo::VolvoMockConfig {
        api_key: VOLVO_KEY.into(),
        login: login(&f.volvo.account, s),
        cars: garage(&f.volvo, s.extra_cars),
    })
}

/// The GM mock.
pub fn gm(f: &Fleet, s: &Settings) -> keyway_gm::GmMock {
    keyway_gm::GmMock::new(keyway_gm::GmMockConfig {
        stage: s.stage,
        login: login(&f.gm.account, s),
        cars: garage(&f.gm, s.extra_cars),
    })
}

/// The Ford mock.
pub fn ford(f: &Fleet, s: &Settings) -> keyway_ford::FordMock {
    keyway_ford::FordMock::new(keyway_ford::FordMockConfig {
        stage: s.stage,
        login: login(&f.ford.account, s),
        cars: garage(&f.ford, s.extra_cars),
    })
}

/// The PIN the Hyundai/Kia demo owner set in the app (its CCS2 car's door control needs
/// it; the demo gives it to keyway as `PUT /v1/accounts/{id}/pin` would).
pub const HYUNDAI_OWNER_PIN: &str = "2468";

/// The Hyundai/Kia mock (its demo car is on the newer CCS2 protocol).
pub fn hyundai(f: &Fleet, s: &Settings) -> keyway_hyundai::HyundaiMock {
    keyway_hyundai::HyundaiMock::new(keyway_hyundai::HyundaiMockConfig {
        stamp: HYUNDAI_STAMP.into(),
        stage: s.stage,
        login: login(&f.hyundai.account, s),
        cars: garage(&f.hyundai, s.extra_cars),
        ccs2: vec!["KMHKR81CFNU000001".into()],
        pins: [(f.hyundai.account.clone(), HYUNDAI_OWNER_PIN.to_string())].into(),
    })
}

/// The Smartcar mock: cars of several makes behind one upstream, one of which Smartcar
/// cannot command.
pub fn smartcar(f: &Fleet, s: &Settings) -> keyway_smartcar::SmartcarMock {
    keyway_smartcar::SmartcarMock::new(keyway_smartcar::SmartcarMockConfig {
        login: login(&f.smartcar.account, s),
        cars: garage(&f.smartcar, s.extra_cars),
        incapable: vec![SMARTCAR_READ_ONLY.into()],
        management_token: SMARTCAR_MANAGEMENT_TOKEN.into(),
    })
}

/// The Volkswagen mock (one of its demo cars has no active access capability).
pub fn vw(f: &Fleet, s: &Settings) -> keyway_vw::VwMock {
    keyway_vw::VwMock::new(keyway_vw::VwMockConfig {
        stage: s.stage,
        login: login(&f.vw.account, s),
        cars: garage(&f.vw, s.extra_cars),
        incapable: vec![VW_READ_ONLY.into()],
        spins: [(f.vw.account.clone(), VW_OWNER_SPIN.to_string())].into(),
    })
}

/// One mock running alone.
pub struct Alone {
    /// The mock (its controls).
    pub mock: Arc<dyn MockOem>,
    /// Where it listens.
    pub server: MockServer,
    /// An access token of its default owner.
    pub owner_token: String,
    /// How many cars it has.
    pub cars: usize,
}

/// Starts the mock of `oem` alone on `listen`, with the cars of `fleet` (a file in the
/// demo fleet's shape; default the demo fleet) plus `s.extra_cars`.
pub async fn alone(
    oem: &str,
    listen: SocketAddr,
    fleet: Option<&Path>,
    s: &Settings,
) -> Result<Alone, String> {
    let entry =
        entry(oem).ok_or_else(|| format!("no mock for {oem:?}; mocks: {}", oems().join(", ")))?;
    let f = match fleet {
        Some(path) => Fleet::from_file(path)?,
        None => Fleet::load().map_err(|e| format!("fixtures/demo-fleet.json: {e}"))?,
    };
    let mock = (entry.build)(&f, s);
    let cars = mock.vehicle_ids().len();
    if cars == 0 {
        return Err(format!(
            "the fleet has no {} cars (key {oem:?})",
            entry.name
        ));
    }
    let server = mock
        .spawn(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    Ok(Alone {
        owner_token: mock.access_token(),
        cars,
        mock,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of the six runs alone, and its owner token (from the banner and from
    /// `POST /__mock/token`) lists the owner's cars through keyway's own adapter.
    #[tokio::test]
    async fn every_mock_runs_alone_and_its_owner_token_works() {
        let http = keyway_adapter::transport::loopback_http();
        for entry in MOCKS {
            let oem = entry.oem;
            let m = alone(
                oem,
                "127.0.0.1:0".parse().unwrap(),
                None,
                &Settings::default(),
            )
            .await
            .unwrap();
            let url = m.server.url();
            let key = entry.api_key.unwrap_or_default();
            let adapter = crate::registry::adapter_for(oem, &url, key).unwrap();
            let issued = http
                .send(
                    http::Request::post(format!("{url}/__mock/token"))
                        .body(bytes::Bytes::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            let over_http: serde_json::Value = serde_json::from_slice(issued.body()).unwrap();
            for token in [
                m.owner_token.clone(),
                over_http["access_token"].as_str().unwrap().to_string(),
            ] {
                let cx = keyway_adapter::Call {
                    http: http.clone(),
                    token: keyway_adapter::Secret::new(token),
                    command_id: None,
                    account: None,
                    pin: None,
                };
                let cars = adapter.vehicles(&cx).await.unwrap();
                assert!(!cars.is_empty(), "{oem}");
            }
        }
    }

    /// `--cars N` adds N cars to any mock, seen through keyway's adapter; `--fleet FILE`
    /// gives a mock its cars from a file, and an OEM the file has no cars for is refused.
    #[tokio::test]
    async fn extra_cars_and_a_fleet_file_shape_what_a_mock_serves() {
        let http = keyway_adapter::transport::loopback_http();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let s = Settings {
            extra_cars: 3,
            ..Settings::default()
        };
        for entry in MOCKS {
            let fleet_only = alone(entry.oem, listen, None, &Settings::default())
                .await
                .unwrap();
            let m = alone(entry.oem, listen, None, &s).await.unwrap();
            assert_eq!(m.cars, fleet_only.cars + 3, "{}", entry.oem);
            let adapter = crate::registry::adapter_for(
                entry.oem,
                &m.server.url(),
                entry.api_key.unwrap_or_default(),
            )
            .unwrap();
            let cx = keyway_adapter::Call {
                http: http.clone(),
                token: keyway_adapter::Secret::new(m.owner_token.clone()),
                command_id: None,
                account: None,
                pin: None,
            };
            let listed = adapter.vehicles(&cx).await.unwrap();
            assert_eq!(listed.len(), m.cars, "{}", entry.oem);
        }

        let dir = std::env::temp_dir().join(crate::ids::new("keyway-fleet"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fleet.json");
        std::fs::write(
            &file,
            r#"{"bmw": {"account": "team-owner", "vehicles": [
                {"vin": "WBY00000000000001", "model": "iX", "year": 2024,
                 "account": "team-owner", "locked": false,
                 "latitude": 1.5, "longitude": 2.5}]}}"#,
        )
        .unwrap();
        let m = alone("bmw", listen, Some(&file), &Settings::default())
            .await
            .unwrap();
        assert_eq!(m.cars, 1);
        assert_eq!(m.mock.vehicle_ids(), vec!["WBY00000000000001".to_string()]);
        let refused = alone("volvo", listen, Some(&file), &Settings::default()).await;
        assert!(refused.err().unwrap().contains("no Volvo cars"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
