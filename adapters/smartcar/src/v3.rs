//! Smartcar API v3 (April 2026), the version new Smartcar applications get: one
//! application token for every owner, the owner named in an `sc-user-id` header.
//!
//! - **Linking**: Smartcar Connect as in v2.0, but its redirect names the owner
//!   (`user_id`) and no code is exchanged ([`Linking::Owner`]); the owner's id is the
//!   account's credential. Before keyway links it, [`owner_connected`] asks Smartcar
//!   whether that owner connected during the link (a connection made since it started).
//! - **Token**: the application's own, from `POST {auth}/oauth2/token` with
//!   `grant_type=client_credentials` and the client in the form (Smartcar's `iam`;
//!   valid an hour, no refresh token). [`AppToken`] keeps it until shortly before it
//!   lapses, and fetches another when Smartcar answers `401` (once per call).
//! - **Cars**: the owner's connections (`GET /v3/connections?user_id=`, paged), each
//!   car's attributes (`GET /v3/vehicles/{id}`), the lock and the position as signals
//!   (`/v3/vehicles/{id}/signals/closure-islocked`, `…/location-preciselocation`, read by
//!   [`crate::signals`]).
//! - **Commands**: `POST /v3/vehicles/{id}/commands/security/lock|unlock`, answered by
//!   a `command-execution` ([`parse_execution`]): `200` with `SUCCESS` when Smartcar has
//!   the make's result; `202` while it runs. Smartcar then says to confirm by reading
//!   the signal, so keyway follows it as any unconfirmed command: its window and a look
//!   at the car decide.
//!
//! Errors keep v2.0's `{type, code, description, statusCode}` ([`crate::adapter::classify`]).

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use keyway_adapter::http::{check, parse_body};
use keyway_adapter::{Call, Command, Delivered, Http, OemError, OemVehicle, Pending, Secret, Sent};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use crate::answers::{classify, make_name};

/// The header naming the owner a v3 call is made for.
pub const USER_HEADER: &str = "sc-user-id";
/// Connections asked for per page.
pub const PAGE: usize = 50;
/// At most this many pages of connections are read (2,500 cars for one owner).
pub const MAX_PAGES: usize = 50;
/// How long before a connection's stated time a link may have started (clock skew
/// between Smartcar and keyway).
pub const CONNECT_SKEW: time::Duration = time::Duration::minutes(2);

/// The application's client credentials and where Smartcar grants its token.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    /// `https://iam.smartcar.com/oauth2/token`.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

/// The application token, kept until shortly before it lapses.
#[derive(Debug)]
pub struct AppToken {
    credentials: AppCredentials,
    cached: Mutex<Option<(Secret, Instant)>>,
}

#[derive(serde::Deserialize)]
struct Granted {
    access_token: String,
    expires_in: Option<u64>,
}

impl AppToken {
    /// A token source for `credentials`.
    pub fn new(credentials: AppCredentials) -> Self {
        Self {
            credentials,
            cached: Mutex::new(None),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(Secret, Instant)>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token, fetched anew when none is kept, it is due, or it is `refused`.
    pub async fn get(&self, http: &Http, refused: Option<&Secret>) -> Result<Secret, OemError> {
        if let Some((token, until)) = self.kept().clone()
            && Instant::now() < until
            && refused != Some(&token)
        {
            return Ok(token);
        }
        let c = &self.credentials;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose()),
        ];
        let unbuildable = |e: String| OemError::Transport {
            detail: format!("the token request could not be built: {e}"),
            delivered: Delivered::No,
        };
        let body = serde_urlencoded::to_string(form).map_err(|e| unbuildable(e.to_string()))?;
        let req = Request::post(&c.token_url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| unbuildable(e.to_string()))?;
        let resp = http.send(req).await?;
        match resp.status().as_u16() {
            200 => {}
            400 | 401 | 403 => {
                return Err(OemError::ClientRejected {
                    detail: format!(
                        "Smartcar refused the application's client credentials ({}): check \
                         the client id and secret",
                        resp.status()
                    ),
                });
            }
            _ => return Err(classify(&resp, false)),
        }
        let g: Granted = parse_body(resp.body(), Delivered::No)?;
        let lifetime = Duration::from_secs(g.expires_in.unwrap_or(3600));
        // Renewed a tenth of its life (at most a minute) before it lapses.
        let until = Instant::now() + lifetime - (lifetime / 10).min(Duration::from_secs(60));
        let token = Secret::new(g.access_token);
        *self.kept() = Some((token.clone(), until));
        Ok(token)
    }
}

/// Sends `method url` (a JSON `body` for a POST) as the application, naming the owner
/// `cx` carries (its token is the owner's id); a `401` fetches a new application
/// token and tries once more (the request was refused before anything ran).
pub async fn send(
    app: &AppToken,
    cx: &Call,
    method: Method,
    url: &str,
    command: bool,
) -> Result<Response<Bytes>, OemError> {
    let owner = http::HeaderValue::try_from(cx.token.expose())
        .map(|mut v| {
            v.set_sensitive(true);
            v
        })
        .map_err(|_| OemError::ReauthorizationRequired {
            detail: "the account's Smartcar user id is not a header value".into(),
        })?;
    let mut refused = None;
    for _ in 0..2 {
        let token = app.get(&cx.http, refused.as_ref()).await?;
        let call = Call {
            token: token.clone(),
            ..cx.clone()
        };
        let req = call
            .request(method.clone(), url)
            .header(USER_HEADER, owner.clone())
            .body(Bytes::new());
        let resp = call.send(req).await?;
        if resp.status() != 401 {
            return check(resp, command, classify);
        }
        refused = Some(token);
    }
    Err(OemError::ClientRejected {
        detail: "Smartcar refused two fresh application tokens (401): check the application's \
                 API credentials"
            .into(),
    })
}

