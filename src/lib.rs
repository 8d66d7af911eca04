//! keyway: one small, safe HTTP API — locate, lock, unlock — in front of many
//! automakers' connected-car APIs.
//!
//! A request reads straight through the modules: `api` (parse, authenticate,
//! authorize) → `commands` (admit, record with its idempotency claim, serialize per car,
//! take the OEM's command quota) → `vehicles` (the record, read once and passed along;
//! its OEM resolved once into an `OemCall`, which wakes the car) → `tokens` (a fresh OEM
//! access token) → the OEM's adapter (translate; Tesla: sign) → `upstream` (the
//! outbound HTTP stack: retry, breaker, quota, concurrency, metering) → OEM → adapter
//! (parse, classify) → `commands` (poll or observe until final, record, event) → `api`
//! (one JSON shape, or problem+json).
//!
//! # Layers
//! Imports point one way, top to bottom; `layers.rs` declares the layers and fails on
//! a dependency against them, on a circle among any crate's files, and on an adapter
//! crate that depends on more than the adapter contract:
//! 1. the edge: `main`, [`server`], [`demo`], [`replay`]; then [`api`] (HTTP: routes,
//!    extractors, problem+json, inbound limits) over [`gateway`] (the assembled parts);
//! 2. services: [`grants`], [`commands`], [`watch`], [`accounts`], [`vehicles`];
//! 3. OEM calls: [`tokens`], [`registry`], [`mocks`]; then the event log ([`events`]:
//!    events and webhooks; [`audit`]); then [`upstream`] (outbound HTTP);
//! 4. shared state: [`cluster`] (leases, shared limits) over [`store`];
//! 5. leaves: [`config`] (data only), [`metrics`], [`auth`], [`crypto`], [`error`],
//!    [`clock`] (the one injected clock), [`ids`], [`logs`], [`sync`], [`text`], [`geo`].
//!
//! # Layout
//! - [`api`]: the unified HTTP API, problem+json, request ids.
//! - [`auth`]: caller JWT verification, scopes, per-vehicle restriction.
//! - [`commands`]: the command lifecycle and its safety rules.
//! - [`vehicles`]: vehicle lookups and reads, the wake policy, and the one OEM-call
//!   path (`OemCall`).
//! - [`tokens`]: OEM access tokens: single-flight, rotation-safe refresh.
//! - [`accounts`]: linked OEM accounts and vehicle discovery.
//! - [`upstream`]: the outbound HTTP stack (hyper + rustls).
//! - [`registry`]: which OEM adapters exist (one line per OEM).
//! - [`store`]: the `Store` trait and its SQL implementation (SQLite, PostgreSQL).
//! - [`cluster`]: several replicas as one gateway: leases, takeover, shared limits.
//! - [`grants`]: delivery access grants: enforcement and guaranteed relock.
//! - [`events`]: events, Server-Sent Events and webhooks.
//! - [`watch`]: watched cars, read without waking at a quota-aware cadence; their
//!   changes become `vehicle.state_changed` events.
//! - [`geo`]: distances on the Earth's surface.
//! - [`audit`]: the hash-chained audit log.
//! - [`clock`]: the one clock every service is given (tests move it forward; a
//!   simulation follows tokio's paused time), deadlines, RFC 3339 timestamps.
//! - [`sync`]: poison-tolerant locking.
//! - [`text`]: checks on callers' free text (no control characters).
//! - [`error`]: the error taxonomy: stable codes, and [`error::Classify`], which every
//!   service's own error implements (`api::ApiError` is made from it at the edge).
//! - [`config`]: the TOML configuration, one file per section (data only).
//! - [`crypto`]: encryption of secrets at rest (AES-256-GCM, rotating keys).
//! - [`gateway`]: the assembled parts.
//! - [`logs`]: process logs, written by a background thread through a buffer.
//! - [`metrics`]: Prometheus series and `/metrics` rendering.
//! - [`server`]: serving the API with graceful shutdown.
//! - [`demo`]: `keyway demo`: mock OEMs, a demo fleet and the gateway in one process.
//! - [`mocks`]: the mock OEMs built from the demo fleet (demo, `keyway mock <oem>`).
//! - [`replay`]: `keyway replay`: one captured OEM answer through an adapter.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod crypto;
#[cfg(feature = "mock")]
pub mod demo;
pub mod error;
pub mod events;
pub mod gateway;
pub mod geo;
pub mod grants;
pub mod ids;
#[cfg(test)]
mod layers;
pub mod logs;
pub mod metrics;
#[cfg(feature = "mock")]
pub mod mocks;
pub mod registry;
pub mod replay;
pub mod server;
pub mod store;
pub mod sync;
pub mod text;
pub mod tokens;
pub mod upstream;
pub mod vehicles;
pub mod watch;
