//! Shared in-memory state done one way: poison-tolerant locking for the short,
//! non-async critical sections (caches, single-flight maps, limiter logs) — a thread
//! that panicked while holding a lock must not take every later request down with it —
//! and bounded caches ([`Cache`], `quick_cache`: lock-striped, S3-FIFO eviction). Under
//! the uncached benchmark the `moka` caches they replace cost 9% of the process's CPU
//! (BENCHMARKS.md, profile table).

use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// A bounded in-memory cache. Entries carry their own age where it matters: readers
/// check it (no background expiry).
pub type Cache<K, V> = quick_cache::sync::Cache<K, V>;

/// A cache of at most `max` entries that starts small and grows with use.
pub fn cache<K: Eq + Hash, V: Clone>(max: u64) -> Cache<K, V> {
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(1024.min(max as usize))
        .weight_capacity(max)
        .build()
        .unwrap_or_else(|_| unreachable!("both options are set"));
    Cache::with_options(
        options,
        Default::default(),
        Default::default(),
        Default::default(),
    )
}

/// Locks `m`, recovering the data if a previous holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
