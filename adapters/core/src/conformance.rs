//! The conformance suite: plain async checks every adapter must pass against its own
//! mock — listing, locating (within 1e-6 degrees), lock/unlock with the state read back,
//! sleeping cars, refusals, unknown vehicles, expired tokens, 5xx, garbled bodies, the
//! OEM's own rate-limit style, declared capabilities, pushes and owners' PINs. An OEM crate's test builds a [`Harness`] (its adapter, its mock started on an
//! ephemeral port, a [`MockControl`] to steer that mock) and calls [`run_all`], or the
//! single checks. Capabilities the adapter declares decide which checks apply, so a
//! declared capability that does not work fails here — and so does one that works but
//! is not declared, where the suite can tell.
//!
//! Public on purpose: an out-of-tree adapter runs the same suite.

use std::time::Duration;

use crate::{Adapter, Call, Capability, Command, OemError, VehicleRef};

pub use crate::mock::MockControl;
pub use harness::{Harness, drive, owner_call};
pub use pins::pins_are_asked_for;

mod harness;
mod pins;

/// Wakes `v`, asking again until it is online (bounded).
pub async fn wake_until_online(
    adapter: &dyn Adapter,
    cx: &Call,
    v: &VehicleRef,
) -> Result<(), OemError> {
    for _ in 0..500 {
        match adapter.wake(cx, v).await {
            Err(OemError::Asleep) => tokio::time::sleep(Duration::from_millis(10)).await,
            other => return other,
        }
    }
    panic!("vehicle did not wake after 500 tries")
}

/// The adapter lists exactly the mock's vehicles.
pub async fn lists_vehicles(h: &Harness) {
    let mut got: Vec<String> = h
        .adapter
        .vehicles(&h.call())
        .await
        .expect("vehicles")
        .into_iter()
        .map(|v| v.oem_id)
        .collect();
    let mut want = h.mock.vehicle_ids();
    got.sort();
    want.sort();
    assert_eq!(got, want, "listed vehicles differ from the mock's");
}

/// Reads the position, following an asynchronous read to its end (bounded).
pub async fn read_location(
    adapter: &dyn Adapter,
    cx: &Call,
    v: &VehicleRef,
) -> Result<crate::Location, OemError> {
    if adapter.info().location_mode == crate::CommandMode::Sync {
        return adapter.locate(cx, v).await;
    }
    let pending = adapter.request_location(cx, v).await?;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(pending.poll_after_ms.min(50))).await;
        if let Some(l) = adapter.poll_location(cx, v, &pending).await? {
            return Ok(l);
        }
    }
    panic!("the location read did not finish after 500 polls")
}

/// The reported position matches the mock's within 1e-6 degrees.
pub async fn locates(h: &Harness) {
    let v = h.first_vehicle();
    let result = read_location(h.adapter.as_ref(), &h.call(), &v).await;
    if !h.adapter.info().can(Capability::Locate) {
        assert!(
            matches!(result, Err(OemError::NotCapable { .. })),
            "{result:?}"
        );
        return;
    }
    let loc = result.expect("locate");
    let (lat, lon) = h.mock.position(&v.oem_id);
    assert!(
        (loc.latitude - lat).abs() < 1e-6,
        "latitude {} vs {lat}",
        loc.latitude
    );
    assert!(
        (loc.longitude - lon).abs() < 1e-6,
        "longitude {} vs {lon}",
        loc.longitude
    );
}

/// Lock then unlock change the mock's state, and security reads (when declared) agree.
pub async fn locks_and_unlocks(h: &Harness) {
    let v = h.first_vehicle();
    let cx = h.call();
    for (command, start, want) in [(Command::Lock, false, true), (Command::Unlock, true, false)] {
        h.mock.set_locked(&v.oem_id, start);
        drive(h.adapter.as_ref(), &cx, &v, command)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", command.as_str()));
        assert_eq!(
            h.mock.locked(&v.oem_id),
            want,
            "mock state after {}",
            command.as_str()
        );
        let security = h.adapter.security(&cx, &v).await;
        if h.adapter.info().can(Capability::Security) {
            assert_eq!(security.expect("security").locked, Some(want));
        } else {
            assert!(
                matches!(security, Err(OemError::NotCapable { .. })),
                "{security:?}"
            );
        }
    }
}

