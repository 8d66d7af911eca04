//! The store suite: one set of tests every [`Store`] must pass, run against the
//! embedded SQLite store and against PostgreSQL (a private schema per test).

use crate::common;

use std::sync::Arc;

use keyway::store::*;
use keyway_adapter::Command;
use time::Duration;

use common::PgSchema;

/// Now, by the wall clock the stores under test stamp with.
fn now() -> time::OffsetDateTime {
    keyway::clock::Clock::wall().now()
}

/// Runs each listed suite test against both stores.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = keyway::store::SqlStore::memory().await.unwrap();
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let schema = super::PgSchema::new();
                    let store = keyway::store::SqlStore::postgres(&schema.url(), 4, std::time::Duration::from_secs(5)).await.unwrap();
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

suite!(
    idempotency_claim_returns_the_first_command,
    command_round_trip_and_pending_list,
    a_link_state_is_taken_once,
    rediscovered_vehicle_keeps_its_id,
    accounts_tokens_compare_and_swap,
    a_lease_has_one_holder_until_it_lapses,
    a_lapsed_command_is_claimed_by_one_replica,
    vehicles_page_by_id_and_remember_lock_state,
    grants_round_trip_and_unlocks_are_counted_atomically,
    events_are_ordered_and_queue_their_deliveries,
    the_audit_chain_links_every_row,
    a_finished_command_writes_outcome_audit_and_event_together,
    each_tenant_numbers_its_own_events,
    the_write_probe_upserts_one_row_per_replica,
);

fn lease(holder: &str, secs: i64) -> Lease {
    Lease {
        holder: holder.into(),
        until: now() + Duration::seconds(secs),
    }
}

fn command(id: &str) -> CommandRecord {
    let t = now();
    CommandRecord {
        id: id.into(),
        vehicle_id: "veh_1".into(),
        action: Command::Lock,
        status: CommandStatus::Pending,
        caller: "svc".into(),
        tenant: "svc".into(),
        reserved: false,
        reference: Some("order-1".into()),
        request_id: None,
        sent_at: None,
        oem_handle: None,
        error_code: None,
        error_detail: None,
        error_members: serde_json::Map::new(),
        created_at: t,
        updated_at: t,
        completed_at: None,
        observed: None,
        retry_at: None,
        acknowledged: None,
    }
}

fn vehicle(id: &str, oem_id: &str) -> VehicleRecord {
    VehicleRecord {
        id: id.into(),
        account_id: "acct_1".into(),
        tenant: "svc".into(),
        oem: "tesla".into(),
        oem_id: oem_id.into(),
        vin: Some(oem_id.into()),
        display_name: Some("A".into()),
        model: None,
        year: Some(2020),
        last_locked: None,
        capabilities: None,
    }
}

async fn idempotency_claim_returns_the_first_command(s: Arc<dyn Store>) {
    let claim = IdempotencyClaim {
        caller: "svc".into(),
        key: "k1".into(),
        fingerprint: "f1".into(),
    };
    let me = lease("r1", 30);
    assert!(matches!(
        s.create_command(&command("cmd_a"), Some(&claim), &me, None)
            .await
            .unwrap(),
        Created::New
    ));
    match s
        .create_command(&command("cmd_b"), Some(&claim), &me, None)
        .await
        .unwrap()
    {
        Created::Existing {
            command,
            fingerprint,
        } => {
            assert_eq!(command.id, "cmd_a");
            assert_eq!(fingerprint, "f1");
        }
        Created::New => panic!("key claimed twice"),
    }
    assert!(s.command("cmd_b").await.unwrap().is_none());
    assert_eq!(
        s.command_for_key("svc", "k1").await.unwrap().as_deref(),
        Some("cmd_a")
    );
    // Another caller's identical key is its own.
    let other = IdempotencyClaim {
        caller: "other".into(),
        ..claim
    };
    assert!(matches!(
        s.create_command(&command("cmd_c"), Some(&other), &me, None)
            .await
            .unwrap(),
        Created::New
    ));
}

