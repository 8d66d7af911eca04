//! Smartcar's webhooks, as keyway receives them: every delivery is signed
//! (`SC-Signature`: the hex HMAC-SHA256 of the raw body under the application management
//! token). `VERIFY` asks keyway to prove it holds that token (answer
//! `{"challenge": HMAC(challenge)}`); `VEHICLE_STATE` carries the subscribed signals of
//! one car, each with the time the car recorded it (`meta.oemUpdatedAt`, milliseconds);
//! other event types (`VEHICLE_ERROR`) are acknowledged and not used.
//!
//! Read here: `closure-islocked` (`{value}`), `closure-doors` (`values[{row, column,
//! isOpen}]`: row 0 is the front), `closure-reartrunk` and `closure-fronttrunk`
//! (`{isOpen}`), `location-preciselocation` (`{latitude, longitude, heading}`). A signal
//! whose status is `ERROR`, or which carries no time, is left out: keyway orders news by
//! the car's time, and a delivery it cannot order could undo a newer one.

use keyway_adapter::http::fix;
use keyway_adapter::push::{hmac_sha256_hex, hmac_sha256_hex_matches};
use keyway_adapter::{
    Door, DoorPosition, Location, PushError, Pushed, PushedState, Secret, SecurityState,
};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

/// The header carrying the signature.
pub const SIGNATURE: &str = "sc-signature";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    event_id: Option<String>,
    event_type: Option<String>,
    vehicle_id: Option<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct Signal {
    code: Option<String>,
    #[serde(default)]
    body: Value,
    status: Option<Status>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Status {
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    oem_updated_at: Option<i64>,
    retrieved_at: Option<i64>,
}

fn millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// A door's position by Smartcar's row (0: front) and column (0: left).
fn door(row: u64, column: u64) -> Option<DoorPosition> {
    match (row, column) {
        (0, 0) => Some(DoorPosition::FrontLeft),
        (0, 1) => Some(DoorPosition::FrontRight),
        (1, 0) => Some(DoorPosition::RearLeft),
        (1, 1) => Some(DoorPosition::RearRight),
        _ => None,
    }
}

/// One car's state from a `VEHICLE_STATE` delivery's signals.
fn state(oem_id: String, signals: Vec<Signal>) -> PushedState {
    let mut locked = None;
    let mut doors: Vec<Door> = Vec::new();
    let mut closures_at: Option<OffsetDateTime> = None;
    let mut location = None;
    for s in signals {
        let failed = s.status.as_ref().and_then(|st| st.value.as_deref()) == Some("ERROR");
        let at = s
            .meta
            .as_ref()
            .and_then(|m| m.oem_updated_at.or(m.retrieved_at))
            .and_then(millis);
        let (Some(code), false, Some(at)) = (s.code.as_deref(), failed, at) else {
            continue;
        };
        let b = &s.body;
        let mut closure = true;
        match code {
            "closure-islocked" => locked = b["value"].as_bool(),
            "closure-doors" => doors.extend(
                b["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| {
                        Some(Door {
                            position: door(d["row"].as_u64()?, d["column"].as_u64()?)?,
                            open: d["isOpen"].as_bool()?,
                        })
                    }),
            ),
            "closure-reartrunk" | "closure-fronttrunk" => {
                if let Some(open) = b["isOpen"].as_bool() {
                    doors.push(Door {
                        position: if code == "closure-reartrunk" {
                            DoorPosition::Trunk
                        } else {
                            DoorPosition::Frunk
                        },
                        open,
                    });
                }
            }
            "location-preciselocation" => {
                closure = false;
                // A position only when it is one (`fix`: both, in range, not 0,0).
                if let Ok((latitude, longitude)) =
                    fix(b["latitude"].as_f64(), b["longitude"].as_f64())
                {
                    location = Some(Location {
                        latitude,
                        longitude,
                        heading: b["heading"].as_f64(),
                        accuracy_m: None,
                        recorded_at: Some(at),
                    });
                }
            }
            _ => closure = false,
        }
        if closure {
            closures_at = closures_at.max(Some(at));
        }
    }
    let security = (locked.is_some() || !doors.is_empty()).then(|| SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: closures_at,
    });
    PushedState {
        oem_id,
        security,
        location,
    }
}

