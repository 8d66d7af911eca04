//! How an owner's account is linked when the OEM's login is its own app's, not RFC 6749's
//! code flow to keyway's callback (the Volkswagen Group's: the login ends at the app's
//! custom-scheme redirect, `weconnect://authenticated#…`, and the app trades what the
//! redirect's fragment carries for tokens at its own endpoint).
//!
//! keyway drives it in three steps, the adapter translating each:
//! 1. [`crate::Adapter::app_login`] names where the owner logs in. keyway draws a
//!    `state` and a PKCE pair for every link ([`LinkSecrets`]); an OEM whose app runs
//!    the code flow with PKCE at the identity server (Škoda) puts them in the login URL,
//!    one whose backend starts the login picks its own `state` (the Volkswagen BFF).
//!    keyway keeps the `state` as the link's single-use credential, the verifier sealed.
//! 2. The owner logs in; the app that shows the login (the delivery service's) catches
//!    the redirect to [`Linking::App`]'s URI and hands the whole URL to keyway
//!    (`POST /v1/oauth/callback`).
//! 3. [`crate::Adapter::finish_app_login`] trades the redirect's parameters (and the
//!    link's PKCE verifier) for the account's tokens. From then on the tokens refresh at
//!    the profile's token path like any OEM's.
//!
//! An OEM whose identity server offers RFC 8628's device authorization grant to its
//! app's client (myAudi) links with it ([`Linking::Device`]): keyway starts it, the
//! owner approves the user code at the OEM's page, and the caller polls keyway, which
//! polls the OEM.
//!
//! An aggregator whose API calls carry the application's own token (Smartcar API v3)
//! links owners with the code flow's redirect but no code exchange: the redirect names
//! the owner at the OEM ([`Linking::Owner`]), and that name is the account's credential.

use std::time::Duration;

use crate::{Delivered, Http, OemError, Secret};

/// How owners link an account at the OEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linking {
    /// RFC 6749 authorization code with PKCE, redirected to keyway's callback.
    Code,
    /// The OEM's own app login, ending at this redirect URI of its app.
    App {
        /// The app's redirect URI (`weconnect://authenticated`).
        redirect_uri: &'static str,
    },
    /// The code flow's redirect to keyway's callback names the owner at the OEM in this
    /// parameter (Smartcar API v3's `user_id`); no code is exchanged. The owner's id is
    /// the account's credential (it does not expire), and the adapter calls the OEM with
    /// the application's own token naming the owner. Before keyway links it, the adapter
    /// confirms the owner connected during the link ([`crate::Adapter::owner_connected`]):
    /// the id alone, unlike a code, proves nothing.
    Owner {
        /// The redirect's parameter naming the owner (`user_id`).
        param: &'static str,
    },
    /// RFC 8628's device authorization grant at the login base: keyway asks
    /// `authorization_path` for a user code, the owner approves it on any browser at the
    /// OEM's verification page, and keyway polls `token_path` with the device code
    /// (one poll per caller's poll, never faster than the OEM's interval). The OEM's
    /// app client (the profile's `client_id`) is public: no secret. Tokens then refresh
    /// at the profile's `token_path` at the auth base like any OEM's (myAudi).
    Device {
        /// The device authorization endpoint (`/oidc/v1/device_authorization`).
        authorization_path: &'static str,
        /// Where the device code is traded for tokens (`/oidc/v1/token`).
        token_path: &'static str,
    },
}

impl Linking {
    /// The app's redirect URI for an app login; `None` for the code flow.
    pub fn app_redirect(self) -> Option<&'static str> {
        match self {
            Linking::App { redirect_uri } => Some(redirect_uri),
            Linking::Code | Linking::Owner { .. } | Linking::Device { .. } => None,
        }
    }

    /// The redirect parameter naming the owner, for [`Linking::Owner`].
    pub fn owner_param(self) -> Option<&'static str> {
        match self {
            Linking::Owner { param } => Some(param),
            Linking::Code | Linking::App { .. } | Linking::Device { .. } => None,
        }
    }

    /// The device authorization and token paths, for [`Linking::Device`].
    pub fn device(self) -> Option<(&'static str, &'static str)> {
        match self {
            Linking::Device {
                authorization_path,
                token_path,
            } => Some((authorization_path, token_path)),
            Linking::Code | Linking::App { .. } | Linking::Owner { .. } => None,
        }
    }
}

