//! How this OEM's mock joins keyway's demo, its tests and `keyway mock smartcar`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file:
//! cars of several makes behind one upstream, one of which Smartcar cannot command).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section, Showcase};

use crate::mock::{SmartcarMock, SmartcarMockConfig};

keyway_adapter::mock_oem!(SmartcarMock);

/// The demo application's management token (what its webhooks are signed with).
pub const MANAGEMENT_TOKEN: &str = "sc-demo-management-token";
/// The demo car whose make Smartcar reads but cannot command.
pub const READ_ONLY: &str = "JTMAB3FV0ND000001";

/// The Smartcar mock as keyway's demo and `keyway mock smartcar` build it.
pub static MOCK: Mock = Mock {
    webhook_secret: Some(MANAGEMENT_TOKEN),
    read_only: &[READ_ONLY],
    showcase: &[
        Showcase {
            vin: None,
            line: "  curl -s -X POST {base}/v1/vehicles/{id}/unlock {auth} -H 'Prefer: wait=60'   # a {model} through Smartcar",
        },
        Showcase {
            vin: Some(READ_ONLY),
            line: "  curl -s -X POST {base}/v1/vehicles/{id}/unlock {auth} -H 'Prefer: wait=60'   # Smartcar's compatibility API says it cannot command this one: 422 not_capable, nothing sent",
        },
    ],
    ..Mock::new("smartcar", "Smartcar", build)
};

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(SmartcarMock::new(SmartcarMockConfig {
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
        incapable: vec![READ_ONLY.into()],
        management_token: MANAGEMENT_TOKEN.into(),
    })))
}
