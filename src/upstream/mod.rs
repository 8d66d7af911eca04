//! The outbound stack every OEM call goes through, built per OEM over one pooled hyper
//! client with rustls (system roots; plain HTTP allowed for loopback mocks):
//!
//! `retry` (budget, backoff, only provably safe repeats) → `breaker` (fail fast on a
//! dead OEM) → `quota` (the OEM's published limits, pushback after 429) → concurrency
//! limit → metrics → transport (per-try timeout, body cap).
//!
//! Each layer is a small service wrapper with its own tests; adapters see the whole
//! stack only as the boxed [`Http`] service and never retry, wait or limit themselves.

pub mod breaker;
pub mod quota;
pub mod retry;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyway_adapter::transport::HyperTransport;
use keyway_adapter::{Http, TransportError};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::retry::budget::TpsBudget;
use tower::{Service, ServiceExt};

use crate::config::OemConfig;
use crate::metrics;
use breaker::{Breaker, BreakerService, BreakerSettings};
use quota::{Quota, QuotaService};
use retry::{Retry, RetrySettings};

/// The shared client type.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest OEM answer keyway reads.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Builds the one pooled client all OEM stacks share.
pub fn client() -> HttpsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates found; HTTPS to OEMs will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// One OEM's stack and the shared state of its policy layers.
pub struct Stack {
    /// What adapters call.
    pub http: Http,
    /// Every request's quota (and the pushback gate).
    pub requests: Arc<Quota>,
    /// The commands-only quota (taken by the command layer before sending).
    pub commands: Arc<Quota>,
    /// The breaker.
    pub breaker: Arc<Breaker>,
}

/// Builds one OEM's stack over the shared client.
pub fn stack(
    client: &HttpsClient,
    oem: &'static str,
    c: &OemConfig,
    defaults: &keyway_adapter::Limits,
) -> Stack {
    let l = c.limits.resolve(defaults);
    let max_wait = Duration::from_millis(l.max_wait_ms);
    let requests = Arc::new(Quota::new(l.requests, max_wait, oem, "requests"));
    let commands = Arc::new(Quota::new(l.commands, max_wait, oem, "commands"));
    let breaker = Arc::new(Breaker::new(
        BreakerSettings {
            failures: c.breaker.failures,
            window: c.breaker.window,
            open_for: Duration::from_millis(c.breaker.open_ms),
        },
        oem,
    ));
    let transport = HyperTransport::new(
        client.clone(),
        Duration::from_millis(c.timeout_ms),
        MAX_RESPONSE_BYTES,
    );
    let observed = Observe {
        inner: transport,
        oem,
    };
    let limited = Concurrency {
        inner: observed,
        permits: Arc::new(Semaphore::new(l.max_concurrency.max(1))),
    };
    let quota = QuotaService::new(limited, requests.clone());
    let guarded = BreakerService::new(quota, breaker.clone());
    let r = &c.retry;
    let retried = Retry::new(
        guarded,
        RetrySettings {
            max_attempts: r.max_attempts.max(1),
            base: Duration::from_millis(r.base_ms),
            cap: Duration::from_millis(r.cap_ms),
            deadline: Duration::from_millis(r.deadline_ms),
        },
        TpsBudget::new(
            Duration::from_secs(10),
            r.budget_min_per_s,
            r.budget_percent / 100.0,
        ),
        oem,
    );
    Stack {
        http: Http::new(retried),
        requests,
        commands,
        breaker,
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Records each exchange's latency and outcome.
#[derive(Clone)]
struct Observe<S> {
    inner: S,
    oem: &'static str,
}

impl<S> Service<Request<Bytes>> for Observe<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = TransportError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Bytes>;
    type Error = TransportError;
    type Future = BoxFuture<Result<Response<Bytes>, TransportError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let (inner, oem) = (self.inner.clone(), self.oem);
        Box::pin(async move {
            let method = req.method().to_string();
            let started = Instant::now();
            let outcome = inner.oneshot(req).await;
            let label = match &outcome {
                Ok(r) => r.status().as_str().to_string(),
                Err(TransportError::Timeout) => "timeout".into(),
                Err(TransportError::Connect(_)) => "connect_error".into(),
                Err(_) => "io_error".into(),
            };
            metrics::upstream(oem, &method, &label, started.elapsed().as_secs_f64());
            outcome
        })
    }
}

/// At most `permits` exchanges in flight to one OEM; the rest queue.
#[derive(Clone)]
struct Concurrency<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> Service<Request<Bytes>> for Concurrency<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = TransportError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Bytes>;
    type Error = TransportError;
    type Future = BoxFuture<Result<Response<Bytes>, TransportError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let (inner, permits) = (self.inner.clone(), self.permits.clone());
        Box::pin(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| TransportError::NotSent("shutting down".into()))?;
            inner.oneshot(req).await
        })
    }
}
