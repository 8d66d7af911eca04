//! Fault injection for every mock OEM, mounted under `/__mock/faults`.
//!
//! A fault is a rule: which requests (`method`, `path_contains`), what happens
//! (`action`), and when (`times`: the next N matching requests; `probability` with the
//! mock's seed, so a run is reproducible; `after_ms`/`until_ms`: a window counted from
//! when the rule was added). The first matching rule that triggers wins.
//!
//! Actions (`"type"`):
//! - `status` — answer `status` (with optional JSON `body` and `retry_after` seconds)
//!   without reaching the OEM logic: nothing is applied. `429` + `retry_after` makes a
//!   429 storm; `503` an outage.
//! - `latency` — wait `ms` (or a random time in `min_ms..=max_ms`), then proceed.
//! - `hang` — never answer (the client's timeout fires); nothing is applied.
//! - `reset_before` — drop the connection before the OEM logic runs: nothing applied.
//! - `reset_after` — run the OEM logic (a command *is* applied), then drop the
//!   connection mid-answer: the client cannot know it happened.
//! - `malformed` — run the OEM logic, then answer with a body that is not JSON.
//! - `truncated` — run the OEM logic, then cut the JSON body in half.
//! - `late` — the command in this request reaches the car `ms` later than the OEM says
//!   (the answer is not delayed).
//! - `duplicate` — the command in this request reaches the car twice.
//!
//! `POST /__mock/faults` adds a rule, `GET` lists them, `DELETE` clears them;
//! `PUT /__mock/faults/seed` with `{"seed": N}` reseeds the random source.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use bytes::Bytes;
use http_body::Frame;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::lock;
use super::timeline::DeliveryFault;

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Answer this status without running the OEM logic.
    Status {
        /// HTTP status.
        status: u16,
        /// JSON body.
        #[serde(default)]
        body: Option<serde_json::Value>,
        /// `Retry-After` seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Delay, then proceed.
    Latency {
        /// Fixed delay.
        #[serde(default)]
        ms: u64,
        /// Random delay lower bound (with `max_ms`).
        #[serde(default)]
        min_ms: Option<u64>,
        /// Random delay upper bound.
        #[serde(default)]
        max_ms: Option<u64>,
    },
    /// Never answer.
    Hang,
    /// Drop the connection before the OEM logic runs.
    ResetBefore,
    /// Run the OEM logic, then drop the connection mid-answer.
    ResetAfter,
    /// Run the OEM logic, then answer a non-JSON body.
    Malformed,
    /// Run the OEM logic, then answer half the body.
    Truncated,
    /// The command reaches the car this much later.
    Late {
        /// The extra delay.
        ms: u64,
    },
    /// The command reaches the car twice.
    Duplicate,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Only paths containing this (any when absent).
    #[serde(default)]
    pub path_contains: Option<String>,
    /// What happens.
    pub action: Action,
    /// Only the next N matching requests.
    #[serde(default)]
    pub times: Option<u32>,
    /// Only with this probability (0..=1), drawn from the seeded source.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Only from this long after the rule was added.
    #[serde(default)]
    pub after_ms: Option<u64>,
    /// Only until this long after the rule was added.
    #[serde(default)]
    pub until_ms: Option<u64>,
}

impl Fault {
    /// A rule for `action` on paths containing `path`.
    pub fn on(path: &str, action: Action) -> Self {
        Self {
            method: None,
            path_contains: Some(path.into()),
            action,
            times: None,
            probability: None,
            after_ms: None,
            until_ms: None,
        }
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Only with probability `p`.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
}

#[derive(Debug)]
struct Rule {
    fault: Fault,
    remaining: Option<u32>,
    added: Instant,
}

/// SplitMix64: a tiny seeded random source, so faulty runs replay exactly.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The fault rules of one mock.
#[derive(Clone, Debug)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
    rng: Arc<Mutex<Rng>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Arc::default(),
            rng: Arc::new(Mutex::new(Rng(42))),
        }
    }
}

impl Faults {
    /// Adds a rule.
    pub fn add(&self, fault: Fault) {
        lock(&self.rules).push(Rule {
            remaining: fault.times,
            fault,
            added: Instant::now(),
        });
    }

    /// Makes the next request whose path contains `path` answer the OEM's rate limit:
    /// `429` with `body` (the OEM's own, or none) and `Retry-After: retry_after_s`; the
    /// wait it announces (every mock's `limit_next`).
    pub fn limit_next(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
        retry_after_s: u64,
    ) -> Option<std::time::Duration> {
        let status = Action::Status {
            status: 429,
            body,
            retry_after: Some(retry_after_s),
        };
        self.add(Fault::on(path, status).times(1));
        Some(std::time::Duration::from_secs(retry_after_s))
    }

    /// Removes every rule.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// Reseeds the random source.
    pub fn seed(&self, seed: u64) {
        *lock(&self.rng) = Rng(seed);
    }

