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
    let (code, json, _) = replay_steps(args);
    (code, json)
}

/// Runs `keyway replay ARGS`; its exit code, printed JSON and the steps it reported.
fn replay_steps(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let steps = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), json, steps)
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
    assert!(err.contains("larger than 4194304 bytes"), "{err}"); // A HAR file has its own, larger cap.
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["replay", "--har", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("larger than 67108864 bytes"), "{err}");
}

/// An operation that makes several requests: the capture answers its own request, the
/// adapter's fixtures the others (and the output says which was which); a capture of
/// another of its requests is read as that request's answer.
#[test]
fn whole_exchanges_answer_the_other_requests_from_fixtures() {
    // A Tesla lock asks fleet_status first: the capture is still read as the command's.
    let (code, v, steps) = replay_steps(&["tesla", "command", &fixture("tesla/command_ok.json")]);
    assert_eq!((code, &v["sent"]), (0, &Value::from("completed")), "{v:#}");
    assert!(steps.contains("/fleet_status [fleet status (signed commands, key pairing)] 200 ← fixture tesla/fleet_status_legacy.json"), "{steps}");
    assert!(
        steps.contains("/command/door_lock [REST command] 200 ← capture"),
        "{steps}"
    );
    let (code, v) = replay(&["tesla", "command", &fixture("tesla/command_refused.json")]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("command_failed")),
        "{v:#}"
    );
    // A Volvo car's details given to `vehicles`: the list comes from the fixture.
    let (code, v, steps) =
        replay_steps(&["volvo", "vehicles", &fixture("volvo/vehicle_details.json")]);
    assert_eq!(
        (code, &v[0]["model"]),
        (0, &Value::from("XC40 Recharge")),
        "{v:#}"
    );
    assert!(
        steps.contains("it read as the answer to the vehicle details request"),
        "{steps}"
    );
    // `--then`: the list, then the details, both captured.
    let (code, v, steps) = replay_steps(&[
        "volvo",
        "vehicles",
        &fixture("volvo/vehicles.json"),
        "--then",
        &fixture("volvo/vehicle_details.json"),
    ]);
    assert_eq!((code, &v[0]["year"]), (0, &Value::from(2023)), "{v:#}");
    assert_eq!(steps.matches("← capture").count(), 2, "{steps}");
    // `--capture PATTERN=FILE`: a fleet status saying the car needs signed commands
    // (keyway has no key in a replay) ends the lock before the command is sent.
    let (code, v) = replay(&[
        "tesla",
        "command",
        &fixture("tesla/command_ok.json"),
        "--capture",
        &format!(
            "POST /api/1/vehicles/fleet_status={}",
            fixture("tesla/fleet_status.json")
        ),
    ]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("virtual_key_not_paired")),
        "{v:#}"
    );
}

/// The read paths public clients use: a wake-up and the power state it polls, BMW's
/// vehicle finder, Volvo's command accessibility, the OAuth token endpoint.
#[test]
fn new_read_paths_replay() {
    let (code, v) = replay(&["tesla", "power", &fixture("tesla/vehicle.json")]);
    assert_eq!((code, &v["state"]), (0, &Value::from("online")), "{v:#}");
    let (code, v) = replay(&["tesla", "wake", &fixture("tesla/wake_up.json")]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("vehicle_asleep")),
        "{v:#}"
    );
    let (code, v, steps) = replay_steps(&["bmw", "position", &fixture("bmw/event_position.json")]);
    assert_eq!(code, 0, "{v:#}");
    assert!(
        (v["latitude"].as_f64().unwrap() - 48.177655).abs() < 1e-9,
        "{v:#}"
    );
    assert!(
        steps.contains("vehicle-finder [vehicle finder] 200 ← fixture bmw/command_accepted.json"),
        "{steps}"
    );
    let (code, v) = replay(&["bmw", "position", &fixture("bmw/event_position_error.json")]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("location_unavailable")),
        "{v:#}"
    );
    let (code, v) = replay(&[
        "volvo",
        "precheck",
        &fixture("volvo/command_accessibility_unavailable.json"),
    ]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("vehicle_unreachable")),
        "{v:#}"
    );
    // The pre-check runs before a command: Volvo's "no" is the command's answer, sent never.
    let (code, v) = replay(&[
        "volvo",
        "command",
        &fixture("volvo/command_completed.json"),
        "--capture",
        &format!(
            "GET /connected-vehicle/v2/vehicles/*/command-accessibility={}",
            fixture("volvo/command_accessibility_unavailable.json")
        ),
    ]);
    assert_eq!((code, &v["delivered"]), (1, &Value::from("no")), "{v:#}");
    // BMW's list names VINs only; the profile (a fixture here) names model and year.
    let (code, v) = replay(&["bmw", "vehicles", &fixture("bmw/vehicle_list.json")]);
    assert_eq!(
        (code, &v[0]["model"], &v[0]["year"]),
        (0, &Value::from("i4 eDrive40"), &Value::from(2023)),
        "{v:#}"
    );
    // The token endpoint: tokens (never shown), the operator's error, the owner's.
    let (code, v) = replay(&["tesla", "token", &fixture("tesla/token_refresh.json")]);
    assert_eq!(code, 0, "{v:#}");
    assert!(
        !v.to_string().contains(
            &std::fs::read_to_string(fixture("tesla/token_refresh.json")).unwrap()[20..40]
        )
    );
    let dir = crate::common::TempDir::new();
    let bad_client = dir.0.join("invalid_client.json");
    std::fs::write(
        &bad_client,
        r#"{"error": "invalid_client", "error_description": "client authentication failed"}"#,
    )
    .unwrap();
    let (code, v) = replay(&[
        "volvo",
        "token",
        "--status",
        "401",
        bad_client.to_str().unwrap(),
    ]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("oem_misconfigured")),
        "{v:#}"
    );
    let (code, v) = replay(&[
        "ford",
        "token",
        "--status",
        "400",
        &fixture("ford/error_refresh_460.json"),
    ]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("reauthorization_required")),
        "{v:#}"
    );
    let (code, v) = replay(&[
        "bmw",
        "token",
        "--status",
        "503",
        &fixture("bmw/state.json"),
    ]);
    assert_eq!(
        (code, &v["code"]),
        (1, &Value::from("upstream_error")),
        "{v:#}"
    );
}