/// Reads a Smartcar webhook delivery once its signature holds under `token` (the
/// application management token).
pub fn read(headers: &http::HeaderMap, body: &[u8], token: &Secret) -> Result<Pushed, PushError> {
    if token.expose().is_empty() {
        return Err(PushError::Unverified(
            "no webhook secret is configured for Smartcar".into(),
        ));
    }
    let signature = headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PushError::Unverified("no SC-Signature header".into()))?;
    if !hmac_sha256_hex_matches(token.expose().as_bytes(), body, signature) {
        return Err(PushError::Unverified(
            "SC-Signature does not match the body".into(),
        ));
    }
    let d: Delivery =
        serde_json::from_slice(body).map_err(|e| PushError::Invalid(e.to_string()))?;
    match d.event_type.as_deref().unwrap_or_default() {
        "VERIFY" => {
            let challenge = d.data["challenge"]
                .as_str()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| PushError::Invalid("VERIFY without a challenge".into()))?;
            Ok(Pushed::Challenge(serde_json::json!({
                "challenge": hmac_sha256_hex(token.expose().as_bytes(), challenge.as_bytes())
            })))
        }
        "VEHICLE_STATE" => {
            let oem_id = d
                .vehicle_id
                .or_else(|| d.data["vehicle"]["id"].as_str().map(str::to_string))
                .ok_or_else(|| PushError::Invalid("VEHICLE_STATE without a vehicle".into()))?;
            let signals: Vec<Signal> =
                serde_json::from_value(d.data["signals"].clone()).unwrap_or_default();
            Ok(Pushed::States {
                event_id: d.event_id,
                states: vec![state(oem_id, signals)],
            })
        }
        other => Ok(Pushed::Ignored {
            kind: other.to_string(),
        }),
    }
}

/// Signs `body` as Smartcar does (for the mock and tests): the `SC-Signature` value.
pub fn sign(token: &str, body: &[u8]) -> String {
    hmac_sha256_hex(token.as_bytes(), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../fixtures/smartcar/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn signed(body: &[u8], token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(SIGNATURE, sign(token, body).parse().unwrap());
        h
    }

    const TOKEN: &str = "management-token";

    #[test]
    fn a_signed_vehicle_state_is_the_cars_state() {
        let body = fixture("webhook_vehicle_state.json");
        let Pushed::States { event_id, states } =
            read(&signed(&body, TOKEN), &body, &Secret::new(TOKEN)).unwrap()
        else {
            panic!("states expected");
        };
        assert!(event_id.is_some());
        let s = &states[0];
        assert_eq!(s.oem_id, "0f7c2a41-5d3e-4b8a-9c61-2e7d4f1a8b03");
        let sec = s.security.as_ref().unwrap();
        assert_eq!(sec.locked, Some(false));
        let doors = sec.doors.as_ref().unwrap();
        assert!(doors.contains(&Door {
            position: DoorPosition::RearLeft,
            open: true
        }));
        assert!(doors.contains(&Door {
            position: DoorPosition::Trunk,
            open: false
        }));
        assert_eq!(sec.recorded_at, millis(1_764_490_502_118));
        let l = s.location.as_ref().unwrap();
        assert_eq!((l.latitude, l.heading), (51.50735, Some(90.0)));
        assert_eq!(l.recorded_at, millis(1_764_490_500_000));
    }

    #[test]
    fn unsigned_forged_or_tampered_deliveries_are_refused() {
        let body = fixture("webhook_vehicle_state.json");
        let token = Secret::new(TOKEN);
        let unverified = |r: Result<Pushed, PushError>| matches!(r, Err(PushError::Unverified(_)));
        assert!(unverified(read(&http::HeaderMap::new(), &body, &token)));
        assert!(unverified(read(
            &signed(&body, "another-token"),
            &body,
            &token
        )));
        let tampered = String::from_utf8(body.clone())
            .unwrap()
            .replacen("false", "true ", 1);
        assert!(unverified(read(
            &signed(&body, TOKEN),
            tampered.as_bytes(),
            &token
        )));
        // Without a configured secret nothing is believed.
        assert!(unverified(read(
            &signed(&body, ""),
            &body,
            &Secret::new("")
        )));
    }

    #[test]
    fn verify_is_answered_with_the_challenges_hmac() {
        let body = fixture("webhook_verify.json");
        let Pushed::Challenge(answer) =
            read(&signed(&body, TOKEN), &body, &Secret::new(TOKEN)).unwrap()
        else {
            panic!("a challenge expected");
        };
        let challenge = "3c9a1f52-6b7e-4d08-a2c4-9e5f0b1d7a63";
        assert_eq!(answer["challenge"], sign(TOKEN, challenge.as_bytes()));
        // An unsigned VERIFY is not answered: the answer would sign any text for anyone.
        assert!(read(&http::HeaderMap::new(), &body, &Secret::new(TOKEN)).is_err());
    }

    #[test]
    fn signals_without_time_or_with_errors_are_left_out() {
        let body = br#"{"eventType": "VEHICLE_STATE", "vehicleId": "v", "data": {"signals": [
            {"code": "closure-islocked", "body": {"value": true}},
            {"code": "location-preciselocation", "body": {"latitude": 1.0, "longitude": 2.0},
             "status": {"value": "ERROR"}, "meta": {"oemUpdatedAt": 1}}]}}"#;
        let Pushed::States { states, .. } =
            read(&signed(body, TOKEN), body, &Secret::new(TOKEN)).unwrap()
        else {
            panic!()
        };
        assert_eq!(states[0].security, None);
        assert_eq!(states[0].location, None);
        let other = br#"{"eventType": "VEHICLE_ERROR", "data": {}}"#;
        assert!(matches!(
            read(&signed(other, TOKEN), other, &Secret::new(TOKEN)),
            Ok(Pushed::Ignored { .. })
        ));
    }
}
