//! A latency histogram recorded with atomics alone. `prometheus-client`'s own
//! histogram takes a mutex on every observation, and the request path observes one per
//! request from every serving worker; this one adds to its bucket, count and sum
//! without a lock and encodes exactly as that one does (classic buckets with `+Inf`,
//! `_sum`, `_count`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A histogram over fixed upper bounds (plus `+Inf`); clones share their counts.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One count per bound, then `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with the finite upper `bounds`, in increasing order.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self(Arc::new(Inner {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one value (NaN counts in `+Inf`, as `prometheus-client` does).
    pub fn observe(&self, v: f64) {
        let i = self.0.bounds.partition_point(|b| *b < v);
        let i = if v.is_nan() { self.0.bounds.len() } else { i };
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .0
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            f64::from_bits(self.0.sum.load(Ordering::Relaxed)),
            self.0.count.load(Ordering::Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    const BOUNDS: [f64; 3] = [0.01, 0.1, 1.0];

    fn text(metric: impl EncodeMetric + Clone + Send + Sync + std::fmt::Debug + 'static) -> String {
        let mut registry = Registry::default();
        registry.register("h", "a histogram", metric);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn encodes_as_prometheus_clients_own_histogram() {
        let ours = Histogram::new(&BOUNDS);
        let theirs = prometheus_client::metrics::histogram::Histogram::new(BOUNDS);
        for v in [0.0, 0.01, 0.010001, 0.5, 1.0, 7.0, f64::NAN, 0.05] {
            ours.observe(v);
            theirs.observe(v);
        }
        // NaN makes both sums NaN (both print it the same way), so a second pair
        // without NaN compares real sums too.
        assert_eq!(text(ours), text(theirs));
        let (ours, theirs) = (
            Histogram::new(&BOUNDS),
            prometheus_client::metrics::histogram::Histogram::new(BOUNDS),
        );
        for v in [0.003, 0.2, 0.2, 3.5] {
            ours.observe(v);
            theirs.observe(v);
        }
        let ours = text(ours);
        assert_eq!(ours, text(theirs));
        assert!(ours.contains("h_bucket{le=\"0.1\"} 1\n"), "{ours}");
        assert!(ours.contains("h_bucket{le=\"+Inf\"} 4\n"), "{ours}");
        assert!(ours.contains("h_count 4\n"), "{ours}");
    }

    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let h = Histogram::new(&BOUNDS);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        h.observe(0.5);
                    }
                });
            }
        });
        let out = text(h);
        assert!(out.contains("h_count 40000\n"), "{out}");
        assert!(out.contains("h_sum 20000.0\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.1\"} 0\n"), "{out}");
    }
}
