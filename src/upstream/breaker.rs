//! A circuit breaker per OEM: after `failures` consecutive failed exchanges (no answer,
//! or a 5xx), or when at least half of the last `window` exchanges failed, it opens and
//! refuses requests at once (`CircuitOpen` with the time left, so callers get
//! `503 circuit_open` + `Retry-After` instead of waiting on a dead OEM). After `open_for`
//! it lets one probe through (half-open): success closes it, failure opens it again.
//! 4xx answers count as successes — the OEM is up and answering.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use keyway_adapter::TransportError;
use tokio::time::Instant;

use crate::metrics;

/// Breaker settings for one OEM.
#[derive(Clone, Debug)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// Exchanges looked at for the failure ratio (at least half failing opens it).
    pub window: usize,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
    recent: VecDeque<bool>,
}

/// The shared breaker state of one OEM.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    oem: &'static str,
}

/// What a caller may do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Go,
    /// Go ahead as the half-open probe.
    Probe,
    /// Refused for this long.
    Refused(Duration),
}

/// Whether an exchange counts against the OEM's health. A `501 Not Implemented` is the
/// OEM saying it cannot do this (Smartcar's `COMPATIBILITY`/`VEHICLE_NOT_CAPABLE` for a
/// make it cannot command): a definite answer, not an outage, so it opens no breaker
/// for the OEM's other cars (schemathesis's run found a Smartcar car answered `503
/// circuit_open` after another car's `not_capable`s).
fn failed(outcome: &Result<Response<Bytes>, TransportError>) -> bool {
    match outcome {
        Ok(r) => r.status().is_server_error() && r.status() != http::StatusCode::NOT_IMPLEMENTED,
        Err(TransportError::Connect(_) | TransportError::Timeout | TransportError::Io(_)) => true,
        Err(_) => false,
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings, oem: &'static str) -> Self {
        metrics::breaker_state(oem, 0);
        Self {
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                recent: VecDeque::new(),
            }),
            oem,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Whether a request may go now.
    pub fn admit(&self) -> Admission {
        let mut i = self.lock();
        match i.state {
            State::Closed => Admission::Go,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    Admission::Refused(until - now)
                } else {
                    i.state = State::HalfOpen { probing: true };
                    metrics::breaker_state(self.oem, 1);
                    Admission::Probe
                }
            }
            State::HalfOpen { probing: true } => Admission::Refused(Duration::from_secs(1)),
            State::HalfOpen { probing: false } => {
                i.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
        }
    }

    /// Records an exchange's outcome.
    pub fn record(&self, failure: bool) {
        let mut i = self.lock();
        let s = &self.settings;
        i.recent.push_back(failure);
        while i.recent.len() > s.window {
            i.recent.pop_front();
        }
        i.consecutive = if failure { i.consecutive + 1 } else { 0 };
        let ratio_trips =
            i.recent.len() >= s.window && i.recent.iter().filter(|f| **f).count() * 2 >= s.window;
        let open = match i.state {
            State::HalfOpen { .. } => failure,
            State::Closed => i.consecutive >= s.failures || ratio_trips,
            State::Open { .. } => false,
        };
        if open {
            i.state = State::Open {
                until: Instant::now() + s.open_for,
            };
            i.recent.clear();
            tracing::warn!(
                oem = self.oem,
                open_for_ms = s.open_for.as_millis() as u64,
                "circuit breaker opened"
            );
            metrics::breaker_state(self.oem, 2);
        } else if !failure && matches!(i.state, State::HalfOpen { .. }) {
            i.state = State::Closed;
            i.consecutive = 0;
            tracing::info!(oem = self.oem, "circuit breaker closed");
            metrics::breaker_state(self.oem, 0);
        }
    }
}

impl super::Policy for Arc<Breaker> {
    async fn handle<B: super::Below>(
        &self,
        inner: &B,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, TransportError> {
        if let Admission::Refused(retry_after) = self.admit() {
            metrics::breaker_rejection(self.oem);
            return Err(TransportError::CircuitOpen { retry_after });
        }
        let outcome = inner.send(req).await;
        self.record(failed(&outcome));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            BreakerSettings {
                failures: 3,
                window: 10,
                open_for: Duration::from_secs(5),
            },
            "test",
        )
    }

    #[test]
    fn not_implemented_is_an_answer_not_an_outage() {
        let answer = |status: u16| -> Result<Response<Bytes>, TransportError> {
            Ok(Response::builder()
                .status(status)
                .body(Bytes::new())
                .unwrap())
        };
        assert!(
            !failed(&answer(501)),
            "the OEM cannot do this: a definite answer"
        );
        for status in [500, 502, 503, 504] {
            assert!(failed(&answer(status)), "{status}");
        }
        assert!(!failed(&answer(404)));
        assert!(failed(&Err(TransportError::Timeout)));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_consecutive_failures_probes_and_closes() {
        let b = breaker();
        for _ in 0..3 {
            assert_eq!(b.admit(), Admission::Go);
            b.record(true);
        }
        assert!(matches!(b.admit(), Admission::Refused(_)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(), Admission::Probe);
        // Only one probe at a time.
        assert!(matches!(b.admit(), Admission::Refused(_)));
        b.record(false);
        assert_eq!(b.admit(), Admission::Go);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again() {
        let b = breaker();
        for _ in 0..3 {
            b.record(true);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(), Admission::Probe);
        b.record(true);
        assert!(matches!(b.admit(), Admission::Refused(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_a_failure_ratio_without_a_streak() {
        let b = breaker();
        for i in 0..10 {
            b.record(i % 2 == 0);
        }
        assert!(matches!(b.admit(), Admission::Refused(_)));
    }
}
