//! Time as keyway keeps and shows it: the one injected [`Clock`] every service reads
//! now and sleeps through (the wall clock, or tokio's paused time in a simulation,
//! which tests may move forward), deadlines in that clock's time
//! ([`Clock::within`]), the one RFC 3339 form every answer and event uses, and the one
//! doubling pause keyway retries with ([`Backoff`]), and a wait as the whole seconds
//! a caller is told ([`whole_secs`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// keyway's one clock: every service reads now and sleeps through the one its gateway
/// was built with. A cheap handle (clones share the clock).
///
/// It counts from the wall clock ([`Clock::wall`], what `keyway serve` uses) or, in a
/// deterministic simulation on paused tokio time ([`Clock::following_tokio`]), from
/// the wall clock at its start plus tokio's time since — so the store's stamps, the
/// commands' deadlines and the grants' windows all move with the simulated time. Tests
/// (and only tests) can [`Clock::advance`] it, to drive grant windows and relock
/// timers through minutes in milliseconds without sleeping.
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Where `now` counts from: `None` for the wall clock.
    tokio: Option<(OffsetDateTime, tokio::time::Instant)>,
    /// How far tests moved the clock forward.
    offset_ms: AtomicI64,
}

impl Clock {
    /// The wall clock.
    pub fn wall() -> Self {
        Self::default()
    }

    /// A clock that follows tokio's (paused) time from now on: the wall clock at this
    /// call plus tokio's time since. Made by a simulation, never by `keyway serve`.
    pub fn following_tokio() -> Self {
        Self(Arc::new(Inner {
            tokio: Some((OffsetDateTime::now_utc(), tokio::time::Instant::now())),
            offset_ms: AtomicI64::new(0),
        }))
    }

    /// Now, truncated to milliseconds (what the store keeps).
    pub fn now(&self) -> OffsetDateTime {
        let t = match self.0.tokio {
            Some((wall, at)) => wall + (tokio::time::Instant::now() - at),
            None => OffsetDateTime::now_utc(),
        } + time::Duration::milliseconds(self.0.offset_ms.load(Ordering::SeqCst));
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Moves this clock forward by `d` (tests).
    pub fn advance(&self, d: Duration) {
        self.0
            .offset_ms
            .fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    /// Waits `d` (tokio's timer: paused in a simulation, so it waits no real time).
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// The time left until `until` (zero once it passed).
    pub fn left(&self, until: OffsetDateTime) -> Duration {
        Duration::try_from(until - self.now()).unwrap_or(Duration::ZERO)
    }

    /// `work`, cut off at `until` — given at least [`LAST_TRY`] even then: a command's
    /// total time stays within its timeout however long the OEM takes to answer.
    pub async fn within<T>(
        &self,
        until: OffsetDateTime,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::time::timeout(self.left(until).max(LAST_TRY), work)
            .await
            .ok()
    }
}

/// A pause that doubles after each wait, up to a ceiling: how keyway tries again at a
/// lease, a write or a resume that did not work yet.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pause: Duration,
    max: Duration,
}

impl Backoff {
    /// Pauses of `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { pause: first, max }
    }

    /// The next pause.
    pub fn pause(&self) -> Duration {
        self.pause
    }

    /// Sleeps the next pause, then doubles it (up to the ceiling).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(self.max);
    }
}

/// `t` in RFC 3339 (milliseconds, UTC), as every answer and event shows time.
pub fn timestamp(t: OffsetDateTime) -> String {
    let mut buf = Vec::with_capacity(32);
    write_timestamp(&mut buf, t);
    String::from_utf8(buf).unwrap_or_default()
}

/// Appends `t` to `buf` in the form of [`timestamp`]; nothing for a time that has no
/// RFC 3339 form.
pub fn write_timestamp(buf: &mut Vec<u8>, t: OffsetDateTime) {
    let start = buf.len();
    if t.format_into(buf, &time::format_description::well_known::Rfc3339)
        .is_err()
    {
        buf.truncate(start);
    }
}

/// An optional time in serde, in the form of [`timestamp`] (`null` when absent).
pub mod serde_timestamp {
    use time::OffsetDateTime;

    /// Writes `t` as [`super::timestamp`] does.
    pub fn serialize<S: serde::Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::timestamp(*t)),
            None => s.serialize_none(),
        }
    }
}

/// The least time the last step before a deadline gets.
pub const LAST_TRY: Duration = Duration::from_secs(1);

/// A wait in whole seconds, rounded up (what `Retry-After` and `retry_after_s` say):
/// a caller who waits that long is never early.
pub fn whole_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let c = Clock::wall();
        let before = c.now();
        c.advance(Duration::from_secs(120));
        assert!(c.now() - before >= time::Duration::seconds(120));
    }
}
