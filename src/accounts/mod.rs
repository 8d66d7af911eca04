//! OEM accounts: linking an owner's account through the OEM's OAuth server
//! (authorization code + PKCE + a single-use `state` bound to the caller who started
//! it) — or through the OEM's own app login, whose redirect the caller hands over, or
//! by the owner an aggregator's redirect names, checked with the OEM
//! (`keyway_adapter::login`) — discovering its vehicles, listing and unlinking.
//!
//! The `state` is random (from the `oauth2` crate), stored only as a SHA-256 hash, taken
//! (deleted) by the first callback that presents it, and good for 10 minutes. The PKCE
//! verifier never leaves the server and is stored sealed. Discovery keeps vehicle ids
//! stable: a car the OEM lists again keeps the id callers already use, and an account
//! a relink has replaced (no vehicles left) is removed.

use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::login::{param, redirect_params};
use keyway_adapter::{OemError, Secret};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::crypto::Sealer;
use crate::error::OemFailure;
use crate::ids;
use crate::registry::Registry;
use crate::store::AccountAreas;
use crate::store::{AccountRecord, AccountStatus, LinkState, VehicleRecord};
use crate::tokens::oauth;
use crate::tokens::{TokenError, Tokens};
use crate::vehicles::Fleet;

mod device;
mod error;
mod polls;
mod shapes;

pub use error::AccountError;
pub use shapes::{Callback, DeviceCode, DevicePoll, LinkStart, Listed, PinState};

/// How long an authorization may take.
pub const LINK_TTL: Duration = Duration::from_secs(600);

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn verifier_aad(hash: &str) -> String {
    format!("link/{hash}/verifier")
}

fn link_pin_aad(hash: &str) -> String {
    format!("link/{hash}/pin")
}

/// `pin` checked: 4 to 8 digits.
fn checked_pin(pin: &str) -> Result<&str, AccountError> {
    match crate::tokens::pin::valid(pin) {
        true => Ok(pin),
        false => Err(AccountError::Invalid("a PIN is 4 to 8 digits".into())),
    }
}

fn no_link() -> AccountError {
    AccountError::NoLink("unknown or already used state; start the link again".into())
}

/// The OEM's authorization error a redirect brought back (the browser or app brought
/// it: logged escaped). Anything but the owner's "no" may be keyway's configuration or
/// the OEM's trouble.
fn declined(link: LinkState, error: String, detail: Option<String>) -> AccountError {
    if error == "access_denied" {
        tracing::info!(oem = %link.oem, ?error, "the owner declined the authorization");
    } else {
        tracing::warn!(oem = %link.oem, ?error, "the OEM returned an authorization error");
    }
    AccountError::Declined {
        oem: link.oem.into(),
        error,
        detail: detail.unwrap_or_default(),
    }
}

/// The redirect URI keyway registers with every OEM.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{public_url}/v1/oauth/callback")
}

/// Account linking and its parts.
pub struct Accounts {
    redirect_uri: String,
    registry: Arc<Registry>,
    store: Arc<dyn AccountAreas>,
    sealer: Arc<Sealer>,
    tokens: Arc<Tokens>,
    fleet: Arc<Fleet>,
    clock: crate::clock::Clock,
    device_polls: polls::Polls,
}

impl Accounts {
    /// Accounts linked through `<public_url>/v1/oauth/callback`.
    pub fn new(
        public_url: &str,
        registry: Arc<Registry>,
        store: Arc<dyn AccountAreas>,
        sealer: Arc<Sealer>,
        tokens: Arc<Tokens>,
        fleet: Arc<Fleet>,
        clock: crate::clock::Clock,
    ) -> Self {
        Self {
            clock,
            redirect_uri: redirect_uri(public_url),
            registry,
            store,
            sealer,
            tokens,
            fleet,
            device_polls: polls::Polls::default(),
        }
    }

    fn enabled(&self, oem: &str) -> Result<&crate::registry::Oem, AccountError> {
        self.registry.get(oem).ok_or_else(|| {
            let mut ids: Vec<&str> = self.registry.ids().collect();
            ids.sort_unstable();
            AccountError::NoOem(format!(
                "the OEM {oem:?} is not enabled on this gateway (enabled: {})",
                ids.join(", ")
            ))
        })
    }

