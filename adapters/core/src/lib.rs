//! The contract between keyway's core and one automaker's (OEM's) API.
//!
//! An adapter translates: it builds the OEM's request, parses its answer, and maps
//! every failure into the one [`OemError`] taxonomy — including whether the OEM may
//! already have applied a command ([`Delivered`]). It never retries, refreshes tokens
//! or rate-limits: keyway's core decides what to do from the error alone.
//!
//! # Layout
//! - [`types`]: the unified vocabulary (`Vehicle`, `Location`, `SecurityState`,
//!   `Command`, `Sent`, `Pending`, `Progress`, capabilities, the OAuth profile).
//! - [`error`]: `OemError` and `Delivered`, the one taxonomy every adapter maps into.
//! - [`http`]: `Call` (access token + outbound HTTP handle) and JSON helpers.
//! - [`transport`]: the hyper client as a service (the bottom of every outbound stack).
//! - [`secret`]: a string that never shows itself in `Debug` or logs.
//! - [`adapter`]: the `Adapter` trait.
//! - [`exchange`]: the requests an adapter makes, named, with fixture answers (replay).
//! - [`push`]: what an OEM pushes unasked (inbound webhooks), verified and translated.
//! - [`login`]: linking through an OEM's own app login (Volkswagen Group), or by the
//!   owner the redirect names (Smartcar API v3).
//! - [`per_car`]: what an adapter learned of each car and keeps ([`PerCar`]).
//! - [`oem`]: an OEM as one value, which each adapter crate exports for keyway's
//!   registry.
//! - [`mock`]: the kit every mock OEM is built from (server, journal, OAuth token book).
//! - [`conformance`]: the checks every adapter must pass against its own mock.

pub mod adapter;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod exchange;
pub mod http;
pub mod login;
#[cfg(feature = "mock")]
pub mod mock;
pub mod oem;
pub mod per_car;
pub mod push;
pub mod secret;
pub mod transport;
pub mod types;

pub use adapter::Adapter;
pub use error::{Delivered, OemError};
pub use exchange::{Exchanges, Route};
pub use http::{Call, Http, TransportError};
pub use login::{AppLogin, LinkSecrets, Linking, Tokens};
pub use per_car::PerCar;
pub use push::{PushError, Pushed, PushedState};
pub use secret::Secret;
pub use types::*;
