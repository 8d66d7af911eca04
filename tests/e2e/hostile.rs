//! Hostile load: what one caller (or one webhook receiver) does must not take the
//! gateway from the others. Each test runs the demo gateway on loopback, plays the
//! attacker with raw sockets, and checks that a well-behaved caller of another tenant
//! keeps getting answers — with small budgets in the configuration, so that a few
//! hundred sockets stand for the thousands of the outside probe.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::Env;

/// Opens `n` connections to `env` and writes `head` on each, then nothing more.
async fn stalled(env: &Env, n: usize, head: &str) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(env.demo.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        out.push(s);
    }
    out
}

/// What the server sends on `s` until it closes it (at most 10 s).
async fn answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The victim: a reader of another tenant; every one of its reads must be answered.
async fn victim_reads(env: &Env, n: usize) {
    let token = env.token(&["vehicles:read"], None);
    for i in 0..n {
        let a = env.get("/v1/vehicles", Some(&token)).await;
        assert_eq!(a.status, 200, "read {i} of the victim: {:#}", a.json);
    }
}

/// Another tenant's `location:read` token sends request bodies one byte at a time
/// (here: not at all after the first). Its requests hold no in-flight place while their
/// bodies trickle, so the other tenants' reads are all answered — before, each held one
/// until the request timeout, and every other caller got 503 — and each slow body ends
/// in 408.
#[tokio::test]
async fn slow_bodies_of_another_tenant_leave_every_other_caller_served() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.inbound.max_in_flight = 32;
            c.http.body_timeout = Duration::from_millis(1_500);
        })
        .start()
        .await;
    let attacker = env.token_as("prober", &["location:read"]);
    let head = format!(
        "POST /v1/webhooks HTTP/1.1\r\nHost: keyway\r\nAuthorization: Bearer {attacker}\r\n\
         Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{{"
    );
    let mut slow = stalled(&env, 100, &head).await;
    victim_reads(&env, 20).await;
    let first = answer(&mut slow[0]).await;
    assert!(first.starts_with("HTTP/1.1 408"), "{first}");
    assert!(first.contains("request_timeout"), "{first}");
}

/// Sockets that trickle a request head and never finish it: at the connection cap, a
/// new connection takes the place of the one that waited longest without a request, so
/// a well-behaved caller is served however many trickle.
#[tokio::test]
async fn trickled_headers_cannot_keep_a_caller_out() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.http.max_connections = 40;
            // Longer than the test: only the cap can make room.
            c.http.header_timeout = Duration::from_millis(120_000);
        })
        .start()
        .await;
    let mut trickling = stalled(&env, 60, "GET /v1/vehicles HTTP/1.1\r\nHost: keyway\r\n").await;
    victim_reads(&env, 10).await;
    // The first of them was closed for a newcomer.
    let first = answer(&mut trickling[0]).await;
    assert!(first.is_empty(), "closed without an answer: {first}");
}

/// A request head that does not arrive whole within the header timeout closes its
/// connection (and an idle keep-alive connection likewise).
#[tokio::test]
async fn a_head_that_does_not_arrive_in_time_closes_its_connection() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| c.http.header_timeout = Duration::from_millis(300))
        .start()
        .await;
    let mut s = stalled(&env, 1, "GET /v1/vehicles HTTP/1.1\r\nHost: keyway\r\n").await;
    let closed = answer(&mut s[0]).await;
    assert!(!closed.contains("200 OK"), "{closed}");
    victim_reads(&env, 1).await;
}

/// A webhook receiver that answers 200 and then streams without end: keyway reads a
/// few KB of it at most and drops the connection, instead of reading hundreds of MB.
#[tokio::test]
async fn an_endless_webhook_answer_is_not_read() {
    let env = Env::tesla_with_loopback_webhooks().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (count, finished) = (written.clone(), done.clone());
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 8192];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        // Bounded: 1 GiB at most, or until keyway hangs up.
        for _ in 0..16 * 1024 {
            match tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await {
                Ok(Ok(())) => count.fetch_add(chunk.len(), Ordering::SeqCst),
                _ => break,
            };
        }
        finished.notify_one();
    });
    let token = &env.demo.token;
    let subscription = json!({ "url": url, "events": ["grant.created"] });
    let hook = env
        .json(Method::POST, "/v1/webhooks", token, subscription)
        .await;
    assert_eq!(hook.status, 201, "{:#}", hook.json);
    let not_after = env.demo.gateway.grants.clock.now() + time::Duration::minutes(30);
    let grant = json!({
        "vehicle_id": env.online().id,
        "grantee": "courier-1",
        "not_after": keyway::clock::timestamp(not_after),
    });
    let g = env.json(Method::POST, "/v1/grants", token, grant).await;
    assert_eq!(g.status, 201, "{:#}", g.json);
    tokio::time::timeout(Duration::from_secs(30), done.notified())
        .await
        .expect("keyway hangs up on the endless answer");
    let bytes = written.load(Ordering::SeqCst);
    // What loopback socket buffers hold, not what keyway read.
    assert!(
        bytes < 64 << 20,
        "the receiver got {bytes} bytes into keyway"
    );
}

/// An event stream (or any request that does not end) does not hold a shutdown: the
/// gateway stops within its drain deadline, closing what is still open.
#[tokio::test]
async fn an_open_event_stream_does_not_hold_the_shutdown() {
    let env = Env::builder().mocks(&["tesla"]).start().await;
    let token = env.token(&["events:read"], None);
    let head =
        format!("GET /v1/events HTTP/1.1\r\nHost: keyway\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut streams = stalled(&env, 3, &head).await;
    let mut first = [0u8; 12];
    streams[0].read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let common::Env { demo, .. } = env;
    tokio::time::timeout(keyway::server::DRAIN_GRACE, demo.stop())
        .await
        .expect("stopped within the drain deadline");
}

/// At the connection cap with every connection in a request (an event stream here), a
/// new connection is answered `503 overloaded` with `Retry-After`, not reset.
#[tokio::test]
async fn over_the_cap_with_every_connection_busy_a_newcomer_is_told_503() {
    let env = Env::builder()
        .mocks(&["tesla"])
        .configure(|c| {
            c.http.max_connections = 1;
            c.http.workers = 1;
        })
        .start()
        .await;
    let token = env.token(&["events:read"], None);
    let head =
        format!("GET /v1/events HTTP/1.1\r\nHost: keyway\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut stream = stalled(&env, 1, &head).await;
    let mut first = [0u8; 12];
    stream[0].read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut newcomer = stalled(&env, 1, "GET /healthz HTTP/1.1\r\nHost: keyway\r\n\r\n").await;
    let answer = answer(&mut newcomer[0]).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
}
