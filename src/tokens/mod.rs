//! OEM access tokens: cached per account, refreshed before they expire, and
//! refreshed once more when the OEM rejects one mid-call (a 401 means the OEM did not
//! act, so even a command is safe to replay once).
//!
//! Three rules keep rotating refresh tokens from being double-spent:
//! - **single flight per account**: one refresh at a time; callers queue on the
//!   account's lock and re-check the cache after taking it (the refresh race);
//! - **persist before use**: the new refresh token is sealed and written to the store
//!   before any caller receives the new access token;
//! - **one replica at a time** (cluster mode): the refresh runs under the account's
//!   `refresh:<id>` lease in the shared store; replicas without it wait, re-reading the
//!   store until the new token appears (or the lease of a dead holder lapses).
//!
//! A refresh the OEM rejects (`invalid_grant`, `login_required`, Ford's 460, …) marks
//! the account `reauthorization_required`; no further refresh is attempted until the
//! owner links it again. Tokens are sealed ([`crate::crypto`]) before they reach the
//! store, bound to their account and field.
//!
//! What no client can prevent: if the OEM rotates the refresh token and the answer is
//! lost (connection reset, crash before the write), the new token is gone and the next
//! refresh presents the old one; a rotating OEM then revokes the family and the owner
//! must relink. keyway writes the new token immediately after the answer to keep that
//! window as small as it can be.

pub mod device;
mod error;
pub mod oauth;
pub mod pin;

pub use error::{CallError, TokenError};

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_adapter::{Call, OemError, Secret};
use time::OffsetDateTime;

use crate::cluster::Cluster;
use crate::crypto::{CryptoError, Sealer};
use crate::error::Classify;
use crate::registry::{Oem, Registry};
use crate::store::{AccountRecord, AccountStatus, StoredTokens, TokenAreas};
use crate::sync::lock;
use oauth::{Granted, RefreshFailure};

/// The `account.reauthorization_required` event: the OEM no longer accepts the
/// account's authorization, and its owner must link it again.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReauthorizationRequired<'a> {
    /// The account.
    pub account_id: &'a str,
    /// Its OEM.
    pub oem: &'a str,
    /// Its owner (the tenant the event belongs to).
    pub owner: &'a str,
    /// The route that links it again.
    #[schema(example = "/v1/accounts/tesla/authorize")]
    pub relink: String,
}

impl crate::events::Payload for ReauthorizationRequired<'_> {
    fn kind(&self) -> crate::events::Kind {
        crate::events::Kind::AccountReauthorizationRequired
    }

    fn subject(&self) -> crate::events::Subject<'_> {
        crate::events::Subject {
            tenant: self.owner,
            ..Default::default()
        }
    }
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    refresh_at: OffsetDateTime,
}

/// The token manager.
pub struct Tokens {
    store: Arc<dyn TokenAreas>,
    registry: Arc<Registry>,
    sealer: Arc<Sealer>,
    skew: Duration,
    /// Open access tokens by account id (bounded; entries are re-read from the store).
    cache: crate::sync::Cache<String, Cached>,
    /// One async lock per account: held across a refresh so only one runs at a time.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Leases across replicas.
    cluster: Arc<Cluster>,
    /// `account.reauthorization_required` goes here.
    events: Arc<crate::events::Events>,
    /// The gateway's clock (token lifetimes count by it).
    clock: crate::clock::Clock,
    /// OEMs whose rejection of keyway's own client was logged (once each).
    misconfigured: Mutex<std::collections::HashSet<String>>,
}

fn access_aad(account_id: &str) -> String {
    format!("{account_id}/access_token")
}

fn refresh_aad(account_id: &str) -> String {
    format!("{account_id}/refresh_token")
}

impl Tokens {
    /// A manager refreshing `skew` before expiry (at most half a token's lifetime).
    pub fn new(
        store: Arc<dyn TokenAreas>,
        registry: Arc<Registry>,
        sealer: Arc<Sealer>,
        skew: Duration,
        cluster: Arc<Cluster>,
        events: Arc<crate::events::Events>,
        clock: crate::clock::Clock,
    ) -> Self {
        Self {
            clock,
            store,
            registry,
            sealer,
            skew,
            cache: crate::sync::cache(100_000),
            flights: Mutex::default(),
            cluster,
            events,
            misconfigured: Mutex::default(),
        }
    }

