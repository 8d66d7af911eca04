//! Account-linking routes: start a link (`POST /v1/accounts/{oem}/authorize`), the
//! OAuth redirect target (`GET /v1/oauth/callback`, reached by the owner's browser, so
//! unauthenticated: the single-use `state` is the credential), list and unlink.

use std::sync::Arc;

use super::extract::{Path, Query};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::contract::{Edge, Problems, Public};
use super::extract::{Authed, OptionalJson};
use super::timestamp;
use crate::accounts::Accounts;
use crate::accounts::{AccountError, Callback, DevicePoll, PinState};
use crate::auth::Scope;
use crate::store::{AccountRecord, AccountStatus};

/// A linked OEM account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountView {
    /// `acct_…`.
    pub id: String,
    /// Its OEM.
    pub oem: String,
    /// The caller that linked it.
    pub owner: String,
    /// Whether keyway can use it, or its owner must link it again.
    pub status: AccountStatus,
    /// When it was linked.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The vehicles found through it.
    pub vehicle_ids: Vec<String>,
    /// The owner's PIN (`PUT /v1/accounts/{id}/pin`; never shown): `set`, `rejected` (the
    /// OEM refused it, and keyway does not try it again until it is replaced), or null
    /// when none is set.
    pub pin: Option<PinState>,
}

fn view(a: &AccountRecord, vehicle_ids: Vec<String>, pin: Option<PinState>) -> AccountView {
    AccountView {
        id: a.id.clone(),
        oem: a.oem.to_string(),
        owner: a.owner.clone(),
        status: a.status,
        created_at: timestamp(a.created_at),
        vehicle_ids,
        pin,
    }
}

/// An owner's PIN.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccountPin)]
pub struct PinBody {
    /// 4 to 8 digits, as the owner set it in the OEM's app.
    #[schema(
        example = "1234",
        pattern = "^[0-9]{4,8}$",
        min_length = 4,
        max_length = 8
    )]
    pin: String,
}

/// What a link may carry beyond the OEM's authorization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewLink)]
pub struct LinkBody {
    /// The owner's PIN (4 to 8 digits), set on the account the link creates.
    #[schema(
        example = "1234",
        pattern = "^[0-9]{4,8}$",
        min_length = 4,
        max_length = 8
    )]
    pin: Option<String>,
}

impl std::fmt::Debug for LinkBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkBody { pin: <redacted> }")
    }
}

impl std::fmt::Debug for PinBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinBody { pin: <redacted> }")
    }
}

/// A link started: send the owner's browser to `authorization_url`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStarted {
    /// The OEM's authorization page, with keyway's client, PKCE and `state`.
    pub authorization_url: String,
    /// The `state` the callback must bring back.
    pub state: String,
    /// Until when the callback is accepted.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Set when the OEM logs owners in through its own app: the app URI the login ends
    /// at (`weconnect://authenticated`). No browser reaches keyway's callback then: the
    /// app showing the login catches the redirect, and the whole URL goes to
    /// `POST /v1/oauth/callback`.
    pub app_redirect: Option<String>,
    /// Set when the OEM links with RFC 8628's device grant (myAudi): show the owner
    /// `user_code` and the OEM's page (`authorization_url` carries the code already);
    /// then poll `POST /v1/oauth/device` with `state` until the account is linked.
    pub device: Option<DeviceCodeView>,
}

/// A device link's code, for the owner.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeviceCode)]
pub struct DeviceCodeView {
    /// The code the owner confirms at the OEM's page.
    pub user_code: String,
    /// The OEM's page, without the code (the owner types it there).
    pub verification_uri: String,
    /// Seconds to wait between polls of `POST /v1/oauth/device`.
    pub interval_s: u64,
}

/// A device link's poll.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePollBody {
    /// The `state` of the link's start (keyway draws it URL-safe).
    #[schema(min_length = 1, max_length = 512, pattern = "^[A-Za-z0-9._~-]+$")]
    state: String,
}

impl std::fmt::Debug for DevicePollBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevicePollBody { state: <redacted> }")
    }
}

/// The owner has not approved the code yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePending {
    /// Always `pending`.
    #[schema(example = "pending")]
    pub status: &'static str,
    /// Seconds to wait before the next poll (also `Retry-After`).
    pub retry_after_s: u64,
}

/// A finished link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Linked {
    /// The account, with the vehicles discovered.
    pub account: AccountView,
}

/// The caller's linked accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    /// The accounts.
    pub accounts: Vec<AccountView>,
}

type AccountProblems = Problems<(Edge, AccountError)>;
type LinkProblems = Problems<(Edge, super::contract::JsonBody, AccountError)>;
type CallbackProblems = Problems<(Public, AccountError)>;

