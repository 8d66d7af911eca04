//! Prometheus metrics: a small process-wide registry of counters, gauges and
//! histograms with labels, rendered in the text exposition format at `/metrics`.
//! Hand-rolled because keyway needs a fixed, short list of series; named helpers below
//! are the only way code records, so every series is documented in one place.
//! Labels never carry secrets or unbounded values (no vehicle ids, no tokens).

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex};

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Series are found by a hash of name and labels, so recording allocates nothing once
/// a series exists; the owned name and labels are kept for rendering.
#[derive(Default)]
struct Registry {
    hasher: std::collections::hash_map::RandomState,
    counters: HashMap<u64, (&'static str, Labels, u64)>,
    gauges: HashMap<u64, (&'static str, Labels, f64)>,
    histograms: HashMap<u64, (&'static str, Labels, Histogram)>,
}

impl Registry {
    fn key(&self, name: &str, l: &[(&'static str, &str)]) -> u64 {
        let mut h = self.hasher.build_hasher();
        name.hash(&mut h);
        l.hash(&mut h);
        h.finish()
    }
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

const HELP: &[(&str, &str, &str)] = &[
    (
        "keyway_http_requests_total",
        "counter",
        "Requests served by the unified API, by route and status.",
    ),
    (
        "keyway_http_request_seconds",
        "histogram",
        "Time to answer a request of the unified API, by route.",
    ),
    (
        "keyway_upstream_request_seconds",
        "histogram",
        "OEM HTTP exchanges, by OEM, method and outcome.",
    ),
    (
        "keyway_oem_operation_seconds",
        "histogram",
        "Adapter operations (with token refresh and replay), by OEM, operation and outcome.",
    ),
    (
        "keyway_oem_billable_requests_total",
        "counter",
        "Requests an OEM bills, by OEM and class (Tesla: data, command, wake).",
    ),
    (
        "keyway_oem_estimated_spend_usd",
        "gauge",
        "Estimated OEM spend of this process in US dollars (billable requests × configured prices).",
    ),
    (
        "keyway_upstream_retries_total",
        "counter",
        "Retries sent to an OEM.",
    ),
    (
        "keyway_upstream_retry_budget_exhausted_total",
        "counter",
        "Retries not sent because the OEM's retry budget was spent.",
    ),
    (
        "keyway_upstream_breaker_state",
        "gauge",
        "Circuit breaker per OEM: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "keyway_upstream_breaker_rejections_total",
        "counter",
        "Requests refused while an OEM's breaker was open.",
    ),
    (
        "keyway_upstream_quota_wait_seconds",
        "histogram",
        "Time requests waited for an OEM quota slot.",
    ),
    (
        "keyway_upstream_quota_rejections_total",
        "counter",
        "Requests refused because an OEM quota was spent.",
    ),
    (
        "keyway_upstream_rate_limited_total",
        "counter",
        "Rate-limit answers from OEMs (429, quota messages).",
    ),
    (
        "keyway_read_cache_total",
        "counter",
        "Vehicle reads by cache result: hit, miss, coalesced, stale.",
    ),
    (
        "keyway_commands_total",
        "counter",
        "Commands finished, by OEM, action and status.",
    ),
    (
        "keyway_token_refreshes_total",
        "counter",
        "OEM token refreshes, by OEM and outcome.",
    ),
    (
        "keyway_inbound_rejections_total",
        "counter",
        "Requests refused by keyway's own limits, by reason.",
    ),
    (
        "keyway_cluster_limits_degraded_total",
        "counter",
        "Limit checks decided locally because Redis was unreachable, by limit kind.",
    ),
    (
        "keyway_cluster_redis_up",
        "gauge",
        "1 while cluster-wide limits reach Redis, 0 while they fall back to local limits.",
    ),
    (
        "keyway_cluster_commands_taken_over_total",
        "counter",
        "Pending commands this replica took over after their lease lapsed.",
    ),
];

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    crate::sync::lock(&REGISTRY)
}

fn labels(l: &[(&'static str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Adds one to a counter.
pub fn inc(name: &'static str, l: &[(&'static str, &str)]) {
    let mut r = registry();
    let k = r.key(name, l);
    r.counters
        .entry(k)
        .or_insert_with(|| (name, labels(l), 0))
        .2 += 1;
}

/// Sets a gauge.
pub fn set(name: &'static str, l: &[(&'static str, &str)], value: f64) {
    let mut r = registry();
    let k = r.key(name, l);
    r.gauges
        .entry(k)
        .or_insert_with(|| (name, labels(l), 0.0))
        .2 = value;
}

/// Records one observation (seconds) in a histogram.
pub fn observe(name: &'static str, l: &[(&'static str, &str)], secs: f64) {
    let mut r = registry();
    let k = r.key(name, l);
    let h = &mut r
        .histograms
        .entry(k)
        .or_insert_with(|| (name, labels(l), Histogram::default()))
        .2;
    for (i, b) in BUCKETS.iter().enumerate() {
        if secs <= *b {
            h.counts[i] += 1;
        }
    }
    h.sum += secs;
    h.count += 1;
}

/// A counter's current value (tests).
pub fn counter(name: &'static str, l: &[(&'static str, &str)]) -> u64 {
    let r = registry();
    r.counters.get(&r.key(name, l)).map(|c| c.2).unwrap_or(0)
}

