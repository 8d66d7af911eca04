//! A watched car's signals as keyway last emitted them ([`Signals`]), how a new reading
//! merges into them, and which signals changed ([`Signals::merge`]). A signal nobody
//! knows is `null`, never invented: a reading that could not see a signal (the car
//! sleeps, the OEM has no such read) leaves its last known value in place; an OEM
//! snapshot recorded before the one already kept is older news and changes nothing; a
//! position counts as moved only beyond a distance (GPS jitter is no move).

use keyway_adapter::{DoorPosition, Location, SecurityState};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Whether the car's modem can be reached, as its OEM tells without waking it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// Reads and commands reach it now.
    Online,
    /// Asleep: a command would have to wake it (watching never does).
    Asleep,
    /// No connection.
    Offline,
}

impl From<keyway_adapter::Connectivity> for Connectivity {
    fn from(c: keyway_adapter::Connectivity) -> Self {
        match c {
            keyway_adapter::Connectivity::Online => Connectivity::Online,
            keyway_adapter::Connectivity::Asleep => Connectivity::Asleep,
            keyway_adapter::Connectivity::Offline => Connectivity::Offline,
        }
    }
}

impl From<Connectivity> for keyway_adapter::Connectivity {
    fn from(c: Connectivity) -> Self {
        match c {
            Connectivity::Online => keyway_adapter::Connectivity::Online,
            Connectivity::Asleep => keyway_adapter::Connectivity::Asleep,
            Connectivity::Offline => keyway_adapter::Connectivity::Offline,
        }
    }
}

/// The lock and the openings, as the car reported them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LockSignal {
    /// Locked? `null` when the OEM reports the lock as unknown.
    pub locked: Option<bool>,
    /// The openings standing open (`[]`: all closed); `null` when the OEM does not
    /// report them.
    pub open: Option<Vec<DoorPosition>>,
    /// When the car recorded it; `null` when the OEM does not say.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
}

/// Where the car stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaceSignal {
    /// WGS84 latitude in degrees.
    pub latitude: f64,
    /// WGS84 longitude in degrees.
    pub longitude: f64,
    /// Heading in degrees clockwise from north, when known.
    pub heading: Option<f64>,
    /// Horizontal accuracy in metres, when the OEM says.
    pub accuracy_m: Option<f64>,
    /// When the car recorded the fix; `null` when the OEM does not say.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
}

/// Everything keyway knows of a watched car.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Signals {
    /// The lock and the openings; `null` until read.
    pub lock: Option<LockSignal>,
    /// The position; `null` until read.
    pub location: Option<PlaceSignal>,
    /// Online, asleep or offline; `null` where the OEM does not tell.
    pub connectivity: Option<Connectivity>,
}

/// One reading of a car: what could be seen this time (each part `None` when not).
#[derive(Clone, Debug, Default)]
pub struct Reading {
    /// The lock state.
    pub security: Option<SecurityState>,
    /// The position.
    pub location: Option<Location>,
    /// The connectivity.
    pub connectivity: Option<Connectivity>,
}

/// A signal's name in `changed`.
pub const LOCKED: &str = "locked";
/// The openings.
pub const DOORS: &str = "doors";
/// The position.
pub const LOCATION: &str = "location";
/// The connectivity.
pub const CONNECTIVITY: &str = "connectivity";

fn open_of(s: &SecurityState) -> Option<Vec<DoorPosition>> {
    s.doors.as_ref().map(|doors| {
        let mut open: Vec<DoorPosition> = doors
            .iter()
            .filter(|d| d.open)
            .map(|d| d.position)
            .collect();
        open.sort_by_key(|p| *p as u8);
        open.dedup();
        open
    })
}

/// `Some(b)` is older than `Some(a)`: the OEM's older snapshot.
fn older(new: Option<OffsetDateTime>, kept: Option<OffsetDateTime>) -> bool {
    matches!((new, kept), (Some(n), Some(k)) if n < k)
}

impl Signals {
    /// Which signals are known at all (lock, position, connectivity).
    pub fn known(&self) -> (bool, bool, bool) {
        (
            self.lock.is_some(),
            self.location.is_some(),
            self.connectivity.is_some(),
        )
    }