    /// Starts linking an account of `oem` for `caller`; the owner's `pin`, when given,
    /// waits sealed with the link and is set on the account the callback creates.
    pub async fn start(
        &self,
        caller: &Caller,
        oem: &str,
        pin: Option<&str>,
    ) -> Result<LinkStart, AccountError> {
        caller.require_unrestricted("link accounts")?;
        let entry = self.enabled(oem)?;
        let pin = pin.map(checked_pin).transpose()?;
        let linking = entry.adapter.info().oauth.linking;
        let app_redirect = linking.app_redirect();
        let mut device = None;
        let (auth, redirect) = match app_redirect {
            // RFC 8628: the OEM draws the codes; keyway's `state` names the link, and
            // the device code waits sealed where a verifier would.
            None if linking.device().is_some() => {
                let d = crate::tokens::device::start(entry).await?;
                let url = d
                    .verification_uri_complete
                    .clone()
                    .unwrap_or_else(|| d.verification_uri.clone());
                let auth = oauth::Authorization {
                    url,
                    state: oauth::fresh_state(),
                    verifier: d.device_code.clone(),
                };
                let page = d.verification_uri.clone();
                device = Some(d);
                (auth, page)
            }
            None => (
                oauth::authorization(entry, &self.redirect_uri)?,
                self.redirect_uri.clone(),
            ),
            // The OEM's own app login: the adapter says where (with keyway's state and
            // PKCE challenge, or the OEM's own state); the verifier waits sealed.
            Some(redirect_uri) => {
                let (link, verifier) = oauth::app_link();
                let login = entry
                    .adapter
                    .app_login(&entry.auth_http, entry.config.login_base(), &link)
                    .await
                    .map_err(|e| TokenError::from(OemFailure::new(oem, e)))?;
                let auth = oauth::Authorization {
                    url: login.url,
                    state: login.state,
                    verifier,
                };
                (auth, redirect_uri.to_string())
            }
        };
        let hash = state_hash(auth.state.expose());
        let created_at = self.clock.now();
        let ttl = device
            .as_ref()
            .map_or(LINK_TTL, |d| d.expires_in.min(LINK_TTL));
        let expires_at = created_at + ttl;
        if let Some(d) = &device {
            // The first poll may ask at once; each later one an interval after.
            let wait = polls::Wait {
                next: created_at,
                interval: d.interval,
                expires_at,
            };
            self.device_polls.set(&hash, created_at, wait);
        }
        self.store
            .put_link_state(&LinkState {
                state_hash: hash.clone(),
                oem: oem.into(),
                // The account will belong to the caller's tenant.
                caller: caller.tenant.to_string(),
                verifier: self.sealer.seal(&auth.verifier, &verifier_aad(&hash))?,
                redirect_uri: redirect,
                pin: pin
                    .map(|p| self.sealer.seal(&Secret::new(p), &link_pin_aad(&hash)))
                    .transpose()?,
                created_at,
                expires_at,
            })
            .await?;
        tracing::info!(oem, caller = %caller.sub, "account link started");
        Ok(LinkStart {
            authorization_url: auth.url,
            state: auth.state,
            expires_at,
            app_redirect,
            device: device.map(|d| DeviceCode {
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                interval: d.interval,
            }),
        })
    }

