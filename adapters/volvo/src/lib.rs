//! keyway's Volvo adapter (Connected Vehicle API v2 and Location API) and a stateful
//! mock of it.
//!
//! - [`adapter`]: translation: vehicles and their details, `doors` (`centralLock`),
//!   GeoJSON location (`[lon, lat]`, heading as a string), synchronous lock/unlock
//!   answering an `invokeStatus`, the `vcc-api-key` header on every call.
//! - [`mock`]: a fake of those endpoints with Volvo's OAuth profile (HTTP Basic client
//!   auth), error bodies, sleeping cars (`VEHICLE_IN_SLEEP`) and 429s.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::VolvoAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{VolvoMock, VolvoMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(VolvoAdapter::new(b.base, b.api_key.clone())),
    signing: None,
    versions: &[],
};