fn fmt_labels(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The text exposition of every series (sorted, so scrapes are stable).
pub fn render() -> String {
    let r = registry();
    let mut counters: Vec<_> = r.counters.values().collect();
    let mut gauges: Vec<_> = r.gauges.values().collect();
    let mut histograms: Vec<_> = r.histograms.values().collect();
    counters.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    gauges.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    histograms.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut out = String::new();
    for (name, kind, help) in HELP {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (n, l, v) in &counters {
            if n == name {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
            }
        }
        for (n, l, v) in &gauges {
            if n == name {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
            }
        }
        for (n, l, h) in &histograms {
            if n == name {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        fmt_labels(l, Some(("le", b.to_string()))),
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    fmt_labels(l, Some(("le", "+Inf".into()))),
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(l, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", fmt_labels(l, None), h.count);
            }
        }
    }
    out
}

// === named recorders ===

/// A retry was sent.
pub fn retry(oem: &str) {
    inc("keyway_upstream_retries_total", &[("oem", oem)]);
}

/// A retry was not sent: budget spent.
pub fn retry_budget_exhausted(oem: &str) {
    inc(
        "keyway_upstream_retry_budget_exhausted_total",
        &[("oem", oem)],
    );
}

/// Breaker state changed (0 closed, 1 half-open, 2 open).
pub fn breaker_state(oem: &str, state: u8) {
    set(
        "keyway_upstream_breaker_state",
        &[("oem", oem)],
        f64::from(state),
    );
}

/// A request was refused by an open breaker.
pub fn breaker_rejection(oem: &str) {
    inc("keyway_upstream_breaker_rejections_total", &[("oem", oem)]);
}

/// A request waited for a quota slot.
pub fn quota_wait(oem: &str, kind: &str, secs: f64) {
    observe(
        "keyway_upstream_quota_wait_seconds",
        &[("oem", oem), ("quota", kind)],
        secs,
    );
}

/// A request was refused: quota spent.
pub fn quota_rejection(oem: &str, kind: &str) {
    inc(
        "keyway_upstream_quota_rejections_total",
        &[("oem", oem), ("quota", kind)],
    );
}

/// The OEM answered with a rate limit.
pub fn rate_limited(oem: &str) {
    inc("keyway_upstream_rate_limited_total", &[("oem", oem)]);
}

/// One OEM HTTP exchange.
pub fn upstream(oem: &str, method: &str, outcome: &str, secs: f64) {
    observe(
        "keyway_upstream_request_seconds",
        &[("oem", oem), ("method", method), ("outcome", outcome)],
        secs,
    );
}

/// One adapter operation.
pub fn operation(oem: &str, op: &str, outcome: &str, secs: f64) {
    observe(
        "keyway_oem_operation_seconds",
        &[("oem", oem), ("operation", op), ("outcome", outcome)],
        secs,
    );
}

/// A read's cache result.
pub fn cache(kind: &str, result: &str) {
    inc(
        "keyway_read_cache_total",
        &[("read", kind), ("result", result)],
    );
}

/// A finished command.
pub fn command(oem: &str, action: &str, status: &str) {
    inc(
        "keyway_commands_total",
        &[("oem", oem), ("action", action), ("status", status)],
    );
}

/// A token refresh.
pub fn token_refresh(oem: &str, outcome: &str) {
    inc(
        "keyway_token_refreshes_total",
        &[("oem", oem), ("outcome", outcome)],
    );
}

/// A request refused by keyway's own limits.
pub fn inbound_rejection(reason: &str) {
    inc("keyway_inbound_rejections_total", &[("reason", reason)]);
}

/// A limit check decided locally because Redis was unreachable.
pub fn limits_degraded(kind: &str) {
    inc("keyway_cluster_limits_degraded_total", &[("kind", kind)]);
}

/// Whether cluster-wide limits reach Redis.
pub fn redis_up(up: bool) {
    set("keyway_cluster_redis_up", &[], if up { 1.0 } else { 0.0 });
}

/// Commands taken over from a replica whose lease lapsed.
pub fn commands_taken_over(n: usize) {
    for _ in 0..n {
        inc("keyway_cluster_commands_taken_over_total", &[]);
    }
}

/// A request served by the unified API.
pub fn http(route: &str, status: u16, secs: f64) {
    let status = status.to_string();
    inc(
        "keyway_http_requests_total",
        &[("route", route), ("status", &status)],
    );
    observe("keyway_http_request_seconds", &[("route", route)], secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        retry("unit-test-oem");
        upstream("unit-test-oem", "GET", "200", 0.02);
        let text = render();
        assert!(text.contains("keyway_upstream_retries_total{oem=\"unit-test-oem\"} 1"));
        assert!(text.contains(
            "keyway_upstream_request_seconds_bucket{oem=\"unit-test-oem\",method=\"GET\",outcome=\"200\",le=\"0.025\"} 1"
        ));
        assert!(text.contains("# TYPE keyway_upstream_request_seconds histogram"));
    }
}
