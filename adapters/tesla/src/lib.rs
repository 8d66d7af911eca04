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

pub mod adapter;
pub mod errors;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;
pub mod region;
pub mod signing;
pub mod vcp;

pub use adapter::TeslaAdapter;
#[cfg(feature = "mock")]
pub use mock::{TeslaMock, TeslaMockConfig};
