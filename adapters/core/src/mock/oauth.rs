//! A mock OAuth 2.0 authorization server, configured per OEM: an `/authorize`
//! endpoint that checks client id, redirect URI, scopes and the PKCE challenge and
//! answers with a redirect carrying a single-use code (auto-consent; `consent=deny`
//! in the query makes the "owner" refuse, `login_hint` picks the account); and a token
//! endpoint for `authorization_code` (verifies `code_verifier`; a code works once, and a
//! replayed code revokes what it issued), `refresh_token` (through the [`TokenBook`]:
//! rotating, single-use, replay revokes the family) and RFC 8693 token exchange. How a
//! rejected refresh is answered is the OEM's own ([`Rejection`]): Tesla answers 401
//! `login_required`, Ford 400 `errorCode 460`, most others 400 `invalid_grant`.
//!
//! For an OEM that links by naming the owner ([`crate::Linking::Owner`], Smartcar API
//! v3) the redirect also carries the owner's id ([`owner_id`]), each login's time is
//! kept ([`OAuthServer::connected_at`]), and the token endpoint grants the application
//! its own token (`client_credentials`, [`APPLICATION`]'s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Issued, TokenBook, lock, random_token};
use crate::ClientAuth;

/// How the OEM answers a refresh it rejects (status and body).
#[derive(Clone, Debug)]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Rejection {
    /// The RFC 6749 answer: 400 `invalid_grant`.
    pub fn invalid_grant() -> Self {
        Self {
            status: 400,
            body: json!({"error": "invalid_grant", "error_description": "refresh token is invalid"}),
        }
    }
}

/// A mock authorization server's settings.
#[derive(Clone, Debug)]
pub struct OAuthServerConfig {
    /// The one registered client.
    pub client_id: String,
    /// Its secret, when the OEM requires one.
    pub client_secret: Option<String>,
    /// How the client must authenticate at the token endpoint.
    pub client_auth: ClientAuth,
    /// Scopes a client may ask for.
    pub scopes: Vec<String>,
    /// Whether PKCE (S256) is mandatory.
    pub require_pkce: bool,
    /// The account that logs in when no `login_hint` is given.
    pub default_account: String,
    /// Authorization-code lifetime.
    pub code_ttl: Duration,
    /// Whether the token endpoint offers RFC 8693 token exchange.
    pub token_exchange: bool,
    /// The answer to a rejected refresh.
    pub refresh_rejection: Rejection,
    /// The redirect parameter naming the owner, for an OEM that links so (also grants
    /// `client_credentials`).
    pub owner_param: Option<&'static str>,
}

/// The account the application's own tokens (`client_credentials`) are issued to.
pub const APPLICATION: &str = "__application__";

/// The OEM's id of a login (the owner a [`crate::Linking::Owner`] redirect names): a
/// UUID-shaped digest of the account, stable across runs.
pub fn owner_id(account: &str) -> String {
    let h = hex_digest(&format!("owner:{account}"));
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug)]
struct Code {
    account: String,
    redirect_uri: String,
    challenge: Option<String>,
    expires_at: Instant,
    used: bool,
    issued_family: Option<u64>,
}

/// The server: cheap to clone, clones share state.
#[derive(Clone, Debug)]
pub struct OAuthServer {
    config: Arc<OAuthServerConfig>,
    book: TokenBook,
    codes: Arc<Mutex<HashMap<String, Code>>>,
    /// When each login last connected (approved at `/authorize`).
    connected: Arc<Mutex<HashMap<String, OffsetDateTime>>>,
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    consent: Option<String>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The S256 challenge for a verifier (RFC 7636).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub(crate) fn token_answer(t: &Issued, scope: &str) -> Response {
    Json(json!({
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "expires_in": t.expires_in.as_secs(),
        "token_type": "Bearer",
        "scope": scope,
    }))
    .into_response()
}

impl OAuthServer {
    /// A server issuing tokens from `book`.
    pub fn new(config: OAuthServerConfig, book: TokenBook) -> Self {
        Self {
            config: Arc::new(config),
            book,
            codes: Arc::default(),
            connected: Arc::default(),
        }
    }

    /// When `account` last approved a login here, if it did.
    pub fn connected_at(&self, account: &str) -> Option<OffsetDateTime> {
        lock(&self.connected).get(account).copied()
    }

