//! Door control of CCS2 cars (Hyundai/Kia's newer protocol), as hyundai_kia_connect_api's
//! `lock_action` does it: the owner's PIN is traded for a control token
//! (`PUT /api/v1/user/pin` with `{"deviceId", "pin"}` → `{"controlToken", "expiresTime"}`,
//! seconds), which then authorizes `POST /api/v2/spa/vehicles/{id}/ccs2/control/door`
//! with `{"command": "close"|"open"}`; the answer's `msgId` is followed in the
//! notification records as for older cars. Those cars do not take the older
//! `/api/v1/…/control/door` (`resCode 4005`, unsupported control).
//!
//! An answer to the PIN exchange without a `controlToken` is a refused PIN — the public
//! clients know no more of it (`"PIN verification failed"`); a rate limit, a rejected
//! access token or a server error keep their own meaning. A refused PIN is never tried
//! again here: keyway stops handing it on. Control tokens are kept per account and PIN
//! until shortly before they expire.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, header};
use keyway_adapter::http::{check, parse_body};
use keyway_adapter::{Call, Delivered, OemError, Secret, Sent, VehicleRef};
use serde::Deserialize;
use tokio::time::Instant;

use crate::adapter::{HyundaiAdapter, classify, parse_accepted};

/// A control token is not used in its last minute.
const MARGIN: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Granted {
    control_token: Option<String>,
    expires_time: Option<u64>,
}

/// Reads the PIN exchange's answer: the control token and its lifetime (seconds).
pub fn parse_control_token(body: &[u8]) -> Result<(Secret, Duration), OemError> {
    let g: Granted = parse_body(body, Delivered::No)?;
    match g.control_token.filter(|t| !t.is_empty()) {
        Some(t) => Ok((
            Secret::new(t),
            Duration::from_secs(g.expires_time.unwrap_or(600)),
        )),
        None => Err(refused("the answer carries no control token")),
    }
}

fn refused(detail: &str) -> OemError {
    OemError::PinRejected {
        detail: format!("PIN verification failed: {detail}"),
    }
}

fn fingerprint(pin: &Secret) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pin.expose().hash(&mut h);
    h.finish()
}

/// The device id sent with the PIN (the app registers one per install; keyway sends
/// one stable id per account).
fn device_id(cx: &Call) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cx.account.as_deref().unwrap_or("keyway").hash(&mut h);
    format!("keyway-{:016x}", h.finish())
}

impl HyundaiAdapter {
    /// A control token for the call's account, made from its PIN (kept while valid).
    async fn control_token(&self, cx: &Call) -> Result<Secret, OemError> {
        let pin = cx.pin.as_ref().ok_or_else(|| OemError::PinRequired {
            detail: "Hyundai/Kia CCS2 cars take door commands only with a control token \
                     made from the owner's PIN"
                .into(),
        })?;
        let key = (cx.account.clone().unwrap_or_default(), fingerprint(pin));
        if let Some((token, until)) = self.controls.lock().ok().and_then(|c| c.get(&key).cloned())
            && Instant::now() < until
        {
            return Ok(token);
        }
        let body = serde_json::json!({"deviceId": device_id(cx), "pin": pin.expose()});
        let req = self
            .request(cx, Method::PUT, "/api/v1/user/pin?token=")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
        let resp = cx.send(req).await?;
        let status = resp.status().as_u16();
        // The access token, the rate limit and the OEM's own trouble keep their meaning
        // (nothing reached the car either way; a rate limit or a 4002 arrive as HTTP 200
        // too); anything else refused the PIN.
        let (token, lifetime) = match status {
            200..=299 => parse_control_token(resp.body())
                .map_err(|e| crate::adapter::envelope_error(resp.body()).unwrap_or(e))?,
            401 | 429 | 500.. => return Err(classify(&resp, false)),
            _ => match classify(&resp, false) {
                e @ (OemError::RateLimited { .. }
                | OemError::Unauthorized { .. }
                | OemError::ClientRejected { .. }) => return Err(e),
                _ => return Err(refused(&format!("HTTP {status}"))),
            },
        };
        if let Ok(mut c) = self.controls.lock() {
            let until = Instant::now() + lifetime.saturating_sub(MARGIN);
            c.insert(key, (token.clone(), until));
        }
        Ok(token)
    }

    /// Locks (`close`) or unlocks (`open`) a CCS2 car.
    pub(crate) async fn ccs2_door(
        &self,
        cx: &Call,
        v: &VehicleRef,
        action: &str,
    ) -> Result<Sent, OemError> {
        let token = self.control_token(cx).await?;
        let mut ccsp = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| refused("the control token is not a header value"))?;
        ccsp.set_sensitive(true);
        let cx = Call {
            token,
            pin: None,
            ..cx.clone()
        };
        let path = format!("/api/v2/spa/vehicles/{}/ccs2/control/door", v.oem_id);
        let body = serde_json::to_vec(&serde_json::json!({"command": action})).unwrap_or_default();
        let req = self
            .request(&cx, Method::POST, &path)
            .header("AuthorizationCCSP", ccsp)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body));
        let resp = check(cx.send(req).await?, true, classify)?;
        parse_accepted(resp.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_token_or_a_refused_pin() {
        let (token, ttl) = parse_control_token(
            &std::fs::read("../../fixtures/hyundai/control_token.json").unwrap(),
        )
        .unwrap();
        assert!(!token.expose().is_empty());
        assert_eq!(ttl, Duration::from_secs(3_600));
        for refusal in [
            &br#"{"retCode":"F","resCode":"4010","resMsg":"Invalid PIN"}"#[..],
            br#"{}"#,
            br#"{"controlToken":""}"#,
        ] {
            assert!(
                matches!(
                    parse_control_token(refusal),
                    Err(OemError::PinRejected { .. })
                ),
                "{}",
                String::from_utf8_lossy(refusal)
            );
        }
        // Never the PIN in what an error says.
        let e = refused("HTTP 400").to_string();
        assert!(!e.contains("1234"), "{e}");
    }
}
