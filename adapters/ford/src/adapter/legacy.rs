//! FordPass's older vehicle status, `GET /api/vehicles/v5/{vin}/status` (v4 before it),
//! still served for cars the newer telemetry does not know: `{status, vehiclestatus{
//! lockStatus{value}, gps{latitude, longitude, gpsState}, doorStatus{driverDoor{value},
//! …}, lastRefresh}}`, numbers as strings and times as `MM-DD-YYYY HH:MM:SS` (UTC), as
//! fordpass-ha read it before its move to telemetry. A `status` in the body other than
//! 200 is an error answer despite the HTTP 200.

use keyway_adapter::http::{fix, lenient_number, no_fix, parse_body};
use keyway_adapter::{Delivered, Door, DoorPosition, Location, OemError, SecurityState};
use serde_json::Value;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The older status path for a car.
pub fn path(vin: &str) -> String {
    format!("/api/vehicles/v5/{vin}/status?lrdt=01-01-1970%2000:00:00")
}

/// The `vehiclestatus` document, if `body` is the older status; an error when its body
/// status says the answer failed.
pub fn document(body: &[u8]) -> Option<Result<Value, OemError>> {
    let mut v: Value = parse_body(body, Delivered::No).ok()?;
    let doc = v.get_mut("vehiclestatus")?.take();
    let status = v.get("status").and_then(Value::as_u64).unwrap_or(200);
    Some(match status {
        200 => Ok(doc),
        401 => Err(OemError::Unauthorized {
            detail: "the FordPass status answered 401 in its body".into(),
        }),
        s => Err(OemError::InvalidResponse {
            detail: format!("the FordPass status answered {s} in its body"),
            delivered: Delivered::No,
        }),
    })
}

fn time(v: &Value) -> Option<OffsetDateTime> {
    let f = time::format_description::parse_borrowed::<2>(
        "[month]-[day]-[year] [hour]:[minute]:[second]",
    )
    .ok()?;
    v.as_str()
        .and_then(|t| PrimitiveDateTime::parse(t, &f).ok())
        .map(PrimitiveDateTime::assume_utc)
}

/// The lock state and doors; an unknown `lockStatus` is `locked: None`.
pub fn security(doc: &Value) -> SecurityState {
    let lock = doc.get("lockStatus");
    let locked = match lock.and_then(|l| l.get("value")).and_then(Value::as_str) {
        Some("LOCKED") => Some(true),
        Some("UNLOCKED") => Some(false),
        _ => None,
    };
    let doors: Vec<Door> = [
        ("driverDoor", DoorPosition::FrontLeft),
        ("passengerDoor", DoorPosition::FrontRight),
        ("leftRearDoor", DoorPosition::RearLeft),
        ("rightRearDoor", DoorPosition::RearRight),
        ("tailgateDoor", DoorPosition::Trunk),
        ("hoodDoor", DoorPosition::Frunk),
    ]
    .into_iter()
    .filter_map(|(key, position)| {
        let v = doc.pointer(&format!("/doorStatus/{key}/value"))?.as_str()?;
        let open = match v.to_ascii_lowercase().as_str() {
            "closed" => false,
            "ajar" | "open" => true,
            _ => return None,
        };
        Some(Door { position, open })
    })
    .collect();
    SecurityState {
        locked,
        doors: (!doors.is_empty()).then_some(doors),
        recorded_at: lock
            .and_then(|l| l.get("timestamp"))
            .and_then(time)
            .or_else(|| doc.get("lastRefresh").and_then(time)),
    }
}

/// The position (`gps`); none, or `null`, is no fix.
pub fn location(doc: &Value) -> Result<Location, OemError> {
    let gps = doc
        .get("gps")
        .filter(|g| !g.is_null())
        .ok_or_else(|| no_fix("the FordPass status has no gps"))?;
    let (latitude, longitude) = fix(
        gps.get("latitude").and_then(lenient_number),
        gps.get("longitude").and_then(lenient_number),
    )?;
    Ok(Location {
        latitude,
        longitude,
        heading: None,
        accuracy_m: None,
        recorded_at: gps
            .get("timestamp")
            .and_then(time)
            .or_else(|| doc.get("lastRefresh").and_then(time)),
    })
}
