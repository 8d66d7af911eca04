//! OEM account linking and the token lifecycle, end to end against the Tesla mock's
//! OAuth server: the PKCE link, state and code rules, single-flight refresh under
//! concurrency, rotation without a replayed refresh token, reauthorization, encryption
//! at rest, key rotation, and logs free of secrets.

use crate::common;
use crate::common::DemoMocks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Answer, Env};
use http::{Method, Request};
use keyway::store::LinkState;
use keyway_adapter::transport::loopback_http;

/// Follows the link flow up to the OEM's redirect; returns the callback URL (path and
/// query at the gateway) without calling it.
async fn consent(env: &Env, extra_query: &str) -> String {
    let a = env
        .post("/v1/accounts/tesla/authorize", &env.demo.token, &[])
        .await;
    assert_eq!(a.status, 201, "{:#}", a.json);
    assert!(a.json["expires_at"].is_string());
    let url = format!(
        "{}{extra_query}",
        a.json["authorization_url"].as_str().unwrap()
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(
        !url.contains("code_verifier"),
        "the verifier never leaves the server"
    );
    let resp = loopback_http()
        .send(Request::get(&url).body(Bytes::new()).unwrap())
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let base = env.base();
    assert!(location.starts_with(&base), "{location}");
    location[base.len()..].to_string()
}

async fn callback(env: &Env, path: &str) -> Answer {
    env.get(path, None).await
}

fn query_param(path: &str, name: &str) -> String {
    let q = path.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap();
    pairs.into_iter().find(|(k, _)| k == name).unwrap().1
}

#[tokio::test]
async fn a_full_pkce_link_discovers_the_vehicles_and_replaces_the_old_account() {
    let env = Env::start().await;
    let before = env.tesla_ids();
    let old_account = env.tesla_account().await.id;

    // The owner links again (e.g. after a reauthorization).
    let path = consent(&env, "").await;
    let done = callback(&env, &path).await;
    assert_eq!(done.status, 200, "{:#}", done.json);
    let account = &done.json["account"];
    assert_eq!(account["status"], "active");
    assert_eq!(account["oem"], "tesla");
    assert_eq!(account["owner"], "demo-delivery-service");
    let mut ids: Vec<String> = account["vehicle_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut before_sorted = before.clone();
    before_sorted.sort();
    assert_eq!(
        ids, before_sorted,
        "vehicle ids stay stable across a relink"
    );

    let accounts = env.get("/v1/accounts", Some(&env.demo.token)).await;
    let teslas: Vec<_> = accounts.json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["oem"] == "tesla")
        .collect();
    assert_eq!(teslas.len(), 1, "the replaced account is gone: {teslas:#?}");
    assert_ne!(teslas[0]["id"], old_account.as_str());
    // And the cars work through the new account.
    let loc = env
        .send(
            Method::GET,
            &format!("/v1/vehicles/{}/location", before[0]),
            Some(&env.demo.token),
            &[("cache-control", "max-age=0")],
            None,
        )
        .await;
    assert_eq!(loc.status, 200, "{:#}", loc.json);
}

#[tokio::test]
async fn states_are_random_single_use_bound_and_expiring() {
    let env = Env::start().await;
    callback(&env, "/v1/oauth/callback?code=x&state=made-up")
        .await
        .assert_problem(404, "not_found");
    callback(&env, "/v1/oauth/callback?code=x")
        .await
        .assert_problem(400, "invalid_request");

    let path = consent(&env, "").await;
    assert_eq!(callback(&env, &path).await.status, 200);
    let again = callback(&env, &path).await;
    again.assert_problem(404, "not_found");
    assert!(again.json["detail"].as_str().unwrap().contains("used"));

    // Two starts give two different states.
    let a = env
        .post("/v1/accounts/tesla/authorize", &env.demo.token, &[])
        .await;
    let b = env
        .post("/v1/accounts/tesla/authorize", &env.demo.token, &[])
        .await;
    assert_ne!(a.json["state"], b.json["state"]);

    // An expired state is refused.
    let t = env.demo.gateway.clock.now();
    let state = "an-expired-state";
    let hash: String = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(state.as_bytes()))
    };
    env.demo
        .gateway
        .store
        .put_link_state(&LinkState {
            state_hash: hash,
            pin: None,
            oem: "tesla".into(),
            caller: "someone".into(),
            verifier: "kw1.demo.x".into(),
            redirect_uri: format!("{}/v1/oauth/callback", env.base()),
            created_at: t - time::Duration::minutes(11),
            expires_at: t - time::Duration::minutes(1),
        })
        .await
        .unwrap();
    let expired = callback(&env, &format!("/v1/oauth/callback?code=x&state={state}")).await;
    expired.assert_problem(404, "not_found");
    assert!(
        expired.json["detail"]
            .as_str()
            .unwrap()
            .contains("too long")
    );

    // The account belongs to whoever started the link: another service cannot see it.
    let other = env.token_as("another-service", &["accounts:write"]);
    let theirs = env.get("/v1/accounts", Some(&other)).await;
    assert_eq!(theirs.json["accounts"].as_array().unwrap().len(), 0);
    let id = env.get("/v1/accounts", Some(&env.demo.token)).await.json["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.send(
        Method::DELETE,
        &format!("/v1/accounts/{id}"),
        Some(&other),
        &[],
        None,
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn the_owner_declining_is_a_clear_problem() {
    let env = Env::start().await;
    let path = consent(&env, "&consent=deny").await;
    assert_eq!(query_param(&path, "error"), "access_denied");
    let a = callback(&env, &path).await;
    a.assert_problem(403, "authorization_denied");
    assert_eq!(a.json["oauth_error"], "access_denied");
    assert_eq!(a.json["oem"], "tesla");
}

#[tokio::test]
async fn the_mock_rejects_reused_codes_and_wrong_verifiers() {
    let env = Env::start().await;
    let token_url = format!("{}/oauth2/v3/token", env.demo.server("tesla").url());
    let redeem = |code: String, verifier: &'static str, redirect: String| {
        let url = token_url.clone();
        async move {
            let form = serde_urlencoded::to_string([
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("code_verifier", verifier),
                ("client_id", "keyway-demo"),
                ("client_secret", "demo-client-secret"),
            ])
            .unwrap();
            let resp = loopback_http()
                .send(
                    Request::post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Bytes::from(form))
                        .unwrap(),
                )
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            (resp.status().as_u16(), body)
        }
    };
    let redirect = format!("{}/v1/oauth/callback", env.base());

    // A code presented with the wrong verifier is refused.
    let path = consent(&env, "").await;
    let code = query_param(&path, "code");
    let (status, body) = redeem(
        code,
        "wrong-verifier-wrong-verifier-wrong-verifier-0000",
        redirect.clone(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );

    // A code keyway already redeemed cannot be redeemed again.
    let path = consent(&env, "").await;
    let code = query_param(&path, "code");
    assert_eq!(callback(&env, &path).await.status, 200);
    let (status, body) = redeem(
        code,
        "irrelevant-irrelevant-irrelevant-irrelevant-00",
        redirect,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(body["error_description"], "code already used");
}

/// Makes `n` concurrent OEM calls (locates of the online car) through the token
/// manager — below the read cache, so each call needs a token; all must succeed.
async fn burst(env: &Env, n: usize) {
    let gw = env.demo.gateway.clone();
    let account = env.online().account_id.clone();
    let vehicle = keyway_adapter::VehicleRef {
        oem_id: env.online().oem_id.clone(),
    };
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (gw, account, vehicle) = (gw.clone(), account.clone(), vehicle.clone());
            tokio::spawn(async move {
                let tesla = gw.registry.get("tesla").unwrap();
                let adapter = tesla.adapter.clone();
                gw.tokens
                    .call(&account, tesla, "locate", |cx| {
                        let (adapter, vehicle) = (adapter.clone(), vehicle.clone());
                        async move { adapter.locate(&cx, &vehicle).await }
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
}

/// Makes keyway's stored access token due for refresh (as time passing would).
async fn make_due(env: &Env) {
    let store = &env.demo.gateway.store;
    let account = env.tesla_account().await;
    let mut tokens = account.tokens.clone();
    tokens.access_refresh_at = Some(env.demo.gateway.clock.now() - time::Duration::seconds(1));
    store.save_tokens(&account.id, &tokens).await.unwrap();
    env.demo.gateway.tokens.forget(&account.id);
}

#[tokio::test]
async fn a_hundred_concurrent_calls_on_an_expired_token_refresh_once() {
    let env = Env::start().await;
    let book = &env.demo.tesla().tokens;

    // Expired at the OEM (keyway learns it from 401s).
    let before = book.refreshes_served();
    book.expire_access_tokens();
    burst(&env, 100).await;
    assert_eq!(book.refreshes_served(), before + 1);

    // Due by keyway's own clock (refreshed before the OEM would refuse it).
    let before = book.refreshes_served();
    let rejected = env
        .demo
        .tesla()
        .journal
        .entries()
        .iter()
        .filter(|e| e.status == 401)
        .count();
    make_due(&env).await;
    burst(&env, 100).await;
    assert_eq!(book.refreshes_served(), before + 1);
    let rejected_after = env
        .demo
        .tesla()
        .journal
        .entries()
        .iter()
        .filter(|e| e.status == 401)
        .count();
    assert_eq!(
        rejected_after, rejected,
        "a due token is refreshed before use, not after a 401"
    );
    assert_eq!(book.replays_seen(), 0);
}

#[tokio::test]
async fn five_hundred_rotations_never_present_a_refresh_token_twice() {
    let env = Env::start().await;
    let book = &env.demo.tesla().tokens;
    let before = book.refreshes_served();
    for cycle in 0..500 {
        if cycle % 2 == 0 {
            book.expire_access_tokens();
        } else {
            make_due(&env).await;
        }
        burst(&env, 3).await;
    }
    assert_eq!(book.refreshes_served(), before + 500);
    assert_eq!(book.replays_seen(), 0);
}

#[tokio::test]
async fn an_oem_401_mid_call_refreshes_once_and_replays() {
    let env = Env::start().await;
    let v = env.online();
    let before = env.demo.tesla().tokens.refreshes_served();
    env.demo.tesla().tokens.expire_access_tokens();
    let a = env
        .post(
            &format!("/v1/vehicles/{}/lock", v.id),
            &env.demo.token,
            &[("prefer", "wait=30")],
        )
        .await;
    assert_eq!(a.status, 200, "{:#}", a.json);
    assert_eq!(env.demo.tesla().tokens.refreshes_served(), before + 1);
    // The rejected lock did nothing; the replay locked the car once.
    let locks: Vec<u16> = env
        .demo
        .tesla()
        .journal
        .entries()
        .iter()
        .filter(|e| e.path.ends_with("/command/door_lock"))
        .map(|e| e.status)
        .collect();
    assert_eq!(locks, vec![401, 200]);
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_reauthorization_without_a_refresh_storm() {
    let env = Env::start().await;
    let v = env.online();
    env.demo.tesla().tokens.revoke_account("demo-owner");
    env.demo.tesla().tokens.expire_access_tokens();
    let path = format!("/v1/vehicles/{}/location", v.id);
    let a = env.get(&path, Some(&env.demo.token)).await;
    a.assert_problem(424, "reauthorization_required");
    assert!(a.json["account_id"].as_str().unwrap().starts_with("acct_"));
    assert_eq!(a.json["relink"], "POST /v1/accounts/tesla/authorize");
    let token_calls = env.demo.tesla().journal.count("POST", "/oauth2/v3/token");
    for _ in 0..20 {
        env.get(&path, Some(&env.demo.token))
            .await
            .assert_problem(424, "reauthorization_required");
    }
    env.post(
        &format!("/v1/vehicles/{}/lock", v.id),
        &env.demo.token,
        &[("prefer", "wait=30")],
    )
    .await
    .assert_problem(424, "reauthorization_required");
    assert_eq!(
        env.demo.tesla().journal.count("POST", "/oauth2/v3/token"),
        token_calls
    );
    assert_eq!(env.demo.tesla().commands_seen(), 0);
    assert_eq!(
        env.tesla_account().await.status,
        keyway::store::AccountStatus::ReauthorizationRequired
    );

    // Relinking brings it back.
    let path_cb = consent(&env, "").await;
    assert_eq!(callback(&env, &path_cb).await.status, 200);
    assert_eq!(env.get(&path, Some(&env.demo.token)).await.status, 200);
}

#[tokio::test]
async fn unlinking_forgets_tokens_and_vehicles() {
    let env = Env::start().await;
    let id = env.tesla_account().await.id;
    let a = env
        .send(
            Method::DELETE,
            &format!("/v1/accounts/{id}"),
            Some(&env.demo.token),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 204);
    let list = env.get("/v1/vehicles", Some(&env.demo.token)).await;
    let left: Vec<_> = list.json["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["oem"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        left,
        vec![
            "audi", "bmw", "ford", "gm", "hyundai", "skoda", "smartcar", "volvo", "vw"
        ],
        "only the other OEM's car is left"
    );
    assert!(env.demo.gateway.store.account(&id).await.unwrap().is_none());
    env.get(
        &format!("/v1/vehicles/{}/location", env.online().id),
        Some(&env.demo.token),
    )
    .await
    .assert_problem(404, "vehicle_not_found");
}

fn files_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("keyway.db")
        {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_database_holds_no_token_in_plaintext_and_keys_rotate() {
    let env = Env::start().await;
    env.demo.tesla().tokens.expire_access_tokens();
    burst(&env, 5).await;
    let tokens = env.demo.tesla().tokens.all_tokens();
    assert!(tokens.len() >= 4);
    let bytes = files_bytes(&env.dir.0);
    assert!(bytes.len() > 10_000);
    for t in &tokens {
        assert!(!contains(&bytes, t), "plaintext token in the database");
    }
    assert!(contains(&bytes, "kw1.demo."), "sealed values are there");

    // Rotate: add key k2 as active, re-seal, then drop the old key entirely.
    let mut config = env.demo.gateway.config.clone();
    config.crypto.keys.insert(
        "k2".into(),
        keyway_adapter::Secret::new(keyway::crypto::generate_key().unwrap()),
    );
    config.crypto.active_key = Some("k2".into());
    let rotated =
        keyway::gateway::Gateway::with_store(config.clone(), env.demo.gateway.store.clone())
            .await
            .unwrap();
    assert_eq!(
        rotated.tokens.reseal_all().await.unwrap(),
        14,
        "one account per OEM, the Hyundai owner's PIN, the Volkswagen, Audi and Škoda \
         owners' S-PINs"
    );
    assert_eq!(
        rotated.tokens.reseal_all().await.unwrap(),
        0,
        "nothing left to rotate"
    );
    config.crypto.keys.remove("demo");
    let only_new = keyway::gateway::Gateway::with_store(config, env.demo.gateway.store.clone())
        .await
        .unwrap();
    let account = env.tesla_account().await;
    let token = only_new.tokens.access_token(&account.id).await.unwrap();
    assert!(tokens.contains(&token.expose().to_string()));
    // The owner's PIN is sealed too, and opens with the new key alone.
    let store = &env.demo.gateway.store;
    let hyundai = store.accounts().await.unwrap();
    let hyundai = hyundai.iter().find(|a| a.oem == "hyundai").unwrap();
    let sealed = store
        .account_pin(&hyundai.id)
        .await
        .unwrap()
        .unwrap()
        .sealed;
    assert!(sealed.starts_with("kw1.k2."), "{sealed}");
    assert!(!sealed.contains(keyway_hyundai::demo::OWNER_PIN));
    match only_new.tokens.pin(&hyundai.id).await.unwrap() {
        keyway::tokens::pin::Pin::Usable { secret, .. } => {
            assert_eq!(secret.expose(), keyway_hyundai::demo::OWNER_PIN)
        }
        other => panic!("{other:?}"),
    }
}

/// A `tracing` writer collecting everything into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_hold_no_token_or_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let env = Env::start().await;
    env.demo.tesla().tokens.expire_access_tokens();
    burst(&env, 5).await;
    let v = env.online();
    let a = env
        .post(
            &format!("/v1/vehicles/{}/unlock", v.id),
            &env.demo.token,
            &[("prefer", "wait=30")],
        )
        .await;
    assert_eq!(a.status, 200);
    let path = consent(&env, "").await;
    assert_eq!(callback(&env, &path).await.status, 200);
    env.demo.tesla().tokens.revoke_account("demo-owner");
    env.demo.tesla().tokens.expire_access_tokens();
    let _ = env
        .get(
            &format!("/v1/vehicles/{}/location", v.id),
            Some(&env.demo.token),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let logs = captured.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logs);
    assert!(
        text.contains("access token refreshed"),
        "logging was captured"
    );
    // The lower layers were captured too (trace level), not only keyway's own lines.
    assert!(text.contains("sqlx::query"), "SQL statements were captured");
    assert!(text.contains("hyper"), "HTTP internals were captured");
    let config = &env.demo.gateway.config;
    let mut secrets = env.demo.tesla().tokens.all_tokens();
    secrets.push(env.demo.token.clone());
    secrets.push(
        config
            .auth
            .hs256_secret
            .as_ref()
            .unwrap()
            .expose()
            .to_string(),
    );
    secrets.push("demo-client-secret".into());
    for key in config.crypto.keys.values() {
        secrets.push(key.expose().to_string());
    }
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret reached the logs");
    }
}

/// The OEM rejects keyway's own OAuth client (`invalid_client`: an operator changed or
/// mistyped its secret): linking an owner's account answers `502 oem_misconfigured`
/// naming the OEM, not an outage (`upstream_error`, as before) and not the owner's
/// fault. (The refresh path maps the same answer to the same error.)
#[tokio::test]
async fn a_rejected_oauth_client_is_an_operator_error() {
    let dir = common::TempDir::new();
    let mut opts = common::options(&dir);
    opts.oems = vec!["tesla"];
    opts.configure = Some(Arc::new(|c: &mut keyway::config::Config| {
        let tesla = c.oems.get_mut("tesla").unwrap();
        tesla.client_secret = Some(keyway_adapter::Secret::new("a-mistyped-secret"));
    }));
    let refused = match keyway::demo::start(opts).await {
        Ok(_) => panic!("the demo linked its accounts with a wrong client secret"),
        Err(e) => e.to_string(),
    };
    for expected in [
        "\"code\":\"oem_misconfigured\"",
        "\"status\":502",
        "\"oem\":\"tesla\"",
        "\"retryable\":false",
    ] {
        assert!(refused.contains(expected), "{refused}");
    }
}

/// The OEM rejects keyway's application key (Volvo's `vcc-api-key`, in Volvo's own
/// words): the answer is `502 oem_misconfigured` naming the OEM — an operator's fix —
/// not `reauthorization_required`, which would send the owner to relink for nothing.
#[tokio::test]
async fn a_rejected_api_key_is_an_operator_error_not_the_owners_relink() {
    let dir = common::TempDir::new();
    let mut opts = common::options(&dir);
    opts.oems = vec!["volvo"];
    opts.configure = Some(Arc::new(|c: &mut keyway::config::Config| {
        let volvo = c.oems.get_mut("volvo").unwrap();
        volvo.api_key = Some(keyway_adapter::Secret::new("a-revoked-key"));
    }));
    let refused = match keyway::demo::start(opts).await {
        Ok(_) => panic!("the demo listed Volvo cars with a wrong API key"),
        Err(e) => e.to_string(),
    };
    for expected in [
        "\"code\":\"oem_misconfigured\"",
        "\"status\":502",
        "\"oem\":\"volvo\"",
        "\"retryable\":false",
        "VCC-API-KEY",
    ] {
        assert!(refused.contains(expected), "{refused}");
    }
    assert!(!refused.contains("reauthorization_required"), "{refused}");
}
