//! Prometheus metrics through `prometheus-client`: one process-wide registry of typed
//! families, rendered in the OpenMetrics text format at `/metrics`. Named recorders
//! below are the only way code records, so every series is documented in one place.
//! Recording takes no lock on the request path: counters, gauges and histogram buckets
//! are atomics ([`histogram`]: `prometheus-client`'s own histogram locks a mutex per
//! observation), and the recorders a request runs keep per-thread handles to their
//! series ([`local`]) instead of finding them under the family's shared read lock each
//! time; the rest find them under that lock. Labels never carry secrets or
//! unbounded values (no vehicle ids, no tokens); label values are `'static` wherever
//! the caller has one, so recording allocates nothing once a series exists.

pub mod histogram;
mod labels;
pub mod local;
pub mod watch;

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use histogram::Histogram;
pub use labels::Outcome;
use labels::*;
use local::Local;

static BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `keyway_cluster_redis_up`: shown only once cluster mode has set it (a process
/// without Redis has no Redis to be up or down). -1 while unset.
#[derive(Debug, Default)]
struct RedisUp(AtomicI64);

impl Collector for RedisUp {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = self.0.load(Ordering::Relaxed);
        if up < 0 {
            return Ok(());
        }
        let gauge = ConstGauge::new(up);
        let series = encoder.encode_descriptor(
            "keyway_cluster_redis_up",
            "1 while cluster-wide limits reach Redis, 0 while they fall back to local limits",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(series)
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn histogram() -> Histogram {
    Histogram::new(&BUCKETS)
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(histogram)
}

/// Every family of the process. Counters are registered without their `_total`
/// suffix, which the OpenMetrics encoder adds, so the exposed names are the documented
/// ones (`keyway_http_requests_total`, …).
struct Metrics {
    registry: Registry,
    http_requests: Family<RouteStatus, Counter>,
    http_seconds: Histograms<Route>,
    upstream_seconds: Histograms<Exchange>,
    operation_seconds: Histograms<Operation>,
    billable: Family<OemClass, Counter>,
    spend: Family<Oem, FloatGauge>,
    clock_offset: Family<Oem, FloatGauge>,
    retries: Family<Oem, Counter>,
    retry_budget_exhausted: Family<Oem, Counter>,
    breaker_state: Family<Oem, Gauge>,
    breaker_rejections: Family<Oem, Counter>,
    quota_wait: Histograms<OemQuota>,
    quota_rejections: Family<OemQuota, Counter>,
    rate_limited: Family<Oem, Counter>,
    cache: Family<Read, Counter>,
    commands: Family<Command, Counter>,
    token_refreshes: Family<Refresh, Counter>,
    inbound_rejections: Family<Reason, Counter>,
    limits_degraded: Family<Kind, Counter>,
    redis_up: Arc<RedisUp>,
    taken_over: Counter,
    watching: watch::Watching,
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_seconds: histograms(),
            upstream_seconds: histograms(),
            operation_seconds: histograms(),
            billable: Family::default(),
            spend: Family::default(),
            clock_offset: Family::default(),
            retries: Family::default(),
            retry_budget_exhausted: Family::default(),
            breaker_state: Family::default(),
            breaker_rejections: Family::default(),
            quota_wait: histograms(),
            quota_rejections: Family::default(),
            rate_limited: Family::default(),
            cache: Family::default(),
            commands: Family::default(),
            token_refreshes: Family::default(),
            inbound_rejections: Family::default(),
            limits_degraded: Family::default(),
            redis_up: Arc::new(RedisUp(AtomicI64::new(-1))),
            taken_over: Counter::default(),
            watching: watch::Watching::default(),
        };
        m.register()
    }

    /// Registers every family under its name and help (the encoder ends help with a
    /// full stop).
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "keyway_http_requests",
            "Requests served by the unified API, by route and status",
            self.http_requests.clone(),
        );
        r.register(
            "keyway_http_request_seconds",
            "Time to answer a request of the unified API, by route",
            self.http_seconds.clone(),
        );
        r.register(
            "keyway_upstream_request_seconds",
            "OEM HTTP exchanges, by OEM, method and outcome",
            self.upstream_seconds.clone(),
        );
        r.register(
            "keyway_oem_operation_seconds",
            "Adapter operations (with token refresh and replay), by OEM, operation and outcome",
            self.operation_seconds.clone(),
        );
        r.register(
            "keyway_oem_billable_requests",
            "Requests an OEM bills, by OEM and class (Tesla: data, command, wake)",
            self.billable.clone(),
        );
        r.register(
            "keyway_oem_estimated_spend_usd",
            "Estimated OEM spend of this process in US dollars (billable requests × configured prices)",
            self.spend.clone(),
        );
        r.register(
            "keyway_oem_clock_offset_seconds",
            "Estimated offset of an OEM's clock from keyway's (from its Date answers; positive: ahead)",
            self.clock_offset.clone(),
        );
        r.register(
            "keyway_upstream_retries",
            "Retries sent to an OEM",
            self.retries.clone(),
        );
        r.register(
            "keyway_upstream_retry_budget_exhausted",
            "Retries not sent because the OEM's retry budget was spent",
            self.retry_budget_exhausted.clone(),
        );
        r.register(
            "keyway_upstream_breaker_state",
            "Circuit breaker per OEM: 0 closed, 1 half-open, 2 open",
            self.breaker_state.clone(),
        );
        r.register(
            "keyway_upstream_breaker_rejections",
            "Requests refused while an OEM's breaker was open",
            self.breaker_rejections.clone(),
        );
        r.register(
            "keyway_upstream_quota_wait_seconds",
            "Time requests waited for an OEM quota slot",
            self.quota_wait.clone(),
        );
        r.register(
            "keyway_upstream_quota_rejections",
            "Requests refused because an OEM quota was spent",
            self.quota_rejections.clone(),
        );
        r.register(
            "keyway_upstream_rate_limited",
            "Rate-limit answers from OEMs (429, quota messages)",
            self.rate_limited.clone(),
        );
        r.register(
            "keyway_read_cache",
            "Vehicle reads by cache result: hit, miss, coalesced, stale",
            self.cache.clone(),
        );
        r.register(
            "keyway_commands",
            "Commands finished, by OEM, action and status",
            self.commands.clone(),
        );
        r.register(
            "keyway_token_refreshes",
            "OEM token refreshes, by OEM and outcome",
            self.token_refreshes.clone(),
        );
        r.register(
            "keyway_inbound_rejections",
            "Requests refused by keyway's own limits, by reason",
            self.inbound_rejections.clone(),
        );
        r.register(
            "keyway_cluster_limits_degraded",
            "Limit checks decided locally because Redis was unreachable, by limit kind",
            self.limits_degraded.clone(),
        );
        r.register_collector(Box::new(self.redis_up.clone()));
        r.register(
            "keyway_cluster_commands_taken_over",
            "Pending commands this replica took over after their lease lapsed",
            self.taken_over.clone(),
        );
        self.watching.register(r);
        self
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn m() -> &'static Metrics {
    &METRICS
}

