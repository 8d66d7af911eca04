//! The OEM keyway replays against: a stand-in HTTP client that answers each request an
//! adapter makes from what the user captured — the operation's own request from the
//! main capture, the requests after it from `--then` captures in order, requests
//! matching a `--capture` pattern (or, replaying a HAR, a recorded request of the same
//! route) from theirs — and every other request from the adapter's own fixture for
//! that route. Each answer is written down as a [`Step`], so the output can say which
//! answers were captured and which came from fixtures.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use keyway_adapter::exchange::request_matches;
use keyway_adapter::{Exchanges, Http, Route};
use serde::Serialize;

use super::{Captured, ReplayError};

/// Which requests a `--capture` answers: a method (`*` for any) and a path pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    method: String,
    path: String,
}

impl Pattern {
    /// Parses `METHOD /path/*` or `/path/*` (any method); `*` and `{…}` match one
    /// segment, a query in the pattern must be part of the request's.
    pub fn parse(s: &str) -> Result<Self, ReplayError> {
        let s = s.trim();
        let (method, path) = match s.split_once(' ') {
            Some((m, p)) => (m.to_ascii_uppercase(), p.trim().to_string()),
            None => ("*".to_string(), s.to_string()),
        };
        if !path.starts_with('/') {
            return Err(ReplayError::Invalid(format!(
                "capture pattern {s:?}: the path must start with `/`"
            )));
        }
        Ok(Self { method, path })
    }
}

/// What a captured answer answers.
#[derive(Clone, Debug)]
pub enum Key {
    /// Requests matching a pattern (`--capture`).
    Pattern(Pattern),
    /// Requests of one route (a recorded request of a HAR).
    Route(&'static Route),
}

impl Key {
    fn matches(&self, method: &str, path: &str) -> bool {
        match self {
            Key::Pattern(p) => request_matches(&p.method, &p.path, method, path),
            Key::Route(r) => r.matches(method, path),
        }
    }
}

/// The captures of one replay.
#[derive(Clone, Debug, Default)]
pub struct Captures {
    /// Answers the operation's own request (every one, until a `then` was used).
    pub own: Option<Captured>,
    /// Answer the requests after the first own one, in order.
    pub then: Vec<Captured>,
    /// Answer requests matching their key, each once, in order.
    pub keyed: Vec<(Key, Captured)>,
}

/// One request the adapter made and what answered it.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Its method.
    pub method: String,
    /// Its path (and query).
    pub path: String,
    /// The route it is, if the adapter's table knows it.
    pub route: Option<&'static str>,
    /// The status it got.
    pub status: u16,
    /// What answered: `capture <label>`, `fixture <oem>/<file>` or `nothing`.
    pub answered_by: String,
}

struct Book {
    oem: &'static str,
    op: &'static str,
    exchanges: &'static Exchanges,
    own: Option<Captured>,
    own_used: bool,
    then: VecDeque<Captured>,
    then_used: bool,
    keyed: Vec<Option<(Key, Captured)>>,
    steps: Vec<Step>,
}

/// The stand-in's record: its steps, and which keyed captures it used (by index).
#[derive(Clone)]
pub struct StandIn(Arc<Mutex<Book>>);

impl StandIn {
    /// A stand-in for operation `op` of `oem`.
    pub fn new(
        oem: &'static str,
        op: &'static str,
        exchanges: &'static Exchanges,
        c: Captures,
    ) -> Self {
        Self(Arc::new(Mutex::new(Book {
            oem,
            op,
            exchanges,
            own: c.own,
            own_used: false,
            then: c.then.into(),
            then_used: false,
            keyed: c.keyed.into_iter().map(Some).collect(),
            steps: Vec::new(),
        })))
    }

    /// The HTTP client adapters get.
    pub fn http(&self) -> Http {
        let me = self.clone();
        Http::from_fn(move |req| {
            let answer = me.answer(req.method().as_str(), &path_of(req.uri()));
            async move { Ok(answer) }
        })
    }

    /// The requests made so far and what answered them.
    pub fn steps(&self) -> Vec<Step> {
        crate::sync::lock(&self.0).steps.clone()
    }

    /// The indices of the keyed captures used.
    pub fn used_keyed(&self) -> Vec<usize> {
        crate::sync::lock(&self.0)
            .keyed
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.is_none().then_some(i))
            .collect()
    }

    fn answer(&self, method: &str, path: &str) -> http::Response<Bytes> {
        let mut b = crate::sync::lock(&self.0);
        let route = b.exchanges.route(method, path);
        let (captured, by) = b.pick(method, path, route);
        let (resp, by) = match captured {
            Some(c) => (response(&c), by),
            None => match route {
                Some(r) => (
                    json_response(200, r.body.as_bytes()),
                    format!("fixture {}/{}", b.oem, r.fixture),
                ),
                None => (
                    json_response(404, b"{}"),
                    "nothing (no route: 404)".to_string(),
                ),
            },
        };
        b.steps.push(Step {
            method: method.to_string(),
            path: path.to_string(),
            route: route.map(|r| r.name),
            status: resp.status().as_u16(),
            answered_by: by,
        });
        resp
    }
}

impl Book {
    fn pick(
        &mut self,
        method: &str,
        path: &str,
        route: Option<&'static Route>,
    ) -> (Option<Captured>, String) {
        if let Some(slot) = self
            .keyed
            .iter_mut()
            .find(|k| k.as_ref().is_some_and(|(key, _)| key.matches(method, path)))
            && let Some((_, c)) = slot.take()
        {
            let by = format!("capture {}", c.label);
            return (Some(c), by);
        }
        let own = route.is_some_and(|r| r.own.contains(&self.op));
        if own
            && !self.then_used
            && let Some(c) = &self.own
        {
            self.own_used = true;
            return (Some(c.clone()), format!("capture {}", c.label));
        }
        if self.own_used
            && let Some(c) = self.then.pop_front()
        {
            self.then_used = true;
            let by = format!("capture {}", c.label);
            return (Some(c), by);
        }
        (None, String::new())
    }
}

fn path_of(uri: &http::Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string())
}

fn json_response(status: u16, body: &[u8]) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::copy_from_slice(body))
        .unwrap_or_default()
}

/// The captured answer as a response (its status and headers were checked when read).
pub fn response(c: &Captured) -> http::Response<Bytes> {
    let mut b = http::Response::builder().status(c.status);
    for (name, value) in &c.headers {
        b = b.header(name.as_str(), value.as_str());
    }
    b.body(c.body.clone()).unwrap_or_default()
}
