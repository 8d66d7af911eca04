//! The client side of each OEM's OAuth server, driven by the adapter's `OAuthProfile`
//! (data, not code): the authorization URL with PKCE (S256) and a random `state`, the
//! code exchange (both through the `oauth2` crate, over keyway's own HTTP stack), the
//! optional RFC 8693 token exchange some OEMs add after it, and the refresh grant (RFC
//! 6749's form, or an OEM's own JSON body where its profile says so).
//!
//! The refresh grant is written by hand on purpose: OEMs answer a dead refresh token in
//! their own shapes (Tesla `401 login_required`, Ford `400 {"errorCode":"460"}`, …), so
//! the decision "relink needed" vs "try later" is made from the HTTP status, which the
//! `oauth2` crate's error type does not carry.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use keyway_adapter::http::{basic_auth, join, json_post, parse_json};
use keyway_adapter::{ClientAuth, Delivered, OemError, RefreshGrant, Secret};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use super::TokenError;
use crate::error::OemFailure;
use crate::registry::Oem;

/// Tokens an OEM granted (the adapter contract's: an app login grants them too).
pub type Granted = keyway_adapter::Tokens;

/// A started authorization.
#[derive(Debug)]
pub struct Authorization {
    /// Where to send the owner's browser.
    pub url: String,
    /// The `state` parameter in it.
    pub state: Secret,
    /// The PKCE verifier (stays on the server).
    pub verifier: Secret,
}

/// Why a refresh failed.
#[derive(Debug)]
pub enum RefreshFailure {
    /// The OEM rejected the refresh token: the owner must link again.
    Rejected(String),
    /// The OEM rejected keyway's client credentials: an operator must act.
    BadClient,
    /// Anything else (rate limit, outage): try again later.
    Oem(OemError),
}

/// Whether an OAuth error names keyway's own client as the problem (RFC 6749 §5.2:
/// `invalid_client`, `unauthorized_client`): an operator must act, the owner need not
/// relink.
pub(super) fn bad_client(error: Option<&str>) -> bool {
    matches!(error, Some("invalid_client" | "unauthorized_client"))
}

fn config_error(oem: &str, e: impl std::fmt::Display) -> TokenError {
    TokenError::Settings {
        oem: oem.to_string(),
        detail: e.to_string(),
    }
}

/// The authorization URL for `oem`, with PKCE and a fresh `state`.
pub fn authorization(oem: &Oem, redirect_uri: &str) -> Result<Authorization, TokenError> {
    let profile = &oem.adapter.info().oauth;
    let name = oem.adapter.info().oem;
    let auth_url = AuthUrl::new(join(oem.config.login_base(), profile.authorize_path))
        .map_err(|e| config_error(name, e))?;
    let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|e| config_error(name, e))?;
    let client = BasicClient::new(ClientId::new(oem.config.client_id.clone()))
        .set_auth_uri(auth_url)
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(profile.scopes.iter().map(|s| Scope::new(s.to_string())))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Authorization {
        url: url.to_string(),
        state: Secret::new(state.secret().clone()),
        verifier: Secret::new(verifier.secret().clone()),
    })
}

/// A fresh, unguessable `state` (a link's single-use credential), drawn as the code
/// flow's is.
pub fn fresh_state() -> Secret {
    Secret::new(CsrfToken::new_random().secret().clone())
}

/// A fresh `state` and PKCE pair for an app login, drawn as [`authorization`] draws the
/// code flow's: what the adapter may put in the login URL, and the verifier keyway keeps.
pub fn app_link() -> (keyway_adapter::LinkSecrets, Secret) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let link = keyway_adapter::LinkSecrets {
        state: fresh_state(),
        code_challenge: challenge.as_str().to_string(),
    };
    (link, Secret::new(verifier.secret().clone()))
}

/// Exchanges an authorization code (and, where the OEM's profile says so, the token
/// it yields) for the account's tokens.
pub async fn exchange_code(
    oem: &Oem,
    code: &str,
    verifier: &Secret,
    redirect_uri: &str,
) -> Result<Granted, TokenError> {
    let info = oem.adapter.info();
    let profile = &info.oauth;
    let token_url = TokenUrl::new(join(oem.config.auth_base(), profile.token_path))
        .map_err(|e| config_error(info.oem, e))?;
    let redirect =
        RedirectUrl::new(redirect_uri.to_string()).map_err(|e| config_error(info.oem, e))?;
    let mut client = BasicClient::new(ClientId::new(oem.config.client_id.clone()))
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(match profile.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body => AuthType::RequestBody,
        });
    if let Some(secret) = &oem.config.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
    }
    let http = oem.auth_http.clone();
    let send = move |req: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let resp = http.send(req.map(Bytes::from)).await?;
            Ok::<_, keyway_adapter::TransportError>(resp.map(|b| b.to_vec()))
        }
    };
    let answer = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
        .request_async(&send)
        .await
        .map_err(|e| {
            if let oauth2::RequestTokenError::ServerResponse(r) = &e
                && bad_client(Some(r.error().as_ref()))
            {
                return TokenError::BadClient {
                    oem: info.oem.to_string(),
                };
            }
            if let oauth2::RequestTokenError::ServerResponse(r) = &e
                && r.error().as_ref() == "invalid_grant"
            {
                return TokenError::CodeRefused {
                    oem: info.oem.to_string(),
                };
            }
            let detail = match &e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    format!("the OEM refused the authorization code: {}", r.error())
                }
                oauth2::RequestTokenError::Request(e) => format!("could not reach the OEM: {e}"),
                _ => "the OEM's token answer could not be understood".to_string(),
            };
            TokenError::Exchange {
                oem: info.oem.to_string(),
                detail,
            }
        })?;
    let granted = Granted {
        access_token: Secret::new(answer.access_token().secret().clone()),
        refresh_token: answer
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone())),
        expires_in: answer.expires_in(),
    };
    if profile.token_exchange {
        return token_exchange(oem, &granted.access_token)
            .await
            .map_err(|e| OemFailure::new(info.oem, e).into());
    }
    Ok(granted)
}

