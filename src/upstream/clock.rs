//! What keyway knows of one OEM's clock: bounds on how far it runs ahead of keyway's
//! own, learnt from the `Date` of every answer, and whether the OEM's timestamps may be
//! trusted as evidence of "after the send" at all.
//!
//! A `Date` of `D` (whole seconds, truncated) on an answer to a request sent at keyway
//! time `a` and received at `b` was written between `a` and `b`, so the OEM's offset
//! (its clock minus keyway's) lies in `[D − b, D + 1 s − a]`. Bounds from answers that
//! agree are intersected; an answer that disagrees with them (the OEM's clock stepped)
//! replaces them, and bounds older than [`FRESH`] are forgotten (drift). An OEM
//! timestamp `r` then proves "after keyway time `t`" only if `r − hi > t`: beyond the
//! largest offset the OEM's clock can have ([`OemClock::ahead_at_most`]).
//!
//! A state stamp can come from another clock than the one that writes `Date` (the
//! car's own). A stamp later than the OEM's latest possible time when it answered shows
//! that clock runs ahead: stamps are not trusted for [`DISTRUST`] after that, and keyway
//! falls back to its own clock (a read issued a state lag after the send). Without fresh
//! bounds (an OEM that sends no `Date`, or whose calls all failed) stamps are never
//! trusted either.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::sync::lock;

/// Bounds older than this are forgotten: clocks drift, and an estimate must be renewed
/// by answers.
pub const FRESH: Duration = Duration::minutes(10);
/// How long OEM stamps are not trusted after one ran ahead of the OEM's own clock.
pub const DISTRUST: Duration = Duration::minutes(30);
/// Allowance on top of the upper bound for drift since it was learnt and rounding.
const DRIFT: Duration = Duration::milliseconds(250);
/// An estimated offset beyond this is logged as a warning.
const WARN_OVER: Duration = Duration::seconds(2);

/// One OEM's clock as keyway knows it.
#[derive(Debug)]
pub struct OemClock {
    oem: &'static str,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `[lo, hi]`: the OEM's clock minus keyway's, as far as answers tell.
    bounds: Option<(Duration, Duration)>,
    /// When the bounds were last confirmed by an answer (keyway time).
    at: Option<OffsetDateTime>,
    /// OEM stamps are not trusted until then.
    distrust_until: Option<OffsetDateTime>,
    /// Whether the current estimate was already logged as beyond [`WARN_OVER`].
    warned: bool,
}

impl OemClock {
    /// A clock nothing is known of yet.
    pub fn new(oem: &'static str) -> Self {
        Self {
            oem,
            state: Mutex::new(State::default()),
        }
    }

    /// An answer carried `Date: date`; the request was sent at `sent` and its answer
    /// received at `received` (keyway's clock).
    pub fn date(&self, sent: OffsetDateTime, received: OffsetDateTime, date: OffsetDateTime) {
        let sample = (date - received, date + Duration::SECOND - sent);
        let mut s = lock(&self.state);
        let fresh = s.at.is_some_and(|at| received - at < FRESH);
        let (lo, hi) = match s.bounds {
            Some((lo, hi)) if fresh && sample.0 <= hi && lo <= sample.1 => {
                (lo.max(sample.0), hi.min(sample.1))
            }
            _ => sample,
        };
        s.at = Some(received);
        if s.bounds == Some((lo, hi)) {
            // Nothing new (the usual case once the bounds settled): every OEM answer
            // passes here, so the gauge and the warning are left alone.
            return;
        }
        s.bounds = Some((lo, hi));
        let mid: Duration = (lo + hi) / 2_i32;
        crate::metrics::oem_clock_offset(self.oem, mid.as_seconds_f64());
        let far = mid.abs() > WARN_OVER;
        if far && !s.warned {
            tracing::warn!(
                oem = self.oem,
                offset_ms = mid.whole_milliseconds() as i64,
                uncertainty_ms = ((hi - lo) / 2_i32).whole_milliseconds() as i64,
                "the OEM's clock is off keyway's; its timestamps count only beyond the offset"
            );
        }
        s.warned = far;
    }

    /// A state read answered at `received` (keyway's clock) carried the OEM timestamp
    /// `stamp`: if that is later than the OEM's clock can have read then, stamps come
    /// from a clock running ahead, and are not trusted for a while.
    pub fn stamp(&self, stamp: OffsetDateTime, received: OffsetDateTime) {
        let mut s = lock(&self.state);
        let Some((_, hi)) = s.bounds else { return };
        if stamp - received > hi + DRIFT {
            if s.distrust_until.is_none_or(|u| u < received) {
                tracing::warn!(
                    oem = self.oem,
                    ahead_ms = (stamp - received - hi).whole_milliseconds() as i64,
                    "the OEM stamps states later than its own clock; its timestamps are \
                     not taken as evidence for a while"
                );
            }
            s.distrust_until = Some(received + DISTRUST);
        }
    }

