//! Audi: Audi cars through the EU backend of the myAudi app — the
//! Volkswagen Group's identity server for the login, myAudi's GraphQL for the owner's
//! cars, and CARIAD's BFF (`emea.bff.cariad.digital`), which serves Volkswagen too, for
//! everything else — and a stateful mock of it.
//!
//! - [`adapter`]: what Audi declares (the device login, the refresh at the BFF), and
//!   the vehicle list's GraphQL query and its reading; the rest is the Volkswagen
//!   adapter's BFF translation (`crate::adapter::Brand`).
//! - [`mock`]: the Volkswagen mock's BFF, with myAudi's GraphQL list and the identity
//!   server's device grant (the kit's).
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock audi` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;

#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::AudiMock;

/// This OEM as keyway's registry holds it: its adapter's declaration and how the
/// adapter is built (the BFF at the API base, the vehicle list at the vehicles base).
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build: |b| std::sync::Arc::new(adapter::new(b.base, b.vehicles_base)),
    signing: None,
    versions: &[],
};
