//! How this OEM's mock joins keyway's demo, its tests and `keyway mock volvo`: the
//! [`MOCK`] keyway's table of OEMs lists (built from the OEM's part of a fleet file).

use std::sync::Arc;

use keyway_adapter::mock::{Mock, MockOem, MockSettings, Section};

use crate::mock::{VolvoMock, VolvoMockConfig};

keyway_adapter::mock_oem!(VolvoMock);

/// The demo's application key (`vcc-api-key`).
pub const API_KEY: &str = "vcc-demo-key";

/// The Volvo mock as keyway's demo and `keyway mock volvo` build it.
pub static MOCK: Mock = Mock {
    api_key: Some(API_KEY),
    ..Mock::new("volvo", "Volvo", build)
};

fn build(f: &Section, s: &MockSettings) -> Result<Arc<dyn MockOem>, String> {
    Ok(Arc::new(VolvoMock::new(VolvoMockConfig {
        api_key: API_KEY.into(),
        login: f.login(s),
        cars: f.garage(s.extra_cars)?,
    })))
}