/// Start linking an owner's account at an OEM (OAuth authorization code with PKCE).
#[utoipa::path(
    post,
    path = "/v1/accounts/{oem}/authorize",
    tag = "accounts",
    operation_id = "authorizeAccount",
    params(("oem" = String, Path, description = "The OEM (`tesla`, `bmw`, …; `/readyz` lists those enabled)")),
    request_body(content = Option<LinkBody>, content_type = "application/json", description = "Optionally the owner's PIN, set on the account the link creates"),
    responses((status = 201, description = "The link is started", body = LinkStarted), LinkProblems),
    security(("bearer" = ["accounts:write"]))
)]
pub async fn authorize(
    State(accounts): State<Arc<Accounts>>,
    Authed(caller): Authed,
    Path(oem): Path<String>,
    OptionalJson(body): OptionalJson<LinkBody>,
) -> Result<(StatusCode, Json<LinkStarted>), ApiError> {
    caller.require(Scope::AccountsWrite)?;
    let pin = body.as_ref().and_then(|b| b.pin.as_deref());
    let link = accounts.start(&caller, &oem, pin).await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkStarted {
            authorization_url: link.authorization_url,
            state: link.state.expose().to_string(),
            expires_at: timestamp(link.expires_at),
            app_redirect: link.app_redirect.map(str::to_string),
            device: link.device.map(|d| DeviceCodeView {
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                interval_s: d.interval.as_secs(),
            }),
        }),
    ))
}

/// The OEM's redirect after the owner's decision (reached by the owner's browser;
/// the single-use `state` is its credential): exchanges the code, discovers the cars.
#[utoipa::path(
    get,
    path = "/v1/oauth/callback",
    tag = "accounts",
    operation_id = "oauthCallback",
    params(Callback),
    responses((status = 200, description = "The account is linked", body = Linked), CallbackProblems),
    security(())
)]
pub async fn callback(
    State(accounts): State<Arc<Accounts>>,
    Query(cb): Query<Callback>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Linked>, ApiError> {
    // Every parameter, for an OEM whose redirect names the owner in its own.
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let l = accounts.complete(cb, &params).await?;
    Ok(Json(Linked {
        account: view(&l.account, l.vehicle_ids, l.pin),
    }))
}

/// An app login's redirect, as the owner's app caught it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRedirect {
    /// The whole URL the login redirected to (the link's `app_redirect`, with its
    /// fragment: `state`, `code`, …).
    #[schema(
        example = "weconnect://authenticated#state=…&code=…&id_token=…&access_token=…",
        pattern = "^[A-Za-z][A-Za-z0-9+.-]*:",
        min_length = 1,
        max_length = 16384
    )]
    redirect_url: String,
}

/// The longest app redirect taken (its fragment carries two JWTs).
pub(crate) const REDIRECT_URL_MAX: usize = 16384;

impl std::fmt::Debug for AppRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppRedirect { redirect_url: <redacted> }")
    }
}

/// Finish linking an account whose OEM logs owners in through its own app (the link's
/// `app_redirect` says so, e.g. the Volkswagen Group's `weconnect://authenticated`): the
/// login ends at that app URI, which no server receives; the app showing the login
/// catches it, and a caller of the tenant that started the link hands the whole URL
/// over here. Its `state` is single-use, as at `GET /v1/oauth/callback`.
#[utoipa::path(
    post,
    path = "/v1/oauth/callback",
    tag = "accounts",
    operation_id = "finishAppLogin",
    request_body(content = AppRedirect, content_type = "application/json"),
    responses((status = 200, description = "The account is linked", body = Linked), LinkProblems),
    security(("bearer" = ["accounts:write"]))
)]
pub async fn app_callback(
    State(accounts): State<Arc<Accounts>>,
    Authed(caller): Authed,
    OptionalJson(body): OptionalJson<AppRedirect>,
) -> Result<Json<Linked>, ApiError> {
    caller.require(Scope::AccountsWrite)?;
    let url = body
        .map(|b| b.redirect_url)
        .ok_or_else(|| ApiError::invalid("send a JSON body: {\"redirect_url\": \"…\"}"))?;
    // The bound the document states, checked as every other free text.
    crate::text::check("redirect_url", &url, REDIRECT_URL_MAX)?;
    let l = accounts.complete_app(&caller, &url).await?;
    Ok(Json(Linked {
        account: view(&l.account, l.vehicle_ids, l.pin),
    }))
}