    /// The signals after `reading`, and the names of those that changed. A move
    /// counts beyond `move_m` metres; a position within it keeps the old one (so slow
    /// drift is measured from where the car was last said to stand).
    pub fn merge(&self, reading: &Reading, move_m: f64) -> (Signals, Vec<&'static str>) {
        let mut next = self.clone();
        let mut changed = Vec::new();
        if let Some(s) = &reading.security {
            let kept = self.lock.as_ref();
            if !older(s.recorded_at, kept.and_then(|l| l.recorded_at)) {
                let new = LockSignal {
                    locked: s.locked.or(kept.and_then(|l| l.locked)),
                    open: open_of(s).or_else(|| kept.and_then(|l| l.open.clone())),
                    recorded_at: s.recorded_at.or(kept.and_then(|l| l.recorded_at)),
                };
                if let Some(k) = kept {
                    if k.locked != new.locked {
                        changed.push(LOCKED);
                    }
                    if k.open != new.open {
                        changed.push(DOORS);
                    }
                }
                next.lock = Some(new);
            }
        }
        if let Some(l) = &reading.location {
            let kept = self.location.as_ref();
            if !older(l.recorded_at, kept.and_then(|p| p.recorded_at)) {
                let moved = kept.is_none_or(|k| {
                    crate::geo::distance_m((k.latitude, k.longitude), (l.latitude, l.longitude))
                        > move_m
                });
                if moved {
                    if kept.is_some() {
                        changed.push(LOCATION);
                    }
                    next.location = Some(PlaceSignal {
                        latitude: l.latitude,
                        longitude: l.longitude,
                        heading: l.heading,
                        accuracy_m: l.accuracy_m,
                        recorded_at: l.recorded_at,
                    });
                }
            }
        }
        if let Some(c) = reading.connectivity {
            if self.connectivity.is_some_and(|k| k != c) {
                changed.push(CONNECTIVITY);
            }
            next.connectivity = Some(c);
        }
        (next, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_adapter::Door;

    fn security(locked: bool, trunk_open: bool, at: i64) -> SecurityState {
        SecurityState {
            locked: Some(locked),
            doors: Some(vec![Door {
                position: DoorPosition::Trunk,
                open: trunk_open,
            }]),
            recorded_at: Some(OffsetDateTime::from_unix_timestamp(at).unwrap()),
        }
    }

    fn at(lat: f64, lon: f64) -> Location {
        Location {
            latitude: lat,
            longitude: lon,
            heading: None,
            accuracy_m: None,
            recorded_at: None,
        }
    }

    #[test]
    fn the_first_reading_is_a_baseline_then_each_change_is_named_once() {
        let r = |s, l, c| Reading {
            security: s,
            location: l,
            connectivity: c,
        };
        let (s, changed) = Signals::default().merge(
            &r(
                Some(security(true, false, 10)),
                Some(at(52.5, 13.4)),
                Some(Connectivity::Online),
            ),
            50.0,
        );
        assert!(changed.is_empty(), "{changed:?}");
        let (s, changed) = s.merge(&r(Some(security(false, false, 20)), None, None), 50.0);
        assert_eq!(changed, [LOCKED]);
        let (s, changed) = s.merge(&r(Some(security(false, true, 30)), None, None), 50.0);
        assert_eq!(changed, [DOORS]);
        // The OEM's older snapshot is old news.
        let (s, changed) = s.merge(&r(Some(security(true, false, 25)), None, None), 50.0);
        assert!(changed.is_empty());
        assert_eq!(s.lock.as_ref().unwrap().locked, Some(false));
        // Jitter is no move; a drive is.
        let (s, changed) = s.merge(&r(None, Some(at(52.5001, 13.4)), None), 50.0);
        assert!(changed.is_empty());
        let (s, changed) = s.merge(&r(None, Some(at(52.51, 13.4)), None), 50.0);
        assert_eq!(changed, [LOCATION]);
        // Asleep: only connectivity is seen, the rest stays as known.
        let (s, changed) = s.merge(&r(None, None, Some(Connectivity::Asleep)), 50.0);
        assert_eq!(changed, [CONNECTIVITY]);
        assert_eq!(
            s.lock.as_ref().unwrap().open,
            Some(vec![DoorPosition::Trunk])
        );
        // Nothing seen: nothing changes.
        let (same, changed) = s.merge(&Reading::default(), 50.0);
        assert!(changed.is_empty());
        assert_eq!(same, s);
    }
}
