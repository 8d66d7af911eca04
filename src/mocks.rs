//! The six mock OEMs built from the demo fleet (`fixtures/demo-fleet.json`): the demo
//! starts all of them beside the gateway, `keyway mock <oem>` runs one alone — with its
//! OAuth server, fault API, request journal and an owner token at `POST /__mock/token`
//! — for another team's contract tests. One constructor per OEM serves both.

use std::net::SocketAddr;
use std::time::Duration;

use keyway_adapter::conformance::MockControl;
use keyway_adapter::mock::MockServer;
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
/// The demo Tesla whose owner has not paired keyway's key.
pub const UNPAIRED_TESLA: &str = "5YJYGDEE5MF000003";
/// The OEMs that have a mock.
pub const OEMS: &[&str] = &["tesla", "bmw", "volvo", "gm", "ford", "hyundai"];

/// The demo fleet: each OEM's owner account and cars.
#[derive(Deserialize)]
pub struct Fleet {
    tesla: Owned<MockVehicle>,
    bmw: Owned<keyway_bmw::mock::MockCar>,
    volvo: Owned<keyway_volvo::mock::MockCar>,
    gm: Owned<keyway_volvo::mock::MockCar>,
    ford: Owned<keyway_volvo::mock::MockCar>,
    hyundai: Owned<keyway_volvo::mock::MockCar>,
}

#[derive(Deserialize)]
struct Owned<C> {
    account: String,
    vehicles: Vec<C>,
}

impl Fleet {
    /// The embedded fleet.
    pub fn load() -> Result<Self, serde_json::Error> {
        serde_json::from_str(FLEET)
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
    /// Extra Tesla cars (benchmarks), paired too.
    pub extra_teslas: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(8 * 3600),
            wake_delay: Duration::from_secs(5),
            stage: Duration::from_secs(2),
            tesla_key: None,
            extra_teslas: 0,
        }
    }
}

/// The Tesla mock: the fleet's cars (paired with `tesla_key` but the unpaired one) and
/// the extra ones.
pub fn tesla(f: &Fleet, s: &Settings) -> TeslaMock {
    let pair = |v: MockVehicle| match &s.tesla_key {
        Some(k) if v.vin != UNPAIRED_TESLA => v.paired_with(k),
        _ => v,
    };
    let mut vehicles: Vec<MockVehicle> = f.tesla.vehicles.iter().cloned().map(pair).collect();
    for i in 0..s.extra_teslas {
        let mut v = MockVehicle::new(
            200_000 + i as u64,
            &format!("5YJ3E1EA0LF{:06}", i % 1_000_000),
            &format!("Fleet car {i}"),
            52.0 + (i % 1000) as f64 * 1e-3,
            13.0 + (i / 1000) as f64 * 1e-3,
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

/// The BMW mock.
pub fn bmw(f: &Fleet, s: &Settings) -> keyway_bmw::BmwMock {
    keyway_bmw::BmwMock::new(keyway_bmw::BmwMockConfig {
        stage: s.stage,
        access_ttl: s.token_ttl,
        cars: f.bmw.vehicles.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: f.bmw.account.clone(),
    })
}

/// The Volvo mock.
pub fn volvo(f: &Fleet, s: &Settings) -> keyway_volvo::VolvoMock {
    keyway_volvo::VolvoMock::new(keyway_volvo::VolvoMockConfig {
        api_key: VOLVO_KEY.into(),
        access_ttl: s.token_ttl,
        cars: f.volvo.vehicles.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: f.volvo.account.clone(),
    })
}

/// The GM mock.
pub fn gm(f: &Fleet, s: &Settings) -> keyway_gm::GmMock {
    keyway_gm::GmMock::new(keyway_gm::GmMockConfig {
        stage: s.stage,
        access_ttl: s.token_ttl,
        cars: f.gm.vehicles.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: f.gm.account.clone(),
    })
}

/// The Ford mock.
pub fn ford(f: &Fleet, s: &Settings) -> keyway_ford::FordMock {
    keyway_ford::FordMock::new(keyway_ford::FordMockConfig {
        stage: s.stage,
        access_ttl: s.token_ttl,
        cars: f.ford.vehicles.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: f.ford.account.clone(),
    })
}

/// The Hyundai/Kia mock (its demo car is on the newer CCS2 protocol).
pub fn hyundai(f: &Fleet, s: &Settings) -> keyway_hyundai::HyundaiMock {
    keyway_hyundai::HyundaiMock::new(keyway_hyundai::HyundaiMockConfig {
        stamp: HYUNDAI_STAMP.into(),
        stage: s.stage,
        access_ttl: s.token_ttl,
        cars: f.hyundai.vehicles.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        default_account: f.hyundai.account.clone(),
        ccs2: vec!["KMHKR81CFNU000001".into()],
    })
}

/// One mock running alone.
pub struct Alone {
    /// Where it listens.
    pub server: MockServer,
    /// An access token of its default owner.
    pub owner_token: String,
}

/// Starts the mock of `oem` alone on `listen` (demo fleet; a Tesla key, when given, is
/// paired like in the demo).
pub async fn alone(oem: &str, listen: SocketAddr, s: &Settings) -> Result<Alone, String> {
    let f = Fleet::load().map_err(|e| format!("fixtures/demo-fleet.json: {e}"))?;
    let io = |e: std::io::Error| format!("listening on {listen}: {e}");
    let (server, owner_token) = match oem {
        "tesla" => {
            let m = tesla(&f, s);
            (m.spawn(listen).await.map_err(io)?, m.access_token())
        }
        "bmw" => {
            let m = bmw(&f, s);
            (m.spawn(listen).await.map_err(io)?, m.access_token())
        }
        "volvo" => {
            let m = volvo(&f, s);
            (m.spawn(listen).await.map_err(io)?, m.access_token())
        }
        "gm" => {
            let m = gm(&f, s);
            (m.spawn(listen).await.map_err(io)?, m.access_token())
        }
        "ford" => {
            let m = ford(&f, s);
            (m.spawn(listen).await.map_err(io)?, m.access_token())
        }
        "hyundai" => {
            let m = hyundai(&f, s);
            (m.spawn(listen).await.map_err(io)?, m.access_token())
        }
        other => return Err(format!("no mock for {other:?}; mocks: {}", OEMS.join(", "))),
    };
    Ok(Alone {
        server,
        owner_token,
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
        for oem in OEMS {
            let m = alone(oem, "127.0.0.1:0".parse().unwrap(), &Settings::default())
                .await
                .unwrap();
            let url = m.server.url();
            let key = match *oem {
                "volvo" => VOLVO_KEY,
                "hyundai" => HYUNDAI_STAMP,
                _ => "",
            };
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
                };
                let cars = adapter.vehicles(&cx).await.unwrap();
                assert!(!cars.is_empty(), "{oem}");
            }
        }
    }
}
