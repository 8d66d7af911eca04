//! How this OEM's mock joins keyway's demo, its tests and `keyway mock bmw`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section};

use crate::mock::{BmwMock, BmwMockConfig};

keyway_adapter::mock_oem!(BmwMock);

/// The BMW mock as keyway's demo and `keyway mock bmw` build it.
pub static MOCK: Mock = Mock::new("bmw", "BMW", build);

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(BmwMock::new(BmwMockConfig {
        stage: s.stage,
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
        state_without_location: Vec::new(),
    })))
}