/// A token endpoint's answer: RFC 6749's names, or the camel case some OEMs' own
/// endpoints use (the Volkswagen Group's login answers `accessToken`, `refreshToken`).
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(alias = "accessToken")]
    access_token: String,
    #[serde(alias = "refreshToken")]
    refresh_token: Option<String>,
    #[serde(alias = "expiresIn")]
    expires_in: Option<u64>,
}

/// An OAuth error answer (RFC 6749 §5.2; RFC 8628 §3.5 adds its own `error`s).
#[derive(Deserialize)]
pub(super) struct TokenErrorAnswer {
    pub(super) error: Option<String>,
    pub(super) error_description: Option<String>,
}

fn token_request<'a>(
    oem: &'a Oem,
    form: Vec<(&'a str, &'a str)>,
) -> Result<Request<Bytes>, OemError> {
    let url = join(oem.config.auth_base(), oem.adapter.info().oauth.token_path);
    form_request(oem, &url, form)
}

/// A form `POST` to `url` with the client's credentials as the profile says.
pub(super) fn form_request<'a>(
    oem: &'a Oem,
    url: &str,
    mut form: Vec<(&'a str, &'a str)>,
) -> Result<Request<Bytes>, OemError> {
    let profile = &oem.adapter.info().oauth;
    let secret = oem.config.client_secret.as_ref().map(Secret::expose);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(url)
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
            let value = basic_auth(&oem.config.client_id, secret.unwrap_or(""))
                .map_err(|e| unbuildable(&e))?;
            req = req.header(header::AUTHORIZATION, value);
        }
    }
    let body = serde_urlencoded::to_string(&form).map_err(|e| unbuildable(&e))?;
    req.body(Bytes::from(body)).map_err(|e| unbuildable(&e))
}

pub(super) fn granted(resp: &http::Response<Bytes>) -> Result<Granted, OemError> {
    let answer: TokenAnswer = parse_json(resp, Delivered::Unknown)?;
    Ok(Granted {
        access_token: Secret::new(answer.access_token),
        refresh_token: answer.refresh_token.map(Secret::new),
        expires_in: answer.expires_in.map(Duration::from_secs),
    })
}

/// RFC 8693: trades the login's access token for the OEM API's tokens.
pub async fn token_exchange(oem: &Oem, subject: &Secret) -> Result<Granted, OemError> {
    let req = token_request(
        oem,
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject.expose()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ],
    )?;
    let resp = oem.auth_http.send(req).await?;
    if resp.status() == 200 {
        granted(&resp)
    } else {
        Err(OemError::ReauthorizationRequired {
            detail: format!("the token exchange answered {}", resp.status()),
        })
    }
}

/// Redeems a refresh token, as the profile's [`RefreshGrant`] says.
pub async fn refresh(oem: &Oem, refresh_token: &Secret) -> Result<Granted, RefreshFailure> {
    let req = match oem.adapter.info().oauth.refresh {
        RefreshGrant::Form => token_request(
            oem,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ],
        ),
        RefreshGrant::Json { field } => json_refresh(oem, field, refresh_token),
    }
    .map_err(RefreshFailure::Oem)?;
    let resp = oem
        .auth_http
        .send(req)
        .await
        .map_err(|e| RefreshFailure::Oem(e.into()))?;
    read_refresh(&resp)
}

/// An OEM's own refresh request: `{"<field>": refresh token}` as JSON, no client
/// credentials.
fn json_refresh(
    oem: &Oem,
    field: &str,
    refresh_token: &Secret,
) -> Result<Request<Bytes>, OemError> {
    let url = join(oem.config.auth_base(), oem.adapter.info().oauth.token_path);
    let body = serde_json::json!({ field: refresh_token.expose() });
    json_post(&url, &body).map_err(|e| unbuildable(&e))
}

/// The error of a token request that could not be built.
fn unbuildable(e: &dyn std::fmt::Display) -> OemError {
    OemError::Transport {
        detail: format!("the token request could not be built: {e}"),
        delivered: Delivered::No,
    }
}

/// Reads the token endpoint's answer to a refresh grant (also `keyway replay … token`):
/// the tokens, or whose problem it is — the owner's (`Rejected`: link again), the
/// operator's (`BadClient`) or nobody's yet (`Oem`: try later).
pub fn read_refresh(resp: &http::Response<Bytes>) -> Result<Granted, RefreshFailure> {
    let status = resp.status().as_u16();
    if status == 200 {
        return granted(resp).map_err(RefreshFailure::Oem);
    }
    let error = serde_json::from_slice::<TokenErrorAnswer>(resp.body())
        .ok()
        .and_then(|e| e.error);
    match status {
        429 => Err(RefreshFailure::Oem(OemError::RateLimited {
            retry_after: keyway_adapter::error::parse_retry_after(
                resp.headers().get(header::RETRY_AFTER),
            ),
        })),
        400..=403 if bad_client(error.as_deref()) => Err(RefreshFailure::BadClient),
        400..=403 => {
            Err(RefreshFailure::Rejected(error.unwrap_or_else(|| {
                format!("the token endpoint answered {status}")
            })))
        }
        _ => Err(RefreshFailure::Oem(OemError::Upstream {
            status,
            detail: "the token endpoint failed".into(),
            delivered: Delivered::Unknown,
        })),
    }
}
