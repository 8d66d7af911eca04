//! Watching's metrics: how many cars are watched per OEM, and the OEM requests their
//! reads take. `rate(keyway_watch_requests_total[1h]) * 3600 / keyway_watched_cars` is
//! the requests per watched car-hour of an OEM; times its price per request
//! (`oems.<oem>.prices`), the spend per watched car-hour.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::Oem;

/// The families.
#[derive(Default)]
pub(super) struct Watching {
    cars: Family<Oem, Gauge>,
    requests: Family<Oem, Counter>,
}

impl Watching {
    /// Registers both families.
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "keyway_watched_cars",
            "Cars watched now (by callers, and every grant in use), by OEM",
            self.cars.clone(),
        );
        r.register(
            "keyway_watch_requests",
            "OEM requests the watcher's reads took, by OEM",
            self.requests.clone(),
        );
    }

    /// `n` cars of `oem` are watched now.
    pub(super) fn set_cars(&self, oem: &'static str, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.cars.get_or_create(&Oem { oem }).set(n);
    }

    /// One reading of a watched car of `oem` took `n` OEM requests.
    pub(super) fn count_requests(&self, oem: &'static str, n: usize) {
        self.requests.get_or_create(&Oem { oem }).inc_by(n as u64);
    }
}
