//! Owners' PINs: a Hyundai/Kia CCS2 car's door control goes through a control token made
//! from the account's PIN (`PUT /v1/accounts/{id}/pin`); a PIN the OEM refuses is a
//! `422 pin_rejected` naming the account, and keyway never sends it again until it is
//! replaced (repeated wrong PINs lock an owner out at the OEM). The PIN is never shown.

use hyper::Method;
use keyway_adapter::mock::MockControl;
use serde_json::json;

use crate::common::Env;

const CCS2_CAR: &str = "KMHKR81CFNU000001";

async fn set_pin(env: &Env, account: &str, pin: &str) -> crate::common::Answer {
    env.send(
        Method::PUT,
        &format!("/v1/accounts/{account}/pin"),
        Some(&env.demo.token),
        &[("content-type", "application/json")],
        Some(json!({ "pin": pin }).to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn a_ccs2_car_takes_commands_with_the_owners_pin_and_a_refused_pin_is_never_retried() {
    let env = Env::builder().mocks(&["hyundai"]).start().await;
    let account = env.by_vin(CCS2_CAR).account_id.clone();
    let pin = keyway_hyundai::demo::OWNER_PIN;
    let listed = env.get("/v1/accounts", Some(&env.demo.token)).await;
    assert_eq!(
        listed.json["accounts"][0]["pin"], "set",
        "{:#}",
        listed.json
    );
    assert!(!listed.text.contains(pin), "the PIN is never shown");

    // The demo owner gave keyway the PIN when linking (POST …/authorize {"pin"}); a
    // malformed one is refused before any link starts.
    let bad = env
        .send(
            Method::POST,
            "/v1/accounts/hyundai/authorize",
            Some(&env.demo.token),
            &[("content-type", "application/json")],
            Some(br#"{"pin": "12"}"#.to_vec()),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    // The unlock goes the CCS2 way.
    let a = env.command_waiting(CCS2_CAR, "unlock", "pin-1").await;
    assert_eq!(a.json["status"], "succeeded", "{:#}", a.json);
    assert_eq!(env.requests("hyundai", Some("PUT"), "/api/v1/user/pin"), 1);
    assert_eq!(
        env.requests("hyundai", Some("POST"), "/ccs2/control/door"),
        1
    );
    assert_eq!(
        env.requests("hyundai", Some("POST"), "/api/v1/spa/vehicles"),
        0,
        "the older path"
    );

    // A malformed PIN is refused by keyway; a wrong one is taken (keyway cannot know).
    for bad in ["12a4", "123", "123456789"] {
        let r = set_pin(&env, &account, bad).await;
        assert_eq!(
            (r.status.as_u16(), &r.json["code"]),
            (400, &json!("invalid_request")),
            "{bad}"
        );
    }
    assert_eq!(set_pin(&env, &account, "0000").await.status, 204);
    let wrong = env.command_waiting(CCS2_CAR, "lock", "pin-2").await;
    assert_eq!(wrong.status, 422, "{:#}", wrong.json);
    assert_eq!(wrong.json["code"], "pin_rejected", "{:#}", wrong.json);
    assert_eq!(wrong.json["account_id"], account.as_str());
    assert_eq!(wrong.json["command_status"], "failed");
    assert!(!wrong.text.contains("0000"), "{}", wrong.text);
    let hyundai: &keyway_hyundai::HyundaiMock = env.demo.mock("hyundai");
    assert_eq!(hyundai.wrong_pins(hyundai.oauth.default_account()), 1);
    assert!(!hyundai.locked(CCS2_CAR), "the car stayed unlocked");
    let listed = env.get("/v1/accounts", Some(&env.demo.token)).await;
    assert_eq!(listed.json["accounts"][0]["pin"], "rejected");

    // Until it is replaced, the refused PIN is never sent again.
    let again = env.command_waiting(CCS2_CAR, "lock", "pin-3").await;
    assert_eq!(again.json["code"], "pin_rejected", "{:#}", again.json);
    assert_eq!(
        env.requests("hyundai", Some("PUT"), "/api/v1/user/pin"),
        2,
        "one try of the wrong PIN"
    );
    assert_eq!(hyundai.wrong_pins(hyundai.oauth.default_account()), 1);

    // The right PIN again: the car locks.
    assert_eq!(set_pin(&env, &account, pin).await.status, 204);
    let locked = env.command_waiting(CCS2_CAR, "lock", "pin-4").await;
    assert_eq!(locked.json["status"], "succeeded", "{:#}", locked.json);
    assert!(hyundai.locked(CCS2_CAR));
    // The control token the right PIN made first is still valid: kept, not asked again.
    assert_eq!(env.requests("hyundai", Some("PUT"), "/api/v1/user/pin"), 2);
}
