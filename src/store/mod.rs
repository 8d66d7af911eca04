//! Durable state, one trait per area: [`AccountStore`] (OEM accounts, their tokens —
//! sealed: a store never sees a plaintext token — and pending account links),
//! [`VehicleStore`], [`CommandStore`] (commands, idempotency keys, command leases),
//! [`GrantStore`] (delivery grants and relocks), [`EventStore`] (the event log,
//! webhooks, deliveries), [`AuditStore`] (the hash-chained audit log) and
//! [`LeaseStore`] (who works on what, until when); [`Store`] is all of them plus the
//! database itself. SQLite (embedded default) and PostgreSQL (cluster mode) implement
//! them in one [`sql::SqlStore`], split by the same areas. Every command is written
//! before keyway talks to the OEM about it, so its record survives a crash of the
//! gateway; a command's lease says which replica drives it, so another takes it over
//! when that replica dies. The records themselves are plain data ([`records`]).

mod error;
mod kind;
pub mod records;
pub mod sql;
mod traits;

pub use error::StoreError;
pub use kind::{EventTypes, Kind};
pub use records::*;
pub use sql::{Engine, SqlStore};
pub use traits::*;
