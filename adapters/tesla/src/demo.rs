//! How this OEM's mock joins keyway's demo, its tests and `keyway mock tesla`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file,
//! every car but one paired with keyway's application key).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section, Showcase, product::grid};

use crate::mock::{MockVehicle, TeslaMock, TeslaMockConfig};
use crate::vcp::AppKey;

keyway_adapter::mock_oem!(TeslaMock);

/// The demo Tesla whose owner has not paired keyway's key.
pub const UNPAIRED: &str = "5YJYGDEE5MF000003";

/// The Tesla mock as keyway's demo and `keyway mock tesla` build it.
pub static MOCK: Mock = Mock {
    showcase: &[Showcase {
        vin: Some(UNPAIRED),
        line: "  curl -s -X POST {base}/v1/vehicles/{id}/lock {auth} -H 'Prefer: wait=60'   # Tesla key not paired: 409 with the pairing link",
    }],
    ..Mock::new("tesla", "Tesla", build)
};

/// The fleet's cars (paired with the application key but the unpaired one) and the
/// extra ones.
fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    let key = s
        .app_key
        .as_deref()
        .map(|pem| AppKey::from_pem(pem).map(|k| k.public_bytes()))
        .transpose()
        .map_err(|_| "the application key does not read as a P-256 private key".to_string())?;
    let pair = |v: MockVehicle| match &key {
        Some(k) if v.vin != UNPAIRED => v.paired_with(k),
        _ => v,
    };
    let mut vehicles: Vec<MockVehicle> = f.cars::<MockVehicle>()?.into_iter().map(pair).collect();
    for i in 0..s.extra_cars {
        let (lat, lon) = grid(i);
        let mut v = MockVehicle::new(
            200_000 + i as u64,
            &format!("5YJ3E1EA0LF{:06}", i % 1_000_000),
            &format!("Fleet car {i}"),
            lat,
            lon,
        );
        v.account = f.account.clone();
        vehicles.push(pair(v));
    }
    let mock = TeslaMock::new(TeslaMockConfig {
        wake_delay: s.wake_delay,
        login: f.login(s),
        vehicles,
    });
    if let Some(k) = &key {
        mock.register_app_key(k);
    }
    Ok(Arc::new(mock))
}
