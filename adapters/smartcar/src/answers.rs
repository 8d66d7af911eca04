//! What Smartcar's answers share across its API versions: its typed errors
//! ([`classify`]: `{type, code, description, statusCode}` in v2.0 and v3 alike) and its
//! make names (upper case, [`make_name`]).

use bytes::Bytes;
use http::{Response, header};
use keyway_adapter::OemError;
use keyway_adapter::error::parse_retry_after;
use keyway_adapter::http::body_excerpt;
use serde::Deserialize;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    description: Option<String>,
}

/// Title case of Smartcar's upper-case makes (`JAGUAR` → `Jaguar`); other spellings are
/// kept.
pub(crate) fn make_name(make: &str) -> String {
    if make.chars().any(|c| c.is_lowercase()) {
        return make.to_string();
    }
    make.split(['-', ' '])
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |f| {
                f.to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .join(if make.contains('-') { "-" } else { " " })
}

/// Maps a non-success answer by Smartcar's `type` and `code` (its error reference):
///
/// - `AUTHENTICATION` (401): the access token; `PERMISSION` (403): a scope the owner did
///   not grant; `RESOURCE_NOT_FOUND` and `CONNECTED_SERVICES_ACCOUNT`/`VEHICLE_MISSING`:
///   no such car for this token.
/// - `CONNECTED_SERVICES_ACCOUNT`: `AUTHENTICATION_FAILED` means the owner must log in
///   again through Connect; `VIRTUAL_KEY_REQUIRED` that the car does not know the key;
///   the rest (subscription, account issue) are refusals of access.
/// - `VEHICLE_STATE` (409): `ASLEEP` asleep, `UNREACHABLE` unreachable, every other code
///   (a door open, remote access disabled, in motion, …) the car's refusal.
/// - `RATE_LIMIT` (429, and `UPSTREAM`/`RATE_LIMIT`): a limit, with `retry-after`.
/// - `BILLING` (430): the application's plan: keyway's operator must act.
/// - `COMPATIBILITY` (501): this car cannot do it (not every make can unlock).
/// - `UPSTREAM` and `SERVER` (5xx): the make's or Smartcar's failure; for a command the
///   outcome is open.
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    let body = serde_json::from_slice::<ErrorBody>(resp.body()).ok();
    let (kind, code) = body
        .as_ref()
        .map(|b| (b.kind.as_deref(), b.code.as_deref()))
        .unwrap_or_default();
    let detail = body
        .as_ref()
        .and_then(|b| {
            let d = b.description.as_deref()?;
            Some(match b.code.as_deref() {
                Some(c) => format!("{c}: {d}"),
                None => d.to_string(),
            })
        })
        .unwrap_or_else(|| body_excerpt(resp));
    let status = resp.status().as_u16();
    let retry_after = || parse_retry_after(resp.headers().get(header::RETRY_AFTER));
    match (kind.unwrap_or_default(), code.unwrap_or_default()) {
        ("AUTHENTICATION", _) => OemError::Unauthorized { detail },
        ("PERMISSION", _) => OemError::Forbidden { detail },
        ("RESOURCE_NOT_FOUND", _) | ("CONNECTED_SERVICES_ACCOUNT", "VEHICLE_MISSING") => {
            OemError::NotFound
        }
        ("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED") => {
            OemError::ReauthorizationRequired { detail }
        }
        ("CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED") => OemError::KeyNotPaired {
            pairing_url: None,
            detail,
        },
        ("CONNECTED_SERVICES_ACCOUNT", _) => OemError::Forbidden { detail },
        ("VEHICLE_STATE", "ASLEEP") => OemError::Asleep,
        ("VEHICLE_STATE", "UNREACHABLE") => OemError::Unreachable { detail },
        ("VEHICLE_STATE", _) => OemError::Refused { reason: detail },
        ("RATE_LIMIT", _) | ("UPSTREAM", "RATE_LIMIT") => OemError::RateLimited {
            retry_after: retry_after(),
        },
        ("BILLING", _) => OemError::ClientRejected { detail },
        ("COMPATIBILITY", _) => OemError::NotCapable {
            what: format!("do this for this vehicle ({detail})"),
        },
        _ if status == 429 => OemError::RateLimited {
            retry_after: retry_after(),
        },
        _ => OemError::from_status(status, detail, command),
    }
}
