//! keyway's Ford adapter (FordPass / Ford Connect) and a stateful mock of it.
//!
//! - [`adapter`]: translation: vehicles, telemetry (`metrics.position`, `heading`,
//!   `doorLockStatus`), commands answering `{"id"}` whose completion is read from
//!   telemetry `states.lockCommand.value.toState`.
//! - [`mock`]: a fake of those endpoints with Ford's OAuth profile (PKCE then a token
//!   exchange, rotating refresh tokens, 400 `errorCode 460` for a dead one).
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::FordAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{FordMock, FordMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(FordAdapter::new(b.base)),
    signing: None,
    versions: &[],
};
