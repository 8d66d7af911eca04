//! OEM access tokens: cached per account, refreshed before they expire, and refreshed
//! once more when the OEM rejects one mid-call (a 401 means the OEM did not act, so even
//! a command is safe to replay once).
//!
//! Two rules keep rotating refresh tokens from being double-spent:
//! - **single flight per account**: one refresh at a time; callers queue on the
//!   account's lock and re-check the cache after taking it (the refresh race);
//! - **persist before use**: the new refresh token is written to the store before any
//!   caller receives the new access token.
//!
//! A refresh the OEM rejects (`invalid_grant`, `login_required`, Ford's 460, ...) marks
//! the account `reauthorization_required`; no further refresh is attempted until the
//! owner links it again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, header};
use keyway_adapter::{Call, ClientAuth, Delivered, OemError, Secret};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::{ApiError, Code};
use crate::registry::Registry;
use crate::store::{AccountRecord, AccountStatus, Store, TokenSet};

/// Why an OEM call failed: the OEM said so, or keyway could not make the call.
#[derive(Debug)]
pub enum CallError {
    /// The OEM's answer, classified by the adapter.
    Oem(OemError),
    /// keyway's own failure (store, configuration, account state).
    Gateway(ApiError),
}

impl CallError {
    /// The caller-facing error.
    pub fn into_api(self, oem: &str) -> ApiError {
        match self {
            CallError::Oem(e) => ApiError::from_oem(&e, oem),
            CallError::Gateway(e) => e,
        }
    }
}

impl From<ApiError> for CallError {
    fn from(e: ApiError) -> Self {
        CallError::Gateway(e)
    }
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    expires_at: OffsetDateTime,
}

/// The token manager.
pub struct Tokens {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    skew: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// One async lock per account: held across a refresh so only one runs at a time.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The problem answer for an account that must be linked again.
pub fn reauthorization_required(account: &AccountRecord, why: &str) -> ApiError {
    ApiError::new(
        Code::ReauthorizationRequired,
        format!(
            "the {} account must be linked again by its owner: {why}",
            account.oem
        ),
    )
    .with_oem(&account.oem)
    .with("account_id", account.id.clone())
    .with(
        "relink",
        format!("POST /v1/accounts/{}/authorize", account.oem),
    )
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: Option<String>,
}

impl Tokens {
    /// A manager refreshing `skew` before expiry.
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>, skew: Duration) -> Self {
        Self {
            store,
            registry,
            skew,
            cache: Mutex::default(),
            flights: Mutex::default(),
        }
    }

    fn fresh(&self, expires_at: OffsetDateTime) -> bool {
        OffsetDateTime::now_utc() + self.skew < expires_at
    }

    fn cached(&self, account_id: &str) -> Option<Cached> {
        guard(&self.cache)
            .get(account_id)
            .filter(|c| self.fresh(c.expires_at))
            .cloned()
    }

    fn flight(&self, account_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        guard(&self.flights)
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
        let account = self
            .store
            .account(account_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::internal(format!("account {account_id} vanished")))?;
        if account.status == AccountStatus::ReauthorizationRequired {
            return Err(reauthorization_required(
                &account,
                "its authorization was rejected earlier",
            )
            .into());
        }
        if let (Some(token), Some(expires_at)) = (
            &account.tokens.access_token,
            account.tokens.access_expires_at,
        ) && self.fresh(expires_at)
            && rejected != Some(token)
        {
            self.remember(account_id, token.clone(), expires_at);
            return Ok(token.clone());
        }
        self.refresh(&account).await
    }

    fn remember(&self, account_id: &str, token: Secret, expires_at: OffsetDateTime) {
        guard(&self.cache).insert(account_id.to_string(), Cached { token, expires_at });
    }

    /// Forgets the cached token (account unlinked or relinked).
    pub fn forget(&self, account_id: &str) {
        guard(&self.cache).remove(account_id);
    }

