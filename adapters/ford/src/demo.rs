//! How this OEM's mock joins keyway's demo, its tests and `keyway mock ford`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section};

use crate::mock::{FordMock, FordMockConfig};

keyway_adapter::mock_oem!(FordMock);

/// The Ford mock as keyway's demo and `keyway mock ford` build it.
pub static MOCK: Mock = Mock::new("ford", "Ford", build);

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(FordMock::new(FordMockConfig {
        stage: s.stage,
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
    })))
}