    /// Sets when `account` last approved a login (a test's: a connection long past).
    pub fn set_connected_at(&self, account: &str, at: OffsetDateTime) {
        lock(&self.connected).insert(account.to_string(), at);
    }

    /// The token endpoint again at another path (an OEM whose application tokens come
    /// from another host's path: Smartcar's `iam` `/oauth2/token`).
    pub fn token_route(&self, path: &str) -> Router {
        Router::new()
            .route(path, post(token))
            .with_state(self.clone())
    }

    /// The token book (counters, expiry and revocation controls).
    pub fn book(&self) -> &TokenBook {
        &self.book
    }

    /// The account that logs in unless the request names another.
    pub fn default_account(&self) -> &str {
        &self.config.default_account
    }

    /// The routes, mounted at the OEM's own paths (and `POST /__mock/token`).
    pub fn routes(&self, authorize_path: &str, token_path: &str) -> Router {
        Router::new()
            .route(authorize_path, get(authorize))
            .route(token_path, post(token))
            .route("/__mock/token", post(owner_token))
            .with_state(self.clone())
    }

    fn redirect_allowed(uri: &str) -> bool {
        // Registered redirect URIs of the mock: keyway's callback on loopback.
        ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| uri.starts_with(p))
            && uri.contains("/v1/oauth/callback")
    }

    fn client_ok(&self, headers: &HeaderMap, form: &TokenForm) -> bool {
        let c = &self.config;
        match c.client_auth {
            ClientAuth::Body => {
                form.client_id.as_deref() == Some(c.client_id.as_str())
                    && (c.client_secret.is_none()
                        || form.client_secret.as_deref() == c.client_secret.as_deref())
            }
            ClientAuth::Basic => self.basic_ok(headers),
        }
    }

    /// Whether the request authenticates the client with HTTP Basic (also for an
    /// OEM's other application-authenticated calls, e.g. Smartcar's compatibility API).
    pub fn basic_ok(&self, headers: &HeaderMap) -> bool {
        let c = &self.config;
        let expected = STANDARD.encode(format!(
            "{}:{}",
            c.client_id,
            c.client_secret.as_deref().unwrap_or("")
        ));
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            == Some(expected.as_str())
    }
}

async fn authorize(State(s): State<OAuthServer>, Query(q): Query<AuthorizeQuery>) -> Response {
    let c = &s.config;
    // Errors about the client or redirect URI must not redirect (RFC 6749 §4.1.2.1).
    if q.client_id.as_deref() != Some(c.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = q.redirect_uri.filter(|u| OAuthServer::redirect_allowed(u)) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not registered").into_response();
    };
    let state = q.state.unwrap_or_default();
    let back = |params: &[(&str, &str)]| {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        if !state.is_empty() {
            all.push(("state", &state));
        }
        let query = serde_urlencoded::to_string(&all).unwrap_or_default();
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        Redirect::to(&format!("{redirect_uri}{sep}{query}")).into_response()
    };
    if q.response_type.as_deref() != Some("code") {
        return back(&[("error", "unsupported_response_type")]);
    }
    let requested: Vec<&str> = q
        .scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if requested.iter().any(|r| !c.scopes.iter().any(|s| s == r)) {
        return back(&[("error", "invalid_scope")]);
    }
    let challenge = match (q.code_challenge, q.code_challenge_method.as_deref()) {
        (Some(ch), Some("S256")) if ch.len() >= 43 => Some(ch),
        (None, _) if !c.require_pkce => None,
        _ => {
            return back(&[
                ("error", "invalid_request"),
                ("error_description", "PKCE with S256 is required"),
            ]);
        }
    };
    if q.consent.as_deref() == Some("deny") {
        return back(&[
            ("error", "access_denied"),
            ("error_description", "the owner declined"),
        ]);
    }
    let code = random_token("code_");
    let account = q.login_hint.unwrap_or_else(|| c.default_account.clone());
    lock(&s.connected).insert(account.clone(), OffsetDateTime::now_utc());
    let owner = c.owner_param.map(|p| (p, owner_id(&account)));
    lock(&s.codes).insert(
        code.clone(),
        Code {
            account,
            redirect_uri: redirect_uri.clone(),
            challenge,
            expires_at: Instant::now() + c.code_ttl,
            used: false,
            issued_family: None,
        },
    );
    match &owner {
        Some((param, id)) => back(&[("code", &code), (param, id)]),
        None => back(&[("code", &code)]),
    }
}