/// A HAR file is replayed request by request: each recognised request starts its
/// operation, later requests of the same operation answer it, and the rest is skipped.
#[test]
fn a_har_file_replays_in_order() {
    let (code, v) = replay(&["--har", &fixture("har/example.har")]);
    assert_eq!(code, 1, "one answer is an error (a sleeping Tesla): {v:#}");
    let got: Vec<(u64, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["entry"].as_u64().unwrap(),
                r["operation"].as_str().unwrap_or("skipped"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "vehicles"),
            (3, "security"),
            (4, "command"),
            (6, "skipped"),
            (7, "token"),
            (8, "command"),
            (10, "security")
        ]
    );
    assert_eq!(
        v[0]["result"][0]["model"], "XC40 Recharge",
        "entry 2 answered the details"
    );
    assert_eq!(v[1]["result"]["locked"], true, "a base64 body reads: {v:#}");
    // Volvo's accessibility check and the lock after it are one exchange, both recorded.
    let steps: Vec<&str> = v[2]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["answered_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["capture HAR entry 4", "capture HAR entry 5"],
        "{v:#}"
    );
    assert_eq!(v[5]["result"]["sent"], "completed");
    assert_eq!(v[6]["problem"]["code"], "vehicle_asleep");
    // Only one OEM's requests.
    let (_, v) = replay(&["--har", &fixture("har/example.har"), "--oem", "tesla"]);
    let skipped = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("skipped").is_some())
        .count();
    assert_eq!(skipped, 6, "{v:#}");
    assert_eq!(replay(&["--har", "/nonexistent.har"]).0, 2);
}

/// Answers that carry a position or a lock state on other paths: GM's digital twin and
/// EV charging metrics read wherever a location status is; FordPass's older status is
/// read where telemetry is, and asked when telemetry does not know the car (404).
#[test]
fn other_answers_with_a_position_or_a_lock_state() {
    for file in ["gm/digital_twin_ready.json", "gm/charging_metrics.json"] {
        let (code, v) = replay(&["gm", "location", &fixture(file)]);
        assert_eq!(code, 0, "{file}: {v:#}");
        assert!(
            (v["latitude"].as_f64().unwrap() - 42.331427).abs() < 1e-9,
            "{file}: {v:#}"
        );
    }
    let (code, v) = replay(&["ford", "security", &fixture("ford/status_v5.json")]);
    assert_eq!((code, &v["locked"]), (0, &Value::Bool(true)), "{v:#}");
    let (code, v, steps) = replay_steps(&[
        "ford",
        "location",
        &fixture("ford/status_v5.json"),
        "--capture",
        &format!(
            "GET /v1/telemetry/sources/fordpass/vehicles/*=404:{}",
            fixture("ford/error_502.json")
        ),
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert!(
        (v["latitude"].as_f64().unwrap() - 42.3149).abs() < 1e-9,
        "{v:#}"
    );
    assert!(
        steps.contains("[FordPass status (older)] 200 ← capture"),
        "{steps}"
    );
}
