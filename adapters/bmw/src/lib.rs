//! keyway's BMW adapter (the MyBMW API) and a stateful mock of it.
//!
//! - [`adapter`]: translation between the unified vocabulary and MyBMW: vehicles, the
//!   `vehicles/state` read (location and `combinedSecurityState`), remote commands that
//!   answer an `eventId`, and `eventStatus` polling.
//! - [`mock`]: a fake MyBMW API with commands that advance PENDING → DELIVERED →
//!   EXECUTED over time, BMW's OAuth profile (HTTP Basic client auth, rotating refresh
//!   tokens) and BMW's limit answers (429 "Try again in N seconds", 403 quota text).
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::BmwAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{BmwMock, BmwMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(BmwAdapter::new(b.base)),
    signing: None,
    versions: &[],
};