async fn token(
    State(s): State<OAuthServer>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<TokenForm>,
) -> Response {
    if f.grant_type.as_deref() == Some("client_credentials") && s.config.owner_param.is_some() {
        return application_token(&s, &headers, &f);
    }
    if !s.client_ok(&headers, &f) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let scope = s.config.scopes.join(" ");
    match f.grant_type.as_deref() {
        Some("authorization_code") => {
            let mut codes = lock(&s.codes);
            let Some(entry) = f.code.as_deref().and_then(|c| codes.get_mut(c)) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
            };
            if entry.used {
                // A replayed code: revoke what it issued (RFC 6749 §4.1.2).
                if let Some(family) = entry.issued_family {
                    s.book.revoke_family(family);
                }
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code already used",
                );
            }
            entry.used = true;
            if Instant::now() >= entry.expires_at {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "code expired");
            }
            if f.redirect_uri.as_deref() != Some(entry.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri mismatch",
                );
            }
            if let Some(challenge) = &entry.challenge {
                let ok = f
                    .code_verifier
                    .as_deref()
                    .is_some_and(|v| &s256(v) == challenge);
                if !ok {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "code_verifier does not match",
                    );
                }
            }
            let issued = s.book.issue(&entry.account);
            entry.issued_family = Some(issued.family);
            token_answer(&issued, &scope)
        }
        Some("refresh_token") => {
            let Some(rt) = f.refresh_token else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token missing",
                );
            };
            match s.book.refresh(&rt) {
                Ok(t) => token_answer(&t, &scope),
                Err(_) => {
                    let r = &s.config.refresh_rejection;
                    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
                    (status, Json(r.body.clone())).into_response()
                }
            }
        }
        Some("urn:ietf:params:oauth:grant-type:token-exchange") if s.config.token_exchange => {
            let subject_ok = f.subject_token_type.as_deref()
                == Some("urn:ietf:params:oauth:token-type:access_token");
            let account = f.subject_token.as_deref().map(|t| s.book.check(t));
            match (subject_ok, account) {
                (true, Some(Ok(account))) => {
                    let issued = s.book.issue(&account);
                    let mut answer = token_answer(&issued, &scope);
                    answer.headers_mut().insert(
                        "x-issued-token-type",
                        http::HeaderValue::from_static(
                            "urn:ietf:params:oauth:token-type:access_token",
                        ),
                    );
                    answer
                }
                _ => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "subject token is not valid",
                ),
            }
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", ""),
    }
}

/// The application's own token (`client_credentials`; the client in the form, as
/// Smartcar's `iam` documents it, or in HTTP Basic): no refresh token.
fn application_token(s: &OAuthServer, headers: &HeaderMap, f: &TokenForm) -> Response {
    let c = &s.config;
    let body_ok = f.client_id.as_deref() == Some(c.client_id.as_str())
        && f.client_secret.as_deref() == c.client_secret.as_deref();
    if !(body_ok || s.basic_ok(headers)) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let t = s.book.issue(APPLICATION);
    Json(json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in.as_secs(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_are_stable_uuids() {
        let a = owner_id("owner");
        assert_eq!(a, owner_id("owner"));
        assert_ne!(a, owner_id("other"));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
    }

    #[test]
    fn s256_matches_rfc7636_example() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}

#[derive(Deserialize, Default)]
struct OwnerTokenRequest {
    account: Option<String>,
}

/// `POST /__mock/token` (optional `{"account": …}`): a token pair for a car owner
/// (default: the mock's default account) without the OAuth dance, so another team's
/// contract tests can call the mock directly.
async fn owner_token(
    State(s): State<OAuthServer>,
    body: Option<axum::Json<OwnerTokenRequest>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let account = body
        .and_then(|axum::Json(b)| b.account)
        .unwrap_or_else(|| s.config.default_account.clone());
    let t = s.book.issue(&account);
    axum::Json(serde_json::json!({
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "token_type": "Bearer",
        "account": account,
    }))
    .into_response()
}
