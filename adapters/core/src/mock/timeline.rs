//! A mock car's life in time: when commands reach it, when it executes them, and the
//! lagging view of it that its OEM's cloud answers reads with.
//!
//! Real OEMs are not instant (OEM-REFERENCE.md, and Tesla's protocol.md: messages to
//! the car may be dropped, delayed or reordered): the cloud's view of the car lags the
//! car, a command to a sleeping car waits in a queue until the car wakes or the queue
//! time ends, and a command can reach the car late or twice. [`Timeline`] models that
//! for one car, lazily — nothing runs in the background; whatever is due is applied
//! when the car is next looked at — so it is exact under paused tokio time. Every
//! execution is journalled with its time, which is the oracle for "did the car do it,
//! and how often". [`History`] is one value over time and its lagging view (the lock
//! here, a car's openings in the garage).

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

/// How one mock car's OEM behaves in time. All zero (the default): instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarTiming {
    /// The cloud's view of the car's lock lags the car by this (ms).
    #[serde(default)]
    pub state_lag_ms: u64,
    /// A command sent while the car sleeps waits this long for it to wake, then
    /// expires (ms). 0: the OEM's own sleeping behaviour, no queue.
    #[serde(default)]
    pub queue_ms: u64,
    /// Every command reaches the car this much later than the OEM says (ms).
    #[serde(default)]
    pub late_ms: u64,
    /// Every command reaches the car twice.
    #[serde(default)]
    pub duplicate: bool,
}

/// What a fault rule adds to one command on its way (request extension set by the
/// fault layer's `late` and `duplicate` actions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryFault {
    /// Extra delay before the car executes it.
    pub late: Duration,
    /// The car executes it twice.
    pub duplicate: bool,
}

/// Where one delivered command stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// On its way, or queued for the sleeping car.
    Waiting,
    /// The car executed it (at least once).
    Executed,
    /// The car slept through the queue time; it will never execute.
    Expired,
}

/// One command the car executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The car.
    pub vin: String,
    /// `lock` or `unlock`.
    pub command: String,
    /// The delivery it belongs to (one send can execute twice).
    pub delivery: u64,
    /// When the car executed it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug)]
struct Inbound {
    id: u64,
    lock_to: bool,
    /// When it reaches the car (if awake).
    due: Instant,
    /// Queued for a sleeping car: expires then.
    expires: Option<Instant>,
    copies: u8,
}

/// A value of a car over time as the car lived it (its lock, its openings), and as its
/// OEM's cloud sees it a state lag later.
#[derive(Debug)]
pub struct History<T> {
    /// The value before the first recorded change.
    initial: T,
    /// (when, value), oldest first; the oldest are folded into `initial`.
    changes: VecDeque<(Instant, T)>,
}

impl<T: Copy + PartialEq> History<T> {
    /// A value that is `value` now.
    pub fn new(value: T) -> Self {
        Self {
            initial: value,
            changes: VecDeque::new(),
        }
    }

    /// The value changes to `value` at `at` (no entry when it does not change).
    pub fn set(&mut self, value: T, at: Instant) {
        if self.current() != value {
            self.changes.push_back((at, value));
            while self.changes.len() > KEEP {
                if let Some((_, v)) = self.changes.pop_front() {
                    self.initial = v;
                }
            }
        }
    }

    /// The value now.
    pub fn current(&self) -> T {
        self.changes.back().map_or(self.initial, |(_, v)| *v)
    }

    /// The value as seen `lag` late, and when that was.
    pub fn seen(&self, lag: Duration) -> (T, Instant) {
        let now = Instant::now();
        let Some(seen_at) = now.checked_sub(lag) else {
            return (self.initial, now);
        };
        let value = self
            .changes
            .iter()
            .rev()
            .find(|(at, _)| *at <= seen_at)
            .map_or(self.initial, |(_, v)| *v);
        (value, seen_at)
    }
}

