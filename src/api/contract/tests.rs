//! The document is the code's: checked in as it is generated, every problem code and
//! event type in it, every link attached, README's code table the same list.

use serde_json::Value;

use super::*;
use crate::error::{Code, all_codes};

fn doc() -> Value {
    serde_json::from_str(json()).unwrap()
}

/// The checked-in copy is what the code generates: the contract changes only on
/// purpose (`cargo run -- openapi > openapi.json`).
#[test]
fn the_checked_in_document_is_the_generated_one() {
    let checked_in = include_str!("../../../openapi.json");
    if checked_in != json() {
        let want: Value = serde_json::from_str(checked_in).unwrap_or_default();
        panic!(
            "openapi.json differs from the document the code generates; review the \
             change and run `cargo run -- openapi > openapi.json`\n(paths in the copy: \
             {}, generated: {})",
            want["paths"].as_object().map_or(0, |p| p.len()),
            doc()["paths"].as_object().map_or(0, |p| p.len()),
        );
    }
}

#[test]
fn every_problem_code_and_event_type_is_listed() {
    let d = doc();
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    let mut listed = names(&d["components"]["schemas"]["Code"]["enum"]);
    let mut known: Vec<String> = all_codes().map(|c| c.as_str().to_string()).collect();
    listed.sort();
    known.sort();
    assert_eq!(listed, known);
    let kinds = names(&d["components"]["schemas"]["EventType"]["enum"]);
    let ours: Vec<&str> = crate::events::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, ours);
}

/// Every link in [`links::LINKS`] found its answer, and names an operation that exists.
#[test]
fn every_link_is_attached_to_a_real_operation() {
    let d = doc();
    let mut ids = Vec::new();
    let mut attached = 0;
    for item in d["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_string());
            for answer in op["responses"].as_object().unwrap().values() {
                if let Some(links) = answer["links"].as_object() {
                    attached += links.len();
                    for l in links.values() {
                        ids.push(format!("->{}", l["operationId"].as_str().unwrap()));
                    }
                }
            }
        }
    }
    let expected: usize = links::LINKS.iter().map(|l| l.3.len()).sum();
    assert_eq!(attached, expected, "a link's source answer is missing");
    for target in ids.iter().filter_map(|i| i.strip_prefix("->")) {
        assert!(ids.iter().any(|i| i == target), "no operation {target}");
    }
}

/// A route that can fail with an error type lists every code of it, under its status.
#[test]
fn a_routes_problems_come_from_its_errors() {
    let d = doc();
    let unlock = &d["paths"]["/v1/vehicles/{id}/unlock"]["post"]["responses"];
    let codes = |status: &str| -> Vec<String> {
        let name = unlock[status]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/responses/"))
            .unwrap_or_else(|| panic!("no shared {status} problem"));
        d["components"]["responses"][name]["content"]["application/problem+json"]["schema"]["allOf"]
            [1]["properties"]["code"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no {status} problem"))
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    assert!(codes("409").contains(&"command_in_doubt".to_string()));
    assert!(codes("429").contains(&"rate_limited".to_string()));
    assert!(codes("429").contains(&"vehicle_busy".to_string()));
    assert!(codes("401").contains(&"unauthenticated".to_string()));
    // Every problem status of the route is one of its codes' statuses.
    for (status, _) in unlock.as_object().unwrap() {
        if !status.starts_with('2') {
            assert!(!codes(status).is_empty());
        }
    }
    let _ = Code::Internal;
}

/// README's table of problem codes, as the code describes them.
pub fn codes_table() -> String {
    let mut t = String::from(
        "<!-- problem-codes: written by `cargo test -p keyway --lib readme_lists`; do not edit -->\n\
         | code | status | retryable | meaning |\n|---|---|---|---|\n",
    );
    for c in all_codes() {
        t.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.as_str(),
            crate::api::error::status(c).as_u16(),
            if c.retryable() { "yes" } else { "no" },
            c.title()
        ));
    }
    t.push_str("<!-- /problem-codes -->\n");
    t
}

/// README's table of problem codes is the code's list: every code once, in order, with
/// its status and whether it is retryable.
#[test]
fn readme_lists_exactly_the_problem_codes() {
    let readme = include_str!("../../../README.md");
    let want = codes_table();
    assert!(
        readme.contains(&want),
        "README's problem-code table differs from the code; it should read:\n{want}"
    );
}

/// The patterns the document states are the ones the server checks.
#[test]
fn the_documents_patterns_are_the_servers() {
    let d = doc();
    assert_eq!(
        d["components"]["schemas"]["NewWebhook"]["properties"]["url"]["pattern"],
        crate::events::egress::WEBHOOK_URL_PATTERN
    );
    let lock = &d["paths"]["/v1/vehicles/{id}/lock"]["post"]["parameters"];
    let key = lock
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(key["schema"]["pattern"], IDEMPOTENCY_KEY_PATTERN);
    assert_eq!(
        d["components"]["schemas"]["AppRedirect"]["properties"]["redirect_url"]["maxLength"],
        crate::api::accounts::REDIRECT_URL_MAX
    );
}
