//! When each device link (RFC 8628) may next ask its OEM: the interval the OEM asked
//! for (grown by every `slow_down`) and when it may next ask, by the link's state hash.
//! This replica's memory only; a link its caller abandoned leaves with its expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// When each device link may next ask the OEM, by state hash.
#[derive(Debug, Default)]
pub struct Polls(Mutex<HashMap<String, Wait>>);

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
        let mut all = crate::sync::lock(&self.0);
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
        crate::sync::lock(&self.0).get(hash).copied()
    }

    /// Forgets link `hash` (it finished).
    pub fn forget(&self, hash: &str) {
        crate::sync::lock(&self.0).remove(hash);
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
    }
}
