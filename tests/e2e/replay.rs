//! `keyway replay`: captured OEM answers through each adapter's own code path, as
//! support runs it for "a customer sent us this payload" (exit 0 parsed, 1 an error
//! answer, 2 bad usage).

use std::process::Command;

use serde_json::Value;

fn fixture(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `keyway replay ARGS`; its exit code and printed JSON.
fn replay(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn answers_parse_through_each_adapter() {
    let (code, v) = replay(&["bmw", "vehicles", &fixture("bmw/vehicle_list.json")]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v[0]["oem_id"], "WBY31AW090FP00001");
    let (code, v) = replay(&["bmw", "security", &fixture("bmw/state.json")]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["locked"], true);
    let (code, v) = replay(&[
        "hyundai",
        "security",
        &fixture("hyundai/ccs2_carstatus.json"),
    ]);
    assert_eq!((code, &v["locked"]), (0, &Value::Bool(false)), "{v:#}");
    let (code, v) = replay(&[
        "hyundai",
        "location",
        &fixture("hyundai/location_direct.json"),
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["heading"], 270.0);
    let (code, v) = replay(&[
        "gm",
        "location",
        &fixture("gm/location_with_direction.json"),
    ]);
    assert_eq!(
        (code, &v["heading"]),
        (0, &serde_json::json!(214.0)),
        "{v:#}"
    );
    let (code, v) = replay(&["bmw", "command", &fixture("bmw/command_accepted.json")]);
    assert_eq!((code, &v["sent"]), (0, &Value::from("pending")), "{v:#}");
    let (code, v) = replay(&["bmw", "poll", &fixture("bmw/event_status_executed.json")]);
    assert_eq!(
        (code, &v["progress"]),
        (0, &Value::from("succeeded")),
        "{v:#}"
    );
}

#[test]
fn error_answers_are_classified_with_their_waits() {
    let (code, v) = replay(&[
        "tesla",
        "error",
        "--status",
        "429",
        &fixture("tesla/error_rate_limited_429_body.json"),
    ]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["code"], "rate_limited");
    assert_eq!(v["retry_after_s"], 37_829);
    let (code, v) = replay(&[
        "volvo",
        "error",
        "--status",
        "401",
        &fixture("volvo/error_vcc_api_key_401.json"),
    ]);
    assert_eq!(code, 1, "{v:#}");
    // keyway's own key is wrong: an operator's fix, not the owner's relink.
    assert_eq!(v["oem_error"], "client_rejected", "{v:#}");
    assert_eq!(v["code"], "oem_misconfigured", "{v:#}");
    // An unrecognised list is an error answer, never an empty fleet (here: a FordPass
    // garage given to GM), and so is a GraphQL garage that answers with errors.
    let (code, v) = replay(&["gm", "vehicles", &fixture("ford/vehicles_fordpass.json")]);
    assert_eq!(code, 1, "{v:#}");
    let (code, v) = replay(&["gm", "vehicles", &fixture("gm/garage_errors.json")]);
    assert_eq!(code, 1, "{v:#}");
    // The v3 GraphQL garage reads.
    let (code, v) = replay(&["gm", "vehicles", &fixture("gm/vehicles_graphql.json")]);
    assert_eq!((code, v[0]["year"].as_u64()), (0, Some(2023)), "{v:#}");
    // A header carries the wait too.
    let (code, v) = replay(&[
        "tesla",
        "error",
        "--status",
        "429",
        "--header",
        "Retry-After: 12",
        &fixture("tesla/error_asleep_408.json"),
    ]);
    assert_eq!((code, &v["retry_after_s"]), (1, &Value::from(12)), "{v:#}");
}

#[test]
fn bad_usage_exits_2() {
    let file = fixture("bmw/state.json");
    assert_eq!(replay(&["bmw", "teleport", &file]).0, 2);
    assert_eq!(replay(&["bmw", "error", &file]).0, 2);
    assert_eq!(replay(&["acme", "security", &file]).0, 2);
    assert_eq!(replay(&["bmw", "security", "/nonexistent.json"]).0, 2);
}

/// A file larger than the live transport's answer cap (4 MiB) — or an endless one — is
/// refused with a clear error, not read into memory whole.
#[test]
fn a_file_over_the_answer_cap_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["replay", "bmw", "security", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("larger than 4194304 bytes"), "{err}");
}
