//! How this OEM's mock joins keyway's demo, its tests and `keyway mock skoda`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file;
//! one of its demo cars has an expired `ACCESS` licence).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section, Showcase};

use crate::mock::{SkodaMock, SkodaMockConfig};

keyway_adapter::mock_oem!(SkodaMock);

/// The demo car whose `ACCESS` licence expired (it cannot lock or unlock remotely).
pub const READ_ONLY: &str = "TMBJJ7NX1PY000002";
/// The S-PIN the demo owner set in the app (lock and unlock need it; the demo gives it
/// to keyway with the link).
pub const OWNER_SPIN: &str = "2468";

/// The Škoda mock as keyway's demo and `keyway mock skoda` build it.
pub static MOCK: Mock = Mock {
    owner_pin: Some(OWNER_SPIN),
    read_only: &[READ_ONLY],
    showcase: &[
        Showcase {
            vin: None,
            line: "  curl -s -X POST {base}/v1/vehicles/{id}/unlock {auth} -H 'Prefer: wait=60'   # a Škoda {model}: S-PIN {pin} checked first; Škoda reports no outcome, so keyway confirms from the car's lock state read a state lag after the send (30 s; the demo's mocks: 3 s)",
        },
        Showcase {
            vin: Some(READ_ONLY),
            line: "  curl -s -X POST {base}/v1/vehicles/{id}/lock {auth} -H 'Prefer: wait=60'   # its remote-access licence expired (see its capabilities): 422 not_capable",
        },
    ],
    ..Mock::new("skoda", "Škoda", build)
};

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(SkodaMock::new(SkodaMockConfig {
        stage: s.stage,
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
        incapable: vec![READ_ONLY.into()],
        spins: [(f.account.clone(), OWNER_SPIN.to_string())].into(),
    })))
}
