//! Serving connections under budgets that no caller can exhaust (Envoy's connection
//! limits and overload actions, nginx's `client_header_timeout`, `keepalive_timeout`
//! and `worker_rlimit_nofile` are the anchors):
//!
//! - a connection must send a whole request head within `http.header_timeout` of
//!   being ready for one — when it opens, and after each answer — or it is closed
//!   (hyper's header-read timer, which also ends idle keep-alive connections);
//! - at most `http.max_connections` connections are open. A new one over the cap takes
//!   the place of the one that waited longest without a request (first those that never
//!   sent a whole request head: trickled headers; then idle keep-alive ones); a
//!   connection in the middle of a request or answer is never closed for it. So a
//!   thousand trickling sockets cannot keep a well-behaved caller out;
//! - the process's soft open-file limit is raised to its hard limit at start
//!   ([`raise_open_files`]), and the default cap stays below it, so `accept` keeps
//!   working under such a flood.
//!
//! Body timeouts and in-flight places are the API's (`api::limits`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::sync::lock;

/// Open-file descriptors kept free for everything that is not a caller's connection
/// (the store, Redis, OEM connections, logs).
const RESERVED_FILES: usize = 256;

/// The budgets of serving connections.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// A whole request head within this of being ready for one.
    pub header_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

impl Budget {
    /// From `[http]`: a `max_connections` of 0 is the open-file limit less what keyway
    /// keeps for itself.
    pub fn from_config(c: &crate::config::HttpConfig) -> Self {
        let max_connections = match c.max_connections {
            0 => open_files().0.saturating_sub(RESERVED_FILES).max(64),
            n => n,
        };
        Self {
            header_timeout: c.header_timeout.max(Duration::from_millis(1)),
            max_connections,
        }
    }
}

/// The open connections of one server (all its workers), and who may be closed for a
/// new one.
pub struct Conns {
    budget: Budget,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By id; ids grow, so the first is the oldest.
    open: BTreeMap<u64, Entry>,
    next: u64,
    /// When the cap was last logged.
    warned: Option<Instant>,
}

struct Entry {
    /// Requests begun on it.
    requests: u64,
    /// Requests (with their answers) in progress.
    busy: usize,
    /// Closes it.
    close: Arc<Notify>,
}

impl Conns {
    /// No connections yet.
    pub fn new(budget: Budget) -> Arc<Self> {
        Arc::new(Self {
            budget,
            state: Mutex::default(),
        })
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        lock(&self.state).open.len()
    }

    /// A place for a new connection: its id and what closes it. Over the cap, the
    /// connection that waited longest without a request is closed for it; `None` when
    /// every open connection is busy.
    fn admit(&self) -> Option<(u64, Arc<Notify>)> {
        let mut s = lock(&self.state);
        if s.open.len() >= self.budget.max_connections {
            let victim = s
                .open
                .iter()
                .filter(|(_, e)| e.busy == 0)
                .min_by_key(|(id, e)| (e.requests > 0, **id))
                .map(|(id, _)| *id);
            let now = Instant::now();
            if s.warned.is_none_or(|w| now - w >= Duration::from_secs(10)) {
                s.warned = Some(now);
                tracing::warn!(
                    max_connections = self.budget.max_connections,
                    "connection cap reached: closing the connections that waited longest \
                     without a request (http.max_connections)"
                );
            }
            crate::metrics::inbound_rejection("connection_cap");
            let victim = victim.and_then(|id| s.open.remove(&id))?;
            victim.close.notify_one();
        }
        let id = s.next;
        s.next += 1;
        let close = Arc::new(Notify::new());
        s.open.insert(
            id,
            Entry {
                requests: 0,
                busy: 0,
                close: close.clone(),
            },
        );
        Some((id, close))
    }

    /// A request begins on connection `id`; it is busy until the guard drops.
    fn begin(self: &Arc<Self>, id: u64) -> Busy {
        if let Some(e) = lock(&self.state).open.get_mut(&id) {
            e.requests += 1;
            e.busy += 1;
        }
        Busy {
            conns: self.clone(),
            id,
        }
    }

    fn closed(&self, id: u64) {
        lock(&self.state).open.remove(&id);
    }
}

/// A request (and its answer's body) in progress on a connection.
struct Busy {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(e) = lock(&self.conns.state).open.get_mut(&self.id) {
            e.busy = e.busy.saturating_sub(1);
        }
    }
}

