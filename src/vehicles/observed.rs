//! News of a car that no caller's read brought — the watcher's own reads and OEM
//! pushes — kept as the car's last readings, so a read within its TTL answers them with
//! no OEM call; and the car's connectivity as the last answer about it showed. The newer
//! snapshot wins wherever a reading is kept: one the car recorded before the kept one is
//! older news and changes nothing (the same rule for a caller's own read that finishes
//! after a push); and where an answer came from ([`Source`]).

use keyway_adapter::{Connectivity, Location, OemError, SecurityState};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Fleet, Kind, Link, Reading, Source, Value};
use crate::tokens::CallError;

/// What arrived about a car unasked; each part `None` when it did not say.
#[derive(Clone, Copy, Debug)]
pub struct News<'a> {
    /// The lock state.
    pub security: Option<&'a SecurityState>,
    /// The position.
    pub location: Option<&'a Location>,
    /// The connectivity.
    pub connectivity: Option<Connectivity>,
    /// When it was asked for (a push: when it arrived).
    pub asked_at: Instant,
    /// [`Source::Vehicle`] for the watcher's read, [`Source::Push`] for a push.
    pub source: Source,
}

/// What an OEM's answer says of the car's connectivity, where it says anything: an
/// `Asleep` answer, or an unreachable car.
pub fn connectivity_of(e: &CallError) -> Option<Connectivity> {
    match e {
        CallError::Oem(OemError::Asleep) => Some(Connectivity::Asleep),
        CallError::Oem(OemError::Unreachable { .. }) => Some(Connectivity::Offline),
        _ => None,
    }
}

impl Value {
    fn recorded_at(&self) -> Option<OffsetDateTime> {
        match self {
            Value::Location(l) => l.recorded_at,
            Value::Security(s) => s.recorded_at,
        }
    }
}

impl Fleet {
    /// Keeps `news` of the car `vehicle_id` like a read of its own.
    pub fn observed(&self, vehicle_id: &str, news: News<'_>) {
        let now = Instant::now();
        let reading = |value| Reading {
            value,
            asked_at: news.asked_at,
            fetched_at: now,
            source: news.source,
        };
        if let Some(s) = news.security {
            self.keep(
                vehicle_id,
                Kind::Security,
                reading(Value::Security(s.clone())),
            );
        }
        if let Some(l) = news.location {
            self.keep(
                vehicle_id,
                Kind::Location,
                reading(Value::Location(l.clone())),
            );
        }
        if let Some(c) = news.connectivity {
            self.seen(vehicle_id, c);
        }
    }

    /// Now, by the gateway's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The car's connectivity as last learned, if it ever was.
    pub fn link(&self, vehicle_id: &str) -> Option<Link> {
        self.links.get(vehicle_id)
    }

    /// Notes the car's connectivity now.
    pub(super) fn seen(&self, vehicle_id: &str, connectivity: Connectivity) {
        let link = Link {
            connectivity,
            seen_at: self.clock.now(),
        };
        self.links.insert(vehicle_id.to_string(), link);
    }

    /// Keeps `r` as the car's last reading of `kind` unless the kept one is newer: the
    /// car recorded it later, or (where a time is missing) keyway asked for it later.
    pub(super) fn keep(&self, vehicle_id: &str, kind: Kind, r: Reading) {
        // Compared and replaced as one step: two readings arriving together cannot leave
        // the older one kept.
        let _turn = crate::sync::lock(&self.keeping);
        if let Some(kept) = self.kept(vehicle_id, kind) {
            let newer = match (kept.value.recorded_at(), r.value.recorded_at()) {
                (Some(k), Some(n)) => k > n,
                _ => kept.asked_at > r.asked_at,
            };
            if newer {
                return;
            }
        }
        self.last(kind).insert(vehicle_id.to_string(), r);
    }
}
