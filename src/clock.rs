//! Time as keyway keeps, shows and grants see it: the process clock ([`now`], which a
//! simulation makes follow tokio's paused time), the one RFC 3339 form every answer
//! and event uses, deadlines in keyway's time ([`within`]), the one doubling pause
//! keyway retries with ([`Backoff`]), and the grant clock — wall-clock time plus an offset that tests
//! (and only tests) move forward, so grant windows and relock timers can be driven
//! through minutes of time in milliseconds, deterministically and without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

static FOLLOWS_TOKIO: std::sync::OnceLock<(OffsetDateTime, tokio::time::Instant)> =
    std::sync::OnceLock::new();

/// Now, truncated to milliseconds (what the store keeps): the wall clock, or in a
/// simulation ([`follow_tokio_clock`]) the wall clock at its start plus tokio's
/// (paused) time since. keyway's one process clock.
pub fn now() -> OffsetDateTime {
    let t = match FOLLOWS_TOKIO.get() {
        Some((wall, at)) => *wall + (tokio::time::Instant::now() - *at),
        None => OffsetDateTime::now_utc(),
    };
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Makes [`now`] follow tokio's clock from here on, for the whole process: a
/// deterministic simulation on paused time calls it once at its start. Never called
/// by `keyway serve`.
pub fn follow_tokio_clock() {
    FOLLOWS_TOKIO.get_or_init(|| (OffsetDateTime::now_utc(), tokio::time::Instant::now()));
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

/// The time left until `until` (zero once it passed).
pub fn left(until: OffsetDateTime) -> Duration {
    Duration::try_from(until - now()).unwrap_or(Duration::ZERO)
}

/// `work`, cut off at `until` — given at least [`LAST_TRY`] even then: a command's
/// total time stays within its timeout however long the OEM takes to answer.
pub async fn within<T>(
    until: OffsetDateTime,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout(left(until).max(LAST_TRY), work)
        .await
        .ok()
}

/// The least time the last step before a deadline gets.
pub const LAST_TRY: Duration = Duration::from_secs(1);

/// Now, as grants see it.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The current time (milliseconds, as the store keeps it).
    pub fn now(&self) -> OffsetDateTime {
        now() + time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves this clock forward by `d` (tests).
    pub fn advance(&self, d: Duration) {
        self.offset_ms
            .fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let c = Clock::default();
        let before = c.now();
        c.advance(Duration::from_secs(120));
        assert!(c.now() - before >= time::Duration::seconds(120));
    }
}
