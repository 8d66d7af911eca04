//! The MySkoda app's login, as `skodaconnect/myskoda` performs it (`auth/authorization.py`)
//! — translation only, keyway drives it (`keyway_adapter::login`):
//!
//! 1. The owner is sent to the Volkswagen Group's identity server,
//!    `GET /oidc/v1/authorize?client_id=…&response_type=code&redirect_uri=myskoda://redirect/login/&scope=…&code_challenge=…&code_challenge_method=s256&nonce=…&prompt=login`
//!    — the app's own client and redirect, PKCE with S256. keyway adds its `state`
//!    (the app sends none; the identity server, an OpenID provider, returns it).
//! 2. The owner logs in there; the identity server redirects to
//!    `myskoda://redirect/login/?code=…&state=…`.
//! 3. `POST {api}/api/v1/authentication/exchange-authorization-code?tokenType=CONNECT`
//!    with `{code, redirectUri, verifier}` answers the API's tokens in camel case
//!    (`accessToken`, `refreshToken`, `idToken`).
//!
//! They refresh at `/api/v1/authentication/refresh-token?tokenType=CONNECT` with
//! `{"token": refresh token}` (the profile's [`keyway_adapter::RefreshGrant::Json`]).

use keyway_adapter::http::join;
use keyway_adapter::login::{nonce, param, trade, unbuildable};
use keyway_adapter::{AppLogin, Http, LinkSecrets, OemError, Secret, Tokens};

/// The app's redirect URI, where the login ends.
pub const REDIRECT_URI: &str = "myskoda://redirect/login/";

/// The MySkoda app's client at the identity server (public: it is in the app).
pub const CLIENT_ID: &str = "7f045eee-7003-4379-9968-9355ed2adb06@apps_vw-dilab_com";

/// The scopes the app asks for.
pub const SCOPES: &[&str] = &[
    "address",
    "badge",
    "birthdate",
    "cars",
    "driversLicense",
    "dealers",
    "email",
    "mileage",
    "mbb",
    "nationalIdentifier",
    "openid",
    "phone",
    "profession",
    "profile",
    "vin",
];

/// Step 1: the identity server's login page, with keyway's state and PKCE challenge.
pub fn start(login_base: &str, link: &LinkSecrets) -> Result<AppLogin, OemError> {
    let scope = SCOPES.join(" ");
    let query = serde_urlencoded::to_string([
        ("client_id", CLIENT_ID),
        ("nonce", &nonce()),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", &scope),
        ("code_challenge", &link.code_challenge),
        ("code_challenge_method", "s256"),
        ("prompt", "login"),
        ("state", link.state.expose()),
    ])
    .map_err(unbuildable)?;
    Ok(AppLogin {
        url: format!("{}?{query}", join(login_base, "/oidc/v1/authorize")),
        state: link.state.clone(),
    })
}

/// Step 3: the API's tokens for the redirect's code and the link's verifier.
pub async fn finish(
    http: &Http,
    auth_base: &str,
    redirect: &[(String, String)],
    verifier: &Secret,
) -> Result<Tokens, OemError> {
    let code = param(redirect, "code").ok_or_else(|| OemError::Unauthorized {
        detail: "the login's redirect carries no code".into(),
    })?;
    let body = serde_json::json!({
        "code": code,
        "redirectUri": REDIRECT_URI,
        "verifier": verifier.expose(),
    });
    let url = join(
        auth_base,
        "/api/v1/authentication/exchange-authorization-code?tokenType=CONNECT",
    );
    trade(http, &url, &body).await
}