    fn pick(&self, method: &str, path: &str) -> Option<Action> {
        if path.starts_with("/__mock") {
            return None;
        }
        let mut rules = lock(&self.rules);
        for rule in rules.iter_mut() {
            let f = &rule.fault;
            if f.method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || f.path_contains
                    .as_deref()
                    .is_some_and(|p| !path.contains(p))
                || rule.remaining == Some(0)
            {
                continue;
            }
            let age = rule.added.elapsed();
            if f.after_ms.is_some_and(|a| age < Duration::from_millis(a))
                || f.until_ms.is_some_and(|u| age >= Duration::from_millis(u))
            {
                continue;
            }
            if let Some(p) = f.probability
                && lock(&self.rng).unit() >= p
            {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            return Some(f.action.clone());
        }
        None
    }

    fn random_between(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + lock(&self.rng).next() % (hi - lo + 1)
    }

    /// Wraps `router` with the fault layer and mounts the `/__mock/faults` routes.
    pub fn wrap(&self, router: Router) -> Router {
        let control = Router::new()
            .route(
                "/__mock/faults",
                get(|State(f): State<Faults>| async move {
                    let rules: Vec<Fault> =
                        lock(&f.rules).iter().map(|r| r.fault.clone()).collect();
                    Json(rules)
                })
                .post(
                    |State(f): State<Faults>, Json(fault): Json<Fault>| async move {
                        f.add(fault);
                        StatusCode::CREATED
                    },
                )
                .delete(|State(f): State<Faults>| async move {
                    f.clear();
                    StatusCode::NO_CONTENT
                }),
            )
            .route(
                "/__mock/faults/seed",
                put(|State(f): State<Faults>, Json(s): Json<Seed>| async move {
                    f.seed(s.seed);
                    StatusCode::NO_CONTENT
                }),
            )
            .with_state(self.clone());
        router
            .layer(middleware::from_fn_with_state(self.clone(), inject))
            .merge(control)
    }
}

#[derive(Deserialize)]
struct Seed {
    seed: u64,
}

/// A body that fails at once: the server drops the connection mid-answer.
struct Broken;

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))))
    }
}

fn broken(status: StatusCode, extensions: http::Extensions) -> Response {
    let mut resp = Response::new(Body::new(Broken));
    *resp.status_mut() = status;
    *resp.extensions_mut() = extensions;
    resp
}

fn delivery_fault(req: &mut Request) -> &mut DeliveryFault {
    req.extensions_mut()
        .get_or_insert_default::<DeliveryFault>()
}

async fn inject(State(f): State<Faults>, req: Request, next: Next) -> Response {
    let Some(action) = f.pick(req.method().as_str(), req.uri().path()) else {
        return next.run(req).await;
    };
    match action {
        Action::Status {
            status,
            body,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = match body {
                Some(b) => (status, Json(b)).into_response(),
                None => status.into_response(),
            };
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, s.into());
            }
            resp
        }
        Action::Latency { ms, min_ms, max_ms } => {
            let delay = match (min_ms, max_ms) {
                (Some(lo), Some(hi)) => f.random_between(lo, hi),
                _ => ms,
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            next.run(req).await
        }
        Action::Late { ms } => {
            let mut req = req;
            let f = delivery_fault(&mut req);
            f.late += Duration::from_millis(ms);
            next.run(req).await
        }
        Action::Duplicate => {
            let mut req = req;
            delivery_fault(&mut req).duplicate = true;
            next.run(req).await
        }
        Action::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Action::ResetBefore => broken(StatusCode::OK, http::Extensions::new()),
        Action::ResetAfter => {
            let resp = next.run(req).await;
            let (parts, _) = resp.into_parts();
            broken(parts.status, parts.extensions)
        }
        Action::Malformed => {
            let (parts, _) = next.run(req).await.into_parts();
            let mut resp = Response::from_parts(parts, Body::from("<html>upstream error</html>"));
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
            resp
        }
        Action::Truncated => {
            let (parts, body) = next.run(req).await.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            let mut resp = Response::from_parts(parts, Body::from(half));
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn count_and_path_triggers() {
        let f = Faults::default();
        f.add(Fault::on("/lock", Action::Hang).times(2));
        assert_eq!(f.pick("POST", "/v/1/lock"), Some(Action::Hang));
        assert_eq!(f.pick("POST", "/v/1/unlock"), None);
        assert_eq!(f.pick("POST", "/v/1/lock"), Some(Action::Hang));
        assert_eq!(f.pick("POST", "/v/1/lock"), None);
        assert_eq!(f.pick("GET", "/__mock/state"), None);
    }

    #[tokio::test]
    async fn probability_is_reproducible_with_a_seed() {
        let draw = |seed| {
            let f = Faults::default();
            f.seed(seed);
            f.add(Fault::on("/", Action::ResetBefore).probability(0.2));
            (0..1000)
                .map(|_| f.pick("GET", "/x").is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let hits = draw(7).iter().filter(|h| **h).count();
        assert!((150..250).contains(&hits), "{hits} of 1000 at p=0.2");
    }

    #[tokio::test(start_paused = true)]
    async fn time_windows() {
        let f = Faults::default();
        f.add(Fault {
            after_ms: Some(100),
            until_ms: Some(200),
            ..Fault::on("/", Action::Hang)
        });
        assert_eq!(f.pick("GET", "/x"), None);
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!(f.pick("GET", "/x"), Some(Action::Hang));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(f.pick("GET", "/x"), None);
    }
}