/// Poll a device link (an OEM whose link's start carried `device`, e.g. myAudi): keyway
/// asks the OEM once whether the owner approved the code — never sooner than the OEM's
/// interval since the last ask (a poll before that answers `202` without asking). `200`
/// with the account once approved; `202` while the owner has not decided; a refusal,
/// or codes that expired, end the link (`authorization_denied`, `not_found`). A state
/// that names no device link (unknown, spent, another tenant's, or a link that finishes
/// at a redirect) is `not_found`.
#[utoipa::path(
    post,
    path = "/v1/oauth/device",
    tag = "accounts",
    operation_id = "pollDeviceLink",
    request_body(content = DevicePollBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The account is linked", body = Linked),
        (status = 202, description = "The owner has not approved yet: poll again after `Retry-After` seconds", body = DevicePending,
            headers(("Retry-After" = u64, description = "Seconds to wait before the next poll"))),
        LinkProblems
    ),
    security(("bearer" = ["accounts:write"]))
)]
pub async fn device_poll(
    State(accounts): State<Arc<Accounts>>,
    Authed(caller): Authed,
    OptionalJson(body): OptionalJson<DevicePollBody>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    caller.require(Scope::AccountsWrite)?;
    let state = body
        .map(|b| b.state)
        .ok_or_else(|| ApiError::invalid("send a JSON body: {\"state\": \"…\"}"))?;
    // What the document states: a link's state is URL-safe text.
    let url_safe = |c: char| c.is_ascii_alphanumeric() || "._~-".contains(c);
    if state.is_empty() || state.len() > 512 || !state.chars().all(url_safe) {
        return Err(ApiError::invalid(
            "state is the link's state: 1 to 512 letters, digits, '.', '_', '~' or '-'",
        ));
    }
    // In a task of its own: a caller gone mid-poll must not leave the link taken.
    let polled = tokio::spawn(async move { accounts.poll_device(&caller, &state).await })
        .await
        .map_err(ApiError::internal)??;
    Ok(match polled {
        DevicePoll::Linked(l) => Json(Linked {
            account: view(&l.account, l.vehicle_ids, l.pin),
        })
        .into_response(),
        DevicePoll::Pending(wait) => {
            // Whole seconds, rounded up: a poll at `Retry-After` is never early.
            let secs = crate::clock::whole_secs(wait);
            (
                StatusCode::ACCEPTED,
                [(axum::http::header::RETRY_AFTER, secs.to_string())],
                Json(DevicePending {
                    status: "pending",
                    retry_after_s: secs,
                }),
            )
                .into_response()
        }
    })
}

/// The caller's linked accounts.
#[utoipa::path(
    get,
    path = "/v1/accounts",
    tag = "accounts",
    operation_id = "listAccounts",
    responses((status = 200, description = "The accounts", body = AccountList), AccountProblems),
    security(("bearer" = ["accounts:write"]))
)]
pub async fn list(
    State(accounts): State<Arc<Accounts>>,
    Authed(caller): Authed,
) -> Result<Json<AccountList>, ApiError> {
    caller.require(Scope::AccountsWrite)?;
    let accounts = accounts
        .list(&caller)
        .await?
        .into_iter()
        .map(|l| view(&l.account, l.vehicle_ids, l.pin))
        .collect();
    Ok(Json(AccountList { accounts }))
}

/// Unlink an account: its tokens are forgotten and its cars leave the fleet.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{id}",
    tag = "accounts",
    operation_id = "unlinkAccount",
    params(("id" = String, Path, description = "The account (`acct_…`)")),
    responses((status = 204, description = "Unlinked"), AccountProblems),
    security(("bearer" = ["accounts:write"]))
)]
pub async fn unlink(
    State(accounts): State<Arc<Accounts>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::AccountsWrite)?;
    accounts.unlink(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

type PinProblems = Problems<(Edge, super::contract::JsonBody, AccountError)>;

/// Set (or replace) the owner's PIN of an account, for the commands whose OEM wants it
/// (Hyundai/Kia CCS2 cars: the control token is made from it). Sealed at rest, never
/// returned or logged; a PIN the OEM refused is not tried again until replaced here.
#[utoipa::path(
    put,
    path = "/v1/accounts/{id}/pin",
    tag = "accounts",
    operation_id = "setAccountPin",
    params(("id" = String, Path, description = "The account (`acct_…`)")),
    request_body(content = PinBody, content_type = "application/json"),
    responses((status = 204, description = "Set"), PinProblems),
    security(("bearer" = ["accounts:write"]))
)]
pub async fn set_pin(
    State(accounts): State<Arc<Accounts>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<PinBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::AccountsWrite)?;
    let pin = body.as_ref().map(|b| b.pin.as_str());
    accounts.set_pin(&caller, &id, pin).await?;
    Ok(StatusCode::NO_CONTENT)
}
