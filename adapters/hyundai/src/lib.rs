//! keyway's Hyundai/Kia adapter (the EU "SPA" API, shared by both brands) and a
//! stateful mock of it.
//!
//! - [`adapter`]: translation: the `retCode`/`resCode` envelope (a rate limit is HTTP
//!   200 with `retCode "F"`, `resCode "5091"`), vehicles by `vehicleId`, parked
//!   location, the latest status's `doorLock`, door control answering a `msgId` whose
//!   outcome arrives as a notification record; CCS2 cars' door control with a control
//!   token made from the owner's PIN (`control`).
//! - [`mock`]: a fake of those endpoints with the `Stamp` header check and a token
//!   exchange after login.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
mod control;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::HyundaiAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{HyundaiMock, HyundaiMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(HyundaiAdapter::new(b.base, b.api_key.clone())),
    signing: None,
    versions: &[],
};