/// One car's lock over time.
#[derive(Debug)]
pub struct Timeline {
    timing: CarTiming,
    /// The lock as the car lived it.
    lock: History<bool>,
    inbound: Vec<Inbound>,
    done: Vec<(u64, Delivery)>,
    woke_at: Option<Instant>,
}

const KEEP: usize = 64;

impl Timeline {
    /// A car that is `locked` now.
    pub fn new(locked: bool, timing: CarTiming) -> Self {
        Self {
            timing,
            lock: History::new(locked),
            inbound: Vec::new(),
            done: Vec::new(),
            woke_at: None,
        }
    }

    /// Sets the timing.
    pub fn set_timing(&mut self, timing: CarTiming) {
        self.timing = timing;
    }

    /// The timing.
    pub fn timing(&self) -> CarTiming {
        self.timing
    }

    /// The car's lock changes to `locked` now (a key fob, a test, an execution).
    pub fn set(&mut self, locked: bool, at: Instant) {
        self.lock.set(locked, at);
    }

    /// The car's lock now.
    pub fn current(&self) -> bool {
        self.lock.current()
    }

    /// The car woke now: queued commands may run.
    pub fn woke(&mut self, at: Instant) {
        self.woke_at = Some(at);
    }

    /// A command reaches the OEM now, to be executed by the car `after` from now (plus
    /// the car's and the fault's lateness). `asleep`: queued until the car wakes (when
    /// the car has a queue time). `id` names the delivery.
    pub fn deliver(
        &mut self,
        id: u64,
        lock_to: bool,
        after: Duration,
        asleep: bool,
        f: DeliveryFault,
    ) {
        let now = Instant::now();
        let late = Duration::from_millis(self.timing.late_ms) + f.late;
        let expires = (asleep && self.timing.queue_ms > 0)
            .then(|| now + Duration::from_millis(self.timing.queue_ms));
        self.inbound.push(Inbound {
            id,
            lock_to,
            due: now + after + late,
            expires,
            copies: if self.timing.duplicate || f.duplicate {
                2
            } else {
                1
            },
        });
    }

    /// Applies what is due by now; returns the executions (`(delivery, lock_to, at)`).
    /// `asleep`: whether the car sleeps now.
    pub fn settle(&mut self, asleep: bool) -> Vec<(u64, bool, Instant)> {
        let now = Instant::now();
        let mut ran = Vec::new();
        let mut keep = Vec::new();
        let mut due: Vec<Inbound> = std::mem::take(&mut self.inbound);
        due.sort_by_key(|i| (i.due, i.id));
        for i in due {
            let at = match i.expires {
                // Queued for a sleeping car: it runs once the car woke, if in time.
                Some(expires) => match self.woke_at.filter(|w| *w <= expires && !asleep) {
                    Some(woke) => Some(woke.max(i.due)),
                    None if now >= expires => {
                        self.done.push((i.id, Delivery::Expired));
                        continue;
                    }
                    None => None,
                },
                None => Some(i.due),
            };
            match at {
                Some(at) if at <= now => {
                    for _ in 0..i.copies {
                        self.set(i.lock_to, at);
                        ran.push((i.id, i.lock_to, at));
                    }
                    self.done.push((i.id, Delivery::Executed));
                }
                _ => keep.push(i),
            }
        }
        self.inbound = keep;
        if self.done.len() > 4 * KEEP {
            self.done.drain(..2 * KEEP);
        }
        ran
    }

    /// Where delivery `id` stands (after [`Timeline::settle`]).
    pub fn delivery(&self, id: u64) -> Option<Delivery> {
        if self.inbound.iter().any(|i| i.id == id) {
            return Some(Delivery::Waiting);
        }
        self.done
            .iter()
            .rev()
            .find(|(d, _)| *d == id)
            .map(|(_, s)| *s)
    }

