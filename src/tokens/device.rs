//! The client side of RFC 8628's device authorization grant, for an OEM whose profile
//! links with it (`Linking::Device`, myAudi): [`start`] asks the OEM's device
//! authorization endpoint for a device code and the user code the owner approves at
//! the OEM's verification page; [`poll`] asks the token endpoint once whether the owner
//! has. Both at the OEM's login base, with the profile's client as its other token
//! requests carry it.
//!
//! Written by hand rather than with the `oauth2` crate's device flow: that one polls in
//! a loop (its own sleeps) until the owner decides, which would hold a caller's request
//! for minutes; keyway polls the OEM once per caller's poll, and the caller's loop is
//! the caller's.

use std::time::Duration;

use bytes::Bytes;
use keyway_adapter::http::{join, parse_json};
use keyway_adapter::{Delivered, OemError, Secret};
use serde::Deserialize;

use super::TokenError;
use super::oauth::{Granted, TokenErrorAnswer, bad_client, form_request, granted};
use crate::error::OemFailure;
use crate::registry::Oem;

/// The device grant's URN (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.2's default interval, when the OEM names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// RFC 8628 §3.5: a `slow_down` adds 5 s to the interval for good.
pub const SLOW_DOWN: Duration = Duration::from_secs(5);

/// What the OEM's device authorization endpoint granted (RFC 8628 §3.2).
#[derive(Debug)]
pub struct Started {
    /// The device code keyway polls with (secret: it is the grant's credential).
    pub device_code: Secret,
    /// The code the owner enters or confirms at the verification page.
    pub user_code: String,
    /// The verification page.
    pub verification_uri: String,
    /// The page with the user code in it, when the OEM gives one.
    pub verification_uri_complete: Option<String>,
    /// How long the codes live.
    pub expires_in: Duration,
    /// How long to wait between polls.
    pub interval: Duration,
}

/// What one poll of the token endpoint said (RFC 8628 §3.5).
#[derive(Debug)]
pub enum Polled {
    /// The owner has not decided: poll again after the interval (`slow_down`: which
    /// grows by 5 s).
    Pending {
        /// The OEM asked keyway to poll less often.
        slow_down: bool,
    },
    /// Approved: the account's tokens.
    Granted(Granted),
    /// The owner refused (`access_denied`) or the OEM ended the grant with another
    /// error: the link must start again.
    Refused {
        /// The OAuth `error`.
        error: String,
        /// Its `error_description`.
        detail: String,
    },
    /// The codes expired before the owner approved (`expired_token`).
    Expired,
}

#[derive(Deserialize)]
struct StartAnswer {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

fn failure(oem: &Oem, e: OemError) -> TokenError {
    OemFailure::new(oem.adapter.info().oem, e).into()
}

fn paths(oem: &Oem) -> Result<(&'static str, &'static str), TokenError> {
    oem.adapter
        .info()
        .oauth
        .linking
        .device()
        .ok_or_else(|| TokenError::Settings {
            oem: oem.adapter.info().oem.to_string(),
            detail: "this OEM does not link with the device authorization grant".into(),
        })
}

/// Asks the OEM for a device code and user code (RFC 8628 §3.1) for the profile's
/// scopes.
pub async fn start(oem: &Oem) -> Result<Started, TokenError> {
    let (authorization_path, _) = paths(oem)?;
    let url = join(oem.config.login_base(), authorization_path);
    let scope = oem.adapter.info().oauth.scopes.join(" ");
    let resp = ask(oem, &url, vec![("scope", &scope)]).await?;
    if resp.status() != http::StatusCode::OK {
        return Err(refused_start(oem, &resp));
    }
    let a: StartAnswer = parse_json(&resp, Delivered::No).map_err(|e| failure(oem, e))?;
    Ok(Started {
        device_code: Secret::new(a.device_code),
        user_code: a.user_code,
        verification_uri: a.verification_uri,
        verification_uri_complete: a.verification_uri_complete,
        expires_in: Duration::from_secs(a.expires_in),
        interval: a.interval.map_or(DEFAULT_INTERVAL, Duration::from_secs),
    })
}

/// The device authorization endpoint's refusal: keyway's client (`invalid_client`,
/// `unauthorized_client`: an operator must act) or the OEM's trouble.
fn refused_start(oem: &Oem, resp: &http::Response<Bytes>) -> TokenError {
    let status = resp.status().as_u16();
    let error = serde_json::from_slice::<TokenErrorAnswer>(resp.body())
        .ok()
        .and_then(|e| e.error);
    match bad_client(error.as_deref()) {
        true => TokenError::BadClient {
            oem: oem.adapter.info().oem.to_string(),
        },
        false => failure(
            oem,
            OemError::from_status(
                status,
                format!("the device authorization endpoint answered {status}"),
                false,
            ),
        ),
    }
}

/// Asks the token endpoint once whether the owner approved (RFC 8628 §3.4).
pub async fn poll(oem: &Oem, device_code: &Secret) -> Result<Polled, TokenError> {
    let (_, token_path) = paths(oem)?;
    let url = join(oem.config.login_base(), token_path);
    let form = vec![
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code.expose()),
    ];
    read_poll(oem, &ask(oem, &url, form).await?)
}

/// `POST url` with `form` and the client's credentials; the OEM's answer.
async fn ask(
    oem: &Oem,
    url: &str,
    form: Vec<(&str, &str)>,
) -> Result<http::Response<Bytes>, TokenError> {
    let req = form_request(oem, url, form).map_err(|e| failure(oem, e))?;
    oem.auth_http
        .send(req)
        .await
        .map_err(|e| failure(oem, e.into()))
}

/// Reads a poll's answer (RFC 8628 §3.5).
fn read_poll(oem: &Oem, resp: &http::Response<Bytes>) -> Result<Polled, TokenError> {
    let status = resp.status().as_u16();
    if status == 200 {
        return granted(resp)
            .map(Polled::Granted)
            .map_err(|e| failure(oem, e));
    }
    let answer = serde_json::from_slice::<TokenErrorAnswer>(resp.body()).ok();
    let (error, detail) = answer
        .map(|a| (a.error, a.error_description))
        .unwrap_or_default();
    Ok(match (status, error.as_deref()) {
        (400 | 401, Some("authorization_pending")) => Polled::Pending { slow_down: false },
        (400 | 401, Some("slow_down")) => Polled::Pending { slow_down: true },
        (400 | 401, Some("expired_token")) => Polled::Expired,
        (400 | 401, e) if bad_client(e) => {
            return Err(TokenError::BadClient {
                oem: oem.adapter.info().oem.to_string(),
            });
        }
        (400..=403, Some(e)) => Polled::Refused {
            error: e.to_string(),
            detail: detail.unwrap_or_default(),
        },
        _ => {
            return Err(failure(
                oem,
                OemError::from_status(
                    status,
                    format!("the token endpoint answered {status}"),
                    false,
                ),
            ));
        }
    })
}
