//! The bottom of every outbound stack: a hyper client turned into a service of
//! whole-body requests and responses, with a per-try timeout, a cap on response size,
//! and hyper's failures classified by whether the request could have been sent.
//! keyway's `upstream` module puts it under TLS and its policy layers; adapter tests
//! use [`loopback_http`] to reach their mock directly.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

use crate::{Http, TransportError};

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as serving worker `i`: its exchanges use pool `i` of a
/// [`HyperTransport::pooled`] transport, so a worker's upstream connections are its own
/// and live on its event loop. Threads never marked use pool 0.
pub fn set_worker(i: usize) {
    WORKER.with(|w| w.set(i));
}

/// A hyper client as a `tower::Service<Request<Bytes>>`.
#[derive(Clone, Debug)]
pub struct HyperTransport<C> {
    clients: std::sync::Arc<[Client<C, Full<Bytes>>]>,
    timeout: Duration,
    max_body: usize,
}

impl<C> HyperTransport<C> {
    /// Wraps `client`; each exchange (headers and body) must finish within `timeout`,
    /// and response bodies over `max_body` bytes are an error.
    pub fn new(client: Client<C, Full<Bytes>>, timeout: Duration, max_body: usize) -> Self {
        Self::pooled(vec![client], timeout, max_body)
    }

    /// Like [`HyperTransport::new`] with one client (one connection pool) per serving
    /// worker (see [`set_worker`]); `clients` must not be empty.
    pub fn pooled(
        clients: Vec<Client<C, Full<Bytes>>>,
        timeout: Duration,
        max_body: usize,
    ) -> Self {
        assert!(!clients.is_empty(), "a transport needs a client");
        Self {
            clients: clients.into(),
            timeout,
            max_body,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<C> tower::Service<Request<Bytes>> for HyperTransport<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    type Response = Response<Bytes>;
    type Error = TransportError;
    type Future = BoxFuture<Result<Response<Bytes>, TransportError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let i = WORKER.with(|w| w.get()) % self.clients.len();
        let client = self.clients[i].clone();
        let (timeout, max_body) = (self.timeout, self.max_body);
        Box::pin(async move {
            let exchange = async move {
                let resp = client.request(req.map(Full::new)).await.map_err(classify)?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, max_body)
                    .collect()
                    .await
                    .map_err(|e| TransportError::Io(format!("reading the body: {e}")))?
                    .to_bytes();
                Ok(Response::from_parts(parts, body))
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| TransportError::Timeout)?
        })
    }
}

fn classify(e: hyper_util::client::legacy::Error) -> TransportError {
    if e.is_connect() {
        TransportError::Connect(root_cause(&e))
    } else {
        TransportError::Io(root_cause(&e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A plain-HTTP client for mocks on loopback (adapter tests, the conformance suite).
pub fn loopback_http() -> Http {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    Http::new(HyperTransport::new(
        client,
        Duration::from_secs(10),
        4 << 20,
    ))
}