/// A sleeping car answers `Asleep`; where waking is declared, it wakes and then obeys.
pub async fn handles_sleep(h: &Harness) {
    let v = h.first_vehicle();
    let cx = h.call();
    h.mock.set_locked(&v.oem_id, false);
    h.mock.set_asleep(&v.oem_id);
    if !h.adapter.info().can(Capability::Wake) {
        // Without a wake-up call the OEM either queues the command for the car itself
        // (BMW) or says the car sleeps and did nothing (Volvo's VEHICLE_IN_SLEEP).
        match drive(h.adapter.as_ref(), &cx, &v, Command::Lock).await {
            Ok(()) => assert!(h.mock.locked(&v.oem_id), "a queued lock must lock the car"),
            Err(OemError::Asleep) => {
                assert!(
                    !h.mock.locked(&v.oem_id),
                    "an asleep car must not have acted"
                )
            }
            Err(e) => panic!("a command to a sleeping car: {e}"),
        }
        h.mock.set_awake(&v.oem_id);
        return;
    }
    let err = h.adapter.send(&cx, &v, Command::Lock).await;
    assert_eq!(err, Err(OemError::Asleep), "a command to a sleeping car");
    assert!(
        !h.mock.locked(&v.oem_id),
        "an asleep car must not have acted"
    );
    wake_until_online(h.adapter.as_ref(), &cx, &v)
        .await
        .expect("wake");
    drive(h.adapter.as_ref(), &cx, &v, Command::Lock)
        .await
        .expect("lock after waking");
    assert!(h.mock.locked(&v.oem_id));
}