/// What keyway draws for each app login, for an adapter that builds the login URL
/// itself: the `state` the redirect must bring back, and the PKCE (RFC 7636) S256
/// challenge of the verifier keyway keeps until the finish.
#[derive(Debug)]
pub struct LinkSecrets {
    /// A fresh, unguessable `state`.
    pub state: Secret,
    /// `BASE64URL(SHA256(verifier))`, unpadded.
    pub code_challenge: String,
}

/// Where the owner logs in, as the OEM said.
#[derive(Debug)]
pub struct AppLogin {
    /// The login page.
    pub url: String,
    /// The `state` in it (the redirect brings it back): the OEM's, or keyway's
    /// [`LinkSecrets::state`].
    pub state: Secret,
}

/// Tokens an OEM granted.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// A (new) refresh token, when the OEM sent one.
    pub refresh_token: Option<Secret>,
    /// The access token's lifetime, when the OEM said.
    pub expires_in: Option<Duration>,
}

/// The parameters of an app redirect (`scheme://host#a=1&b=2`, or in its query): `None`
/// when `url` is not a redirect to `redirect_uri`.
pub fn redirect_params(url: &str, redirect_uri: &str) -> Option<Vec<(String, String)>> {
    let rest = url.strip_prefix(redirect_uri)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (query, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    if !(query.is_empty() || query.starts_with('?')) {
        return None;
    }
    let params = [&query[query.len().min(1)..], fragment].join("&");
    serde_urlencoded::from_str(&params).ok()
}

/// A fresh nonce for an app login's authorize (the identity server binds its id token
/// to it; keyway does not read the id token).
pub fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    format!("{nanos:x}{:x}", COUNT.fetch_add(1, Ordering::Relaxed))
}

/// The error of a login request that could not be built.
pub fn unbuildable(e: impl std::fmt::Display) -> OemError {
    OemError::Transport {
        detail: format!("the login request could not be built: {e}"),
        delivered: Delivered::No,
    }
}

/// `POST url` with the JSON `body` an app login trades for the account's tokens (the
/// Volkswagen BFF's `login/v1`, Škoda's `exchange-authorization-code`), its answer read
/// by [`read_tokens`].
pub async fn trade(http: &Http, url: &str, body: &serde_json::Value) -> Result<Tokens, OemError> {
    let req = crate::http::json_post(url, body).map_err(unbuildable)?;
    read_tokens(&http.send(req).await?)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

/// Reads an app login's token answer: the tokens in camel case (`accessToken`,
/// `refreshToken`, `expiresIn` when given), or whose failure it is — a refused login
/// (`4xx`: the owner logs in again) or the backend's (`5xx`).
pub fn read_tokens(resp: &http::Response<bytes::Bytes>) -> Result<Tokens, OemError> {
    use crate::http::body_excerpt;
    let status = resp.status().as_u16();
    match status {
        200 => {
            let g: Granted = crate::http::parse_body(resp.body(), Delivered::No)?;
            Ok(Tokens {
                access_token: Secret::new(g.access_token),
                refresh_token: g.refresh_token.map(Secret::new),
                expires_in: g.expires_in.map(Duration::from_secs),
            })
        }
        400..=499 if status != 429 => Err(OemError::Unauthorized {
            detail: format!("the login was refused: {}", body_excerpt(resp)),
        }),
        _ => Err(OemError::from_status(status, body_excerpt(resp), false)),
    }
}

/// The value of `name` among a redirect's parameters (non-empty).
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_reads_its_fragment_and_only_its_own_uri() {
        let uri = "weconnect://authenticated";
        let p = redirect_params(
            "weconnect://authenticated#state=s1&code=c%2B1&id_token=i&access_token=a",
            uri,
        )
        .unwrap();
        assert_eq!(param(&p, "state"), Some("s1"));
        assert_eq!(param(&p, "code"), Some("c+1"));
        assert_eq!(param(&p, "missing"), None);
        let q = redirect_params("weconnect://authenticated?error=access_denied", uri).unwrap();
        assert_eq!(param(&q, "error"), Some("access_denied"));
        assert!(redirect_params("https://evil.example/#state=s1", uri).is_none());
        assert!(redirect_params("weconnect://authenticatedX#state=s1", uri).is_none());
    }
}
