//! keyway's Volkswagen Group adapter: Volkswagen cars through the EU backend of the
//! Volkswagen app (WeConnect; CARIAD's BFF), and a stateful mock of it.
//!
//! - [`adapter`]: translation: the vehicle list with each car's capabilities, the
//!   access status (lock, doors) and parking position, lock and unlock with the owner's
//!   S-PIN followed in the access job's requests, and the backend's errors.
//! - [`login`]: the app's own login (BFF authorize, the identity server's redirect to
//!   `weconnect://authenticated`, the BFF's token trade) and its refresh.
//! - [`mock`]: a fake of those endpoints: the login with auto-consent, S-PINs with a
//!   lock-out after three wrong ones, cars without an active `access` capability,
//!   lagging status and requests that finish later.
//!
//! - [`audi`]: Audi on the same BFF — its own login (RFC 8628's device grant) and
//!   vehicle list (myAudi's GraphQL), this crate's translation for the rest; the
//!   registry holds it as its own OEM (`keyway_vw::audi::OEM`, `…::MOCK`).
//!
//! Škoda and SEAT/CUPRA run their own backends (MySkoda, My SEAT/CUPRA) with other
//! logins and paths: not this adapter.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
pub mod audi;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
pub mod login;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::VwAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{VwMock, VwMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(VwAdapter::new(b.base)),
    signing: None,
    versions: &[],
};