    /// Seals freshly granted tokens for storage. `previous_refresh` stays when the OEM
    /// sent no new refresh token (non-rotating OEMs may omit it).
    pub fn seal(
        &self,
        account_id: &str,
        granted: &Granted,
        default_ttl: Duration,
        previous_refresh: Option<&Secret>,
    ) -> Result<StoredTokens, CryptoError> {
        let now = self.clock.now();
        let lifetime = granted.expires_in.unwrap_or(default_ttl);
        let early = self.skew.min(lifetime / 2);
        let refresh = granted.refresh_token.as_ref().or(previous_refresh);
        Ok(StoredTokens {
            access_token: Some(
                self.sealer
                    .seal(&granted.access_token, &access_aad(account_id))?,
            ),
            access_expires_at: Some(now + lifetime),
            access_refresh_at: Some(now + (lifetime - early)),
            refresh_token: refresh
                .map(|r| self.sealer.seal(r, &refresh_aad(account_id)))
                .transpose()?,
        })
    }

    fn open(&self, sealed: &str, aad: &str) -> Result<Secret, CryptoError> {
        self.sealer.open(sealed, aad)
    }

    fn cached(&self, account_id: &str) -> Option<Cached> {
        self.cache
            .get(account_id)
            .filter(|c| self.clock.now() < c.refresh_at)
    }