async fn command_round_trip_and_pending_list(s: Arc<dyn Store>) {
    let mut c = command("cmd_x");
    s.create_command(&c, None, &lease("r1", 30), None)
        .await
        .unwrap();
    assert_eq!(s.command("cmd_x").await.unwrap().as_ref(), Some(&c));
    // Pending: a process owning the store at start takes it.
    let far = now() + Duration::days(1);
    assert_eq!(
        s.claim_commands(&lease("r2", 30), far).await.unwrap().len(),
        1
    );
    c.status = CommandStatus::Failed;
    c.sent_at = Some(now());
    c.oem_handle = Some(keyway_adapter::Pending {
        handle: "x".into(),
        poll_after_ms: 500,
    });
    c.completed_at = Some(now());
    // The error as the caller was told it: its code and its problem members.
    c.error_code = Some(keyway::error::Code::VirtualKeyNotPaired);
    c.error_detail = Some("pair the key".into());
    c.error_members
        .insert("pairing_url".into(), "https://tesla.com/_ak/example".into());
    s.update_command(&c).await.unwrap();
    assert_eq!(s.command("cmd_x").await.unwrap().as_ref(), Some(&c));
    assert!(
        s.claim_commands(&lease("r2", 30), far)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_link_state_is_taken_once(s: Arc<dyn Store>) {
    let t = now();
    let l = LinkState {
        state_hash: "h".into(),
        pin: None,
        oem: "tesla".into(),
        caller: "svc".into(),
        verifier: "kw1.k1.x".into(),
        redirect_uri: "http://127.0.0.1:1/v1/oauth/callback".into(),
        created_at: t,
        expires_at: t + Duration::minutes(10),
    };
    s.put_link_state(&l).await.unwrap();
    assert_eq!(s.take_link_state("h").await.unwrap(), Some(l));
    assert_eq!(s.take_link_state("h").await.unwrap(), None);
}

async fn rediscovered_vehicle_keeps_its_id(s: Arc<dyn Store>) {
    let v = vehicle("veh_first", "VIN1");
    assert_eq!(s.upsert_vehicle(&v).await.unwrap().unwrap().id, "veh_first");
    // Another tenant's link never takes the car over.
    let stolen = VehicleRecord {
        id: "veh_other".into(),
        tenant: "intruder".into(),
        account_id: "acct_other".into(),
        ..v.clone()
    };
    assert_eq!(s.upsert_vehicle(&stolen).await.unwrap(), None);
    assert_eq!(
        s.tenant_vehicle(&"intruder".into(), "veh_first")
            .await
            .unwrap(),
        None
    );
    let again = VehicleRecord {
        id: "veh_second".into(),
        display_name: Some("B".into()),
        // What the OEM says of this car alone is kept with it.
        capabilities: Some(vec![keyway_adapter::Capability::Locate]),
        ..v
    };
    let stored = s.upsert_vehicle(&again).await.unwrap().unwrap();
    assert_eq!(
        stored.capabilities,
        Some(vec![keyway_adapter::Capability::Locate])
    );
    assert_eq!(
        s.tenant_vehicle(&"svc".into(), "veh_first")
            .await
            .unwrap()
            .as_ref(),
        Some(&stored)
    );
    assert_eq!(stored.id, "veh_first");
    assert_eq!(stored.display_name.as_deref(), Some("B"));
    assert_eq!(s.vehicles().await.unwrap().len(), 1);
    assert_eq!(
        s.vehicle_by_oem_id("tesla", "VIN1").await.unwrap(),
        Some(stored)
    );
}

async fn accounts_tokens_compare_and_swap(s: Arc<dyn Store>) {
    let a = AccountRecord {
        id: "acct_1".into(),
        oem: "tesla".into(),
        owner: "svc".into(),
        status: AccountStatus::Active,
        tokens: StoredTokens {
            access_token: Some("a1".into()),
            access_expires_at: Some(now()),
            access_refresh_at: None,
            refresh_token: None,
        },
        created_at: now(),
    };
    s.put_account(&a).await.unwrap();
    s.upsert_vehicle(&vehicle("veh_1", "VIN1")).await.unwrap();
    let new = StoredTokens {
        access_token: Some("a2".into()),
        refresh_token: Some("r2".into()),
        ..a.tokens.clone()
    };
    // NULL refresh tokens compare equal; a stale expectation does not.
    assert!(s.replace_tokens("acct_1", &a.tokens, &new).await.unwrap());
    assert!(!s.replace_tokens("acct_1", &a.tokens, &new).await.unwrap());
    let stored = s.account("acct_1").await.unwrap().unwrap();
    assert_eq!(stored.tokens, new);
    s.set_account_status("acct_1", AccountStatus::ReauthorizationRequired)
        .await
        .unwrap();
    assert_eq!(
        s.accounts().await.unwrap()[0].status,
        AccountStatus::ReauthorizationRequired
    );
    assert_eq!(s.account_vehicle_ids("acct_1").await.unwrap(), ["veh_1"]);
    assert!(s.delete_account("acct_1").await.unwrap());
    assert!(!s.delete_account("acct_1").await.unwrap());
    assert!(s.vehicles().await.unwrap().is_empty());
}

async fn a_lease_has_one_holder_until_it_lapses(s: Arc<dyn Store>) {
    assert!(s.try_lease("refresh:a", &lease("r1", 30)).await.unwrap());
    assert!(!s.try_lease("refresh:a", &lease("r2", 30)).await.unwrap());
    // The holder renews; others still wait.
    assert!(s.try_lease("refresh:a", &lease("r1", 60)).await.unwrap());
    assert!(!s.try_lease("refresh:a", &lease("r2", 30)).await.unwrap());
    // A released lease is free.
    s.release_lease("refresh:a", "r2").await.unwrap();
    assert!(!s.try_lease("refresh:a", &lease("r2", 30)).await.unwrap());
    s.release_lease("refresh:a", "r1").await.unwrap();
    assert!(s.try_lease("refresh:a", &lease("r2", 30)).await.unwrap());
    // A lapsed lease (its holder died) is taken over.
    assert!(s.try_lease("refresh:b", &lease("r1", -1)).await.unwrap());
    assert!(s.try_lease("refresh:b", &lease("r2", 30)).await.unwrap());
    assert!(!s.try_lease("refresh:b", &lease("r1", 30)).await.unwrap());
}

async fn a_lapsed_command_is_claimed_by_one_replica(s: Arc<dyn Store>) {
    s.create_command(&command("cmd_live"), None, &lease("r1", 30), None)
        .await
        .unwrap();
    s.create_command(&command("cmd_dead"), None, &lease("r1", -1), None)
        .await
        .unwrap();
    let mut done = command("cmd_done");
    s.create_command(&done, None, &lease("r1", -1), None)
        .await
        .unwrap();
    done.status = CommandStatus::Failed;
    s.update_command(&done).await.unwrap();

    // Only the pending command whose lease lapsed is taken, by one claimer.
    let (r2, r3) = (lease("r2", 30), lease("r3", 30));
    let (a, b) = tokio::join!(s.claim_commands(&r2, now()), s.claim_commands(&r3, now()));
    let mut ids: Vec<String> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|c| c.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["cmd_dead"]);
    // The new holder renews it; the old one cannot.
    assert!(
        s.renew_command_lease("cmd_dead", &lease("r2", 30))
            .await
            .unwrap()
            || s.renew_command_lease("cmd_dead", &lease("r3", 30))
                .await
                .unwrap()
    );
    assert!(
        !s.renew_command_lease("cmd_dead", &lease("r1", 30))
            .await
            .unwrap()
    );
    // A clean shutdown frees every lease at once: its commands' and its named ones (a car).
    assert!(
        s.try_lease("car:veh_shutdown", &lease("r1", 30))
            .await
            .unwrap()
    );
    assert!(
        !s.try_lease("car:veh_shutdown", &lease("r2", 30))
            .await
            .unwrap()
    );
    s.release_all("r1").await.unwrap();
    assert!(
        s.try_lease("car:veh_shutdown", &lease("r2", 30))
            .await
            .unwrap()
    );
    let taken = s.claim_commands(&lease("r2", 30), now()).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, "cmd_live");
    // A process owning an unshared store takes everything at start.
    let far = now() + Duration::days(1);
    assert_eq!(
        s.claim_commands(&lease("r9", 30), far).await.unwrap().len(),
        2
    );
}

