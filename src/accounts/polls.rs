//! When each device link (RFC 8628) may next ask its OEM: the interval the OEM asked
//! for (grown by every `slow_down`) and when it may next ask, by the link's state hash;
//! and which links a poll is asking about right now ([`Polls::begin`]). This replica's
//! memory only; a link its caller abandoned leaves with its expiry.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// When each device link may next ask the OEM, and which are being asked about, by
/// state hash.
#[derive(Debug, Default)]
pub struct Polls {
    waits: Mutex<HashMap<String, Wait>>,
    asking: Mutex<HashSet<String>>,
}

/// A poll under way for one link; it ends when dropped (also when its task is).
#[derive(Debug)]
pub struct Asking<'a> {
    polls: &'a Polls,
    hash: String,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        crate::sync::lock(&self.polls.asking).remove(&self.hash);
    }
}

/// One link's pace.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// When the link may next ask the OEM.
    pub next: OffsetDateTime,
    /// How long it waits between asks.
    pub interval: Duration,
    /// When the link expires.
    pub expires_at: OffsetDateTime,
}

impl Polls {
    /// Records, at `now`, the pace of link `hash` (dropping the links that expired).
    pub fn set(&self, hash: &str, now: OffsetDateTime, wait: Wait) {
        let mut all = crate::sync::lock(&self.waits);
        all.retain(|_, w| w.expires_at > now);
        all.insert(hash.to_string(), wait);
    }

    /// How long link `hash` must still wait at `now` before asking the OEM, if it must.
    pub fn early(&self, hash: &str, now: OffsetDateTime) -> Option<Duration> {
        let w = self.get(hash)?;
        (now < w.next).then(|| (w.next - now).try_into().unwrap_or(w.interval))
    }

    /// Link `hash`'s pace, if known here.
    pub fn get(&self, hash: &str) -> Option<Wait> {
        crate::sync::lock(&self.waits).get(hash).copied()
    }

    /// Link `hash`'s interval, or `default` when this replica has not heard the OEM's.
    pub fn interval(&self, hash: &str, default: Duration) -> Duration {
        self.get(hash).map_or(default, |w| w.interval)
    }

    /// Starts a poll of link `hash`, unless one is under way here: then `None`.
    pub fn begin(&self, hash: &str) -> Option<Asking<'_>> {
        crate::sync::lock(&self.asking)
            .insert(hash.to_string())
            .then(|| Asking {
                polls: self,
                hash: hash.to_string(),
            })
    }

    /// Forgets link `hash` (it finished).
    pub fn forget(&self, hash: &str) {
        crate::sync::lock(&self.waits).remove(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_waits_its_interval_and_expired_ones_leave() {
        let polls = Polls::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let s = Duration::from_secs;
        let wait = |next, expires_at| Wait {
            next,
            interval: s(5),
            expires_at,
        };
        polls.set("a", t0, wait(t0, t0 + s(300)));
        assert_eq!(polls.early("a", t0), None, "the first ask at once");
        polls.set("a", t0, wait(t0 + s(5), t0 + s(300)));
        assert_eq!(polls.early("a", t0 + s(2)), Some(s(3)));
        assert_eq!(polls.early("a", t0 + s(5)), None);
        assert_eq!(polls.early("unknown", t0), None);
        polls.set("b", t0 + s(301), wait(t0 + s(301), t0 + s(600)));
        assert!(polls.get("a").is_none(), "an expired link leaves");
        polls.forget("b");
        assert!(polls.get("b").is_none());
        let first = polls.begin("c");
        assert!(first.is_some());
        assert!(polls.begin("c").is_none(), "one poll at a time per link");
        drop(first);
        assert!(polls.begin("c").is_some(), "and the next once it ended");
    }
}
