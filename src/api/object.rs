//! JSON answers written field by field into one buffer, for the read paths every
//! request takes (location, lock state). serde_json's derived serialisation escapes
//! each key at run time and cost about 2,500 instructions for a location answer
//! (BENCHMARKS.md); here a key is a constant written as it is, and each value goes
//! through the formatter serde_json itself uses (its string escaping, `zmij` for
//! floats, `itoa` for integers, `serde::Serialize` for anything else), so the bytes are
//! serde_json's: the tests compare the two for arbitrary values.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

/// A JSON object being written.
pub struct Object {
    buf: Vec<u8>,
}

impl Default for Object {
    fn default() -> Self {
        Self::new()
    }
}

impl Object {
    /// An empty object, in a buffer sized for the read answers (a location is about
    /// 190 bytes).
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.push(b'{');
        Self { buf }
    }

    /// Writes `"key":` (keys are constants that need no escaping).
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
        &mut self.buf
    }

    /// A string field, escaped as JSON requires.
    pub fn str(mut self, key: &'static str, value: &str) -> Self {
        let buf = self.key(key);
        // A string always has a JSON form, and writing into a Vec cannot fail.
        let _ = serde_json::to_writer(buf, value);
        self
    }

    /// A number field; `null` when it has no JSON form (NaN, infinities), as serde_json
    /// writes it.
    pub fn f64(mut self, key: &'static str, value: f64) -> Self {
        let buf = self.key(key);
        if value.is_finite() {
            buf.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
        } else {
            buf.extend_from_slice(b"null");
        }
        self
    }

    /// An optional number field (`null` when absent).
    pub fn opt_f64(self, key: &'static str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.f64(key, v),
            None => self.null(key),
        }
    }

    /// An optional number field left out when absent.
    pub fn some_f64(self, key: &'static str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.f64(key, v),
            None => self,
        }
    }

    /// An optional integer field (`null` when absent).
    pub fn opt_i64(mut self, key: &'static str, value: Option<i64>) -> Self {
        let buf = self.key(key);
        match value {
            Some(v) => buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            None => buf.extend_from_slice(b"null"),
        }
        self
    }

    /// An optional time field, in keyway's one form ([`crate::clock::timestamp`]),
    /// written in place (`null` when absent).
    pub fn opt_time(mut self, key: &'static str, value: Option<OffsetDateTime>) -> Self {
        let buf = self.key(key);
        let Some(t) = value else {
            buf.extend_from_slice(b"null");
            return self;
        };
        buf.push(b'"');
        crate::clock::write_timestamp(buf, t);
        buf.push(b'"');
        self
    }

    /// Any other field, through its `Serialize` (`null` when it has no JSON form).
    pub fn value<T: serde::Serialize>(mut self, key: &'static str, value: &T) -> Self {
        let buf = self.key(key);
        let start = buf.len();
        if serde_json::to_writer(&mut *buf, value).is_err() {
            buf.truncate(start);
            buf.extend_from_slice(b"null");
        }
        self
    }

    fn null(mut self, key: &'static str) -> Self {
        self.key(key).extend_from_slice(b"null");
        self
    }

    /// The closed object's bytes.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

impl IntoResponse for Object {
    /// A 200 answer of `application/json`.
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.into_bytes(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same fields as serde_json writes them.
    #[derive(serde::Serialize)]
    struct Oracle {
        id: String,
        latitude: f64,
        heading: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        accuracy_m: Option<f64>,
        recorded_at: Option<String>,
        age_s: Option<i64>,
        doors: Vec<(String, bool)>,
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            -90.0..90.0f64,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(1e21),
        ]
    }

    proptest! {
        #[test]
        fn the_bytes_are_serde_jsons(
            id in any::<String>(),
            latitude in float(),
            heading in proptest::option::of(float()),
            accuracy_m in proptest::option::of(float()),
            seconds in proptest::option::of(-62_000_000_000i64..250_000_000_000),
            millis in 0i64..1000,
            age_s in any::<Option<i64>>(),
            doors in proptest::collection::vec((any::<String>(), any::<bool>()), 0..3),
        ) {
            let t = seconds.map(|s| {
                OffsetDateTime::from_unix_timestamp(s).unwrap() + time::Duration::milliseconds(millis)
            });
            let ours = Object::new()
                .str("id", &id)
                .f64("latitude", latitude)
                .opt_f64("heading", heading)
                .some_f64("accuracy_m", accuracy_m)
                .opt_time("recorded_at", t)
                .opt_i64("age_s", age_s)
                .value("doors", &doors)
                .into_bytes();
            let theirs = serde_json::to_vec(&Oracle {
                id,
                latitude,
                heading,
                accuracy_m,
                recorded_at: t.map(crate::clock::timestamp),
                age_s,
                doors,
            })
            .unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn an_empty_object_is_braces() {
        assert_eq!(Object::new().into_bytes(), b"{}");
    }

    #[test]
    fn a_value_without_a_json_form_is_null_not_half_written() {
        // A map with non-text keys has no JSON form.
        let map = std::collections::BTreeMap::from([((1, 2), "x")]);
        let bytes = Object::new()
            .value("m", &map)
            .opt_i64("n", Some(1))
            .into_bytes();
        assert_eq!(bytes, br#"{"m":null,"n":1}"#);
    }

    #[tokio::test]
    async fn an_object_answers_200_as_json() {
        let r = Object::new().str("vehicle_id", "veh_1").into_response();
        assert_eq!(r.status(), axum::http::StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"vehicle_id":"veh_1"}"#);
    }
}
