//! A lock state read from the car ([`Observation`]) and the rule for when it proves
//! anything about a command: only when it was observed after the send — stamped later
//! than the send by more than the OEM's clock can run ahead of keyway's
//! (`upstream::clock`: its `Date` answers bound that; without such bounds, or when the
//! car's own clock writes the stamps (`Stamps::Car`), no OEM timestamp counts), or read
//! the OEM's `state_lag` after the send by keyway's own clock. [`look`] takes one.

use keyway_adapter::{OemTiming, Stamps};

use crate::vehicles::OemCall;

/// A lock state read from the car.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation {
    /// Locked?
    pub locked: bool,
    /// When the car reported it (the OEM's timestamp), if the OEM says.
    pub reported_at: Option<time::OffsetDateTime>,
    /// When keyway asked.
    pub read_at: time::OffsetDateTime,
    /// The most the OEM's timestamps could run ahead of keyway's clock when it
    /// answered; `None`: its timestamps prove nothing.
    pub ahead_at_most: Option<time::Duration>,
}

impl Observation {
    /// Whether this state was certainly observed after `t`: stamped later than `t` by
    /// more than the OEM's clock can run ahead, or read a state lag after `t`.
    pub fn after(&self, t: time::OffsetDateTime, timing: &OemTiming) -> bool {
        let stamped_after = match (self.reported_at, self.ahead_at_most) {
            (Some(r), Some(ahead)) => r - ahead > t,
            _ => false,
        };
        stamped_after || self.surely_after(t, timing)
    }

    /// Whether this state was observed after `t` without trusting the OEM's timestamp:
    /// read a full state lag after it. Ending a watch on the opposite state rests on this
    /// alone, so an adapter that dates a stale state "now" cannot end it early.
    pub fn surely_after(&self, t: time::OffsetDateTime, timing: &OemTiming) -> bool {
        self.read_at >= t + timing.state_lag
    }
}

/// Reads the car's lock state now (waking it if needed); `None` if that failed or the
/// OEM reports the lock as unknown (which tells nothing).
pub(crate) async fn look(oem: &OemCall<'_>) -> Option<Observation> {
    let vehicle = oem.vehicle;
    let read_at = oem.clock.now();
    match oem.watch_security().await {
        Ok(s) => {
            // Only the OEM's servers' stamps can be bounded (by its `Date` answers).
            let clock = &oem.oem.clock;
            let received = oem.clock.now();
            let server = oem.timing().stamps == Stamps::Server;
            if let (true, Some(r)) = (server, s.recorded_at) {
                clock.stamp(r, received);
            }
            s.locked.map(|locked| Observation {
                locked,
                reported_at: s.recorded_at,
                read_at,
                ahead_at_most: server.then(|| clock.ahead_at_most(received)).flatten(),
            })
        }
        Err(e) => {
            tracing::debug!(vehicle = %vehicle.id, error = %e.at(&vehicle.oem),
                "could not read the lock state");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use time::macros::datetime;

    const TIMING: OemTiming = OemTiming {
        state_lag: Duration::from_secs(60),
        command_window: Duration::from_secs(300),
        stamps: keyway_adapter::Stamps::Server,
    };

    #[test]
    fn only_states_observed_after_the_send_count() {
        let sent = datetime!(2026-12-02 12:00:00 UTC);
        let o = |reported: i64, read: i64, ahead: Option<i64>| Observation {
            locked: true,
            reported_at: Some(sent + time::Duration::seconds(reported)),
            read_at: sent + time::Duration::seconds(read),
            ahead_at_most: ahead.map(time::Duration::seconds),
        };
        // Reported before the send (the cloud still shows the old state): proves nothing.
        assert!(!o(-10, 1, Some(0)).after(sent, &TIMING));
        // Reported after the send by a clock known to be right: counts.
        assert!(o(2, 2, Some(1)).after(sent, &TIMING));
        // The same stamp from a clock that may run 2 s (or 30 s) ahead: proves nothing.
        assert!(!o(2, 2, Some(2)).after(sent, &TIMING));
        assert!(!o(29, 29, Some(30)).after(sent, &TIMING));
        // Nothing known of the OEM's clock: no stamp counts, however late.
        assert!(!o(59, 59, None).after(sent, &TIMING));
        // An old timestamp, but read a full state lag after the send: counts.
        assert!(o(-10, 60, None).after(sent, &TIMING));
        // `failed` never rests on the OEM's timestamp.
        assert!(!o(30, 30, Some(0)).surely_after(sent, &TIMING));
        assert!(o(-10, 60, None).surely_after(sent, &TIMING));
    }
}