/// `n` cars of `oem` are watched now.
pub fn watched_cars(oem: &'static str, n: usize) {
    m().watching.set_cars(oem, n);
}

/// One reading of a watched car of `oem` took `n` OEM requests.
pub fn watch_requests(oem: &'static str, n: usize) {
    m().watching.count_requests(oem, n);
}

/// The OpenMetrics text exposition of every series.
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m().registry);
    out
}

/// The value of one counter series, by its exposed name and labels in their declared
/// order (tests; 0 when the series does not exist yet).
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let wanted = if labels.is_empty() {
        format!("{name} ")
    } else {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}} ", l.join(","))
    };
    render()
        .lines()
        .find_map(|line| line.strip_prefix(&wanted)?.parse().ok())
        .unwrap_or(0)
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

// === named recorders ===

/// A retry was sent.
pub fn retry(oem: &'static str) {
    m().retries.get_or_create(&Oem { oem }).inc();
}

/// A retry was not sent: budget spent.
pub fn retry_budget_exhausted(oem: &'static str) {
    m().retry_budget_exhausted.get_or_create(&Oem { oem }).inc();
}

/// Breaker state changed (0 closed, 1 half-open, 2 open).
pub fn breaker_state(oem: &'static str, state: u8) {
    m().breaker_state
        .get_or_create(&Oem { oem })
        .set(i64::from(state));
}

/// A request was refused by an open breaker.
pub fn breaker_rejection(oem: &'static str) {
    m().breaker_rejections.get_or_create(&Oem { oem }).inc();
}

/// A request waited for a quota slot.
pub fn quota_wait(oem: &'static str, quota: &'static str, secs: f64) {
    thread_local! {
        static SERIES: Local<OemQuota, Histogram> = Local::default();
    }
    local::record(&SERIES, &m().quota_wait, OemQuota { oem, quota }, |h| {
        h.observe(secs)
    });
}

/// A request was refused: quota spent.
pub fn quota_rejection(oem: &'static str, quota: &'static str) {
    m().quota_rejections
        .get_or_create(&OemQuota { oem, quota })
        .inc();
}

/// The OEM answered with a rate limit.
pub fn rate_limited(oem: &'static str) {
    m().rate_limited.get_or_create(&Oem { oem }).inc();
}

/// One billable OEM request, and this process's estimated spend with it.
pub fn billable(oem: &'static str, class: &'static str, spent_usd: f64) {
    thread_local! {
        static BILLABLE: Local<OemClass, Counter> = Local::default();
        static SPEND: Local<Oem, FloatGauge> = Local::default();
    }
    local::record(&BILLABLE, &m().billable, OemClass { oem, class }, |c| {
        c.inc();
    });
    local::record(&SPEND, &m().spend, Oem { oem }, |g| {
        g.set(spent_usd);
    });
}