    /// Completes a link from the OEM's redirect (`cb`, and all its `params`): exchanges
    /// the code — or, for an OEM that names the owner instead, takes the owner's id
    /// once the OEM confirms that owner connected during the link — stores the sealed
    /// tokens (and the PIN given with the link), discovers the vehicles.
    pub async fn complete(
        &self,
        cb: Callback,
        params: &[(String, String)],
    ) -> Result<Listed, AccountError> {
        let state = cb
            .state
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AccountError::Invalid("the callback has no state".into()))?;
        let (link, hash) = self.take_link(&state).await?;
        if let Some(error) = cb.error {
            return Err(declined(link, error, cb.error_description));
        }
        let entry = self.enabled(&link.oem)?;
        if let Some(name) = entry.adapter.info().oauth.linking.owner_param() {
            let owner = param(params, name).ok_or(AccountError::NoGrant)?;
            let granted = self.owner_connected(entry, &link, owner).await?;
            return self.link(entry, &link, &hash, &granted).await;
        }
        // The state was good, but no grant came back with it: the authorization did
        // not happen, and the link must start again.
        let code = cb
            .code
            .filter(|c| !c.is_empty())
            .ok_or(AccountError::NoGrant)?;
        let verifier = self.sealer.open(&link.verifier, &verifier_aad(&hash))?;
        let granted = oauth::exchange_code(entry, &code, &verifier, &link.redirect_uri).await?;
        self.link(entry, &link, &hash, &granted).await
    }

    /// Completes an app login's link (an OEM whose profile says `Linking::App`) from
    /// the redirect the owner's app caught, handed over by a caller of the tenant that
    /// started it: the OEM trades what the redirect carries for the account's tokens.
    pub async fn complete_app(
        &self,
        caller: &Caller,
        redirect_url: &str,
    ) -> Result<Listed, AccountError> {
        caller.require_unrestricted("link accounts")?;
        let (oem, params) = self
            .registry
            .ids()
            .filter_map(|id| {
                let linking = self.registry.get(id)?.adapter.info().oauth.linking;
                let params = redirect_params(redirect_url, linking.app_redirect()?)?;
                Some((id.to_string(), params))
            })
            .next()
            .ok_or_else(|| {
                AccountError::Invalid(
                    "redirect_url is not the redirect of an app login of an enabled OEM".into(),
                )
            })?;
        let state = param(&params, "state")
            .ok_or_else(|| AccountError::Invalid("the redirect has no state".into()))?;
        let (link, hash) = self.take_link(state).await?;
        // Another tenant's link, or another OEM's, is not this caller's to finish.
        if link.caller != caller.tenant || link.oem != oem {
            return Err(no_link());
        }
        if let Some(error) = param(&params, "error") {
            let detail = param(&params, "error_description").map(str::to_string);
            return Err(declined(link, error.to_string(), detail));
        }
        if param(&params, "code").is_none() {
            return Err(AccountError::NoGrant);
        }
        let entry = self.enabled(&link.oem)?;
        let verifier = self.sealer.open(&link.verifier, &verifier_aad(&hash))?;
        let granted = entry
            .adapter
            .finish_app_login(
                &entry.auth_http,
                entry.config.auth_base(),
                &params,
                &verifier,
            )
            .await
            .map_err(|e| match e {
                OemError::Unauthorized { .. }
                | OemError::Forbidden { .. }
                | OemError::ReauthorizationRequired { .. } => {
                    TokenError::CodeRefused { oem: oem.clone() }
                }
                e => OemFailure::new(&oem, e).into(),
            })?;
        self.link(entry, &link, &hash, &granted).await
    }

    /// The account's credential for an OEM that names the owner: the `owner`'s id, once
    /// the OEM confirms that owner connected since the link started (an id alone, unlike
    /// a code, is not bound to this link: another caller's owner is refused).
    async fn owner_connected(
        &self,
        entry: &crate::registry::Oem,
        link: &LinkState,
        owner: &str,
    ) -> Result<oauth::Granted, AccountError> {
        let cx = keyway_adapter::Call {
            http: entry.http.clone(),
            token: Secret::new(owner),
            command_id: None,
            account: None,
            pin: None,
        };
        let connected = entry.adapter.owner_connected(&cx, link.created_at).await;
        match connected {
            Ok(()) => Ok(oauth::Granted {
                access_token: Secret::new(owner),
                refresh_token: None,
                expires_in: None,
            }),
            Err(OemError::Forbidden { .. } | OemError::NotFound) => {
                tracing::warn!(oem = %link.oem, "a callback named an owner who did not connect during the link");
                Err(AccountError::OwnerNotConnected {
                    oem: link.oem.to_string(),
                })
            }
            Err(e) => Err(TokenError::from(OemFailure::new(&link.oem, e)).into()),
        }
    }

    /// Takes the link waiting for `state` (single use: gone after this), if it has not
    /// expired; with its state's hash.
    async fn take_link(&self, state: &str) -> Result<(LinkState, String), AccountError> {
        let hash = state_hash(state);
        let link = self
            .store
            .take_link_state(&hash)
            .await?
            .ok_or_else(no_link)?;
        if self.clock.now() >= link.expires_at {
            return Err(AccountError::NoLink(
                "the authorization took too long; start the link again".into(),
            ));
        }
        Ok((link, hash))
    }

    /// Stores the account a link's tokens open (and the PIN given with the link), and
    /// discovers its vehicles.
    async fn link(
        &self,
        entry: &crate::registry::Oem,
        link: &LinkState,
        hash: &str,
        granted: &oauth::Granted,
    ) -> Result<Listed, AccountError> {
        let id = ids::new("acct");
        let tokens = self.tokens.seal(
            &id,
            granted,
            entry.adapter.info().oauth.default_access_ttl,
            None,
        )?;
        let account = AccountRecord {
            id,
            oem: link.oem.clone(),
            owner: link.caller.clone(),
            status: AccountStatus::Active,
            tokens,
            created_at: self.clock.now(),
        };
        self.store.put_account(&account).await?;
        if let Some(sealed) = &link.pin {
            let pin = self.sealer.open(sealed, &link_pin_aad(hash))?;
            self.tokens.set_pin(&account.id, &pin).await?;
        }
        let vehicles = self.discover(&account).await?;
        tracing::info!(account = %account.id, oem = %account.oem, owner = %account.owner,
            vehicles = vehicles.len(), "account linked");
        Ok(Listed {
            account,
            vehicle_ids: vehicles.into_iter().map(|v| v.id.into()).collect(),
            pin: link.pin.is_some().then_some(PinState::Set),
        })
    }

    /// Lists the account's vehicles at the OEM and records them.
    pub async fn discover(
        &self,
        account: &AccountRecord,
    ) -> Result<Vec<VehicleRecord>, AccountError> {
        let oem = self.enabled(&account.oem)?;
        let adapter = oem.adapter.clone();
        let listed = self
            .tokens
            .call(&account.id, oem, "vehicles", |cx| {
                let adapter = adapter.clone();
                async move { adapter.vehicles(&cx).await }
            })
            .await
            .map_err(|e| e.at(&account.oem))?;
        let mut stored = Vec::with_capacity(listed.len());
        let mut superseded = Vec::new();
        for v in listed {
            let previous = self
                .store
                .vehicle_by_oem_id(&account.oem, &v.oem_id)
                .await?;
            if let Some(p) = previous.filter(|p| p.account_id != account.id) {
                if p.tenant != account.owner {
                    // One tenant per car: another tenant's car is never moved by a link.
                    tracing::warn!(account = %account.id, vehicle = %p.id,
                        "the OEM lists a car another tenant has linked; it is left with that tenant");
                    continue;
                }
                superseded.push(p.account_id);
            }
            let record = VehicleRecord {
                id: ids::new("veh").into(),
                account_id: account.id.clone(),
                tenant: account.owner.clone().into(),
                oem: account.oem.clone(),
                oem_id: v.oem_id,
                vin: v.vin,
                display_name: v.display_name,
                model: v.model,
                year: v.year,
                last_locked: None,
                capabilities: v.capabilities,
            };
            if let Some(v) = self.store.upsert_vehicle(&record).await? {
                stored.push(v);
            }
        }
        self.fleet.invalidate_vehicles();
        superseded.sort();
        superseded.dedup();
        for old in superseded {
            if self.store.account_vehicle_ids(&old).await?.is_empty() {
                self.store.delete_account(&old).await?;
                self.tokens.forget(&old);
                tracing::info!(account = %old, replaced_by = %account.id, "relinked account replaced");
            }
        }
        Ok(stored)
    }

    /// The accounts of the caller's tenant (`admin` does not widen this), each with its
    /// vehicles and its PIN's state (never the PIN).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Listed>, AccountError> {
        caller.require_unrestricted("list accounts")?;
        let mut out = Vec::new();
        for account in self.store.tenant_accounts(&caller.tenant).await? {
            let vehicle_ids = self.store.account_vehicle_ids(&account.id).await?;
            let pin = self
                .store
                .account_pin(&account.id)
                .await?
                .map(|p| match p.rejected_at {
                    Some(_) => PinState::Rejected,
                    None => PinState::Set,
                });
            out.push(Listed {
                account,
                vehicle_ids,
                pin,
            });
        }
        Ok(out)
    }

    /// Sets (replaces) the owner's PIN of one of the tenant's accounts: 4 to 8 digits,
    /// sealed at rest; a PIN the OEM refused is used again only once replaced.
    /// Another tenant's account answers `not_found` before the PIN is looked at.
    pub async fn set_pin(
        &self,
        caller: &Caller,
        id: &str,
        pin: Option<&str>,
    ) -> Result<(), AccountError> {
        caller.require_unrestricted("set account PINs")?;
        self.store
            .tenant_account(&caller.tenant, id)
            .await?
            .ok_or_else(|| AccountError::NotFound(id.to_string()))?;
        let pin = pin
            .ok_or_else(|| AccountError::Invalid("send a JSON body: {\"pin\": \"1234\"}".into()))?;
        let pin = Secret::new(checked_pin(pin)?);
        self.tokens.set_pin(id, &pin).await?;
        tracing::info!(account = %id, "account PIN set");
        Ok(())
    }

    /// Unlinks one of the tenant's accounts: forgets its tokens and vehicles (command
    /// records stay). Another tenant's account answers `not_found`.
    pub async fn unlink(&self, caller: &Caller, id: &str) -> Result<(), AccountError> {
        caller.require_unrestricted("unlink accounts")?;
        let not_found = || AccountError::NotFound(id.to_string());
        let account = self
            .store
            .tenant_account(&caller.tenant, id)
            .await?
            .ok_or_else(not_found)?;
        self.store.delete_account(id).await?;
        self.tokens.forget(id);
        self.fleet.invalidate_vehicles();
        tracing::info!(account = %id, oem = %account.oem, "account unlinked");
        Ok(())
    }
}