async fn vehicles_page_by_id_and_remember_lock_state(s: Arc<dyn Store>) {
    for i in 0..5 {
        s.upsert_vehicle(&vehicle(&format!("veh_{i}"), &format!("VIN{i}")))
            .await
            .unwrap();
    }
    assert!(
        s.vehicles_page(&"intruder".into(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let page = s.vehicles_page(&"svc".into(), None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["veh_0", "veh_1"]
    );
    let page = s
        .vehicles_page(&"svc".into(), Some("veh_1"), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 3);
    // A succeeded command leaves its lock state on the vehicle; a failed one does not.
    for (id, action, status, expected) in [
        ("cmd_l", Command::Lock, CommandStatus::Succeeded, true),
        ("cmd_u", Command::Unlock, CommandStatus::Succeeded, false),
        ("cmd_f", Command::Lock, CommandStatus::Failed, false),
    ] {
        let mut c = CommandRecord {
            vehicle_id: "veh_3".into(),
            action,
            ..command(id)
        };
        s.create_command(&c, None, &lease("r1", 30), None)
            .await
            .unwrap();
        c.status = status;
        c.completed_at = Some(now());
        let entry = AuditEntry {
            at: now(),
            actor: "svc".into(),
            action: "command".into(),
            decision: status.as_str().into(),
            vehicle_id: Some("veh_3".into()),
            grant_id: None,
            command_id: Some(id.into()),
            detail: None,
        };
        s.finish_command(&c, &entry, &event("command.succeeded"), &[])
            .await
            .unwrap();
        let (locked, _) = s
            .vehicle("veh_3")
            .await
            .unwrap()
            .unwrap()
            .last_locked
            .unwrap();
        assert_eq!(locked, expected, "after {id}");
    }
}

fn grant_record(id: &str) -> GrantRecord {
    let t = now();
    GrantRecord {
        id: id.into(),
        vehicle_id: "veh_1".into(),
        grantee: "courier".into(),
        created_by: "svc".into(),
        tenant: "svc".into(),
        purpose: Some("parcel".into()),
        not_before: t,
        not_after: t + Duration::minutes(30),
        max_unlocks: 2,
        unlocks_used: 0,
        geofence: Some(Geofence {
            latitude: 52.520008,
            longitude: 13.404954,
            radius_m: 150.5,
        }),
        relock_after_s: 120,
        revoked_at: None,
        completed_at: None,
        relock_state: RelockState::None,
        relock_due_at: None,
        relock_attempts: 0,
        relocked_at: None,
        created_at: t,
        updated_at: t,
    }
}

async fn grants_round_trip_and_unlocks_are_counted_atomically(s: Arc<dyn Store>) {
    let mut g = grant_record("grt_1");
    s.insert_grant(&g).await.unwrap();
    assert_eq!(s.grant("grt_1").await.unwrap().as_ref(), Some(&g));
    // Two unlocks allowed, however many ask at once.
    let takes = futures_util::future::join_all((0..5).map(|_| s.take_grant_unlock("grt_1"))).await;
    assert_eq!(
        takes.into_iter().filter(|t| *t.as_ref().unwrap()).count(),
        2
    );
    s.refund_grant_unlock("grt_1").await.unwrap();
    assert_eq!(s.grant("grt_1").await.unwrap().unwrap().unlocks_used, 1);
    // An owed relock is found when due, not before.
    g.unlocks_used = 1;
    g.relock_state = RelockState::Due;
    g.relock_due_at = Some(now() + Duration::seconds(60));
    s.update_grant(&g).await.unwrap();
    assert!(s.due_relocks(now()).await.unwrap().is_empty());
    let due = s.due_relocks(now() + Duration::seconds(61)).await.unwrap();
    assert_eq!(due, vec![g.clone()]);
    // A revoked grant gives no unlock.
    g.revoked_at = Some(now());
    s.update_grant(&g).await.unwrap();
    assert!(!s.take_grant_unlock("grt_1").await.unwrap());
    s.insert_grant(&GrantRecord {
        geofence: None,
        ..grant_record("grt_2")
    })
    .await
    .unwrap();
    assert!(
        s.grants_for_vehicle(&"intruder".into(), &"veh_1".into())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.visible_grant(&"intruder".into(), "someone", "grt_1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.visible_grant(&"intruder".into(), "courier", "grt_1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.visible_grant(&"svc".into(), "x", "grt_1")
            .await
            .unwrap()
            .is_some()
    );
    let both = s
        .grants_for_vehicle(&"svc".into(), &"veh_1".into())
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(
        both.iter().find(|g| g.id == "grt_2").unwrap().geofence,
        None
    );
}

fn event(kind: &str) -> EventRecord {
    EventRecord {
        seq: 0,
        id: keyway::ids::new("evt"),
        kind: keyway::store::Kind::parse(kind).unwrap(),
        tenant: "svc".into(),
        vehicle_id: Some("veh_1".into()),
        grant_id: None,
        command_id: Some("cmd_1".into()),
        data: "{\"a\":1}".into(),
        created_at: now(),
    }
}

/// A tenant sees its events numbered 1, 2, 3… whatever other tenants did in between:
/// no gap tells it another tenant's volume.
async fn each_tenant_numbers_its_own_events(s: Arc<dyn Store>) {
    for tenant in ["a", "b", "b", "a", "b"] {
        let e = EventRecord {
            tenant: tenant.into(),
            ..event("command.succeeded")
        };
        s.append_event(&e, &[]).await.unwrap();
    }
    let seqs = |list: Vec<EventRecord>| list.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(s.events_after(&"a".into(), None, 0, 10).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        seqs(s.events_after(&"b".into(), None, 0, 10).await.unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(s.events_after(&"b".into(), None, 1, 10).await.unwrap()),
        [2, 3]
    );
}

/// The readiness probe is a write (one row per replica, written again and again).
async fn the_write_probe_upserts_one_row_per_replica(s: Arc<dyn Store>) {
    s.ping_write("rep_1").await.unwrap();
    s.ping_write("rep_1").await.unwrap();
    s.ping_write("rep_2").await.unwrap();
}

async fn events_are_ordered_and_queue_their_deliveries(s: Arc<dyn Store>) {
    let w = WebhookRecord {
        id: "whk_1".into(),
        url: "http://127.0.0.1:9/hook".into(),
        secret: "sealed".into(),
        types: EventTypes::All,
        created_by: "svc".into(),
        tenant: "svc".into(),
        vehicles: Some(vec!["veh_1".into(), "veh_2".into()]),
        created_at: now(),
    };
    s.insert_webhook(&w).await.unwrap();
    assert_eq!(s.webhooks().await.unwrap(), vec![w]);
    let seqs = futures_util::future::join_all((0..10).map(|_| {
        let s = s.clone();
        async move {
            s.append_event(&event("vehicle.state_changed"), &["whk_1".to_string()])
                .await
                .unwrap()
        }
    }))
    .await;
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 10);
    assert!(
        s.events_after(&"intruder".into(), None, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let only: &[String] = &["veh_9".into()];
    assert!(
        s.events_after(&"svc".into(), Some(only), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let mine: &[String] = &["veh_9".into(), "veh_1".into()];
    assert_eq!(
        s.events_after(&"svc".into(), Some(mine), 0, 100)
            .await
            .unwrap()
            .len(),
        10
    );
    let all = s.events_after(&"svc".into(), None, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), sorted);
    let tail = s
        .events_after(&"svc".into(), None, sorted[6], 100)
        .await
        .unwrap();
    assert_eq!(tail.len(), 3);
    assert_eq!(s.event(sorted[0]).await.unwrap().unwrap().data, "{\"a\":1}");

    // Every event queued one delivery; two claimers split them, none twice.
    let until = now() + Duration::seconds(30);
    let (a, b) = tokio::join!(
        s.claim_deliveries(now(), until, 6),
        s.claim_deliveries(now(), until, 6)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<_> = a.iter().chain(&b).map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), a.len() + b.len());
    // Under PostgreSQL a claimer that raced the other may get none this round.
    assert!((6..=10).contains(&ids.len()), "{ids:?}");
    let mut d = a.iter().chain(&b).next().unwrap().clone();
    d.status = keyway::store::DeliveryStatus::Delivered;
    d.attempts = 1;
    d.last_status = Some(200);
    s.update_delivery(&d).await.unwrap();
    assert!(
        s.deliveries(&"intruder".into(), "whk_1", 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.tenant_webhooks(&"intruder".into())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!s.delete_webhook(&"intruder".into(), "whk_1").await.unwrap());
    let log = s.deliveries(&"svc".into(), "whk_1", 100).await.unwrap();
    assert_eq!(log.len(), 10);
    assert!(log.contains(&d));
    // Deleting the subscription drops what is still pending.
    assert!(s.delete_webhook(&"svc".into(), "whk_1").await.unwrap());
    assert!(
        s.claim_deliveries(now() + Duration::hours(1), until, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_audit_chain_links_every_row(s: Arc<dyn Store>) {
    let entry = |i: usize| AuditEntry {
        at: now(),
        actor: format!("svc{i}"),
        action: "command.unlock".into(),
        decision: "accepted".into(),
        vehicle_id: Some("veh_1".into()),
        grant_id: None,
        command_id: Some(format!("cmd_{i}").into()),
        detail: None,
    };
    let rows = futures_util::future::join_all((0..8).map(|i| {
        let (s, e) = (s.clone(), entry(i));
        async move { s.append_audit(&e).await.unwrap() }
    }))
    .await;
    assert_eq!(rows.len(), 8);
    let log = s.audit_log().await.unwrap();
    assert_eq!(log.len(), 8);
    assert_eq!(log[0].prev_hash, AUDIT_GENESIS);
    for w in log.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    for r in &log {
        assert_eq!(audit_hash(&r.prev_hash, r.seq, &r.entry), r.hash);
    }
    assert_eq!(keyway::audit::verify(s.as_ref()).await.unwrap().rows, 8);
}

async fn a_finished_command_writes_outcome_audit_and_event_together(s: Arc<dyn Store>) {
    s.upsert_vehicle(&vehicle("veh_1", "VIN1")).await.unwrap();
    let audit = |decision: &str| AuditEntry {
        at: now(),
        actor: "svc".into(),
        action: "command.lock".into(),
        decision: decision.into(),
        vehicle_id: Some("veh_1".into()),
        grant_id: None,
        command_id: Some("cmd_f".into()),
        detail: None,
    };
    let claim = IdempotencyClaim {
        caller: "svc".into(),
        key: "k".into(),
        fingerprint: "f".into(),
    };
    let mut c = command("cmd_f");
    let me = lease("r1", 30);
    s.create_command(&c, Some(&claim), &me, Some(&audit("accepted")))
        .await
        .unwrap();
    // A replay writes no second audit row.
    let replay = command("cmd_g");
    s.create_command(&replay, Some(&claim), &me, Some(&audit("accepted")))
        .await
        .unwrap();
    c.status = CommandStatus::Succeeded;
    c.completed_at = Some(now());
    let seq = s
        .finish_command(&c, &audit("succeeded"), &event("command.succeeded"), &[])
        .await
        .unwrap();
    assert_eq!(
        s.command("cmd_f").await.unwrap().unwrap().status,
        CommandStatus::Succeeded
    );
    let locked = s.vehicle("veh_1").await.unwrap().unwrap().last_locked;
    assert_eq!(locked, Some((true, c.completed_at.unwrap())));
    let decisions: Vec<String> = s
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.decision)
        .collect();
    assert_eq!(decisions, ["accepted", "succeeded"]);
    assert_eq!(
        s.events_after(&"svc".into(), None, 0, 10).await.unwrap()[0].seq,
        seq
    );
    assert!(
        s.visible_command(&"intruder".into(), "x", &c.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.visible_command(&"svc".into(), "x", &c.id)
            .await
            .unwrap()
            .is_some()
    );
}
