//! How this OEM's mock joins keyway's demo, its tests and `keyway mock hyundai`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file;
//! its demo car is on the newer CCS2 protocol).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section, Showcase};

use crate::mock::{HyundaiMock, HyundaiMockConfig};

keyway_adapter::mock_oem!(HyundaiMock);

/// The demo's application stamp.
pub const STAMP: &str = "spa-demo-stamp";
/// The PIN the demo owner set in the app (its CCS2 car's door control needs it; the
/// demo gives it to keyway as `PUT /v1/accounts/{id}/pin` would).
pub const OWNER_PIN: &str = "2468";
/// The demo car on the CCS2 protocol.
pub const CCS2_CAR: &str = "KMHKR81CFNU000001";

/// The Hyundai/Kia mock as keyway's demo and `keyway mock hyundai` build it.
pub static MOCK: Mock = Mock {
    api_key: Some(STAMP),
    owner_pin: Some(OWNER_PIN),
    showcase: &[Showcase {
        vin: None,
        line: "  # the IONIQ 5 (CCS2) unlocks with its owner's PIN {pin}, set at start: PUT /v1/accounts/{account}/pin '{\"pin\": \"0000\"}' makes it 422 pin_rejected",
    }],
    ..Mock::new("hyundai", "Hyundai/Kia", build)
};

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(HyundaiMock::new(HyundaiMockConfig {
        stamp: STAMP.into(),
        stage: s.stage,
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
        ccs2: vec![CCS2_CAR.into()],
        pins: [(f.account.clone(), OWNER_PIN.to_string())].into(),
    })))
}