    fn flight(&self, account_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.flights)
            .entry(account_id.to_string())
            .or_default()
            .clone()
    }

    /// A valid access token for the account, refreshing if needed.
    pub async fn access_token(&self, account_id: &str) -> Result<Secret, CallError> {
        if let Some(c) = self.cached(account_id) {
            return Ok(c.token);
        }
        self.refresh_unless(account_id, None).await
    }

    /// Called after the OEM rejected `rejected`: refreshes unless another caller
    /// already replaced that token.
    pub async fn after_rejection(
        &self,
        account_id: &str,
        rejected: &Secret,
    ) -> Result<Secret, CallError> {
        self.refresh_unless(account_id, Some(rejected)).await
    }

    async fn refresh_unless(
        &self,
        account_id: &str,
        rejected: Option<&Secret>,
    ) -> Result<Secret, CallError> {
        let flight = self.flight(account_id);
        let _one_at_a_time = flight.lock().await;
        // Re-check under the lock: whoever held it may have refreshed already.
        if let Some(c) = self.cached(account_id)
            && rejected != Some(&c.token)
        {
            return Ok(c.token);
        }
        let account = self.load(account_id).await?;
        if let Some(token) = self.usable(&account, rejected)? {
            return Ok(token);
        }
        if !self.cluster.shared {
            return self.refresh(&account).await;
        }
        // Cluster: whoever holds the account's lease refreshes; the others wait for the
        // token it stores. A holder that dies stops blocking when its lease lapses.
        let lease = format!("refresh:{account_id}");
        let give_up = tokio::time::Instant::now() + self.cluster.lease * 2;
        let mut backoff =
            crate::clock::Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        loop {
            if self.store.try_lease(&lease, &self.cluster.lease()).await? {
                // Someone may have refreshed between our read and our lease.
                let account = self.load(account_id).await;
                let result = match account {
                    Ok(account) => match self.usable(&account, rejected) {
                        Ok(Some(token)) => Ok(token),
                        Ok(None) => self.refresh(&account).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                if let Err(e) = self
                    .store
                    .release_lease(&lease, &self.cluster.replica)
                    .await
                {
                    tracing::warn!(account = %account_id, error = %e, "could not release the refresh lease");
                }
                return result;
            }
            backoff.wait().await;
            let account = self.load(account_id).await?;
            if let Some(token) = self.usable(&account, rejected)? {
                return Ok(token);
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(TokenError::RefreshPending {
                    oem: account.oem.into(),
                }
                .into());
            }
        }
    }

    /// The account as stored; refuses one that must be linked again.
    async fn load(&self, account_id: &str) -> Result<AccountRecord, CallError> {
        let account = self
            .store
            .account(account_id)
            .await?
            .ok_or_else(|| TokenError::Vanished(account_id.to_string()))?;
        if account.status == AccountStatus::ReauthorizationRequired {
            return Err(TokenError::reauthorize(
                &account,
                "its authorization was rejected earlier",
            )
            .into());
        }
        Ok(account)
    }

    /// The stored access token (now cached), if it is not due and not `rejected`.
    fn usable(
        &self,
        account: &AccountRecord,
        rejected: Option<&Secret>,
    ) -> Result<Option<Secret>, CallError> {
        let t = &account.tokens;
        if let (Some(sealed), Some(refresh_at)) = (&t.access_token, t.access_refresh_at)
            && self.clock.now() < refresh_at
        {
            let token = self.open(sealed, &access_aad(&account.id))?;
            if rejected != Some(&token) {
                self.cache.insert(
                    account.id.clone(),
                    Cached {
                        token: token.clone(),
                        refresh_at,
                    },
                );
                return Ok(Some(token));
            }
        }
        Ok(None)
    }

    /// Forgets the cached token (account unlinked or relinked).
    pub fn forget(&self, account_id: &str) {
        self.cache.remove(account_id);
    }

    async fn refresh(&self, account: &AccountRecord) -> Result<Secret, CallError> {
        let oem = self
            .registry
            .get(&account.oem)
            .ok_or_else(|| TokenError::NotEnabled(account.oem.to_string()))?;
        let Some(sealed_refresh) = &account.tokens.refresh_token else {
            self.give_up(account).await?;
            return Err(TokenError::reauthorize(account, "no refresh token is stored").into());
        };
        let refresh_token = self.open(sealed_refresh, &refresh_aad(&account.id))?;
        match oauth::refresh(oem, &refresh_token).await {
            Ok(granted) => {
                let default_ttl = oem.adapter.info().oauth.default_access_ttl;
                let stored = self.seal(&account.id, &granted, default_ttl, Some(&refresh_token))?;
                // Persist before use: if this write fails, nobody gets the new token.
                self.store
                    .save_tokens(&account.id, &stored)
                    .await
                    .inspect_err(|e| {
                        tracing::error!(account = %account.id, error = %e,
                            "refreshed tokens could not be stored; the account may need relinking");
                    })?;
                let refresh_at = stored.access_refresh_at.unwrap_or_else(|| self.clock.now());
                self.cache.insert(
                    account.id.clone(),
                    Cached {
                        token: granted.access_token.clone(),
                        refresh_at,
                    },
                );
                tracing::info!(account = %account.id, oem = %account.oem, "access token refreshed");
                crate::metrics::token_refresh(oem.adapter.info().oem, "ok");
                Ok(granted.access_token)
            }
            Err(RefreshFailure::Rejected(why)) => {
                crate::metrics::token_refresh(oem.adapter.info().oem, "rejected");
                self.give_up(account).await?;
                Err(TokenError::reauthorize(account, &why).into())
            }
            Err(RefreshFailure::BadClient) => {
                crate::metrics::token_refresh(oem.adapter.info().oem, "misconfigured");
                if crate::sync::lock(&self.misconfigured).insert(account.oem.to_string()) {
                    tracing::error!(oem = %account.oem,
                        "the OEM rejects keyway's OAuth client credentials: fix oems.{}.client_id / \
                         client_secret (owners need not relink)", account.oem);
                }
                Err(TokenError::BadClient {
                    oem: account.oem.to_string(),
                }
                .into())
            }
            Err(RefreshFailure::Oem(e)) => {
                crate::metrics::token_refresh(oem.adapter.info().oem, e.kind());
                Err(CallError::Oem(e))
            }
        }
    }

    async fn give_up(&self, account: &AccountRecord) -> Result<(), CallError> {
        tracing::warn!(account = %account.id, oem = %account.oem,
            "OEM rejected the refresh token; account needs reauthorization");
        self.forget(&account.id);
        self.store
            .set_account_status(&account.id, AccountStatus::ReauthorizationRequired)
            .await?;
        self.events
            .emit(&ReauthorizationRequired {
                account_id: &account.id,
                oem: &account.oem,
                owner: &account.owner,
                relink: format!("POST /v1/accounts/{}/authorize", account.oem),
            })
            .await;
        Ok(())
    }

    /// Runs one OEM operation with a fresh token; if the OEM rejects the token, refreshes
    /// once and replays once. A rate-limit answer (whatever its style) makes the whole
    /// OEM back off for the announced time. `operation` names it in metrics.
    pub async fn call<T, F, Fut>(
        &self,
        account_id: &str,
        entry: &Oem,
        operation: &'static str,
        op: F,
    ) -> Result<T, CallError>
    where
        F: Fn(Call) -> Fut,
        Fut: Future<Output = Result<T, OemError>>,
    {
        let started = tokio::time::Instant::now();
        let result = async {
            let token = self.access_token(account_id).await?;
            let call = |token: Secret| Call {
                http: entry.http.clone(),
                token,
                command_id: None,
                account: Some(account_id.to_string()),
                pin: None,
            };
            match op(call(token.clone())).await {
                Err(OemError::Unauthorized { .. }) => {
                    tracing::info!(account = %account_id, "OEM rejected the access token; refreshing once");
                    let token = self.after_rejection(account_id, &token).await?;
                    op(call(token)).await.map_err(CallError::Oem)
                }
                other => other.map_err(CallError::Oem),
            }
        }
        .await;
        if let Err(CallError::Oem(OemError::ClientRejected { .. })) = &result
            && crate::sync::lock(&self.misconfigured)
                .insert(format!("{}/api_key", entry.adapter.info().oem))
        {
            let oem = entry.adapter.info().oem;
            tracing::error!(
                oem,
                "the OEM rejects keyway's application credentials: fix oems.{oem}.api_key \
                 (owners need not relink)"
            );
        }
        if let Err(CallError::Oem(OemError::RateLimited { retry_after })) = &result {
            crate::metrics::rate_limited(entry.adapter.info().oem);
            entry
                .requests
                .push_back(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CallError::Oem(e)) => e.kind(),
            Err(CallError::Token(e)) => e.code().as_str(),
        };
        crate::metrics::operation(
            entry.adapter.info().oem,
            operation,
            outcome,
            started.elapsed().as_secs_f64(),
        );
        result
    }

    /// Re-seals every stored token and PIN with the active key; returns how many tokens
    /// sets and PINs changed.
    /// Safe beside a running gateway: each account is replaced only if its tokens did not
    /// change meanwhile (a refresh writes with the running gateway's active key anyway).
    pub async fn reseal_all(&self) -> Result<usize, TokenError> {
        let mut changed = 0;
        for account in self.store.accounts().await? {
            if self.reseal_pin(&account.id).await? {
                changed += 1;
            }
            let old = &account.tokens;
            let stale = [&old.access_token, &old.refresh_token]
                .into_iter()
                .flatten()
                .any(|s| self.sealer.needs_rotation(s));
            if !stale {
                continue;
            }
            let reseal =
                |sealed: &Option<String>, aad: &str| -> Result<Option<String>, TokenError> {
                    sealed.as_ref().map(|s| self.resealed(s, aad)).transpose()
                };
            let new = StoredTokens {
                access_token: reseal(&old.access_token, &access_aad(&account.id))?,
                refresh_token: reseal(&old.refresh_token, &refresh_aad(&account.id))?,
                ..old.clone()
            };
            if self.store.replace_tokens(&account.id, old, &new).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// `sealed` (bound to `aad`) sealed again with the active key.
    fn resealed(&self, sealed: &str, aad: &str) -> Result<String, TokenError> {
        Ok(self.sealer.seal(&self.open(sealed, aad)?, aad)?)
    }
}