    /// The lock as the OEM's cloud sees it now, and when the car reported it.
    pub fn view(&self) -> (bool, OffsetDateTime) {
        let (locked, at) = self
            .lock
            .seen(Duration::from_millis(self.timing.state_lag_ms));
        (locked, wall(at))
    }
}

/// How far this process's mock OEMs' clock runs ahead of the machine's (ms; negative:
/// behind). Real OEM clouds and cars are not NTP-exact: `keyway mock --clock-offset-ms`
/// sets it for a whole mock process, as a skewed system clock would.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Sets the mocks' clock offset for this process (see [`wall`]): every timestamp they
/// report and every `Date` they answer with moves by it; their timing does not.
pub fn set_clock_offset(ms: i64) {
    OFFSET_MS.store(ms, Ordering::SeqCst);
}

fn base() -> &'static (OffsetDateTime, Instant) {
    static BASE: OnceLock<(OffsetDateTime, Instant)> = OnceLock::new();
    BASE.get_or_init(|| (OffsetDateTime::now_utc(), Instant::now()))
}

/// Wall-clock time of a tokio instant as the mock OEMs' clock shows it: real time (plus
/// the offset of [`set_clock_offset`]) in a running mock, and time that follows the
/// paused clock in a simulation (milliseconds).
pub fn wall(at: Instant) -> OffsetDateTime {
    let (wall0, at0) = base();
    let t = if at >= *at0 {
        *wall0 + (at - *at0)
    } else {
        *wall0 - (*at0 - at)
    };
    let t = t + time::Duration::milliseconds(OFFSET_MS.load(Ordering::Relaxed));
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// RFC 3339, as OEM answers carry times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Now, as the mocks report it (see [`wall`]).
pub fn now_utc() -> OffsetDateTime {
    wall(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[tokio::test(start_paused = true)]
    async fn the_view_lags_the_car() {
        let mut t = Timeline::new(
            true,
            CarTiming {
                state_lag_ms: 5_000,
                ..CarTiming::default()
            },
        );
        tokio::time::advance(MS(10_000)).await;
        t.deliver(1, false, Duration::ZERO, false, DeliveryFault::default());
        assert_eq!(t.settle(false).len(), 1);
        assert!(!t.current());
        let (seen, at) = t.view();
        assert!(seen, "the cloud still shows the old state");
        assert!(at < now_utc());
        tokio::time::advance(MS(5_000)).await;
        assert!(!t.view().0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleeping_car_runs_its_queue_when_it_wakes_or_lets_it_expire() {
        let timing = CarTiming {
            queue_ms: 60_000,
            ..CarTiming::default()
        };
        let mut t = Timeline::new(true, timing);
        t.deliver(1, false, Duration::ZERO, true, DeliveryFault::default());
        tokio::time::advance(MS(30_000)).await;
        assert!(t.settle(true).is_empty());
        assert_eq!(t.delivery(1), Some(Delivery::Waiting));
        t.woke(Instant::now());
        assert_eq!(t.settle(false).len(), 1);
        assert_eq!(t.delivery(1), Some(Delivery::Executed));

        let mut t = Timeline::new(true, timing);
        t.deliver(2, false, Duration::ZERO, true, DeliveryFault::default());
        tokio::time::advance(MS(61_000)).await;
        assert!(t.settle(true).is_empty());
        assert_eq!(t.delivery(2), Some(Delivery::Expired));
        assert!(t.current());
    }

    #[tokio::test(start_paused = true)]
    async fn late_and_duplicate_deliveries() {
        let mut t = Timeline::new(true, CarTiming::default());
        let f = DeliveryFault {
            late: MS(3_000),
            duplicate: true,
        };
        t.deliver(7, false, MS(1_000), false, f);
        tokio::time::advance(MS(3_999)).await;
        assert!(t.settle(false).is_empty());
        tokio::time::advance(MS(1)).await;
        let ran = t.settle(false);
        assert_eq!(ran.len(), 2, "delivered twice");
        assert!(ran.iter().all(|(id, to, _)| *id == 7 && !*to));
    }
}
