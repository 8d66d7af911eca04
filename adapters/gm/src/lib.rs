//! keyway's GM (OnStar) adapter and a stateful mock of it.
//!
//! - [`adapter`]: translation: the account's vehicles, lock/unlock and location as
//!   OnStar commands that answer `inProgress` with a status URL to poll until `success`
//!   or `failure`; locations arrive as strings. GM has no lock-state read.
//! - [`mock`]: a fake of those endpoints with GM's OAuth profile (PKCE code exchange
//!   followed by an RFC 8693 token exchange) and its mostly empty error bodies.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::GmAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{GmMock, GmMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(GmAdapter::new(b.base)),
    signing: None,
    versions: &[],
};
