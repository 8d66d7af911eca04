//! The outbound stack every OEM call goes through, built per OEM over one pooled hyper
//! client with rustls (system roots; plain HTTP allowed for loopback mocks):
//!
//! `retry` (budget, backoff, only provably safe repeats) → `breaker` (fail fast on a
//! dead OEM) → `quota` (the OEM's published limits, pushback after 429) → concurrency
//! limit → metrics → transport (per-try timeout, body cap).
//!
//! Each layer is a [`Policy`] — one `handle` function given the request and the stack
//! below it — with its own tests; [`Layered`] stacks them as nested types, so a request
//! is one future through the whole stack. Adapters see the whole stack only as the
//! boxed [`Http`] service and never retry, wait or limit themselves.

pub mod breaker;
pub mod clock;
pub mod layered;
pub mod quota;
pub mod retry;

use std::sync::Arc;
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

use crate::config::OemConfig;
use crate::metrics;
use breaker::{Breaker, BreakerSettings};
use clock::OemClock;
pub use layered::{Below, Layered, Policy, layer};
use quota::Quota;
use retry::{Retry, RetrySettings};

/// The shared client type.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest OEM answer keyway reads.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// TLS (rustls, system roots) or plain HTTP over the connector `inner`.
pub fn https<H>(inner: H) -> HttpsConnector<H> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls().clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(inner)
}

/// The TLS client configuration with the system's CA certificates, read once per
/// process (reading and parsing them takes milliseconds).
fn tls() -> &'static rustls::ClientConfig {
    static TLS: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading system CA certificates");
        }
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no system CA certificates found; HTTPS will fail");
        }
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth()
    })
}

/// Builds the pooled clients all OEM stacks share: one per core, so each serving worker
/// (see `server`) has connection pools of its own.
pub fn clients() -> Vec<HttpsClient> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).map(|_| client()).collect()
}

/// Builds one pooled client.
fn client() -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build(https(http))
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
    /// The OEM's clock as its answers' `Date` tells it.
    pub clock: Arc<OemClock>,
    /// What it billed, where the OEM bills.
    pub bill: Option<Arc<Bill>>,
    /// What the reads that watch a command's outcome call: no breaker (a lost command
    /// answer is no evidence that reads fail, and these reads must not open the breaker
    /// for everyone) and no retries, but the OEM's request quota and a concurrency
    /// budget of their own ([`WATCH_CONCURRENCY`]).
    pub watch_http: Http,
    /// What the OAuth client calls: the OEM's authorization server is another service,
    /// so it has its own breaker (an API outage never blocks relinking) and none of the
    /// API's quotas.
    pub auth_http: Http,
}

/// Cluster-wide quotas: the Redis limits and how many replicas share them.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The limits in Redis.
    pub limits: Arc<crate::cluster::limits::SharedLimits>,
    /// Replicas sharing each quota (the local fallback keeps to 1/replicas).
    pub replicas: u32,
}

/// Builds one OEM's stack over the shared clients.
pub fn stack(
    clients: &[HttpsClient],
    oem: &'static str,
    c: &OemConfig,
    defaults: &keyway_adapter::Limits,
    shared: Option<&Shared>,
    billing: Option<&'static keyway_adapter::Billing>,
    keyway_clock: &crate::clock::Clock,
) -> Stack {
    let l = c.limits.resolve(defaults);
    let max_wait = l.max_wait;
    let quota = |windows, kind, reserve| {
        let q = Quota::new(windows, max_wait, oem, kind).with_reserve(reserve);
        Arc::new(match shared {
            Some(s) => q.shared(s.limits.clone(), s.replicas),
            None => q,
        })
    };
    let requests = quota(l.requests, "requests", 0);
    let commands = quota(l.commands, "commands", l.reserved_commands);
    let breaker_settings = BreakerSettings {
        failures: c.breaker.failures,
        window: c.breaker.window,
        open_for: c.breaker.open,
    };
    let breaker = Arc::new(Breaker::new(breaker_settings.clone(), oem));
    // Built once per OEM at start: its metric label lives for the process.
    let auth_label: &'static str = Box::leak(format!("{oem}_oauth").into_boxed_str());
    let auth_breaker = Arc::new(Breaker::new(breaker_settings, auth_label));
    let transport = Http::new(HyperTransport::pooled(
        clients.to_vec(),
        c.timeout,
        MAX_RESPONSE_BYTES,
    ));
    let r = &c.retry;
    let retry = Retry::new(
        RetrySettings {
            max_attempts: r.max_attempts.max(1),
            base: r.base,
            cap: r.cap,
            deadline: r.deadline,
        },
        TpsBudget::new(
            Duration::from_secs(10),
            r.budget_min_per_s,
            r.budget_percent / 100.0,
        ),
        oem,
    );
    let permits = Arc::new(Semaphore::new(l.max_concurrency.max(1)));
    let clock = Arc::new(OemClock::new(oem));
    let auth_http = Layered::new(
        transport.clone(),
        Observe {
            oem,
            bill: None,
            clock: None,
            now: keyway_clock.clone(),
        },
    )
    .on(auth_breaker)
    .into_http();
    // Built from the bottom up: the last layer is the first a request meets.
    let bill = billing.map(|b| Arc::new(Bill::new(b, &c.prices)));
    let bill_kept = bill.clone();
    let watch_http = Layered::new(
        transport.clone(),
        Observe {
            oem,
            bill: bill.clone(),
            clock: Some(clock.clone()),
            now: keyway_clock.clone(),
        },
    )
    .on(Concurrency {
        permits: Arc::new(Semaphore::new(WATCH_CONCURRENCY)),
    })
    .on(requests.clone())
    .into_http();
    let observe = Observe {
        oem,
        bill,
        clock: Some(clock.clone()),
        now: keyway_clock.clone(),
    };
    let http = Layered::new(transport, observe)
        .on(Concurrency { permits })
        .on(requests.clone())
        .on(breaker.clone())
        .on(retry)
        .into_http();
    Stack {
        http,
        requests,
        commands,
        breaker,
        clock,
        bill: bill_kept,
        watch_http,
        auth_http,
    }
}

