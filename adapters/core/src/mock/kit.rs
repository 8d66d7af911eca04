//! Small tools every mock uses: a lock that survives a panicking test ([`lock`]), random
//! token-like strings ([`random_token`]) and a request's bearer token ([`bearer`]).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Locks a mock's state, recovering from a poisoned lock (a panicking test thread must
/// not take every other assertion down with it).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random token-like string (mocks only: unpredictable enough, not a CSPRNG).
pub fn random_token(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let a = RandomState::new().hash_one(n);
    let b = RandomState::new().hash_one(a);
    format!("{prefix}{a:016x}{b:016x}")
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}
