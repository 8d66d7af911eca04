//! The mock's app login, in the three steps the Volkswagen app (and CarConnectivity's
//! connector) takes: the BFF's authorize (`303` to the identity server, with the BFF's
//! `state`), the identity server's login (auto-consent; `consent=deny` makes the owner
//! refuse, `login_hint` picks the login) ending at
//! `weconnect://authenticated#state&code&id_token&access_token`, and the BFF's trade of
//! those for the API's tokens (`POST /user-login/login/v1`; the code works once, for the
//! state, id token and access token it came with). The tokens come from the kit's book,
//! so they refresh at `/login/v1/idk/token` like any mock's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyway_adapter::mock::{TokenBook, lock, random_token};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::login::REDIRECT_URI;

/// The login side of the mock: the app's client id, who logs in by default, the token
/// book that issues the API's tokens, and the logins under way.
#[derive(Clone, Debug)]
pub struct Logins {
    /// The app's client id (in the identity server's URL).
    pub client_id: String,
    /// Who logs in unless `login_hint` names another.
    pub default_account: String,
    /// Issues the API's tokens.
    pub tokens: TokenBook,
    under_way: Arc<Mutex<HashMap<String, Login>>>,
}

impl Logins {
    /// Logins for `client_id`, issuing from `tokens`.
    pub fn new(client_id: String, default_account: String, tokens: TokenBook) -> Self {
        Self {
            client_id,
            default_account,
            tokens,
            under_way: Arc::default(),
        }
    }

    /// The three routes of the app login.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/user-login/v1/authorize", get(start))
            .route("/oidc/v1/authorize", get(identity))
            .route("/user-login/login/v1", post(trade))
            .with_state(self.clone())
    }
}

/// One login under way, by the BFF's `state`.
#[derive(Debug, Default)]
pub struct Login {
    nonce: String,
    /// Set once the owner logged in.
    granted: Option<Granted>,
}

#[derive(Debug)]
struct Granted {
    account: String,
    code: String,
    id_token: String,
    access_token: String,
    used: bool,
}

#[derive(Deserialize)]
struct Start {
    redirect_uri: Option<String>,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct Identity {
    state: Option<String>,
    nonce: Option<String>,
    login_hint: Option<String>,
    consent: Option<String>,
}

fn bad_request() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": "Bad Request"}})),
    )
        .into_response()
}

fn see(location: &str, status: StatusCode) -> Response {
    (status, [(header::LOCATION, location.to_string())]).into_response()
}

/// `GET /user-login/v1/authorize?redirect_uri=weconnect://authenticated&nonce=…`.
async fn start(State(m): State<Logins>, headers: HeaderMap, Query(q): Query<Start>) -> Response {
    let (Some(REDIRECT_URI), Some(nonce)) = (q.redirect_uri.as_deref(), q.nonce) else {
        return bad_request();
    };
    let state = random_token("st_");
    lock(&m.under_way).insert(
        state.clone(),
        Login {
            nonce: nonce.clone(),
            granted: None,
        },
    );
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let query = serde_urlencoded::to_string([
        ("client_id", m.client_id.as_str()),
        ("response_type", "code id_token token"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile badge cars dealers vin"),
        ("state", &state),
        ("nonce", &nonce),
    ])
    .unwrap_or_default();
    see(
        &format!("http://{host}/oidc/v1/authorize?{query}"),
        StatusCode::SEE_OTHER,
    )
}

/// `GET /oidc/v1/authorize?…&state&nonce`: the owner logs in at once.
async fn identity(State(m): State<Logins>, Query(q): Query<Identity>) -> Response {
    let Some(state) = q.state else {
        return bad_request();
    };
    let mut logins = lock(&m.under_way);
    let Some(login) = logins
        .get_mut(&state)
        .filter(|l| l.granted.is_none() && q.nonce.as_deref() == Some(l.nonce.as_str()))
    else {
        return bad_request();
    };
    let back = |params: &[(&str, &str)]| {
        let fragment = serde_urlencoded::to_string(params).unwrap_or_default();
        see(&format!("{REDIRECT_URI}#{fragment}"), StatusCode::FOUND)
    };
    if q.consent.as_deref() == Some("deny") {
        logins.remove(&state);
        return back(&[("error", "access_denied"), ("state", &state)]);
    }
    let g = Granted {
        account: q.login_hint.unwrap_or_else(|| m.default_account.clone()),
        code: random_token("code_"),
        id_token: random_token("idt_"),
        access_token: random_token("idp_"),
        used: false,
    };
    let answer = back(&[
        ("state", &state),
        ("code", &g.code),
        ("id_token", &g.id_token),
        ("access_token", &g.access_token),
        ("token_type", "bearer"),
        ("expires_in", "3600"),
    ]);
    login.granted = Some(g);
    answer
}

/// `POST /user-login/login/v1` `{state, id_token, redirect_uri, region, access_token,
/// authorizationCode}` → `{accessToken, idToken, refreshToken}`.
async fn trade(State(m): State<Logins>, body: axum::body::Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return bad_request();
    };
    let field = |k: &str| b[k].as_str().unwrap_or_default();
    let mut logins = lock(&m.under_way);
    let Some(g) = logins
        .get_mut(field("state"))
        .and_then(|l| l.granted.as_mut())
    else {
        return bad_request();
    };
    let matches = !g.used
        && field("authorizationCode") == g.code
        && field("id_token") == g.id_token
        && field("access_token") == g.access_token
        && field("redirect_uri") == REDIRECT_URI
        && field("region") == "emea";
    g.used = true;
    if !matches {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"message": "Unauthorized", "info": "invalid authorization code"}}),
            ),
        )
            .into_response();
    }
    let issued = m.tokens.issue(&g.account);
    Json(json!({
        "accessToken": issued.access_token,
        "idToken": random_token("idt_"),
        "refreshToken": issued.refresh_token,
    }))
    .into_response()
}
