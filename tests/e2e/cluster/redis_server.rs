//! A production-shaped Redis: password (and ACL user) and TLS. Each test starts its own
//! `redis-server` on an ephemeral loopback port (the same binary CI runs for the shared
//! Redis), so the shared one stays password-free for the other tests. The limits must
//! work with the right credentials and CA, fall back (never hang, never leak the
//! password) with the wrong ones.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use keyway::cluster::limits::SharedLimits;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::common::TempDir;

/// A `redis-server` of this test's own, killed on drop.
struct OwnRedis {
    port: u16,
    _child: Child,
}

impl OwnRedis {
    /// Starts `redis-server` on a free loopback port with `args` (the port flag is
    /// `--port` for plain TCP, or `--tls-port` when `tls`).
    async fn start(tls: bool, args: &[&str]) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let port_s = port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--bind",
            "127.0.0.1",
            "-::1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if tls {
            cmd.args(["--port", "0", "--tls-port", &port_s]);
        } else {
            cmd.args(["--port", &port_s]);
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self {
                    port,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not listen on {port} within 5 s");
    }
}

fn limits(url: &str, ca: Option<&Path>) -> SharedLimits {
    SharedLimits::new(url, ca, "t", Duration::from_secs(2)).expect("a usable Redis URL")
}

/// One GCRA limit of one request at once: the first passes, the second waits. `None`
/// when Redis was not usable.
async fn two_requests(l: &SharedLimits) -> Option<(bool, bool)> {
    let interval = Duration::from_secs(60);
    let first = l.gcra("test", "caller", interval, 1).await?;
    let second = l.gcra("test", "caller", interval, 1).await?;
    Some((first.is_ok(), second.is_ok()))
}

#[tokio::test]
async fn a_redis_with_a_password_or_acl_user_is_used_with_it_and_only_with_it() {
    let r = OwnRedis::start(
        false,
        &[
            "--requirepass",
            "default-pw",
            "--user",
            "keyway",
            "on",
            ">keyway-pw",
            "~*",
            "+@all",
        ],
    )
    .await;
    let p = r.port;

    let by_password = limits(&format!("redis://:default-pw@127.0.0.1:{p}"), None);
    assert_eq!(two_requests(&by_password).await, Some((true, false)));
    assert!(by_password.is_up());

    let by_user = limits(&format!("redis://keyway:keyway-pw@127.0.0.1:{p}/1"), None);
    assert_eq!(two_requests(&by_user).await, Some((true, false)));

    for url in [
        format!("redis://127.0.0.1:{p}"),
        format!("redis://:wrong-pw@127.0.0.1:{p}"),
        format!("redis://keyway:wrong-pw@127.0.0.1:{p}"),
    ] {
        let l = limits(&url, None);
        assert_eq!(two_requests(&l).await, None, "refused: {url}");
        assert!(!l.is_up(), "{url}");
        let shown = format!("{l:?}");
        assert!(!shown.contains("pw"), "no password in Debug: {shown}");
    }
    // A bad URL is refused at start without quoting it.
    let e = SharedLimits::new("redis://:pw@[::1", None, "t", Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("pw"), "{e}");
}

#[tokio::test]
async fn a_tls_redis_is_used_over_rediss_with_its_ca_and_refused_without_it() {
    let dir = TempDir::new();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let file = |name: &str, text: String| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca = file("ca.pem", ca_cert.pem());
    let server_cert = file("server.pem", cert.pem());
    let server_key = file("server.key", key.serialize_pem());
    let r = OwnRedis::start(
        true,
        &[
            "--tls-cert-file",
            server_cert.to_str().unwrap(),
            "--tls-key-file",
            server_key.to_str().unwrap(),
            "--tls-ca-cert-file",
            ca.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "tls-pw",
        ],
    )
    .await;
    let p = r.port;

    let tls = limits(&format!("rediss://:tls-pw@localhost:{p}"), Some(&ca));
    assert_eq!(two_requests(&tls).await, Some((true, false)));

    // The system's roots do not know this CA; plain TCP does not speak TLS.
    let untrusted = limits(&format!("rediss://:tls-pw@localhost:{p}"), None);
    assert_eq!(two_requests(&untrusted).await, None);
    let plain = limits(&format!("redis://:tls-pw@localhost:{p}"), None);
    assert_eq!(two_requests(&plain).await, None);
    // A CA file with a plain URL is a set-up mistake, said at start.
    let e = SharedLimits::new(
        &format!("redis://localhost:{p}"),
        Some(&ca),
        "t",
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("rediss://"), "{e}");
}

/// Readiness asks Redis itself: right after Redis dies the probe says so (the last
/// exchange still says "up"), and once it is back, up again.
#[tokio::test]
async fn the_probe_sees_redis_go_at_once() {
    let r = OwnRedis::start(false, &[]).await;
    let l = limits(&format!("redis://127.0.0.1:{}", r.port), None);
    assert_eq!(two_requests(&l).await, Some((true, false)));
    assert!(l.probe().await);
    drop(r);
    // The process is gone once its port refuses (bounded wait).
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if !l.probe().await {
            break;
        }
    }
    assert!(!l.probe().await, "Redis is gone");
    assert!(!l.is_up());
}