/// Outcome-watching reads in flight to one OEM at most.
pub const WATCH_CONCURRENCY: usize = 4;

/// Records each exchange's latency and outcome, what it cost where the OEM bills, and
/// what its `Date` tells of the OEM's clock (the API's answers; the OAuth server is
/// another clock).
#[derive(Clone)]
struct Observe {
    oem: &'static str,
    bill: Option<Arc<Bill>>,
    clock: Option<Arc<OemClock>>,
    /// keyway's clock, which the OEM's is measured against.
    now: crate::clock::Clock,
}

/// An OEM's billing: classes, prices, and the spend so far (this stack's).
pub struct Bill {
    classify: fn(&http::Method, &str) -> Option<&'static str>,
    /// By billing class (the adapter's own names: a fast hash is safe here).
    prices: std::collections::HashMap<&'static str, f64, ahash::RandomState>,
    /// The spend, and the billed requests by class.
    spent: std::sync::Mutex<(f64, std::collections::BTreeMap<&'static str, u64>)>,
}

impl Bill {
    fn new(
        b: &'static keyway_adapter::Billing,
        overrides: &std::collections::BTreeMap<String, f64>,
    ) -> Self {
        let prices = b
            .prices
            .iter()
            .map(|(class, price)| (*class, overrides.get(*class).copied().unwrap_or(*price)))
            .collect();
        Self {
            classify: b.classify,
            prices,
            spent: std::sync::Mutex::default(),
        }
    }

    /// Requests of `class` this stack counted as billed (the metric sums every stack of
    /// the process).
    pub fn billed(&self, class: &str) -> u64 {
        crate::sync::lock(&self.spent)
            .1
            .get(class)
            .copied()
            .unwrap_or(0)
    }

    /// The billing class of a request, if the OEM bills it.
    fn class(&self, req: &Request<Bytes>) -> Option<&'static str> {
        (self.classify)(req.method(), req.uri().path())
    }

    /// Counts one answered request of `class` (an OEM bills what it answered, not what
    /// it refused as rate-limited or failed with a server error).
    fn count(&self, oem: &'static str, class: &'static str, status: u16) {
        if status == 429 || status >= 500 {
            return;
        }
        let mut spent = crate::sync::lock(&self.spent);
        spent.0 += self.prices.get(class).copied().unwrap_or(0.0);
        *spent.1.entry(class).or_default() += 1;
        metrics::billable(oem, class, spent.0);
    }
}

impl Policy for Observe {
    async fn handle<B: Below>(
        &self,
        inner: &B,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, TransportError> {
        let method = req.method().clone();
        let billed = self.bill.as_ref().and_then(|b| Some((b, b.class(&req)?)));
        let started = Instant::now();
        let sent_at = self.clock.is_some().then(|| self.now.now());
        let outcome = inner.send(req).await;
        if let (Some(clock), Some(sent_at), Ok(r)) = (&self.clock, sent_at, &outcome)
            && let Some(date) = clock::date_of(r.headers())
        {
            clock.date(sent_at, self.now.now(), date);
        }
        if let (Some((bill, class)), Ok(r)) = (billed, &outcome) {
            bill.count(self.oem, class, r.status().as_u16());
        }
        let label = match &outcome {
            Ok(r) => metrics::Outcome::Status(r.status().as_u16()),
            Err(TransportError::Timeout) => metrics::Outcome::Failed("timeout"),
            Err(TransportError::Connect(_)) => metrics::Outcome::Failed("connect_error"),
            Err(_) => metrics::Outcome::Failed("io_error"),
        };
        metrics::upstream(self.oem, &method, label, started.elapsed().as_secs_f64());
        outcome
    }
}

/// At most `permits` exchanges in flight to one OEM; the rest queue.
#[derive(Clone)]
struct Concurrency {
    permits: Arc<Semaphore>,
}

impl Policy for Concurrency {
    async fn handle<B: Below>(
        &self,
        inner: &B,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, TransportError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| TransportError::NotSent("shutting down".into()))?;
        inner.send(req).await
    }
}
