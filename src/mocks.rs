//! The mock OEMs as products: [`MOCKS`] (from the registry's table of OEMs) lists each
//! OEM crate's description of its mock — its id and name, the keys keyway must carry,
//! what its demo owner set, and how it is built from its part of a fleet
//! (`fixtures/demo-fleet.json` or a file of the same shape) — and [`MockOem`] is what
//! every mock offers: the conformance controls, a server, an owner token. The demo,
//! the tests and `keyway mock <oem>` go through the table and name no OEM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use keyway_adapter::mock::MockServer;
pub use keyway_adapter::mock::product::{CLIENT_ID, CLIENT_SECRET};
pub use keyway_adapter::mock::{Mock, MockOem, MockSettings as Settings, Section};
use serde::Deserialize;

pub use crate::registry::MOCKS;

const FLEET: &str = include_str!("../fixtures/demo-fleet.json");

/// The table's entry for `oem`.
pub fn entry(oem: &str) -> Option<&'static Mock> {
    MOCKS.iter().copied().find(|m| m.oem == oem)
}

/// The OEM ids that have a mock.
pub fn oems() -> Vec<&'static str> {
    MOCKS.iter().map(|m| m.oem).collect()
}

/// A fleet: each OEM's owner account and cars, by OEM id (the demo's, or a file of the
/// same shape, where a missing OEM has no cars).
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Fleet(BTreeMap<String, Section>);

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

    /// The part of `oem` (its owner without cars when the fleet has none).
    pub fn section(&self, oem: &str) -> Section {
        self.0.get(oem).cloned().unwrap_or_default()
    }

    /// The mock `m` with this fleet's cars of its OEM, as `s` says.
    pub fn build(&self, m: &Mock, s: &Settings) -> Result<Arc<dyn MockOem>, String> {
        (m.build)(&self.section(m.oem), s).map_err(|e| format!("the {} cars: {e}", m.name))
    }
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
    let mock = f.build(entry, s)?;
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
