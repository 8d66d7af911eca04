//! How this OEM's mock joins keyway's demo, its tests and `keyway mock vw`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file;
//! one of its demo cars has no active access capability).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section, Showcase};

use crate::mock::{VwMock, VwMockConfig};

keyway_adapter::mock_oem!(VwMock);

/// The demo car whose access capability is not active (it cannot lock or unlock
/// remotely).
pub const READ_ONLY: &str = "WVWZZZCDZPW000002";
/// The S-PIN the demo owner set in the app (lock and unlock need it; the demo gives it
/// to keyway with the link).
pub const OWNER_SPIN: &str = "4711";

/// The Volkswagen mock as keyway's demo and `keyway mock vw` build it.
pub static MOCK: Mock = Mock {
    owner_pin: Some(OWNER_SPIN),
    read_only: &[READ_ONLY],
    showcase: &[
        Showcase {
            vin: None,
            line: "  curl -s -X POST {base}/v1/vehicles/{id}/unlock {auth} -H 'Prefer: wait=60'   # a Volkswagen {model}: the owner's S-PIN {pin} goes with it",
        },
        Showcase {
            vin: Some(READ_ONLY),
            line: "  curl -s -X POST {base}/v1/vehicles/{id}/lock {auth} -H 'Prefer: wait=60'   # its remote access is not active (see its capabilities): 422 not_capable",
        },
    ],
    ..Mock::new("vw", "Volkswagen", build)
};

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(VwMock::new(VwMockConfig {
        stage: s.stage,
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
        incapable: vec![READ_ONLY.into()],
        spins: [(f.account.clone(), OWNER_SPIN.to_string())].into(),
    })))
}
