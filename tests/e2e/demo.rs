//! README's main command, as a user runs it: `keyway demo` as a child process, its
//! printed token and base URL read from stdout, then the demo walk-through over HTTP:
//! list, locate, lock with `Prefer: wait`, security, unlock, and 401 without a token;
//! then README's in-car delivery flow with the printed courier token.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TempDir, client, send};
use http::Method;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keyway demo ARGS` running, and what its banner printed: the base URL, the token,
/// the courier's token and the whole banner.
struct Running {
    _guard: Kill,
    base: Option<String>,
    token: Option<String>,
    courier: Option<String>,
    banner: String,
}

fn run_demo(dir: &TempDir, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyway demo starts");
    let stdout = child.stdout.take().unwrap();
    let mut r = Running {
        _guard: Kill(child),
        base: None,
        token: None,
        courier: None,
        banner: String::new(),
    };
    for line in BufReader::new(stdout).lines().take(100) {
        let line = line.unwrap();
        r.banner.push_str(&line);
        r.banner.push('\n');
        if let Some(rest) = line.strip_prefix("keyway demo is running at ") {
            r.base = Some(rest.trim().to_string());
        }
        if let Some(t) = line.strip_prefix("KEYWAY_TOKEN=") {
            r.token = Some(t.trim().to_string());
        }
        if let Some(t) = line.strip_prefix("COURIER_TOKEN=") {
            r.courier = t.split_whitespace().next().map(str::to_string);
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    r
}

/// The demo refuses webhooks to this laptop unless told otherwise with
/// `--webhook-allow` (a developer trying webhooks locally).
#[tokio::test]
async fn the_demo_lets_webhooks_reach_a_local_receiver_when_asked() {
    let hook = serde_json::json!({"url": "http://127.0.0.1:9/hook"}).to_string();
    for (extra, expected) in [(&[][..], 403), (&["--webhook-allow", "127.0.0.1"][..], 201)] {
        let dir = TempDir::new();
        let r = run_demo(&dir, extra);
        let (base, token) = (r.base.clone().unwrap(), r.token.clone().unwrap());
        let ans = send(
            &client(),
            &base,
            Method::POST,
            "/v1/webhooks",
            Some(&token),
            &[("content-type", "application/json")],
            Some(hook.clone().into_bytes()),
        )
        .await;
        assert_eq!(ans.status.as_u16(), expected, "{extra:?}: {:#}", ans.json);
    }
}

#[tokio::test]
async fn the_demo_binary_serves_the_walk_through() {
    let dir = TempDir::new();
    let Running {
        _guard,
        base,
        token,
        courier,
        banner,
    } = run_demo(&dir, &[]);
    let base = base.expect("banner names the address");
    let token = token.expect("banner prints KEYWAY_TOKEN");
    assert!(banner.contains("curl -s"), "{banner}");
    let client = client();
    let call =
        |method: Method, path: String, headers: Vec<(&'static str, &'static str)>, auth: bool| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let t = auth.then_some(token.as_str());
                send(&client, &base, method, &path, t, &headers, None).await
            }
        };

    let list = call(Method::GET, "/v1/vehicles".into(), vec![], true).await;
    assert_eq!(list.status, 200, "{:#}", list.json);
    let vehicles = list.json["vehicles"].as_array().unwrap().clone();
    assert!(vehicles.len() >= 2);
    for v in &vehicles {
        let id = v["id"].as_str().unwrap();
        // `max-age=0`: a fresh reading, waking a sleeping car (reads wake only on request).
        let loc = call(
            Method::GET,
            format!("/v1/vehicles/{id}/location"),
            vec![("cache-control", "max-age=0")],
            true,
        )
        .await;
        assert_eq!(loc.status, 200, "{id}: {:#}", loc.json);
        // The Tesla whose owner never paired keyway's key: a clear 409 with the link.
        if v["display_name"] == "Unpaired" {
            assert_eq!(v["command_protocol"], "signed");
            assert_eq!(v["key_paired"], false);
            let a = call(
                Method::POST,
                format!("/v1/vehicles/{id}/lock"),
                vec![("prefer", "wait=60")],
                true,
            )
            .await;
            a.assert_problem(409, "virtual_key_not_paired");
            let link = a.json["pairing_url"].as_str().unwrap();
            assert!(link.starts_with("https://tesla.com/_ak/"), "{link}");
            continue;
        }
        // A car its OEM reads but cannot command (each mock's `read_only`: the make
        // Smartcar's compatibility API says it cannot command, the Volkswagen and the
        // Škoda whose remote access is not active): the OEM said so when the car was
        // listed, so a command is refused before one exists — a certain no, nothing sent.
        let read_only = keyway::registry::MOCKS
            .iter()
            .any(|m| m.read_only.iter().any(|vin| v["vin"] == *vin));
        if read_only {
            let a = call(
                Method::POST,
                format!("/v1/vehicles/{id}/unlock"),
                vec![("prefer", "wait=60")],
                true,
            )
            .await;
            a.assert_problem(422, "not_capable");
            assert_eq!(
                a.json["command_status"],
                serde_json::json!(null),
                "{:#}",
                a.json
            );
            continue;
        }
        for (action, locked) in [("lock", true), ("unlock", false)] {
            let a = call(
                Method::POST,
                format!("/v1/vehicles/{id}/{action}"),
                vec![("prefer", "wait=60")],
                true,
            )
            .await;
            assert_eq!(a.status, 200, "{id} {action}: {:#}", a.json);
            assert_eq!(a.json["status"], "succeeded");
            // The demo's OEMs report the car's state 1.5 s late, as real ones do later.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let s = call(
                    Method::GET,
                    format!("/v1/vehicles/{id}/security"),
                    vec![("cache-control", "max-age=0")],
                    true,
                )
                .await;
                if s.json["locked"] == locked {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{id} after {action}: {:#}",
                    s.json
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The Tesla application public key, where Tesla fetches it.
    let key = call(
        Method::GET,
        "/.well-known/appspecific/com.tesla.3p.public-key.pem".into(),
        vec![],
        false,
    )
    .await;
    assert_eq!(key.status, 200);
    assert!(
        key.text.starts_with("-----BEGIN PUBLIC KEY-----"),
        "{}",
        key.text
    );
    let anonymous = call(Method::GET, "/v1/vehicles".into(), vec![], false).await;
    anonymous.assert_problem(401, "unauthenticated");

    // README's delivery flow: grant → courier unlock → complete → relock confirmed.
    let courier = courier.expect("banner prints COURIER_TOKEN");
    let car = vehicles
        .iter()
        .find(|v| v["display_name"] == "Blue Thunder")
        .and_then(|v| v["id"].as_str())
        .expect("the demo's online Tesla");
    let not_after = (time::OffsetDateTime::now_utc() + time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = serde_json::json!({
        "vehicle_id": car, "grantee": "demo-courier", "not_after": not_after,
        "purpose": "order 42",
    });
    let grant = send(
        &client,
        &base,
        Method::POST,
        "/v1/grants",
        Some(&token),
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    )
    .await;
    assert_eq!(grant.status, 201, "{:#}", grant.json);
    let id = grant.json["id"].as_str().unwrap();
    let wait = [("prefer", "wait=30")];
    let open = send(
        &client,
        &base,
        Method::POST,
        &format!("/v1/grants/{id}/unlock"),
        Some(&courier),
        &wait,
        None,
    )
    .await;
    assert_eq!(open.json["status"], "succeeded", "{:#}", open.json);
    let done = send(
        &client,
        &base,
        Method::POST,
        &format!("/v1/grants/{id}/complete"),
        Some(&courier),
        &wait,
        None,
    )
    .await;
    assert_eq!(done.json["relock"]["state"], "watching", "{:#}", done.json);
    let s = call(
        Method::GET,
        format!("/v1/vehicles/{car}/security"),
        vec![],
        true,
    )
    .await;
    assert_eq!(s.json["locked"], true);
}

/// `keyway tesla-keygen` writes a private key only its owner may read, in PKCS#8; and
/// `keyway check-config` refuses what `keyway serve` refuses: the same key file once
/// others may read it, with the fix in the message.
#[test]
fn check_config_refuses_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let key = dir.0.join("tesla-app.pem");
    let made = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["tesla-keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let config = dir.0.join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            r#"store = "sqlite://{}/k.db"
[crypto.keys]
k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[auth]
issuer = "https://id.example"
hs256_secret = "0123456789abcdef0123456789abcdef"
[oems.tesla]
api_base_url = "https://fleet-api.prd.na.vn.cloud.tesla.com"
client_id = "c"
app_key_file = "{}"
app_domain = "keyway.example"
"#,
            dir.0.display(),
            key.display()
        ),
    )
    .unwrap();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_keyway"))
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let ok = check();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = check();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!dir.0.join("k.db").exists(), "check-config opens no store");
}

/// `keyway mock <oem>` prints what pointing a keyway at it takes: the OAuth client,
/// the authorization and token URLs (which answer), and the `[oems.<oem>]` lines.
#[tokio::test]
async fn a_standalone_mock_names_what_a_keyway_needs_to_use_it() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["mock", "volvo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyway mock starts");
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines().take(40) {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.trim_start().starts_with("faults:") {
            break;
        }
    }
    let base = banner
        .lines()
        .find_map(|l| l.strip_prefix("volvo mock at "))
        .and_then(|r| r.split_whitespace().next())
        .expect("the mock's URL")
        .to_string();
    for want in [
        "[oems.volvo]".to_string(),
        format!("api_base_url = \"{base}\""),
        "client_id = \"keyway-demo\"".to_string(),
        "KEYWAY_OEMS_VOLVO_CLIENT_SECRET=demo-client-secret".to_string(),
        "KEYWAY_OEMS_VOLVO_API_KEY=vcc-demo-key".to_string(),
    ] {
        assert!(banner.contains(&want), "{want} missing from:\n{banner}");
    }
    let oauth = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("OAuth: authorize "))
        .expect("the OAuth URLs");
    let mut urls = oauth.split_whitespace();
    let authorize = urls.next().unwrap().to_string();
    let token = urls.nth(1).unwrap().to_string();
    // Both are the mock's own endpoints: they answer (a bare request is refused for
    // what it lacks, never "no such route").
    for (method, url) in [(Method::GET, authorize), (Method::POST, token)] {
        let path = url.strip_prefix(&base).expect("on the mock").to_string();
        let a = send(&client(), &base, method, &path, None, &[], None).await;
        assert_ne!(a.status, 404, "{url}: {}", a.text);
    }
}