/// A refusal by the car is `Refused`, and the state does not change.
pub async fn reports_refusal(h: &Harness) {
    let v = h.first_vehicle();
    h.mock.set_locked(&v.oem_id, true);
    h.mock.set_refusing(&v.oem_id, true);
    if h.adapter.info().command_mode == crate::CommandMode::Observed {
        // The OEM takes it and never reports the refusal: the car stays as it was, and
        // its lock state, read after the command had time to run, says so.
        let sent = h.adapter.send(&h.call(), &v, Command::Unlock).await;
        assert_eq!(sent, Ok(crate::Sent::Accepted), "{sent:?}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        h.mock.set_refusing(&v.oem_id, false);
        let read = h.adapter.security(&h.call(), &v).await.expect("security");
        assert_eq!(
            read.locked,
            Some(true),
            "a refused unlock must leave the car locked"
        );
        assert!(h.mock.locked(&v.oem_id));
        return;
    }
    let result = drive(h.adapter.as_ref(), &h.call(), &v, Command::Unlock).await;
    h.mock.set_refusing(&v.oem_id, false);
    assert!(
        matches!(result, Err(OemError::Refused { .. })),
        "{result:?}"
    );
    assert!(
        h.mock.locked(&v.oem_id),
        "a refused unlock must leave the car locked"
    );
}

/// An unknown vehicle is `NotFound`.
pub async fn unknown_vehicle(h: &Harness) {
    let v = VehicleRef {
        oem_id: "ZZZZZZZZZZZZZZZZZ".into(),
    };
    let result = read_location(h.adapter.as_ref(), &h.call(), &v).await;
    assert_eq!(result, Err(OemError::NotFound));
}

/// An expired access token is `Unauthorized` (so the core refreshes and replays). An
/// OEM whose calls carry the application's own token beside the owner's id
/// ([`crate::Linking::Owner`]) renews that token itself: the call succeeds.
pub async fn expired_token(h: &Harness) {
    let cx = h.call();
    h.mock.expire_access_tokens();
    let result = h.adapter.vehicles(&cx).await;
    if h.adapter.info().oauth.linking.owner_param().is_some() {
        assert!(matches!(&result, Ok(v) if !v.is_empty()), "{result:?}");
        return;
    }
    assert!(
        matches!(result, Err(OemError::Unauthorized { .. })),
        "{result:?}"
    );
}

/// A server error is `Upstream` with its status (and, for a read, not delivered).
pub async fn server_errors_are_upstream(h: &Harness) {
    use crate::mock::{Action, Fault};
    h.mock.faults().add(
        Fault::on(
            "/",
            Action::Status {
                status: 503,
                body: None,
                retry_after: None,
            },
        )
        .times(1),
    );
    let result = read_location(h.adapter.as_ref(), &h.call(), &h.first_vehicle()).await;
    h.mock.faults().clear();
    match result {
        Err(OemError::Upstream {
            status: 503,
            delivered,
            ..
        }) => {
            assert_eq!(
                delivered,
                crate::Delivered::No,
                "a failed read changes nothing"
            );
        }
        other => panic!("a 503 must be Upstream, got {other:?}"),
    }
}

/// A garbled answer is `InvalidResponse`, never a panic or a wrong value.
pub async fn garbled_answers_are_invalid(h: &Harness) {
    use crate::mock::{Action, Fault};
    for action in [Action::Malformed, Action::Truncated] {
        h.mock.faults().add(Fault::on("/", action.clone()).times(1));
        let result = read_location(h.adapter.as_ref(), &h.call(), &h.first_vehicle()).await;
        h.mock.faults().clear();
        assert!(
            matches!(result, Err(OemError::InvalidResponse { .. })),
            "{action:?} must be InvalidResponse, got {result:?}"
        );
    }
}

/// The OEM's own rate-limit style is `RateLimited` with the wait it announces.
pub async fn rate_limits_are_recognized(h: &Harness) {
    let announced = h.mock.limit_next();
    let result = h.adapter.vehicles(&h.call()).await;
    h.mock.faults().clear();
    assert_eq!(
        result.map(|_| ()),
        Err(OemError::RateLimited {
            retry_after: announced
        }),
        "the OEM's rate-limit answer"
    );
}

/// Declared capabilities match behaviour where the suite can tell: no `Wake`, then
/// `wake` answers `NotCapable`.
pub async fn capabilities_match(h: &Harness) {
    if !h.adapter.info().can(Capability::Wake) {
        let result = h.adapter.wake(&h.call(), &h.first_vehicle()).await;
        assert!(
            matches!(result, Err(OemError::NotCapable { .. })),
            "{result:?}"
        );
    }
}

/// Every check, in an order that leaves the mock as it found it where it can.
pub async fn run_all(h: &Harness) {
    lists_vehicles(h).await;
    locates(h).await;
    locks_and_unlocks(h).await;
    handles_sleep(h).await;
    reports_refusal(h).await;
    unknown_vehicle(h).await;
    server_errors_are_upstream(h).await;
    garbled_answers_are_invalid(h).await;
    rate_limits_are_recognized(h).await;
    capabilities_match(h).await;
    expired_token(h).await;
    commands_are_never_repeated_blindly(h).await;
    pins_are_asked_for(h).await;
    pushes_are_verified(h);
    every_request_has_a_route(h);
}

/// An OEM that pushes: the adapter reads a push the mock signs into the car's state,
/// and refuses one that is unsigned, signed with another secret, or altered. An OEM
/// that pushes nothing has no push path either.
pub fn pushes_are_verified(h: &Harness) {
    let v = h.first_vehicle();
    let adapter = h.adapter.as_ref();
    let Some(d) = h.mock.push_delivery(&v.oem_id) else {
        let nothing = adapter.push(&http::HeaderMap::new(), b"{}", &crate::Secret::new("s"));
        assert_eq!(
            nothing,
            Err(crate::PushError::NotCapable),
            "a push path without pushes"
        );
        return;
    };
    for locked in [false, true] {
        h.mock.set_locked(&v.oem_id, locked);
        let d = h.mock.push_delivery(&v.oem_id).expect("a push");
        let read = adapter.push(&d.headers, &d.body, &crate::Secret::new(d.secret.as_str()));
        let Ok(crate::Pushed::States { states, .. }) = read else {
            panic!("a signed push must read: {read:?}");
        };
        let s = states
            .iter()
            .find(|s| s.oem_id == v.oem_id)
            .expect("the car's state");
        let security = s.security.as_ref().expect("the pushed lock state");
        assert_eq!(security.locked, Some(locked), "the pushed lock state");
        assert!(
            security.recorded_at.is_some(),
            "a pushed state carries its time"
        );
    }
    let unverified = |r: Result<crate::Pushed, crate::PushError>| {
        assert!(matches!(r, Err(crate::PushError::Unverified(_))), "{r:?}");
    };
    let secret = crate::Secret::new(d.secret.as_str());
    unverified(adapter.push(&http::HeaderMap::new(), &d.body, &secret));
    unverified(adapter.push(&d.headers, &d.body, &crate::Secret::new("another secret")));
    let mut altered = d.body.clone();
    let last = altered
        .iter()
        .rposition(|b| b.is_ascii_alphanumeric())
        .expect("a body");
    altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
    unverified(adapter.push(&d.headers, &altered, &secret));
}

/// Every request the adapter made against its mock during the suite is a route of its
/// [`crate::Exchanges`] table (the mock's controls and the OAuth server aside), so
/// `keyway replay` can tell each captured request's operation and answer every request
/// of an operation.
pub fn every_request_has_a_route(h: &Harness) {
    let info = h.adapter.info();
    let unknown: Vec<String> = h
        .mock
        .journal()
        .entries()
        .into_iter()
        .filter(|e| !e.path.starts_with("/__mock"))
        .filter(|e| e.path != info.oauth.token_path && e.path != info.oauth.authorize_path)
        .map(|e| match e.query {
            Some(q) => format!("{} {}?{q}", e.method, e.path),
            None => format!("{} {}", e.method, e.path),
        })
        .filter(|r| {
            let (method, path) = r.split_once(' ').unwrap_or_default();
            info.exchanges.route(method, path).is_none()
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "{}: requests without a route in its exchanges table: {unknown:?}",
        info.oem
    );
}

/// The no-double-send rule at the adapter's edge: the request that carries a command is
/// never marked safe to repeat, and a 5xx, a connection reset or a timeout (the request
/// went out, its answer never came) on it leaves the outcome `Delivered::Unknown` (so
/// the core reconciles instead of sending again).
pub async fn commands_are_never_repeated_blindly(h: &Harness) {
    use crate::mock::{Action, Fault};
    use std::sync::{Arc, Mutex};
    let v = h.first_vehicle();
    h.mock.set_awake(&v.oem_id);
    h.mock.set_refusing(&v.oem_id, false);
    // A first command warms whatever the adapter keeps (sessions, paths).
    drive(h.adapter.as_ref(), &h.call(), &v, Command::Lock)
        .await
        .expect("a warm-up lock");
    let seen: Arc<Mutex<Vec<(String, String, bool)>>> = Arc::default();
    let (inner, log) = (h.http.clone(), seen.clone());
    let recording = crate::Http::from_fn(move |req: http::Request<bytes::Bytes>| {
        let idempotent = req.extensions().get::<crate::http::Idempotent>().is_some();
        log.lock().unwrap_or_else(|e| e.into_inner()).push((
            req.method().to_string(),
            req.uri().path().to_string(),
            idempotent,
        ));
        let inner = inner.clone();
        async move { inner.send(req).await }
    });
    let cx = Call {
        http: recording,
        ..h.call()
    };
    h.adapter
        .send(&cx, &v, Command::Unlock)
        .await
        .expect("an unlock");
    let (method, path, idempotent) = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .rev()
        .find(|(m, _, _)| m == "POST" || m == "PUT")
        .cloned()
        .expect("a command is sent with POST or PUT");
    assert!(
        !idempotent,
        "{method} {path} carries a command: never marked idempotent"
    );
    for action in [
        Action::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
        Action::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
        Action::ResetAfter,
    ] {
        h.mock
            .faults()
            .add(Fault::on(&path, action.clone()).times(1));
        let result = h.adapter.send(&h.call(), &v, Command::Unlock).await;
        h.mock.faults().clear();
        match result {
            Err(e) => assert_eq!(
                e.delivered(),
                crate::Delivered::Unknown,
                "{action:?} on {path}: the command may have run, got {e:?}"
            ),
            Ok(s) => panic!("{action:?} on {path} must not read as sent: {s:?}"),
        }
    }
    // A timeout: the command reached the OEM (and may run) but its answer never came.
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (inner, lost, count) = (h.http.clone(), path.clone(), sent.clone());
    let answer_lost = crate::Http::from_fn(move |req: http::Request<bytes::Bytes>| {
        let inner = inner.clone();
        let lose = req.uri().path() == lost && req.method() != http::Method::GET;
        if lose {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        async move {
            let answer = inner.send(req).await;
            if lose {
                return Err(crate::TransportError::Timeout);
            }
            answer
        }
    });
    let cx = Call {
        http: answer_lost,
        ..h.call()
    };
    match h.adapter.send(&cx, &v, Command::Unlock).await {
        Err(e) => assert_eq!(
            e.delivered(),
            crate::Delivered::Unknown,
            "a timeout on {path}: the command may have run, got {e:?}"
        ),
        Ok(s) => panic!("a timeout on {path} must not read as sent: {s:?}"),
    }
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a command whose answer was lost is not sent again by the adapter"
    );
}

/// A fixture as a damaged answer arrives: bytes overwritten (`flips`: position modulo
/// the length, new byte), then cut at `cut`. Every adapter's parser property test feeds
/// its fixtures through this; no parser may panic on the result.
pub fn mutate(mut body: Vec<u8>, cut: usize, flips: &[(usize, u8)]) -> Vec<u8> {
    for &(at, byte) in flips {
        if !body.is_empty() {
            let i = at % body.len();
            body[i] = byte;
        }
    }
    body.truncate(cut.min(body.len()));
    body
}