    /// The most the OEM's timestamps can run ahead of keyway's clock at `now`, if that
    /// is known and they are trusted; `None`: take no OEM timestamp as evidence.
    pub fn ahead_at_most(&self, now: OffsetDateTime) -> Option<Duration> {
        let s = lock(&self.state);
        if s.distrust_until.is_some_and(|u| now < u) {
            return None;
        }
        let at = s.at?;
        if now - at >= FRESH {
            return None;
        }
        s.bounds.map(|(_, hi)| hi + DRIFT)
    }

    /// The estimated offset (OEM minus keyway) and its uncertainty, if known.
    pub fn estimate(&self) -> Option<(Duration, Duration)> {
        let s = lock(&self.state);
        s.bounds
            .map(|(lo, hi)| ((lo + hi) / 2_i32, (hi - lo) / 2_i32))
    }
}

/// The `Date` of an answer (RFC 9110 `HTTP-date`), if it has a valid one.
pub fn date_of(headers: &http::HeaderMap) -> Option<OffsetDateTime> {
    let v = headers.get(http::header::DATE)?.to_str().ok()?;
    let t = httpdate::parse_http_date(v).ok()?;
    Some(OffsetDateTime::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-06 12:00:00 UTC);

    fn ms(n: i64) -> Duration {
        Duration::milliseconds(n)
    }

    /// An answer from an OEM whose clock is `offset` ahead, sent at `t`, taking 40 ms.
    fn answer(c: &OemClock, t: OffsetDateTime, offset: Duration) {
        let written = t + ms(20) + offset;
        let date = written.replace_millisecond(0).unwrap();
        c.date(t, t + ms(40), date);
    }

    #[test]
    fn bounds_hold_the_true_offset_and_narrow() {
        for offset in [ms(0), ms(2_000), ms(30_000), ms(-30_000), ms(2_730)] {
            let c = OemClock::new("t");
            for i in 0..20 {
                answer(&c, T0 + ms(i * 137), offset);
                let (mid, unc) = c.estimate().unwrap();
                assert!(
                    mid - unc <= offset && offset <= mid + unc,
                    "{offset} in {mid}±{unc}"
                );
            }
            let (_, unc) = c.estimate().unwrap();
            assert!(unc < ms(400), "twenty answers narrow it: {unc}");
            let hi = c.ahead_at_most(T0 + ms(3_000)).unwrap();
            assert!(hi >= offset, "{hi} bounds {offset}");
        }
    }

    #[test]
    fn a_stepped_clock_replaces_the_bounds() {
        let c = OemClock::new("t");
        answer(&c, T0, ms(0));
        answer(&c, T0 + ms(500), ms(30_000));
        let hi = c.ahead_at_most(T0 + ms(600)).unwrap();
        assert!(hi >= ms(30_000), "{hi}");
    }

    #[test]
    fn no_answers_or_old_ones_mean_no_trust() {
        let c = OemClock::new("t");
        assert_eq!(c.ahead_at_most(T0), None);
        answer(&c, T0, ms(0));
        assert!(c.ahead_at_most(T0 + ms(1_000)).is_some());
        assert_eq!(c.ahead_at_most(T0 + ms(40) + FRESH), None);
    }

    #[test]
    fn a_stamp_ahead_of_the_oems_own_clock_withdraws_trust() {
        let c = OemClock::new("t");
        answer(&c, T0, ms(0));
        // A stamp in the past of the OEM's clock is fine.
        c.stamp(T0 - ms(5_000), T0 + ms(40));
        assert!(c.ahead_at_most(T0 + ms(100)).is_some());
        // The car's clock runs 3 s ahead of the cloud's.
        c.stamp(T0 + ms(3_000), T0 + ms(40));
        assert_eq!(c.ahead_at_most(T0 + ms(100)), None);
        assert_eq!(c.ahead_at_most(T0 + DISTRUST - ms(1)), None);
    }

    #[test]
    fn dates_are_read_from_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::DATE,
            "Sun, 06 Dec 2026 12:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(date_of(&h), Some(T0));
        h.insert(http::header::DATE, "yesterday".parse().unwrap());
        assert_eq!(date_of(&h), None);
    }
}
