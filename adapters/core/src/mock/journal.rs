//! The request journal: what the "OEM" saw, for tests to count (timing, the keyway
//! command id, whether the OEM logic applied a command), and [`instrument`], which
//! mounts the journal and the fault rules on a mock's router.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use tokio::time::Instant;

use super::faults::Faults;
use super::kit::lock;
use super::timeline;

/// Set as a response extension by a mock handler that changed the vehicle's state (a
/// command applied), so the journal can tell applied commands from refused ones.
#[derive(Clone, Copy, Debug)]
pub struct Applied;

/// Set as a response extension to label what a request was where its path does not say
/// (Tesla's `signed_command` carries handshakes and commands alike: `"handshake"`).
#[derive(Clone, Copy, Debug)]
pub struct Note(pub &'static str);

/// One request the mock saw.
#[derive(Clone, Debug, Serialize)]
pub struct JournalEntry {
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Status the mock answered.
    pub status: u16,
    /// The keyway command the request carried out (`X-Keyway-Command-Id`).
    pub command_id: Option<String>,
    /// Whether the OEM logic applied a command (even if the answer was then lost).
    pub applied: bool,
    /// What the request was, where its path does not say ([`Note`]).
    pub note: Option<&'static str>,
    /// When the request arrived, ms since the journal began.
    pub started_ms: u64,
    /// When it was answered, ms since the journal began.
    pub ended_ms: u64,
}

/// Every request a mock saw, in order.
#[derive(Clone, Debug)]
pub struct Journal(Arc<Mutex<Vec<JournalEntry>>>, Instant);

impl Default for Journal {
    fn default() -> Self {
        Self(Arc::default(), Instant::now())
    }
}

/// Wraps a mock's router with fault injection (inner) and the journal (outer), so the
/// journal sees what the client saw, faults included; every answer is dated by the
/// mock's clock ([`timeline::wall`]), as an OEM's server dates its answers with its own.
pub fn instrument(router: Router, journal: &Journal, faults: &Faults) -> Router {
    journal
        .wrap(faults.wrap(router))
        .layer(middleware::from_fn(date))
}

/// Sets `Date` from the mock's clock (hyper's own would follow the machine's).
async fn date(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let now = std::time::SystemTime::from(timeline::now_utc());
    if let Ok(v) = http::HeaderValue::try_from(httpdate::fmt_http_date(now)) {
        resp.headers_mut().insert(http::header::DATE, v);
    }
    resp
}

impl Journal {
    /// All entries.
    pub fn entries(&self) -> Vec<JournalEntry> {
        lock(&self.0).clone()
    }

    /// How many requests with `method` had a path ending in `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        lock(&self.0)
            .iter()
            .filter(|e| e.method == method && e.path.ends_with(suffix))
            .count()
    }

    /// How many requests were seen.
    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// How many requests to the OEM's own API were seen (not `/__mock/` controls).
    pub fn oem_requests(&self) -> usize {
        lock(&self.0)
            .iter()
            .filter(|e| !e.path.starts_with("/__mock"))
            .count()
    }

    /// Whether no request was seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// Wraps `router` so every request is journaled, and mounts
    /// `GET /__mock/requests` (the journal as JSON) and `DELETE /__mock/requests`.
    pub fn wrap(&self, router: Router) -> Router {
        let inspect = Router::new()
            .route(
                "/__mock/requests",
                get(|State(j): State<Journal>| async move { axum::Json(j.entries()) }).delete(
                    |State(j): State<Journal>| async move {
                        j.clear();
                        http::StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(self.clone());
        router
            .layer(middleware::from_fn_with_state(self.clone(), record))
            .merge(inspect)
    }
}

async fn record(State(journal): State<Journal>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let command_id = req
        .headers()
        .get(crate::http::COMMAND_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let started_ms = journal.1.elapsed().as_millis() as u64;
    let resp = next.run(req).await;
    lock(&journal.0).push(JournalEntry {
        method,
        path,
        query,
        status: resp.status().as_u16(),
        command_id,
        applied: resp.extensions().get::<Applied>().is_some(),
        note: resp.extensions().get::<Note>().map(|n| n.0),
        started_ms,
        ended_ms: journal.1.elapsed().as_millis() as u64,
    });
    resp
}
