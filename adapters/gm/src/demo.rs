//! How this OEM's mock joins keyway's demo, its tests and `keyway mock gm`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section};

use crate::mock::{GmMock, GmMockConfig};

keyway_adapter::mock_oem!(GmMock);

/// The GM mock as keyway's demo and `keyway mock gm` build it.
pub static MOCK: Mock = Mock::new("gm", "GM", build);

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(GmMock::new(GmMockConfig {
        stage: s.stage,
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
    })))
}
