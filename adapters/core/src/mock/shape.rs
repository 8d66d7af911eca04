//! Whether a mock answers in the OEM's real shape: every field a fixture (written in
//! the structure the OEM really sends) has, the mock's answer has too, with the same
//! JSON type, recursively — so adapter and mock can no longer agree on a wrong shape.
//! Values are free; arrays are compared by their first element.

use serde_json::Value;

/// The places where `answer` lacks or mistypes what `fixture` has (empty: same shape).
pub fn differences(fixture: &Value, answer: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("$", fixture, answer, &mut out);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(at: &str, fixture: &Value, answer: &Value, out: &mut Vec<String>) {
    match (fixture, answer) {
        // A null in a fixture says "may be absent or anything".
        (Value::Null, _) => {}
        (Value::Object(f), Value::Object(a)) => {
            for (k, fv) in f {
                match a.get(k) {
                    Some(av) => walk(&format!("{at}.{k}"), fv, av, out),
                    None if fv.is_null() => {}
                    None => out.push(format!("{at}.{k} missing")),
                }
            }
        }
        (Value::Array(f), Value::Array(a)) => {
            if let (Some(fv), Some(av)) = (f.first(), a.first()) {
                walk(&format!("{at}[0]"), fv, av, out);
            }
        }
        (f, a) if kind(f) == kind(a) => {}
        (f, a) => out.push(format!(
            "{at}: {} in the fixture, {} in the answer",
            kind(f),
            kind(a)
        )),
    }
}

/// The fixture `fixtures/<oem>/<name>` of this workspace, parsed.
pub fn fixture(oem: &str, name: &str) -> Value {
    let path = format!("{}/../../fixtures/{oem}/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Panics, naming the places, unless `answer` has the shape of `fixtures/<oem>/<name>`.
pub fn assert_shape(oem: &str, name: &str, answer: &Value) {
    let diff = differences(&fixture(oem, name), answer);
    assert!(
        diff.is_empty(),
        "{oem}/{name}: {diff:?}\nthe mock answered {answer:#}"
    );
}

/// One request to a mock, its answer body as JSON (for shape checks in tests).
pub async fn answer(
    cx: &crate::Call,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Value {
    let mut req = cx.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(bytes::Bytes::from_static(body.as_bytes()));
    let resp = cx.send(req).await.expect("the mock answers");
    serde_json::from_slice(resp.body())
        .unwrap_or_else(|e| panic!("{url}: {e}: {:?}", String::from_utf8_lossy(resp.body())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_missing_and_mistyped_fields() {
        let f = json!({"a": {"b": 1, "c": [{"d": "x"}]}, "e": null});
        assert!(differences(&f, &json!({"a": {"b": 2, "c": [{"d": "y"}], "z": 1}})).is_empty());
        assert_eq!(
            differences(&f, &json!({"a": {"b": "2", "c": [{}]}})),
            [
                "$.a.b: number in the fixture, string in the answer",
                "$.a.c[0].d missing"
            ]
        );
    }
}
