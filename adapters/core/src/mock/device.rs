//! A mock of RFC 8628's device authorization grant, as the Volkswagen Group's identity
//! server serves it to the myAudi app's client: `POST {authorization_path}` (form
//! `client_id`, `scope`) answers a device code, a user code, the verification page
//! (plain and complete), its lifetime and the polling interval; the owner approves at
//! `GET /__mock/device?user_code=…` (auto-consent; `consent=deny` refuses, `login_hint`
//! picks the login); `POST {token_path}` with `grant_type=
//! urn:ietf:params:oauth:grant-type:device_code` answers `400 authorization_pending`
//! until then, `slow_down` to a poll inside the interval (which then grows by 5 s, as
//! the RFC says), `access_denied`, `expired_token`, or the tokens — once: a device code
//! is spent by the grant. Tokens come from the kit's book, so they refresh wherever the
//! mock mounts the kit's token endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::oauth::{oauth_error, token_answer};
use super::{TokenBook, lock, random_token};

/// The device grant's URN (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How the mock's device grant behaves.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// The one client it serves (public: no secret).
    pub client_id: String,
    /// Who approves unless `login_hint` names another.
    pub default_account: String,
    /// How long a device code lives.
    pub ttl: Duration,
    /// The polling interval it asks for.
    pub interval: Duration,
    /// The scope it grants.
    pub scope: String,
}

#[derive(Debug)]
struct Pending {
    user_code: String,
    expires_at: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    /// `Some(Ok(login))` approved, `Some(Err(()))` refused.
    decision: Option<Result<String, ()>>,
}

/// The device grant: cheap to clone, clones share state.
#[derive(Clone, Debug)]
pub struct DeviceServer {
    config: Arc<DeviceConfig>,
    book: TokenBook,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

#[derive(Deserialize)]
struct StartForm {
    client_id: Option<String>,
}

#[derive(Deserialize)]
struct Approve {
    user_code: Option<String>,
    consent: Option<String>,
    login_hint: Option<String>,
}

#[derive(Deserialize)]
struct PollForm {
    grant_type: Option<String>,
    device_code: Option<String>,
    client_id: Option<String>,
}

impl DeviceServer {
    /// A device grant issuing from `book`.
    pub fn new(config: DeviceConfig, book: TokenBook) -> Self {
        Self {
            config: Arc::new(config),
            book,
            pending: Arc::default(),
        }
    }

    /// The routes at the OEM's paths, and the verification page `/__mock/device`.
    pub fn routes(&self, authorization_path: &str, token_path: &str) -> Router {
        Router::new()
            .route(authorization_path, post(start))
            .route(token_path, post(poll))
            .route("/__mock/device", get(approve))
            .with_state(self.clone())
    }

    /// How many device codes wait for the owner or a poll.
    pub fn waiting(&self) -> usize {
        lock(&self.pending).len()
    }
}

/// A user code as the identity server shows it: eight letters, a dash in the middle.
fn user_code() -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let raw = random_token("");
    let letters: String = raw
        .bytes()
        .take(8)
        .map(|b| LETTERS[b as usize % LETTERS.len()] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

async fn start(
    State(s): State<DeviceServer>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<StartForm>,
) -> Response {
    if f.client_id.as_deref() != Some(s.config.client_id.as_str()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    let device_code = random_token("dc_");
    let code = user_code();
    lock(&s.pending).insert(
        device_code.clone(),
        Pending {
            user_code: code.clone(),
            expires_at: Instant::now() + s.config.ttl,
            interval: s.config.interval,
            last_poll: None,
            decision: None,
        },
    );
    // Absolute, as the identity server's are: the page on the host the client called.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let page = format!("http://{host}/__mock/device");
    Json(json!({
        "device_code": device_code,
        "user_code": code,
        "verification_uri": page,
        "verification_uri_complete": format!("{page}?user_code={code}"),
        "expires_in": s.config.ttl.as_secs(),
        "interval": s.config.interval.as_secs(),
    }))
    .into_response()
}

async fn approve(State(s): State<DeviceServer>, Query(q): Query<Approve>) -> Response {
    let mut pending = lock(&s.pending);
    let Some(p) = pending
        .values_mut()
        .find(|p| Some(p.user_code.as_str()) == q.user_code.as_deref())
    else {
        return (
            StatusCode::NOT_FOUND,
            Html("<p>Unknown or expired code.</p>"),
        )
            .into_response();
    };
    if q.consent.as_deref() == Some("deny") {
        p.decision = Some(Err(()));
        return Html("<p>Access refused. You may close this page.</p>").into_response();
    }
    let login = q
        .login_hint
        .unwrap_or_else(|| s.config.default_account.clone());
    p.decision = Some(Ok(login));
    Html("<p>Your device is connected. You may close this page.</p>").into_response()
}

async fn poll(State(s): State<DeviceServer>, axum::Form(f): axum::Form<PollForm>) -> Response {
    if f.client_id.as_deref() != Some(s.config.client_id.as_str()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    if f.grant_type.as_deref() != Some(DEVICE_GRANT) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only the device code grant is served here",
        );
    }
    let mut pending = lock(&s.pending);
    let Some(code) = f.device_code.filter(|c| pending.contains_key(c)) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown device code",
        );
    };
    let now = Instant::now();
    let p = pending.get_mut(&code).expect("present");
    if now >= p.expires_at {
        pending.remove(&code);
        return oauth_error(StatusCode::BAD_REQUEST, "expired_token", "the code expired");
    }
    let early = p.last_poll.is_some_and(|t| now < t + p.interval);
    p.last_poll = Some(now);
    if early {
        p.interval += Duration::from_secs(5);
        return oauth_error(StatusCode::BAD_REQUEST, "slow_down", "poll less often");
    }
    match p.decision.clone() {
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "authorization_pending",
            "the owner has not approved yet",
        ),
        Some(Err(())) => {
            pending.remove(&code);
            oauth_error(
                StatusCode::BAD_REQUEST,
                "access_denied",
                "the owner refused",
            )
        }
        Some(Ok(login)) => {
            pending.remove(&code);
            token_answer(&s.book.issue(&login), &s.config.scope)
        }
    }
}
