//! Shared in-memory state done one way: poison-tolerant locking for the short,
//! non-async critical sections (caches, single-flight maps, limiter logs) — a thread
//! that panicked while holding a lock must not take every later request down with it —
//! and bounded caches ([`Cache`], `quick_cache`: lock-striped, S3-FIFO eviction). Under
//! the uncached benchmark the `moka` caches they replace cost 9% of the process's CPU
//! (BENCHMARKS.md, profile table). And async locks by key ([`KeyLocks`]: one command
//! per car, one request per idempotency key at a time).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// Async locks by key, each made on first use and dropped once nobody holds or waits
/// for it.
#[derive(Debug, Default)]
pub struct KeyLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// One key's turn, held until dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    locks: &'a KeyLocks,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits for the turn of `key` in `scope` (an idempotency key and whose it is).
    pub async fn scoped(&self, scope: &str, key: &str) -> Turn<'_> {
        self.turn(&[scope, "\u{1f}", key].concat()).await
    }

    /// Waits for `key`'s turn.
    pub async fn turn(&self, key: &str) -> Turn<'_> {
        let l = lock(&self.0).entry(key.to_string()).or_default().clone();
        Turn {
            locks: self,
            guard: Some(l.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        lock(&self.locks.0).retain(|_, l| Arc::strong_count(l) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_per_key_at_a_time_and_nothing_kept_after() {
        let locks = KeyLocks::default();
        let a = locks.turn("a").await;
        let _b = locks.turn("b").await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), locks.turn("a"))
                .await
                .is_err()
        );
        drop(a);
        drop(locks.turn("a").await);
        drop(_b);
        assert!(lock(&locks.0).is_empty());
    }
}