/// An OEM's estimated clock offset (its clock minus keyway's).
pub fn oem_clock_offset(oem: &'static str, secs: f64) {
    m().clock_offset.get_or_create(&Oem { oem }).set(secs);
}

/// One OEM HTTP exchange.
pub fn upstream(oem: &'static str, method: &http::Method, outcome: Outcome, secs: f64) {
    let method = match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "other",
    };
    thread_local! {
        static SERIES: Local<Exchange, Histogram> = Local::default();
    }
    let l = Exchange {
        oem,
        method,
        outcome,
    };
    local::record(&SERIES, &m().upstream_seconds, l, |h| h.observe(secs));
}

/// One adapter operation.
pub fn operation(oem: &'static str, operation: &'static str, outcome: &'static str, secs: f64) {
    thread_local! {
        static SERIES: Local<Operation, Histogram> = Local::default();
    }
    let l = Operation {
        oem,
        operation,
        outcome,
    };
    local::record(&SERIES, &m().operation_seconds, l, |h| h.observe(secs));
}

/// A read's cache result.
pub fn cache(read: &'static str, result: &'static str) {
    thread_local! {
        static SERIES: Local<Read, Counter> = Local::default();
    }
    local::record(&SERIES, &m().cache, Read { read, result }, |c| {
        c.inc();
    });
}

/// A finished command.
pub fn command(oem: &str, action: &'static str, status: &'static str) {
    let l = Command {
        oem: Text(Cow::Owned(oem.to_owned())),
        action,
        status,
    };
    m().commands.get_or_create(&l).inc();
}

/// A token refresh.
pub fn token_refresh(oem: &'static str, outcome: &'static str) {
    m().token_refreshes
        .get_or_create(&Refresh { oem, outcome })
        .inc();
}

/// A request refused by keyway's own limits.
pub fn inbound_rejection(reason: &'static str) {
    m().inbound_rejections
        .get_or_create(&Reason { reason })
        .inc();
}

/// A limit check decided locally because Redis was unreachable.
pub fn limits_degraded(kind: &'static str) {
    m().limits_degraded.get_or_create(&Kind { kind }).inc();
}

/// Whether cluster-wide limits reach Redis.
pub fn redis_up(up: bool) {
    m().redis_up.0.store(i64::from(up), Ordering::Relaxed);
}

/// Commands taken over from a replica whose lease lapsed.
pub fn commands_taken_over(n: usize) {
    m().taken_over.inc_by(n as u64);
}

/// A request served by the unified API; `route` is the matched route pattern (the
/// router's, so a fixed set). Every request records here, through this thread's handles
/// to the route's series ([`local`]).
pub fn http(route: &str, status: u16, secs: f64) {
    thread_local! {
        static ROUTES: Local<Box<str>, (Histogram, Local<u16, Counter>)> = Local::default();
    }
    let label = || Text(Cow::Owned(route.to_owned()));
    ROUTES.with(|routes| {
        routes.record(
            |r| **r == *route,
            || {
                let seconds = m()
                    .http_seconds
                    .get_or_create_owned(&Route { route: label() });
                (route.into(), (seconds, Local::default()))
            },
            |(seconds, requests)| {
                seconds.observe(secs);
                requests.record(
                    |s| *s == status,
                    || {
                        let l = RouteStatus {
                            route: label(),
                            status,
                        };
                        (status, m().http_requests.get_or_create_owned(&l))
                    },
                    |c| {
                        c.inc();
                    },
                );
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_under_their_documented_names() {
        retry("unit-test-oem");
        upstream(
            "unit-test-oem",
            &http::Method::GET,
            Outcome::Status(200),
            0.02,
        );
        breaker_state("unit-test-oem", 2);
        let text = render();
        assert!(text.contains("keyway_upstream_retries_total{oem=\"unit-test-oem\"} 1"));
        assert!(text.contains(
            "keyway_upstream_request_seconds_bucket{le=\"0.025\",oem=\"unit-test-oem\",method=\"GET\",outcome=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("# TYPE keyway_upstream_request_seconds histogram"));
        assert!(text.contains("keyway_upstream_breaker_state{oem=\"unit-test-oem\"} 2"));
        assert_eq!(
            counter("keyway_upstream_retries_total", &[("oem", "unit-test-oem")]),
            1
        );
        assert!(text.ends_with("# EOF\n"));
        // Without cluster mode there is no Redis to be up or down.
        assert!(!text.contains("keyway_cluster_redis_up "), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        http("/odd\"route\\\n", 200, 0.001);
        let text = render();
        assert!(
            text.contains(r#"keyway_http_requests_total{route="/odd\"route\\\n",status="200"} 1"#),
            "{text}"
        );
    }
}
