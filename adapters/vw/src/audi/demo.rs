//! How this OEM's mock joins keyway's demo, its tests and `keyway mock audi`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file).
//! The demo links it with the device grant: the owner's page approves at once.

use std::sync::Arc;
use std::time::Duration;

use crate::{VwMock, VwMockConfig};
use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section, Showcase};

use super::mock::AudiMock;

keyway_adapter::mock_oem!(AudiMock);

/// The S-PIN the demo owner set in the myAudi app (the demo gives it with the link).
pub const OWNER_SPIN: &str = "8642";

/// The Audi mock as keyway's demo and `keyway mock audi` build it.
pub static MOCK: Mock = Mock {
    owner_pin: Some(OWNER_SPIN),
    showcase: &[Showcase {
        vin: None,
        line: "  curl -s -X POST {base}/v1/vehicles/{id}/unlock {auth} -H 'Prefer: wait=60'   # the {model}, linked with the device login (RFC 8628): the S-PIN {pin} goes with it",
    }],
    ..Mock::new("audi", "Audi", build)
};

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    let login = f.login(s);
    let client_id = login.client_id.clone();
    let bff = VwMock::new(VwMockConfig {
        stage: s.stage,
        login,
        cars: f.garage(s.extra_cars)?,
        incapable: Vec::new(),
        spins: [(f.account.clone(), OWNER_SPIN.to_string())].into(),
    });
    // The demo polls at once: a short interval keeps its link quick.
    Ok(Arc::new(AudiMock::new(
        bff,
        &client_id,
        Duration::from_secs(1),
    )))
}
