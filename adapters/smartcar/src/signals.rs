//! Smartcar API v3's signal documents, read wherever a v2.0 answer is expected, so a
//! capture from either version replays (`keyway replay smartcar security|location …`)
//! and a v3 answer is never mistaken for a v2.0 one.
//!
//! A v3 read answers JSON:API: `{"data": [signal, …], "meta", "links", "included"}`, or
//! one signal `{id, type: "signal", attributes: {code, name, group, status: {value},
//! body}, meta: {retrievedAt, oemUpdatedAt}}` (`smartcar/java-sdk`'s `SignalsV3.json`
//! and `SignalV3.json`). A signal is named by its `code` (`closure-islocked`,
//! `location-preciselocation`) or by group and name (`Closure` / `IsLocked`); one whose
//! `status.value` is not `SUCCESS` says nothing. `meta.oemUpdatedAt` (ms since the
//! epoch, or seconds in the reference's examples) is when the make recorded it:
//! keyway's `recorded_at`, the car's clock.

use keyway_adapter::http::{fix, invalid};
use keyway_adapter::{Location, OemError, SecurityState};
use serde_json::Value;
use time::OffsetDateTime;

fn is_signal(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("signal")
        || v.pointer("/attributes/code").is_some()
}

/// The signals of a v3 document; `None` when `body` is not one.
fn signals(body: &[u8]) -> Option<Vec<Value>> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let data = doc.get("data").unwrap_or(&doc);
    match data {
        Value::Array(all) if all.iter().any(is_signal) => {
            Some(all.iter().filter(|s| is_signal(s)).cloned().collect())
        }
        one if is_signal(one) => Some(vec![one.clone()]),
        _ => None,
    }
}

/// The signal `code` (or `group`/`name`) among `all`, if it was read successfully.
fn find<'a>(all: &'a [Value], code: &str, group: &str, name: &str) -> Option<&'a Value> {
    let text = |s: &Value, p: &str| {
        s.pointer(p)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    all.iter().find(|s| {
        let named = text(s, "/attributes/code").as_deref() == Some(code)
            || (text(s, "/attributes/group").as_deref() == Some(group)
                && text(s, "/attributes/name").as_deref() == Some(name));
        let ok = text(s, "/attributes/status/value").is_none_or(|v| v == "success");
        named && ok
    })
}

/// `meta.oemUpdatedAt`: milliseconds since the epoch in the SDK's fixtures, seconds in
/// the reference's examples; a value below 10¹¹ (the year 5138 in seconds, 1973 in
/// milliseconds) is read as seconds.
fn recorded_at(signal: &Value) -> Option<OffsetDateTime> {
    let n = i128::from(signal.pointer("/meta/oemUpdatedAt")?.as_i64()?);
    let nanos = if n < 100_000_000_000 {
        n * 1_000_000_000
    } else {
        n * 1_000_000
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// A signal's body, or its `value` when the body wraps one.
fn body(signal: &Value) -> Option<&Value> {
    let b = signal.pointer("/attributes/body")?;
    Some(b.get("value").filter(|v| v.is_object()).unwrap_or(b))
}

/// The lock state of a v3 document (`closure-islocked`: `body.value`); `None` when
/// `body` is not a v3 document.
pub fn security(body_bytes: &[u8]) -> Option<Result<SecurityState, OemError>> {
    let all = signals(body_bytes)?;
    Some(
        match find(&all, "closure-islocked", "closure", "islocked") {
            Some(s) => Ok(SecurityState {
                locked: s.pointer("/attributes/body/value").and_then(Value::as_bool),
                doors: None,
                recorded_at: recorded_at(s),
            }),
            None => Err(invalid("the signals carry no closure-islocked")),
        },
    )
}

/// The position of a v3 document (`location-preciselocation`: `latitude`,
/// `longitude`, `heading` in its body); `None` when `body` is not a v3 document.
pub fn location(body_bytes: &[u8]) -> Option<Result<Location, OemError>> {
    let all = signals(body_bytes)?;
    let Some(s) = find(
        &all,
        "location-preciselocation",
        "location",
        "preciselocation",
    ) else {
        return Some(Err(invalid(
            "the signals carry no location-preciselocation",
        )));
    };
    let b = body(s);
    let number = |k: &str| b.and_then(|b| b.get(k)).and_then(Value::as_f64);
    Some(
        fix(number("latitude"), number("longitude")).map(|(latitude, longitude)| Location {
            latitude,
            longitude,
            heading: number("heading"),
            accuracy_m: None,
            recorded_at: recorded_at(s),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/smartcar/v3_signals.json");

    #[test]
    fn a_v3_document_gives_the_lock_and_the_position_with_the_makes_time() {
        let s = security(FIXTURE.as_bytes()).unwrap().unwrap();
        assert_eq!(s.locked, Some(true));
        assert_eq!(
            s.recorded_at.unwrap().unix_timestamp(),
            1_764_524_455,
            "oemUpdatedAt, in ms"
        );
        let l = location(FIXTURE.as_bytes()).unwrap().unwrap();
        assert_eq!((l.latitude, l.longitude), (51.50735, -0.12776));
        assert_eq!(l.heading, Some(270.0));
    }

    #[test]
    fn one_signal_alone_reads_and_a_failed_one_says_nothing() {
        let one = br#"{"id": "closure-islocked", "type": "signal", "attributes": {"code": "closure-islocked", "status": {"value": "SUCCESS"}, "body": {"value": false}}, "meta": {"oemUpdatedAt": 1764524455000}}"#;
        assert_eq!(security(one).unwrap().unwrap().locked, Some(false));
        let seconds = br#"{"type": "signal", "attributes": {"code": "closure-islocked", "body": {"value": true}}, "meta": {"oemUpdatedAt": 1696156799}}"#;
        let at = security(seconds).unwrap().unwrap().recorded_at.unwrap();
        assert_eq!(
            at.unix_timestamp(),
            1_696_156_799,
            "the reference's seconds"
        );
        let failed = br#"{"data": [{"type": "signal", "attributes": {"code": "closure-islocked", "status": {"value": "ERROR"}, "body": {}}}]}"#;
        assert!(security(failed).unwrap().is_err());
        assert!(location(failed).unwrap().is_err());
    }

    #[test]
    fn a_v3_vehicle_list_and_attributes_read() {
        let list = br#"{"data": [{"id": "v1", "type": "vehicle"}, {"id": "v2", "type": "vehicle"}], "meta": {"totalCount": 2}}"#;
        let (ids, more) = crate::adapter::parse_vehicle_page(list, 0).unwrap();
        assert_eq!(
            (ids, more),
            (vec!["v1".to_string(), "v2".to_string()], false)
        );
        let attributes = br#"{"data": {"id": "v1", "type": "vehicle", "attributes": {"make": "JAGUAR", "model": "I-PACE", "year": "2022"}}}"#;
        let v = crate::adapter::parse_vehicle("v1", attributes, br#"{"vin": "SADHA2B18N1000001"}"#)
            .unwrap();
        assert_eq!(v.model.as_deref(), Some("Jaguar I-PACE"));
        assert_eq!(v.year, Some(2022));
    }

    #[test]
    fn a_v2_answer_is_not_a_v3_document() {
        assert!(security(br#"{"isLocked": true, "doors": []}"#).is_none());
        assert!(location(br#"{"latitude": 1.0, "longitude": 2.0}"#).is_none());
        assert!(security(b"not json").is_none());
    }
}