/// One connection of an owner's car to the application.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    /// Smartcar's id of the car.
    pub vehicle_id: String,
    /// The owner, when the answer says.
    pub user_id: Option<String>,
    /// When the owner connected it, when the answer says.
    pub connected_at: Option<OffsetDateTime>,
}

fn text<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| v.pointer(k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// A page of connections, and whether another follows. Read as a JSON:API list
/// (`data[]` with `attributes {vehicleId, userId, connectedAt}`, or the vehicle as a
/// relationship) and as v2.0's management list (`connections[] {vehicleId, userId,
/// connectedAt}`, `paging.cursor`), whichever the answer is.
pub fn parse_connections(body: &[u8]) -> Result<(Vec<Connection>, bool), OemError> {
    let doc: Value = parse_body(body, Delivered::No)?;
    let items = doc
        .get("data")
        .or_else(|| doc.get("connections"))
        .and_then(Value::as_array)
        .ok_or_else(|| keyway_adapter::http::invalid("the connections list has no data"))?;
    let all = items
        .iter()
        .filter_map(|c| {
            // A connection names its car; a vehicle resource is the car.
            let own = (c.get("type").and_then(Value::as_str) == Some("vehicle"))
                .then(|| text(c, &["/id"]))
                .flatten();
            let vehicle_id = own.or_else(|| {
                text(
                    c,
                    &[
                        "/attributes/vehicleId",
                        "/vehicleId",
                        "/relationships/vehicle/data/id",
                    ],
                )
            })?;
            Some(Connection {
                vehicle_id: vehicle_id.to_string(),
                user_id: text(c, &["/attributes/userId", "/userId"]).map(str::to_string),
                connected_at: text(c, &["/attributes/connectedAt", "/connectedAt"])
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
            })
        })
        .collect();
    let more = text(&doc, &["/links/next", "/paging/cursor"]).is_some();
    Ok((all, more))
}

/// A car from its v3 attributes (`{"data": {"id", "type": "vehicle", "attributes":
/// {make, model, year}}}`); the VIN when the attributes carry one.
pub fn parse_vehicle(id: &str, body: &[u8]) -> Result<OemVehicle, OemError> {
    let doc: Value = parse_body(body, Delivered::No)?;
    let a = doc
        .pointer("/data/attributes")
        .ok_or_else(|| keyway_adapter::http::invalid("the vehicle has no attributes"))?;
    let make = a.get("make").and_then(Value::as_str);
    let model = a.get("model").and_then(Value::as_str);
    Ok(OemVehicle {
        capabilities: None,
        oem_id: id.to_string(),
        vin: a
            .get("vin")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        display_name: None,
        model: match (make, model) {
            (Some(make), Some(model)) => Some(format!("{} {model}", make_name(make))),
            (Some(make), None) => Some(make_name(make)),
            (None, model) => model.map(str::to_string),
        },
        year: a.get("year").and_then(|y| match y {
            Value::String(s) => s.parse().ok(),
            n => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        }),
    })
}

/// How long keyway waits between looks at a running (`202`) command.
const FOLLOW_EVERY_MS: u64 = 5_000;

/// Reads a command's answer (`status` and body): a `command-execution` whose
/// `attributes.status.value` is `SUCCESS` completed; `FAILED` is Smartcar's word that
/// it did not; a `202`, or a status still running (`PENDING`, `IN_PROGRESS`, …), is
/// pending; anything else in a `2xx` leaves the outcome open.
pub fn parse_execution(status: u16, body: &[u8]) -> Result<Sent, OemError> {
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let value = doc
        .as_ref()
        .and_then(|d| {
            text(
                d,
                &["/data/attributes/status/value", "/data/attributes/status"],
            )
        })
        .map(str::to_ascii_uppercase);
    let id = doc
        .as_ref()
        .and_then(|d| text(d, &["/data/id"]))
        .unwrap_or_default()
        .to_string();
    let pending = || {
        Ok(Sent::Pending(Pending {
            handle: id.clone(),
            poll_after_ms: FOLLOW_EVERY_MS,
        }))
    };
    match value.as_deref() {
        Some("SUCCESS" | "SUCCEEDED" | "COMPLETED") => Ok(Sent::Completed),
        Some("FAILED" | "FAILURE") => Err(OemError::Refused {
            reason: format!("Smartcar reports the command {}", value.unwrap_or_default()),
        }),
        Some("PENDING" | "IN_PROGRESS" | "QUEUED" | "ACCEPTED" | "RUNNING") => pending(),
        _ if status == 202 => pending(),
        other => Err(OemError::InvalidResponse {
            detail: format!("command execution status {other:?}"),
            delivered: Delivered::Unknown,
        }),
    }
}

/// The command's path segment.
pub fn action(c: Command) -> &'static str {
    match c {
        Command::Lock => "lock",
        Command::Unlock => "unlock",
    }
}

#[cfg(test)]
mod tests;