/// An answer's body that keeps its connection busy until it is sent (or dropped): an
/// event stream is never closed for a new connection.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves `app` on `listener` until `stop` completes; then lets each open connection
/// finish its request in progress and waits for them.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    conns: Arc<Conns>,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stopping, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                // taken: wait a moment instead of spinning.
                tracing::warn!(error = %e, open = conns.open(), "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((id, close)) = conns.admit() else {
            // Every open connection is in a request: this one is told so, not reset.
            tasks.spawn(refuse(tcp));
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (app, conns, stopped) = (app.clone(), conns.clone(), stopped.clone());
        tasks.spawn(connection(tcp, id, close, app, conns, stopped));
        // Reap the connections that ended, so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    let _ = stopping.send(true);
    // Requests in progress get `HTTP_GRACE` to finish; an event stream or a long
    // `Prefer: wait` does not hold the shutdown longer (its command keeps running).
    let finished = tokio::time::timeout(HTTP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::info!(
            connections = tasks.len(),
            "closing the connections still open"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// How long a stopping server lets requests in progress finish.
pub const HTTP_GRACE: Duration = Duration::from_secs(5);

/// The answer to a connection over the cap when no other can make room: `503
/// overloaded` as problem+json, then the connection is closed.
async fn refuse(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = "{\"type\":\"urn:keyway:problem:overloaded\",\"title\":\"Gateway at capacity\",\
        \"status\":503,\"code\":\"overloaded\",\"detail\":\"keyway has as many connections open \
        as it may, all of them in a request; try again shortly\",\"retryable\":true}";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(answer.as_bytes())).await;
    let _ = tcp.shutdown().await;
}

/// Serves one connection until it ends, is closed for a new one, or the server stops.
async fn connection(
    tcp: tokio::net::TcpStream,
    id: u64,
    close: Arc<Notify>,
    app: axum::Router,
    conns: Arc<Conns>,
    mut stopped: watch::Receiver<bool>,
) {
    let header_timeout = conns.budget.header_timeout;
    let tracking = conns.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let busy = tracking.begin(id);
        let app = app.clone();
        async move {
            let resp = app.oneshot(req.map(Body::new)).await?;
            Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked { body, _busy: busy }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            () = close.notified() => break,
            _ = stopped.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    conns.closed(id);
}

/// The process's open-file limit (soft, hard).
pub fn open_files() -> (usize, usize) {
    use rustix::process::{Resource, getrlimit};
    let l = getrlimit(Resource::Nofile);
    let clamp = |v: Option<u64>| v.map_or(usize::MAX, |v| usize::try_from(v).unwrap_or(usize::MAX));
    (clamp(l.current), clamp(l.maximum))
}

/// Raises the soft open-file limit to the hard limit (as nginx's
/// `worker_rlimit_nofile`) and logs both; returns the soft limit in force.
pub fn raise_open_files() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
    let (soft, hard) = open_files();
    tracing::info!(before = ?before.current, soft, hard, "open-file limit");
    soft
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(max: usize) -> Arc<Conns> {
        Conns::new(Budget {
            header_timeout: Duration::from_secs(10),
            max_connections: max,
        })
    }

    #[tokio::test]
    async fn over_the_cap_the_longest_waiting_idle_connection_makes_room() {
        let c = conns(3);
        let (a, close_a) = c.admit().unwrap();
        let (b, close_b) = c.admit().unwrap();
        let (d, close_d) = c.admit().unwrap();
        // a served a request and is idle (keep-alive); b is in a request; d never sent
        // a whole head (trickling): d goes first, although a is older.
        drop(c.begin(a));
        let _busy = c.begin(b);
        let (e, _) = c.admit().unwrap();
        assert!(
            timeout(&close_d).await,
            "the trickling connection is closed"
        );
        assert!(!timeout(&close_a).await);
        // Once the newcomer served a request too, the longest idle keep-alive one goes;
        // never the busy one.
        drop(c.begin(e));
        let (_, _) = c.admit().unwrap();
        assert!(timeout(&close_a).await);
        assert!(!timeout(&close_b).await);
        assert_eq!(c.open(), 3);
        let _ = d;
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_the_new_one_is_refused() {
        let c = conns(1);
        let (a, _close) = c.admit().unwrap();
        let _busy = c.begin(a);
        assert!(c.admit().is_none());
        c.closed(a);
        assert!(c.admit().is_some());
    }

    async fn timeout(n: &Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(10), n.notified())
            .await
            .is_ok()
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = open_files();
        assert_eq!(raise_open_files(), hard);
    }
}
