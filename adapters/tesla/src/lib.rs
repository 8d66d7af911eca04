//! keyway's Tesla Fleet API adapter and a stateful mock of the Fleet API.
//!
//! - [`adapter`]: translation between the unified vocabulary and the Fleet API
//!   (`/api/1/vehicles`, `vehicle_data`, `door_lock`/`door_unlock`, `wake_up`).
//! - [`mock`]: a fake Fleet API and token endpoint with per-vehicle state, sleep and
//!   wake, rotating refresh tokens, and Tesla's error answers.
//! - [`region`]: which Fleet API region a 421 names, and whether to follow it.
//! - [`signing`]: signed lock/unlock through `signed_command`, sessions per car, and
//!   which cars take signed or REST commands.
//! - [`vcp`]: the Vehicle Command Protocol (signed commands), both sides.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
#[cfg(feature = "mock")]
pub mod demo;
pub mod errors;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;
pub mod region;
pub mod signing;
pub mod vcp;

pub use adapter::TeslaAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{TeslaMock, TeslaMockConfig};

/// This OEM as keyway's registry holds it: its adapter's declaration, how the adapter
/// is built (signing commands when an application key is configured), and how that
/// key is read.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build,
    signing: Some(keyway_adapter::oem::Signing {
        reads: |pem| vcp::AppKey::from_pem(pem).is_ok(),
        public_pem: |pem| vcp::AppKey::from_pem(pem).ok().map(|k| k.public_pem()),
        generate: || vcp::AppKey::generate().private_pem(),
    }),
    versions: &[],
};

/// The Tesla adapter, signing commands when an application key is configured.
fn build(b: &keyway_adapter::oem::Build<'_>) -> std::sync::Arc<dyn keyway_adapter::Adapter> {
    let adapter = TeslaAdapter::new(b.base);
    let key = b
        .signing_key
        .as_ref()
        .and_then(|pem| vcp::AppKey::from_pem(pem.expose()).ok());
    match key {
        Some(key) => std::sync::Arc::new(adapter.with_signing(key, b.domain.clone())),
        None => std::sync::Arc::new(adapter),
    }
}
