//! The kit every mock OEM is built from: serving an axum router on a real socket, a
//! request journal (what the "OEM" saw, for tests to count: timing, the keyway command
//! id, whether the OEM logic applied a command), fault injection ([`faults`]), an OAuth
//! token book ([`tokens`]), owners' PINs ([`pins`]) and an OAuth authorization server
//! ([`oauth`]) configured per OEM, and a garage of simple cars ([`garage`]) that most OEM
//! mocks build on, each living
//! in time ([`timeline`]: lagging state, queued, late and duplicate commands).
//! [`instrument`] mounts journal and faults on a mock's router; [`product`] is how each
//! OEM crate describes its mock to keyway (built from a fleet file, served alone).
//! Mocks use tokio's clock so paused-time tests control expiry.

pub mod control;
pub mod device;
pub mod faults;
pub mod garage;
pub mod journal;
pub mod kit;
pub mod oauth;
pub mod pins;
pub mod product;
pub mod server;
pub mod shape;
pub mod steer;
pub mod timeline;
pub mod tokens;

pub use control::{MockControl, PushDelivery};
pub use device::{DeviceConfig, DeviceServer};
pub use faults::{Action, Fault, Faults};
pub use journal::{Applied, Journal, JournalEntry, Note, instrument};
pub use kit::{bearer, lock, random_token};
pub use oauth::{APPLICATION, OAuthServer, OAuthServerConfig, Rejection, owner_id, s256};
pub use pins::OwnerPins;
pub use product::{Mock, MockOem, MockSettings, Section, Showcase};
pub use server::MockServer;
pub use steer::GarageMock;
pub use tokens::{AccessDenied, Issued, RefreshDenied, TokenBook};
