//! Poison-tolerant locking for the short, non-async critical sections of keyway's
//! in-memory state (caches, single-flight maps, limiter logs): a thread that panicked
//! while holding a lock must not take every later request down with it.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data if a previous holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
