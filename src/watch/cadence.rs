//! How often a watched car is read: every `watch.min_period`, a grant's car while its
//! unlock and relock are under way every `watch.busy_period`, all pauses of an OEM
//! stretched alike so that watching takes at most `watch.quota_share` of its request
//! quota; and a car found asleep or offline read ever less often.

use std::time::Duration;

/// How many cars of one OEM are watched, busy and calm.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Load {
    pub(super) busy: usize,
    pub(super) calm: usize,
}

/// `base` (one of `periods`: busy, calm) stretched so that reading `load` cars at
/// their periods, `per_read` requests each, takes at most `budget` requests per second
/// (`None`: the OEM sets no quota); every pause stretches alike, at most to a day.
pub(super) fn stretched(
    base: Duration,
    (hot, calm): (Duration, Duration),
    load: Load,
    per_read: f64,
    budget: Option<f64>,
) -> Duration {
    let Some(budget) = budget.filter(|b| *b > 0.0) else {
        return base;
    };
    let wanted =
        per_read * (load.busy as f64 / hot.as_secs_f64() + load.calm as f64 / calm.as_secs_f64());
    let stretch = (wanted / budget).max(1.0);
    Duration::from_secs_f64((base.as_secs_f64() * stretch).min(86_400.0))
}

/// The pause before the next read of a car found asleep or offline `streak` times in a
/// row: the period doubled per reading, at most `longest` (never less than the period);
/// `None` while it is not away.
pub(super) fn backoff(period: Duration, streak: u32, longest: Duration) -> Option<Duration> {
    (streak > 0).then(|| {
        let doubled = period.saturating_mul(1 << streak.min(16));
        doubled.min(longest.max(period))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_cars_are_read_more_often_and_the_quota_share_holds() {
        let (hot, calm) = (Duration::from_secs(5), Duration::from_secs(30));
        let load = Load { busy: 2, calm: 10 };
        // A quota with room: each at its own period.
        let roomy = Some(100.0);
        assert_eq!(stretched(hot, (hot, calm), load, 2.0, roomy), hot);
        assert_eq!(stretched(calm, (hot, calm), load, 2.0, roomy), calm);
        assert_eq!(stretched(hot, (hot, calm), load, 2.0, None), hot);
        // A tight one (0.5 request/s for all): both stretch alike, and together they
        // take no more than it.
        let tight = Some(0.5);
        let (h, c) = (
            stretched(hot, (hot, calm), load, 2.0, tight),
            stretched(calm, (hot, calm), load, 2.0, tight),
        );
        assert!(h > hot && c > calm, "{h:?} {c:?}");
        assert_eq!(c.as_millis() / h.as_millis(), 6, "the ratio stays");
        let used = 2.0 * (2.0 / h.as_secs_f64() + 10.0 / c.as_secs_f64());
        assert!((used - 0.5).abs() < 1e-9, "{used}");
    }

    #[test]
    fn a_sleeping_car_is_read_ever_less_often_up_to_the_longest_pause() {
        let (p, longest) = (Duration::from_secs(30), Duration::from_secs(600));
        assert_eq!(backoff(p, 0, longest), None, "awake: the period");
        let pauses: Vec<u64> = (1..=7)
            .map(|n| backoff(p, n, longest).unwrap().as_secs())
            .collect();
        assert_eq!(pauses, [60, 120, 240, 480, 600, 600, 600]);
        // A grant's car: at most twice the period; never less than the period.
        assert_eq!(backoff(p, 9, p * 2), Some(p * 2));
        assert_eq!(backoff(p, 1, Duration::ZERO), Some(p));
        assert_eq!(backoff(p, u32::MAX, longest), Some(longest));
    }
}