    async fn refresh(&self, account: &AccountRecord) -> Result<Secret, CallError> {
        let oem = self.registry.get(&account.oem).ok_or_else(|| {
            ApiError::new(
                Code::NotCapable,
                format!("the OEM {} is not enabled on this gateway", account.oem),
            )
        })?;
        let Some(refresh_token) = account.tokens.refresh_token.clone() else {
            self.give_up(account).await?;
            return Err(reauthorization_required(account, "no refresh token is stored").into());
        };
        let profile = &oem.adapter.info().oauth;
        let url = keyway_adapter::http::join(oem.config.auth_base(), profile.token_path);
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        let secret = oem.config.client_secret.as_ref().map(Secret::expose);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        match profile.client_auth {
            ClientAuth::Body => {
                form.push(("client_id", &oem.config.client_id));
                if let Some(s) = secret {
                    form.push(("client_secret", s));
                }
            }
            ClientAuth::Basic => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    oem.config.client_id,
                    secret.unwrap_or("")
                ));
                let mut value = http::HeaderValue::try_from(format!("Basic {basic}"))
                    .map_err(ApiError::internal)?;
                value.set_sensitive(true);
                req = req.header(header::AUTHORIZATION, value);
            }
        }
        let body = serde_urlencoded::to_string(&form).map_err(ApiError::internal)?;
        let req = req.body(Bytes::from(body)).map_err(ApiError::internal)?;
        let resp = oem
            .http
            .send(req)
            .await
            .map_err(|e| CallError::Oem(e.into()))?;
        let status = resp.status().as_u16();
        if status == 200 {
            let answer: TokenAnswer = keyway_adapter::http::parse_json(&resp, Delivered::Unknown)
                .map_err(CallError::Oem)?;
            let expires_at = OffsetDateTime::now_utc()
                + answer
                    .expires_in
                    .map(Duration::from_secs)
                    .unwrap_or(profile.default_access_ttl);
            let access = Secret::new(answer.access_token);
            let tokens = TokenSet {
                access_token: Some(access.clone()),
                access_expires_at: Some(expires_at),
                // Non-rotating OEMs may omit it: the old one stays valid.
                refresh_token: Some(
                    answer
                        .refresh_token
                        .map(Secret::new)
                        .unwrap_or(refresh_token),
                ),
            };
            // Persist before use: if this write fails, nobody gets the new token.
            self.store
                .save_tokens(&account.id, &tokens)
                .await
                .map_err(|e| {
                    tracing::error!(account = %account.id, error = %e,
                    "refreshed tokens could not be stored; the account may need relinking");
                    ApiError::from(e)
                })?;
            self.remember(&account.id, access.clone(), expires_at);
            tracing::info!(account = %account.id, oem = %account.oem, "access token refreshed");
            return Ok(access);
        }
        let error = serde_json::from_slice::<TokenErrorAnswer>(resp.body())
            .ok()
            .and_then(|e| e.error);
        match status {
            429 => Err(CallError::Oem(OemError::RateLimited {
                retry_after: keyway_adapter::error::parse_retry_after(
                    resp.headers().get(header::RETRY_AFTER),
                ),
            })),
            400..=403 if error.as_deref() == Some("invalid_client") => {
                tracing::error!(oem = %account.oem, "the OEM rejects keyway's OAuth client credentials");
                Err(ApiError::new(
                    Code::UpstreamError,
                    "the OEM rejected this gateway's OAuth client; an operator must fix its credentials",
                )
                .with_oem(&account.oem)
                .into())
            }
            400..=403 => {
                self.give_up(account).await?;
                let why = error.unwrap_or_else(|| format!("token endpoint answered {status}"));
                Err(reauthorization_required(account, &why).into())
            }
            _ => Err(CallError::Oem(OemError::Upstream {
                status,
                detail: "the token endpoint failed".into(),
                delivered: Delivered::Unknown,
            })),
        }
    }

    async fn give_up(&self, account: &AccountRecord) -> Result<(), CallError> {
        tracing::warn!(account = %account.id, oem = %account.oem,
            "OEM rejected the refresh token; account needs reauthorization");
        self.forget(&account.id);
        self.store
            .set_account_status(&account.id, AccountStatus::ReauthorizationRequired)
            .await
            .map_err(ApiError::from)?;
        Ok(())
    }

    /// Runs one OEM operation with a fresh token; if the OEM rejects the token, refreshes
    /// once and replays once.
    pub async fn call<T, F, Fut>(&self, account_id: &str, oem: &str, op: F) -> Result<T, CallError>
    where
        F: Fn(Call) -> Fut,
        Fut: Future<Output = Result<T, OemError>>,
    {
        let http = self
            .registry
            .get(oem)
            .map(|o| o.http.clone())
            .ok_or_else(|| {
                ApiError::new(Code::NotCapable, format!("the OEM {oem} is not enabled"))
            })?;
        let token = self.access_token(account_id).await?;
        let first = op(Call {
            http: http.clone(),
            token: token.clone(),
        })
        .await;
        match first {
            Err(OemError::Unauthorized { .. }) => {
                tracing::info!(account = %account_id, "OEM rejected the access token; refreshing once");
                let token = self.after_rejection(account_id, &token).await?;
                op(Call { http, token }).await.map_err(CallError::Oem)
            }
            other => other.map_err(CallError::Oem),
        }
    }
}
