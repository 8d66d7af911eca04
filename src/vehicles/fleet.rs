//! The fleet service's state: [`Fleet`] (the kept readings, the reads in flight, the
//! records and routes it reuses) and the types those are made of, among them what a
//! security answer's [`Source`] and a car's [`Link`] are. Its methods live beside it,
//! one job per file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_adapter::{Connectivity, Location, SecurityState};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::VehicleError;
use crate::registry::Registry;
use crate::store::{FleetAreas, VehicleRecord};
use crate::sync::{Cache, lock};
use crate::tokens::Tokens;

/// Where a security answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SecuritySource)]
pub enum Source {
    /// Read from the vehicle (now, or recently: see the answer's age).
    Vehicle,
    /// Pushed by the OEM or aggregator (a webhook keyway verified).
    Push,
    /// The state the last confirmed command left (the OEM has no lock-state read).
    LastCommand,
    /// Nothing: the OEM has no lock-state read and no command has confirmed a state
    /// yet (`locked` is null: unknown, never a guess).
    #[serde(rename = "none")]
    Nothing,
}

impl Source {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Vehicle => "vehicle",
            Source::Push => "push",
            Source::LastCommand => "last_command",
            Source::Nothing => "none",
        }
    }
}

/// A car's connectivity as keyway last learned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Online, asleep or offline.
    pub connectivity: Connectivity,
    /// When keyway learned it (keyway's clock).
    pub seen_at: OffsetDateTime,
}

/// Wake and asynchronous-read timing.
#[derive(Clone, Copy, Debug)]
pub struct WakePolicy {
    /// Give up waking after this long.
    pub timeout: Duration,
    /// Pause between wake-up calls.
    pub poll: Duration,
    /// Longest pause between polls of an asynchronous read (GM's location).
    pub read_poll: Duration,
}

/// What is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Location,
    Security,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Location => "location",
            Kind::Security => "security",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Value {
    Location(Location),
    Security(SecurityState),
}

/// A reading, when keyway asked for it and when it got it.
#[derive(Clone, Debug)]
pub(super) struct Reading {
    pub(super) value: Value,
    pub(super) asked_at: Instant,
    pub(super) fetched_at: Instant,
    /// A read of the car (keyway's) or a push.
    pub(super) source: Source,
}

pub(super) type Key = (crate::ids::VehicleId, Kind);
/// The reads in flight, by car and kind (keyway's own ids: a fast hash is safe here).
pub(super) type Flights = Mutex<HashMap<Key, Flight, ahash::RandomState>>;
pub(super) type Flight = watch::Sender<Option<Result<Reading, VehicleError>>>;

/// The leader of a flight; dropped before its read ends, it removes the flight, so
/// the callers waiting on it start over.
pub(super) struct Leading<'a> {
    pub(super) flights: &'a Flights,
    /// Set while the read runs.
    pub(super) key: Option<&'a Key>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(self.flights).remove(key);
        }
    }
}

/// Reads vehicles through their adapters.
pub struct Fleet {
    pub(super) store: Arc<dyn FleetAreas>,
    pub(super) registry: Arc<Registry>,
    pub(super) tokens: Arc<Tokens>,
    pub(super) wake: WakePolicy,
    /// The last reading of each car, one cache per [`Kind`] (looked up by the id as
    /// it is, no key built).
    pub(super) last: [Cache<String, Reading>; 2],
    pub(super) flights: Flights,
    /// Each car's connectivity as last learned ([`Fleet::link`]).
    pub(super) links: Cache<String, Link>,
    /// Held while a reading is compared with the kept one and replaced.
    pub(super) keeping: Mutex<()>,
    /// Vehicle records and when they were read.
    pub(super) records: Cache<String, (Instant, Arc<VehicleRecord>)>,
    /// Each record's car (all its records, when it has more than one) and when it was
    /// read ([`routes`]).
    pub(super) routes: Cache<String, (Instant, Option<Linked>)>,
    /// Which OEMs reads prefer, per tenant.
    pub(super) prefer: crate::config::RoutesConfig,
    /// The gateway's clock.
    pub(super) clock: crate::clock::Clock,
}

/// The records of one car (its routes), first-linked first.
pub(super) type Linked = Arc<[Arc<VehicleRecord>]>;

/// How many cars' readings and records are kept.
pub(super) const KEPT: u64 = 1_000_000;
/// How long a reading is kept (a sleeping car's last answer is served with its age).
pub(super) const READING_KEPT: Duration = Duration::from_secs(24 * 3600);
/// How long a vehicle record is reused without reading the store.
pub(super) const RECORD_KEPT: Duration = Duration::from_secs(30);
