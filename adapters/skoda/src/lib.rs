//! keyway's Škoda adapter: Škoda cars through the backend of the MySkoda app (EU,
//! `mysmob.api.connect.skoda-auto.cz`), and a stateful mock of it.
//!
//! - [`adapter`]: translation: the garage and each car's capabilities, the vehicle
//!   status (lock, doors), the parking position, the owner's S-PIN checked, then lock
//!   and unlock, which the backend takes (`202`) and reports no outcome of to a client
//!   that asks: keyway decides from the car's lock state ([`keyway_adapter::Sent::Accepted`]).
//! - [`login`]: the app's login (the code flow with PKCE at the Volkswagen Group's
//!   identity server, ending at `myskoda://redirect/login/`; the code traded at the
//!   Škoda backend) — the refresh is the profile's (`{"token"}` as JSON).
//! - [`mock`]: a fake of those endpoints: the login with auto-consent and a checked
//!   verifier, S-PINs with a lock-out after three wrong ones, a car without an active
//!   `ACCESS` capability, lagging status, commands that run later or never.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock skoda` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
pub mod login;
#[cfg(feature = "mock")]
pub mod mock;

pub use adapter::SkodaAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{SkodaMock, SkodaMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(SkodaAdapter::new(b.base)),
    signing: None,
    versions: &[],
};
