//! An OAuth server's token state: issues access tokens and refresh tokens, checks
//! them, and rotates refresh tokens the way real OEMs do — single use, with the whole
//! token family revoked when a used refresh token is replayed (OAuth 2.0 Security
//! BCP). Counters let tests prove keyway never presents a refresh token twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{lock, random_token};

/// A freshly issued token pair.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Access-token lifetime.
    pub expires_in: Duration,
    /// The token family (one login and every refresh that follows it).
    pub family: u64,
}

/// Why an access token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessDenied {
    /// Never issued, or revoked.
    Unknown,
    /// Issued but past its lifetime.
    Expired,
}

/// Why a refresh was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshDenied {
    /// Never issued or revoked.
    Unknown,
    /// Already used once: a replay. The whole family is now revoked.
    Replayed,
}

#[derive(Debug)]
struct AccessEntry {
    account: String,
    family: u64,
    expires_at: Instant,
}

#[derive(Debug)]
struct RefreshEntry {
    account: String,
    family: u64,
    used: bool,
}

#[derive(Debug, Default)]
struct Book {
    access: HashMap<String, AccessEntry>,
    refresh: HashMap<String, RefreshEntry>,
    revoked_families: Vec<u64>,
    next_family: u64,
    refreshes_served: u64,
    replays_seen: u64,
}

/// An OAuth server's token state: issues, checks, rotates and revokes tokens.
#[derive(Clone, Debug)]
pub struct TokenBook {
    inner: Arc<Mutex<Book>>,
    access_ttl: Arc<Mutex<Duration>>,
    rotating: bool,
}

impl TokenBook {
    /// A book issuing access tokens valid for `access_ttl`; `rotating` makes every
    /// refresh return a new refresh token and retire the old one.
    pub fn new(access_ttl: Duration, rotating: bool) -> Self {
        Self {
            inner: Arc::default(),
            access_ttl: Arc::new(Mutex::new(access_ttl)),
            rotating,
        }
    }

    /// Changes the lifetime of access tokens issued from now on.
    pub fn set_access_ttl(&self, ttl: Duration) {
        *lock(&self.access_ttl) = ttl;
    }

    /// Issues a new token family for `account` (what a completed login yields).
    pub fn issue(&self, account: &str) -> Issued {
        let mut b = lock(&self.inner);
        b.next_family += 1;
        let family = b.next_family;
        self.issue_in(&mut b, account, family)
    }

    fn issue_in(&self, b: &mut Book, account: &str, family: u64) -> Issued {
        let ttl = *lock(&self.access_ttl);
        let access_token = random_token("at_");
        let refresh_token = random_token("rt_");
        b.access.insert(
            access_token.clone(),
            AccessEntry {
                account: account.to_string(),
                family,
                expires_at: Instant::now() + ttl,
            },
        );
        b.refresh.insert(
            refresh_token.clone(),
            RefreshEntry {
                account: account.to_string(),
                family,
                used: false,
            },
        );
        Issued {
            access_token,
            refresh_token,
            expires_in: ttl,
            family,
        }
    }

    /// The account an access token belongs to, if it is valid now.
    pub fn check(&self, access_token: &str) -> Result<String, AccessDenied> {
        let b = lock(&self.inner);
        let e = b.access.get(access_token).ok_or(AccessDenied::Unknown)?;
        if b.revoked_families.contains(&e.family) {
            return Err(AccessDenied::Unknown);
        }
        if Instant::now() >= e.expires_at {
            return Err(AccessDenied::Expired);
        }
        Ok(e.account.clone())
    }

    /// Redeems a refresh token.
    pub fn refresh(&self, refresh_token: &str) -> Result<Issued, RefreshDenied> {
        let mut b = lock(&self.inner);
        let (account, family, used) = match b.refresh.get(refresh_token) {
            Some(e) => (e.account.clone(), e.family, e.used),
            None => return Err(RefreshDenied::Unknown),
        };
        if b.revoked_families.contains(&family) {
            return Err(RefreshDenied::Unknown);
        }
        if used {
            b.replays_seen += 1;
            b.revoked_families.push(family);
            return Err(RefreshDenied::Replayed);
        }
        if self.rotating
            && let Some(e) = b.refresh.get_mut(refresh_token)
        {
            e.used = true;
        }
        b.refreshes_served += 1;
        let mut issued = self.issue_in(&mut b, &account, family);
        if !self.rotating {
            b.refresh.remove(&issued.refresh_token);
            issued.refresh_token = refresh_token.to_string();
        }
        Ok(issued)
    }

    /// Makes every access token issued so far expired.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for e in lock(&self.inner).access.values_mut() {
            e.expires_at = now;
        }
    }

    /// Revokes every token of `account` (the owner withdrew consent).
    pub fn revoke_account(&self, account: &str) {
        let mut b = lock(&self.inner);
        let families: Vec<u64> = b
            .refresh
            .values()
            .filter(|e| e.account == account)
            .map(|e| e.family)
            .collect();
        b.revoked_families.extend(families);
    }

    /// Revokes one token family (e.g. every token issued from a replayed code).
    pub fn revoke_family(&self, family: u64) {
        lock(&self.inner).revoked_families.push(family);
    }

    /// Every access and refresh token ever issued (tests scan stores and logs for them).
    pub fn all_tokens(&self) -> Vec<String> {
        let b = lock(&self.inner);
        b.access.keys().chain(b.refresh.keys()).cloned().collect()
    }

    /// Refreshes served so far.
    pub fn refreshes_served(&self) -> u64 {
        lock(&self.inner).refreshes_served
    }

    /// Replayed refresh tokens seen so far.
    pub fn replays_seen(&self) -> u64 {
        lock(&self.inner).replays_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn access_tokens_expire() {
        let book = TokenBook::new(Duration::from_secs(60), true);
        let t = book.issue("acct");
        assert_eq!(book.check(&t.access_token), Ok("acct".into()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(book.check(&t.access_token), Err(AccessDenied::Expired));
    }

    #[tokio::test]
    async fn rotating_refresh_is_single_use_and_replay_revokes_family() {
        let book = TokenBook::new(Duration::from_secs(60), true);
        let first = book.issue("acct");
        let second = book.refresh(&first.refresh_token).unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(
            book.refresh(&first.refresh_token).unwrap_err(),
            RefreshDenied::Replayed
        );
        assert_eq!(book.replays_seen(), 1);
        // The family is gone: even the newest tokens stop working.
        assert_eq!(
            book.refresh(&second.refresh_token).unwrap_err(),
            RefreshDenied::Unknown
        );
        assert_eq!(book.check(&second.access_token), Err(AccessDenied::Unknown));
    }

    #[tokio::test]
    async fn non_rotating_refresh_keeps_the_token() {
        let book = TokenBook::new(Duration::from_secs(60), false);
        let first = book.issue("acct");
        let second = book.refresh(&first.refresh_token).unwrap();
        assert_eq!(second.refresh_token, first.refresh_token);
        assert!(book.refresh(&first.refresh_token).is_ok());
    }
}
