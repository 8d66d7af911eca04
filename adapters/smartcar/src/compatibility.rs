//! What Smartcar says one car can do before anything is asked of it: its compatibility
//! API (`GET /v2.0/compatibility?vin&scope&country`, the application's client id and
//! secret as HTTP Basic; the SDKs' `getCompatibility`), answered
//! `{compatible, reason, capabilities: [{permission, endpoint, capable, reason}]}`.
//! keyway asks it for each car it lists, with the permissions its adapter uses, so a
//! car whose make Smartcar cannot command shows without `lock`/`unlock` from the link
//! on and a command to it is refused before one exists. When the answer cannot be had,
//! nothing is assumed: the car's command answer (`COMPATIBILITY`) still tells.

use bytes::Bytes;
use http::{Method, Request, header};
use keyway_adapter::http::{basic_auth, join, parse_body};
use keyway_adapter::{Call, Capability, Delivered, OemError, Secret};
use serde::Deserialize;

/// The permissions keyway's commands and reads use, asked about.
const SCOPE: &str = "read_location read_security control_security";

/// The country asked for, as the SDKs default it (Smartcar's answer is per market).
pub const COUNTRY: &str = "US";

/// The application's credentials, which the compatibility API takes (not the owner's).
#[derive(Clone, Debug)]
pub struct Compatibility {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    capabilities: Vec<Permission>,
}

#[derive(Deserialize)]
struct Permission {
    permission: String,
    capable: Option<bool>,
}

/// Reads an answer: the capabilities the car lacks taken from those the adapter
/// declares (`read_location` locates, `read_security` reads the lock,
/// `control_security` locks and unlocks); `None` when it lacks none. A permission the
/// answer does not name is not taken away.
pub fn parse(body: &[u8], declared: &[Capability]) -> Result<Option<Vec<Capability>>, OemError> {
    let a: Answer = parse_body(body, Delivered::No)?;
    let lacks = |c: Capability| {
        let permission = match c {
            Capability::Locate => "read_location",
            Capability::Security => "read_security",
            Capability::Lock | Capability::Unlock => "control_security",
            _ => return false,
        };
        a.capabilities
            .iter()
            .any(|p| p.permission == permission && p.capable == Some(false))
    };
    let kept: Vec<Capability> = declared.iter().copied().filter(|c| !lacks(*c)).collect();
    Ok((kept.len() < declared.len()).then_some(kept))
}

impl Compatibility {
    /// Asks about `vin` at `base` over the call's HTTP stack (Basic auth, no owner
    /// token): what the car lacks, or `None` (nothing, or no answer to be had).
    pub async fn ask(
        &self,
        cx: &Call,
        base: &str,
        vin: &str,
        declared: &[Capability],
    ) -> Option<Vec<Capability>> {
        let query =
            serde_urlencoded::to_string([("vin", vin), ("scope", SCOPE), ("country", COUNTRY)])
                .ok()?;
        let basic = basic_auth(&self.client_id, self.client_secret.expose()).ok()?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}?{query}", join(base, "/v2.0/compatibility")))
            .header(header::AUTHORIZATION, basic)
            .header(header::ACCEPT, "application/json")
            .body(Bytes::new())
            .ok()?;
        let resp = cx.http.send(req).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        parse(resp.body(), declared).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Capability] = &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ];

    #[test]
    fn a_permission_not_capable_takes_its_capabilities_away() {
        let body = include_bytes!("../../../fixtures/smartcar/compatibility.json");
        assert_eq!(
            parse(body, ALL).unwrap(),
            Some(vec![Capability::Locate, Capability::Security])
        );
        let all_capable = br#"{"compatible": true, "reason": null, "capabilities": [
            {"permission": "control_security", "endpoint": "/security", "capable": true, "reason": null}]}"#;
        assert_eq!(parse(all_capable, ALL).unwrap(), None);
        let unnamed =
            br#"{"compatible": false, "reason": "MAKE_NOT_COMPATIBLE", "capabilities": []}"#;
        assert_eq!(
            parse(unnamed, ALL).unwrap(),
            None,
            "nothing named, nothing taken"
        );
        assert!(parse(b"<html>", ALL).is_err());
    }
}
