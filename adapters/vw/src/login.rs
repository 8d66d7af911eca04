//! The Volkswagen app's login, as CarConnectivity's Volkswagen connector
//! (`auth/we_connect_session.py`) performs it — translation only, keyway drives it
//! (`keyway_adapter::login`):
//!
//! 1. `GET /user-login/v1/authorize?redirect_uri=weconnect://authenticated&nonce=…` at
//!    the BFF answers `303` to the identity server's login page; the BFF picks the
//!    `state` (it is in that page's URL).
//! 2. The owner logs in there; the identity server redirects to
//!    `weconnect://authenticated#state=…&code=…&id_token=…&access_token=…` (an implicit
//!    and code hybrid).
//! 3. `POST /user-login/login/v1` with `{state, id_token, redirect_uri, region: "emea",
//!    access_token, authorizationCode}` answers the API's tokens in camel case
//!    (`accessToken`, `idToken`, `refreshToken`).
//!
//! They refresh at `/login/v1/idk/token` as an ordinary refresh grant with the app's
//! `client_id` in the form (the profile's `token_path`).

use bytes::Bytes;
use http::{Method, Request, header};
use keyway_adapter::http::{body_excerpt, join};
use keyway_adapter::login::{nonce, param, trade, unbuildable};
use keyway_adapter::{AppLogin, Delivered, Http, OemError, Secret, Tokens};

/// The app's redirect URI, where the login ends.
pub const REDIRECT_URI: &str = "weconnect://authenticated";

/// The region the EU backend serves.
const REGION: &str = "emea";

/// Step 1: where the owner logs in, and the BFF's `state`.
pub async fn start(http: &Http, login_base: &str) -> Result<AppLogin, OemError> {
    let query = serde_urlencoded::to_string([("redirect_uri", REDIRECT_URI), ("nonce", &nonce())])
        .map_err(unbuildable)?;
    let url = format!("{}?{query}", join(login_base, "/user-login/v1/authorize"));
    let req = Request::builder()
        .method(Method::GET)
        .uri(&url)
        .body(Bytes::new())
        .map_err(unbuildable)?;
    let resp = http.send(req).await?;
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|_| resp.status().is_redirection());
    let Some(location) = location else {
        return Err(OemError::Upstream {
            status: resp.status().as_u16(),
            detail: format!("the login start did not redirect: {}", body_excerpt(&resp)),
            delivered: Delivered::No,
        });
    };
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let state = param(&params, "state").ok_or_else(|| OemError::InvalidResponse {
        detail: "the login page's URL carries no state".into(),
        delivered: Delivered::No,
    })?;
    Ok(AppLogin {
        url: location.to_string(),
        state: Secret::new(state),
    })
}

/// Step 3: the API's tokens for what the redirect carried.
pub async fn finish(
    http: &Http,
    auth_base: &str,
    redirect: &[(String, String)],
) -> Result<Tokens, OemError> {
    let needed = |name: &str| {
        param(redirect, name).ok_or_else(|| OemError::Unauthorized {
            detail: format!("the login's redirect carries no {name}"),
        })
    };
    let body = serde_json::json!({
        "state": needed("state")?,
        "id_token": needed("id_token")?,
        "redirect_uri": REDIRECT_URI,
        "region": REGION,
        "access_token": needed("access_token")?,
        "authorizationCode": needed("code")?,
    });
    trade(http, &join(auth_base, "/user-login/login/v1"), &body).await
}
