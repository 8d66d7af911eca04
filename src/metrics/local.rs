//! A serving thread's own handles to the series it records on the request path. A
//! family finds a series by hashing its labels under the family's read lock, which
//! every serving thread shares; a series handle shares its counts with the family's,
//! so each thread keeps the handles it has used and finds them again by comparing
//! labels, with no lock. Only families whose labels come from small fixed sets (routes,
//! OEMs, methods, outcomes, read kinds) are recorded this way: the list is searched in
//! order.

use std::cell::RefCell;
use std::hash::Hash;
use std::thread::LocalKey;

use prometheus_client::metrics::family::{Family, MetricConstructor};

/// One thread's handles to one family's series, by key (the label set, or what stands
/// for it).
pub struct Local<L, M>(RefCell<Vec<(L, M)>>);

impl<L, M> Default for Local<L, M> {
    fn default() -> Self {
        Self(RefCell::new(Vec::new()))
    }
}

impl<L, M> Local<L, M> {
    /// Runs `record` on the series whose key `is` picks, made by `create` the first
    /// time this thread records it.
    pub fn record(
        &self,
        is: impl Fn(&L) -> bool,
        create: impl FnOnce() -> (L, M),
        record: impl FnOnce(&M),
    ) {
        let mut series = self.0.borrow_mut();
        let i = match series.iter().position(|(l, _)| is(l)) {
            Some(i) => i,
            None => {
                series.push(create());
                series.len() - 1
            }
        };
        record(&series[i].1);
    }
}

/// Runs `record` on this thread's handle (in `local`) to `family`'s series `label`.
pub fn record<L, M, C>(
    local: &'static LocalKey<Local<L, M>>,
    family: &Family<L, M, C>,
    label: L,
    record: impl FnOnce(&M),
) where
    L: Clone + Hash + Eq,
    M: Clone,
    C: MetricConstructor<M>,
{
    local.with(|s| {
        s.record(
            |l| *l == label,
            || (label.clone(), family.get_or_create_owned(&label)),
            record,
        )
    });
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    use super::Local;

    #[test]
    fn handles_share_the_familys_counts_and_are_made_once_per_label() {
        let family = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        let local = Local::default();
        let made = std::cell::Cell::new(0);
        for label in ["a", "b", "a", "a"] {
            local.record(
                |l| *l == label,
                || {
                    made.set(made.get() + 1);
                    (label, family.get_or_create_owned(&vec![("k", label)]))
                },
                |c| {
                    c.inc();
                },
            );
        }
        assert_eq!(made.get(), 2);
        assert_eq!(family.get_or_create(&vec![("k", "a")]).get(), 3);
        assert_eq!(family.get_or_create(&vec![("k", "b")]).get(), 1);
    }
}
