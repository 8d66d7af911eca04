//! The mock's app login, in the steps the MySkoda app (and `skodaconnect/myskoda`) takes:
//! the identity server's authorize for the app's client (auto-consent; `consent=deny`
//! makes the owner refuse, `login_hint` picks the login) ending at
//! `myskoda://redirect/login/?code&state`; the backend's trade of the code and the PKCE
//! verifier for the API's tokens (`exchange-authorization-code`, once per code, the
//! verifier's S256 matching the challenge); and the refresh (`refresh-token`,
//! `{"token"}`). The tokens come from the kit's book, which rotates them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::{Issued, TokenBook, lock, random_token, s256};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::login::{CLIENT_ID, REDIRECT_URI};

/// The login side of the mock: who logs in by default, the token book that issues the
/// API's tokens, and the codes granted, not yet traded.
#[derive(Clone, Debug)]
pub struct Logins {
    default_account: String,
    tokens: TokenBook,
    codes: Arc<Mutex<HashMap<String, Granted>>>,
}

#[derive(Debug)]
struct Granted {
    account: String,
    challenge: String,
}

#[derive(Deserialize)]
struct Authorize {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    login_hint: Option<String>,
    consent: Option<String>,
}

impl Logins {
    /// Logins issuing from `tokens`.
    pub fn new(default_account: String, tokens: TokenBook) -> Self {
        Self {
            default_account,
            tokens,
            codes: Arc::default(),
        }
    }

    /// The login's routes.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/oidc/v1/authorize", get(authorize))
            .route(
                "/api/v1/authentication/exchange-authorization-code",
                post(exchange),
            )
            .route("/api/v1/authentication/refresh-token", post(refresh))
            .with_state(self.clone())
    }
}

fn refused(status: StatusCode) -> Response {
    (status, Json(json!({"error": "invalid_grant"}))).into_response()
}

fn tokens(issued: Issued) -> Response {
    Json(json!({
        "accessToken": issued.access_token,
        "refreshToken": issued.refresh_token,
        "idToken": random_token("idt_"),
    }))
    .into_response()
}

fn back(params: &[(&str, &str)]) -> Response {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{REDIRECT_URI}?{query}"))],
    )
        .into_response()
}

/// `GET /oidc/v1/authorize?client_id&redirect_uri&response_type=code&code_challenge&
/// code_challenge_method=s256&state…`: the owner logs in at once.
async fn authorize(State(m): State<Logins>, Query(q): Query<Authorize>) -> Response {
    let well_formed = q.client_id.as_deref() == Some(CLIENT_ID)
        && q.redirect_uri.as_deref() == Some(REDIRECT_URI)
        && q.response_type.as_deref() == Some("code")
        && q.code_challenge_method
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("s256"));
    let (true, Some(challenge)) = (well_formed, q.code_challenge) else {
        return refused(StatusCode::BAD_REQUEST);
    };
    let state = q.state.unwrap_or_default();
    if q.consent.as_deref() == Some("deny") {
        return back(&[("error", "access_denied"), ("state", &state)]);
    }
    let code = random_token("code_");
    lock(&m.codes).insert(
        code.clone(),
        Granted {
            account: q.login_hint.unwrap_or_else(|| m.default_account.clone()),
            challenge,
        },
    );
    back(&[("code", &code), ("state", &state)])
}

/// `POST …/exchange-authorization-code?tokenType=CONNECT` `{code, redirectUri,
/// verifier}` → `{accessToken, refreshToken, idToken}`; a code works once.
async fn exchange(State(m): State<Logins>, body: axum::body::Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return refused(StatusCode::BAD_REQUEST);
    };
    let field = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let Some(g) = lock(&m.codes).remove(&field("code")) else {
        return refused(StatusCode::UNAUTHORIZED);
    };
    if s256(&field("verifier")) != g.challenge || field("redirectUri") != REDIRECT_URI {
        return refused(StatusCode::UNAUTHORIZED);
    }
    tokens(m.tokens.issue(&g.account))
}

/// `POST …/refresh-token?tokenType=CONNECT` `{"token"}` → new tokens (the old refresh
/// token dies).
async fn refresh(State(m): State<Logins>, body: axum::body::Bytes) -> Response {
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["token"].as_str().map(str::to_string));
    match token.map(|t| m.tokens.refresh(&t)) {
        Some(Ok(issued)) => tokens(issued),
        Some(Err(_)) => refused(StatusCode::UNAUTHORIZED),
        None => refused(StatusCode::BAD_REQUEST),
    }
}
