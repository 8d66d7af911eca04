//! A deterministic simulation of the command lifecycle (FoundationDB's simulation
//! testing and TigerBeetle's VOPR are the models).
//!
//! keyway's commands, grants and relocks run in one process on paused tokio time
//! against four in-process OEMs (`sim/`): one asynchronous like BMW, one synchronous like
//! Tesla, an aggregator route like Smartcar (synchronous, no wake-up, the make's
//! lag and late deliveries on top of its own), and one like Škoda that takes commands
//! and never reports their outcome (keyway decides from the car), in front of the mock kit's cars, whose state lags, whose commands queue while
//! they sleep, arrive late or twice. One seed drives every choice: answers lost before
//! or after the car applied the command, 5xx, 429s, slow answers, sleeping cars, and
//! keyway crashing at an arbitrary moment — every call it makes after that hangs, as if
//! the process had died between two awaits — and restarting on the same store.
//!
//! After each seed it checks:
//! - (a) no OEM received a command more often than keyway sent it, and no unlock was
//!   sent while an earlier unlock of the car could still execute;
//! - (b) `succeeded` only if the car did it (or already stood so when it arrived),
//!   `failed` only if the car never did it — whatever the OEMs' and cars' clocks say
//!   (each runs off keyway's by a seeded offset and drift, `sim::SimClock`);
//! - (c) every grant whose relock keyway reports done ends with its car locked — also
//!   after a late unlock;
//! - (d) no command is still pending;
//! - (e) the audit chain verifies;
//! - (f) a caller waiting for an outcome is told only what is stored — also while the
//!   store's disk is full or a write fails at random (`sim::store::Disk`); (d) then says
//!   no outcome was lost once the disk has room again;
//! - (g) a lock-state read right after a confirmed command does not show the state from
//!   before it (the OEM's older snapshot), unless the car changed meanwhile;
//! - (h) watching (callers watch every car; grants' cars are watched) never wakes a car;
//! - (i) each change of a watched car's lock is emitted once, in one chain, and the kept
//!   state ends as the car stands;
//! - (j) a car linked directly and through the aggregator (the full world's fourth car)
//!   takes commands through its first-linked route only, whichever route its reads take
//!   (`sim::SimOem::send` records a command through another as a broken promise).
//!
//! `cargo nextest run --test e2e simulation` runs 1,000 seeds. A soak (under `cargo test`:
//! nextest stops a test after 180 s): `KEYWAY_SIM_SEEDS=100000 KEYWAY_SIM_FIRST=5000
//! cargo test --release --test e2e simulation::soak -- --nocapture`. A failing seed prints
//! itself and its trace; run it alone with `KEYWAY_SIM_SEED=N cargo test --test e2e
//! simulation::one_seed -- --nocapture` (`KEYWAY_SIM_CLASSIC=1`: in the two-OEM world). `KEYWAY_SIM_PRECHECK=1` gives the sync OEM a
//! Volvo-like pre-check (a measurement; see `sim::precheck`).

use crate::sim;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyway::auth::{Caller, Scope};
use keyway::commands::{Request, Submission, Unguarded};
use keyway::config::Config;
use keyway::gateway::Gateway;
use keyway::grants::NewGrant;
use keyway::store::{
    AccountRecord, AccountStatus, CommandStatus, Lease, RelockState, SqlStore, Store,
    VehicleRecord, WatchRecord,
};
use keyway_adapter::mock::garage::Car;
use keyway_adapter::{Adapter, Command, CommandMode, Stamps};
use sim::store::{Disk, SimStore};
use sim::{Rng, SimOem, Spinner, Style, World};

const TENANT: &str = "delivery";

const BMW: Style = Style {
    mode: CommandMode::Async,
    stage: Duration::from_secs(2),
    max_lag: Duration::from_secs(20),
    max_late: Duration::from_secs(10),
    max_queue: Duration::from_secs(60),
    stamps: Stamps::Server,
    wakes: false,
};

const TESLA: Style = Style {
    mode: CommandMode::Sync,
    stage: Duration::ZERO,
    max_lag: Duration::from_secs(5),
    max_late: Duration::from_secs(8),
    max_queue: Duration::ZERO,
    stamps: Stamps::Car,
    wakes: true,
};

/// An aggregator route (Smartcar-like): synchronous, no wake-up (a sleeping car's
/// answer is "asleep"), the make's cloud behind it lagging longer and delivering later
/// than a direct OEM's, its stamps the car's.
const SMARTCAR: Style = Style {
    mode: CommandMode::Sync,
    stage: Duration::ZERO,
    max_lag: Duration::from_secs(30),
    max_late: Duration::from_secs(15),
    max_queue: Duration::ZERO,
    stamps: Stamps::Car,
    wakes: false,
};

/// An OEM that takes commands and reports no outcome (Škoda-like: `202`, the outcome
/// only over a channel keyway does not read): keyway decides from the car's lock state.
/// Its backend queues for a sleeping car; the car's clock stamps its states.
const SKODA: Style = Style {
    mode: CommandMode::Observed,
    stage: Duration::from_secs(2),
    max_lag: Duration::from_secs(15),
    max_late: Duration::from_secs(10),
    max_queue: Duration::from_secs(30),
    stamps: Stamps::Car,
    wakes: false,
};

/// The simulated OEMs and their styles.
const OEMS: [(&str, Style); 4] = [
    ("bmw", BMW),
    ("tesla", TESLA),
    ("smartcar", SMARTCAR),
    ("skoda", SKODA),
];

/// The cars: per OEM one that grants use and one that callers command directly.
type Cars = &'static [(&'static str, &'static str)];

/// The world a seed plays in: every car, or (for the seeds found before the aggregator
/// route joined) the two-OEM world they were found in, in which they play as they did.
const CLASSIC: Cars = CARS.split_at(4).0;

const CARS: [(&str, &str); 8] = [
    ("bmw", "WBASIM00000000001"),
    ("bmw", "WBASIM00000000002"),
    ("tesla", "5YJSIM00000000003"),
    ("tesla", "5YJSIM00000000004"),
    ("smartcar", "SADSIM00000000005"),
    ("smartcar", "SADSIM00000000006"),
    ("skoda", "TMBSIM00000000007"),
    ("skoda", "TMBSIM00000000008"),
];

fn config(dir: &std::path::Path) -> Config {
    let toml = format!(
        r#"
store = "sqlite://{}/unused.db"
[crypto.keys]
k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[auth]
issuer = "sim"
hs256_secret = "0123456789abcdef0123456789abcdef"
[commands]
command_timeout = "1m"
max_poll_interval = "5s"
wake_timeout = "30s"
wake_poll = "2s"
max_queued_per_vehicle = 100
[cluster]
lease = "30s"
sweep = "10s"
[grants]
tick = "10s"
relock_max_attempts = 4
relock_backoff = "5s"
[watch]
tick = "5s"
min_period = "20s"
busy_period = "5s"
asleep_max_period = "1m"
[oems.bmw]
api_base_url = "http://127.0.0.1:9"
client_id = "sim"
[oems.tesla]
api_base_url = "http://127.0.0.1:9"
client_id = "sim"
[oems.smartcar]
api_base_url = "http://127.0.0.1:9"
client_id = "sim"
[oems.skoda]
api_base_url = "http://127.0.0.1:9"
client_id = "sim"
"#,
        dir.display()
    );
    let path = dir.join("keyway.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(&path).unwrap()
}

/// One keyway process.
struct Incarnation {
    gw: Arc<Gateway>,
    dead: Arc<AtomicBool>,
}

async fn start(
    config: &Config,
    base: Arc<dyn Store>,
    world: &Arc<World>,
    spinner: &Spinner,
    cluster: bool,
    disk: &Arc<Disk>,
) -> Incarnation {
    let dead = Arc::new(AtomicBool::new(false));
    let store: Arc<dyn Store> = Arc::new(SimStore::new(
        base,
        dead.clone(),
        spinner.clone(),
        cluster,
        Some(disk.clone()),
    ));
    let sims =
        OEMS.map(|(oem, style)| Arc::new(SimOem::new(oem, style, world.clone(), dead.clone())));
    let adapters: Vec<Arc<dyn Adapter>> =
        sims.iter().map(|s| s.clone() as Arc<dyn Adapter>).collect();
    let gw = Gateway::with_adapters(config.clone(), store, &adapters, world.clock.clone())
        .await
        .unwrap();
    for (sim, (oem, _)) in sims.iter().zip(OEMS) {
        sim.attach(gw.registry.get(oem).unwrap().clock.clone());
    }
    tokio::spawn(keyway::grants::run(gw.grants.clone()));
    if full(world) {
        tokio::spawn(keyway::watch::run(gw.watches.clone()));
    }
    if cluster {
        tokio::spawn(keyway::commands::sweep(
            gw.cluster.clone(),
            gw.commands.clone(),
        ));
    }
    // As `keyway serve` does: a store that refuses now is tried again.
    let _ = gw.commands.resume_retrying().await;
    Incarnation { gw, dead }
}

/// The car of the full world that is also linked through the aggregator (after its
/// direct link: commands go direct, reads may take either route).
const TWO_ROUTES: usize = 3;

async fn link(
    gw: &Gateway,
    base: &Arc<dyn Store>,
    world: &World,
    cars: Cars,
) -> Vec<VehicleRecord> {
    let mut out = Vec::new();
    for (oem, _) in OEMS {
        let id = format!("acc_{oem}");
        let granted = keyway::tokens::oauth::Granted {
            access_token: keyway_adapter::Secret::new("sim-token"),
            refresh_token: None,
            expires_in: Some(Duration::from_secs(10 * 365 * 86_400)),
        };
        let tokens = gw
            .tokens
            .seal(&id, &granted, Duration::from_secs(3600), None)
            .unwrap();
        base.put_account(&AccountRecord {
            id: id.clone(),
            oem: oem.into(),
            owner: TENANT.into(),
            status: AccountStatus::Active,
            tokens,
            created_at: world.clock.now(),
        })
        .await
        .unwrap();
    }
    for (i, (oem, vin)) in cars.iter().enumerate() {
        let v = VehicleRecord {
            id: format!("veh_{i}").into(),
            account_id: format!("acc_{oem}"),
            tenant: TENANT.into(),
            oem: (*oem).into(),
            oem_id: vin.to_string(),
            vin: Some(vin.to_string()),
            display_name: None,
            model: None,
            year: None,
            last_locked: None,
            capabilities: None,
        };
        out.push(base.upsert_vehicle(&v).await.unwrap().unwrap());
        let mut primaries = world.primaries.lock().unwrap();
        primaries.insert(vin.to_string(), oem.to_string());
    }
    // The full world's two-route car: a second record of its VIN through the aggregator's
    // account, linked after the first (the steps and watches know only the first).
    if cars.len() > CLASSIC.len() {
        let first = &out[TWO_ROUTES];
        let second = VehicleRecord {
            id: "veh_routed".into(),
            account_id: "acc_smartcar".into(),
            oem: "smartcar".into(),
            ..first.clone()
        };
        base.upsert_vehicle(&second).await.unwrap();
    }
    out
}

fn cars(seed: u64, list: Cars) -> Vec<Car> {
    let mut rng = Rng::new(seed);
    list.iter()
        .map(|(oem, vin)| {
            let style = OEMS
                .iter()
                .find(|(o, _)| o == oem)
                .map(|(_, s)| *s)
                .unwrap();
            Car {
                vin: vin.to_string(),
                model: "sim".into(),
                year: 2024,
                account: "owner".into(),
                locked: rng.chance(0.5),
                latitude: 52.5,
                longitude: 13.4,
                heading: 0.0,
                asleep: false,
                refusing: false,
                open: Default::default(),
                timing: style.car_timing(&mut rng),
            }
        })
        .collect()
}

/// What one seed did: its trace, the promises it broke, and counts of what happened.
struct Run {
    trace: Vec<String>,
    violations: Vec<String>,
    counts: BTreeMap<String, usize>,
}

/// Runs one seed to the end and checks it.
async fn run(seed: u64, list: Cars) -> Run {
    let dir = std::env::temp_dir().join(format!("keyway-sim-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let spinner = Spinner::default();
    let spin = tokio::spawn(spinner.clone().run());
    let world = World::new(seed, cars(seed, list));
    world.note(format!(
        "clocks: clouds {:?}, cars off their cloud's by {:?} ms",
        world.clouds, world.car_offsets
    ));
    let base: Arc<dyn Store> = {
        let _busy = spinner.busy();
        Arc::new(
            SqlStore::memory()
                .await
                .unwrap()
                .with_clock(world.clock.clone()),
        )
    };
    // The harness's own store calls hold the clock still too (never killed).
    let mine: Arc<dyn Store> = Arc::new(SimStore::new(
        base.clone(),
        Arc::new(AtomicBool::new(false)),
        spinner.clone(),
        false,
        None,
    ));
    let mut rng = Rng::new(seed ^ 0xC0FFEE);
    // The store's disk: in one seed of three a write fails now and then; in another one
    // of three the disk fills for a while (every write fails) and is freed again.
    let disk = Arc::new(Disk::new(
        seed ^ 0xD15C,
        if seed.is_multiple_of(3) { 0.03 } else { 0.0 },
    ));
    if seed % 3 == 2 {
        let (disk, world) = (disk.clone(), world.clone());
        let (after, lasts) = (rng.between(0, 200_000), rng.between(1_000, 120_000));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            world.note(format!("the store's disk is full for {lasts} ms"));
            disk.full.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(lasts)).await;
            world.note("the store's disk has room again".into());
            disk.full.store(false, Ordering::SeqCst);
        });
    }
    // One seed in four runs two replicas on the one store (cluster mode): one of them
    // dies and the other takes its commands and relocks over once their leases lapse.
    let cluster = seed % 4 == 1;
    let mut now = start(&config, base.clone(), &world, &spinner, cluster, &disk).await;
    let mut other = match cluster {
        true => Some(start(&config, base.clone(), &world, &spinner, cluster, &disk).await),
        false => None,
    };
    let vehicles = link(&now.gw, &mine, &world, list).await;
    // Callers watch every car for the whole run (a grant's car is watched anyway); set
    // straight in the store, whose disk may fail keyway's own writes.
    if full(&world) {
        let t = world.clock.now();
        for v in &vehicles {
            let w = WatchRecord {
                tenant: TENANT.into(),
                vehicle_id: v.id.clone(),
                until: t + time::Duration::hours(23),
                created_by: "watcher".into(),
                created_at: t,
            };
            mine.put_watch(&w).await.unwrap();
        }
    }
    let service = Caller::new(
        TENANT,
        &[
            Scope::CommandsLock,
            Scope::CommandsUnlock,
            Scope::GrantsWrite,
        ],
        None,
    );
    let courier = Caller::new("courier", &[Scope::GrantsUse], None).in_tenant(TENANT);
    let mut crashed = false;
    let steps = rng.between(6, 14);
    for step in 0..steps {
        tokio::time::sleep(Duration::from_millis(rng.between(0, 40_000))).await;
        let car = rng.between(0, list.len() as u64 - 1) as usize;
        let v = &vehicles[car];
        match rng.between(0, 9) {
            // keyway dies; alone, another process starts on the same store a little
            // later; in a cluster, the other replica carries on and takes over.
            0 if !crashed => {
                crashed = true;
                world.note(format!("step {step}: keyway crashes"));
                now.dead.store(true, Ordering::SeqCst);
                match other.take() {
                    Some(b) => now = b,
                    None => {
                        tokio::time::sleep(Duration::from_millis(rng.between(100, 90_000))).await;
                        world.note("keyway restarts".into());
                        now = start(&config, base.clone(), &world, &spinner, cluster, &disk).await;
                    }
                }
            }
            // In a cluster, the next request may reach either replica.
            9 if other.is_some() => {
                if let Some(b) = other.take() {
                    other = Some(std::mem::replace(&mut now, b));
                    world.note(format!("step {step}: requests go to the other replica"));
                }
            }
            // The car falls asleep, or its owner wakes it.
            1 => {
                let asleep = rng.chance(0.6);
                world.note(format!("step {step}: {} asleep={asleep}", v.oem_id));
                world.garage.update(&v.oem_id, |c| c.asleep = asleep);
            }
            // A delivery: grant, unlock by the courier, completion (on the grant cars).
            2..=4 if car.is_multiple_of(2) => {
                let g = now
                    .gw
                    .grants
                    .create(
                        &service,
                        NewGrant {
                            vehicle_id: v.id.clone(),
                            grantee: "courier".into(),
                            not_before: None,
                            not_after: world.clock.now() + time::Duration::minutes(6),
                            max_unlocks: Some(1),
                            geofence: None,
                            relock_after_s: Some(rng.between(10, 90) as u32),
                            purpose: None,
                        },
                    )
                    .await;
                let Ok(g) = g else { continue };
                let name = world.name(&g.id);
                let key = format!("k-{seed}-{step}");
                let u = now
                    .gw
                    .grants
                    .unlock(&courier, &g.id, Some(key), None, &Unguarded)
                    .await;
                world.note(format!(
                    "step {step}: grant {name} on {}: unlock {}",
                    v.oem_id,
                    match &u {
                        Ok(c) => world.name(&c.id),
                        Err(e) => keyway::error::Classify::code(e).as_str().to_string(),
                    }
                ));
                if rng.chance(0.5) {
                    tokio::time::sleep(Duration::from_millis(rng.between(0, 20_000))).await;
                    let _ = now.gw.grants.complete(&courier, &g.id).await;
                    world.note(format!("step {step}: grant {name} completed"));
                }
            }
            // The owner locks or unlocks the car with its key fob, and a moment later
            // a caller asks for the state the car had (on the callers' cars): the OEM's
            // lagging view still shows it, stamped by a clock that may run ahead.
            5 if car % 2 == 1 => {
                let locked = world.garage.car(&v.oem_id).is_some_and(|c| c.locked);
                world.note(format!(
                    "step {step}: the owner {} {} with the key fob",
                    if locked { "unlocks" } else { "locks" },
                    v.oem_id
                ));
                world.garage.update(&v.oem_id, |c| c.locked = !locked);
                world
                    .fobs
                    .lock()
                    .unwrap()
                    .push((v.oem_id.clone(), world.clock.now(), !locked));
                tokio::time::sleep(Duration::from_millis(rng.between(0, 5_000))).await;
                let action = if locked {
                    Command::Lock
                } else {
                    Command::Unlock
                };
                command(&now.gw, &mine, &world, v, action, &mut rng, step).await;
            }
            // A caller's lock or unlock (on the other cars).
            _ if car % 2 == 1 => {
                let action = if rng.chance(0.5) {
                    Command::Lock
                } else {
                    Command::Unlock
                };
                command(&now.gw, &mine, &world, v, action, &mut rng, step).await;
            }
            _ => {}
        }
    }
    // Everything settles: every window, watch, relock and backoff runs out.
    for v in &vehicles {
        world.garage.update(&v.oem_id, |c| c.asleep = false);
    }
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    let mut violations = check(&world, &mine, &vehicles).await;
    violations.extend(watched(&world, &mine, &vehicles).await);
    let mut counts = BTreeMap::new();
    for e in mine
        .events_after(&TENANT.into(), None, 0, 100_000)
        .await
        .unwrap()
    {
        *counts.entry(e.kind.as_str().to_string()).or_default() += 1;
    }
    let trace = world.trace.lock().unwrap().clone();
    let count = |f: &dyn Fn(&str) -> bool| trace.iter().filter(|l| f(l)).count();
    counts.insert("crashes".into(), count(&|l| l.contains("keyway crashes")));
    counts.insert(
        "answers lost after the OEM took it".into(),
        count(&|l| l.contains("answer lost")),
    );
    counts.insert(
        "requests lost before the OEM".into(),
        count(&|l| l.contains("lost before")),
    );
    counts.insert(
        "delivered late".into(),
        count(&|l| l.contains("delivered") && !l.contains("late 0 ms")),
    );
    counts.insert("delivered twice".into(), count(&|l| l.contains(", twice")));
    counts.insert(
        "commands taken with no outcome reported (Škoda-like)".into(),
        count(&|l| l.contains(" TMBSIM") && l.contains(": delivered d")),
    );
    counts.insert(
        "lock reads through a second route".into(),
        count(&|l| l.contains("lock read through the")),
    );
    spin.abort();
    now.dead.store(true, Ordering::SeqCst);
    if let Some(b) = other {
        b.dead.store(true, Ordering::SeqCst);
    }
    Run {
        trace,
        violations,
        counts,
    }
}

/// A caller's command; half the time the caller waits for its outcome, and what it is
/// told must be what is stored (f).
async fn command(
    gw: &Gateway,
    mine: &Arc<dyn Store>,
    world: &World,
    v: &VehicleRecord,
    action: Command,
    rng: &mut Rng,
    step: u64,
) {
    let r = gw
        .commands
        .submit(Submission {
            vehicle: v,
            request: Request {
                caller: TENANT.into(),
                key_scope: TENANT.into(),
                tenant: TENANT.into(),
                reserved: false,
                action,
                reference: None,
                idempotency_key: None,
                request_id: None,
            },
            guard: &Unguarded,
        })
        .await;
    world.note(format!(
        "step {step}: {} {}: {}",
        action.as_str(),
        v.oem_id,
        match &r {
            Ok(c) => world.name(&c.id),
            Err(e) => keyway::error::Classify::code(e).as_str().to_string(),
        }
    ));
    let Ok(c) = &r else { return };
    if !rng.chance(0.5) {
        return;
    }
    let told = gw.commands.wait(&c.id, Duration::from_secs(90)).await;
    if let Ok(Some(t)) = &told
        && t.status == CommandStatus::Succeeded
    {
        read_after(gw, world, v, action == Command::Lock, &c.id).await;
    }
    let stored = mine.command(&c.id).await.ok().flatten();
    if let (Ok(Some(told)), Some(stored)) = (told, stored)
        && told.status != CommandStatus::Pending
        && told.status != stored.status
    {
        world.violation(format!(
            "(f) {}: the caller was told {} while the store says {}",
            world.name(&c.id),
            told.status.as_str(),
            stored.status.as_str()
        ));
    }
}

/// (g) A caller who reads the lock state right after keyway confirmed a command is not
/// shown the state from before it, whatever the OEM's snapshot and clocks say — unless
/// the car itself changed meanwhile (a late command, the key fob).
async fn read_after(gw: &Gateway, world: &World, v: &VehicleRecord, target: bool, id: &str) {
    if !full(world) {
        return;
    }
    let changes = || {
        let executed = world
            .garage
            .executions()
            .iter()
            .filter(|e| e.vin == v.oem_id)
            .count();
        let fobbed = world
            .fobs
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.0 == v.oem_id)
            .count();
        let locked = world.garage.car(&v.oem_id).map(|c| c.locked);
        (executed + fobbed, locked)
    };
    let before = changes();
    // As the API reads it: the current record (the fleet keeps it for a while), the car
    // it stands for, read through its routes in order (the two-route car's second when
    // its first fails).
    let Ok(Some(record)) = gw.fleet.record(&v.id).await else {
        return;
    };
    let Ok(car) = gw.fleet.car(record).await else {
        return;
    };
    let read = gw.fleet.security_routed(&car, None).await;
    let after = changes();
    let Ok(keyway::vehicles::Routed {
        value: (s, source),
        route,
    }) = read
    else {
        return;
    };
    world.note(format!(
        "read {} through {}: locked={:?} ({})",
        v.oem_id,
        route.oem,
        s.locked,
        source.as_str()
    ));
    if before == after && before.1 == Some(target) && s.locked == Some(!target) {
        world.violation(format!(
            "(g) a read of {} right after {} showed the state from before it",
            v.oem_id,
            world.name(id)
        ));
    }
}

/// Whether the seed plays in the whole world, where callers read and keyway watches
/// (not in the older seeds' world: reads take time and draws, and they must play as
/// they were found).
fn full(world: &World) -> bool {
    world.garage.all().len() > CLASSIC.len()
}

/// (h) Watching never wakes a car: every wake-up falls within the life of a command to
/// that car or of a grant on it (commands, the watch over an unknown outcome and relock
/// read-backs wake; nothing else in the simulation may).
/// (i) Each change of a watched car is emitted once: each car's `vehicle.state_changed`
/// events that name its lock form one chain (each one's `previous` is the last one's
/// `state`, and changes it), and once everything has settled the kept state shows the
/// car as it stands.
async fn watched(world: &World, base: &Arc<dyn Store>, vehicles: &[VehicleRecord]) -> Vec<String> {
    let mut bad = Vec::new();
    if !full(world) {
        return bad;
    }
    let wakes = world.wakes.lock().unwrap().clone();
    let events = base
        .events_after(&TENANT.into(), None, 0, 100_000)
        .await
        .unwrap();
    for v in vehicles {
        // Commands wake (sent or not), and so do a grant's relock read-backs.
        let mut busy = Vec::new();
        for id in world.named() {
            if let Ok(Some(c)) = base.command(&id).await
                && c.vehicle_id == v.id
            {
                // An outcome still unknown is watched on (waking the car) until the
                // OEM's window passes.
                let end = match c.status {
                    CommandStatus::Unknown => c.updated_at + time::Duration::days(1),
                    _ => c.updated_at,
                };
                busy.push((c.created_at, end));
            }
        }
        let grants = base
            .grants_for_vehicle(&TENANT.into(), &v.id)
            .await
            .unwrap();
        busy.extend(grants.iter().map(|g| (g.created_at, g.updated_at)));
        for (_, at) in wakes.iter().filter(|(vin, _)| *vin == v.oem_id) {
            if !busy.iter().any(|(from, to)| from <= at && at <= to) {
                bad.push(format!(
                    "(h) {} was woken with no command or grant under way",
                    v.oem_id
                ));
            }
        }
        let locked = |e: &serde_json::Value, side: &str| e[side]["lock"]["locked"].clone();
        let mut last: Option<serde_json::Value> = None;
        for e in events.iter().filter(|e| {
            e.kind == "vehicle.state_changed" && e.vehicle_id.as_deref() == Some(v.id.as_str())
        }) {
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            if !data["changed"]
                .as_array()
                .unwrap()
                .contains(&"locked".into())
            {
                continue;
            }
            let (before, after) = (locked(&data, "previous"), locked(&data, "state"));
            if before == after || last.as_ref().is_some_and(|l| *l != before) {
                bad.push(format!(
                    "(i) {}: event {} says {before} -> {after} after {last:?}",
                    v.oem_id, e.seq
                ));
            }
            last = Some(after);
        }
        let kept = base.vehicle_state(&v.id).await.unwrap();
        let kept: Option<serde_json::Value> =
            kept.map(|(_, json)| serde_json::from_str(&json).unwrap());
        let truth = world.garage.car(&v.oem_id).unwrap().locked;
        let shown = kept.as_ref().map(|k| k["lock"]["locked"].clone());
        if shown != Some(truth.into()) {
            bad.push(format!(
                "(i) {}: the kept state shows locked={shown:?}, the car stands locked={truth}",
                v.oem_id
            ));
        }
    }
    bad
}

/// The invariants, over the store and the cars' journal.
async fn check(world: &World, base: &Arc<dyn Store>, vehicles: &[VehicleRecord]) -> Vec<String> {
    let mut bad = world.violations.lock().unwrap().clone();
    let sends = world.sends.lock().unwrap().clone();
    let executed: Vec<u64> = world
        .garage
        .executions()
        .iter()
        .map(|e| e.delivery)
        .collect();
    // (d) Nothing pending: claiming "every lapsed command" returns the pending ones.
    let lease = Lease {
        holder: "checker".into(),
        until: world.clock.now(),
    };
    let far = world.clock.now() + time::Duration::days(1);
    for c in base.claim_commands(&lease, far).await.unwrap() {
        bad.push(format!("(d) {} still pending", world.name(&c.id)));
    }
    for v in vehicles {
        for c in base
            .commands_sent_since(&v.id, world.clock.now() - time::Duration::days(1))
            .await
            .unwrap()
        {
            let name = world.name(&c.id);
            world.note(format!(
                "{name} ended {} ({})",
                c.status.as_str(),
                c.error_code.map_or("-", |code| code.as_str())
            ));
            let mine: Vec<_> = sends.iter().filter(|s| s.command == name).collect();
            let reached: Vec<u64> = mine.iter().filter_map(|s| s.delivery).collect();
            // (a) One keyway command reaches the OEM at most once.
            if reached.len() > 1 {
                bad.push(format!(
                    "(a) {name} reached the OEM {} times",
                    reached.len()
                ));
            }
            let ran = reached.iter().any(|d| executed.contains(d));
            // A lock of a locked car succeeds without the car doing anything; so does a
            // command that never left a dying keyway, if the car stood so after it.
            let target = c.action.leaves_locked();
            let already = if mine.is_empty() {
                c.observed.is_some_and(|(locked, _)| locked == target)
            } else {
                mine.iter().all(|s| s.before == target)
            };
            // The owner's key fob put the car so after the send: keyway saw the state
            // the caller asked for (not what this command did, but what it asked for).
            let by_fob = |t| {
                world.fobs.lock().unwrap().iter().any(|(vin, at, locked)| {
                    *vin == v.oem_id
                        && *locked == target
                        && c.sent_at.is_some_and(|s| s <= *at)
                        && *at <= t
                })
            };
            match c.status {
                CommandStatus::Succeeded if !ran && !already && !by_fob(c.updated_at) => {
                    bad.push(format!("(b) {name} succeeded but the car never did it"))
                }
                CommandStatus::Failed if ran => {
                    bad.push(format!("(b) {name} failed but the car did it"))
                }
                _ => {}
            }
        }
        // (c) A grant whose relock is reported done leaves its car locked — unless an
        // unlock that is not the grant's (a later grant's) opened the car after that
        // relock: the car is then that unlock's grant's to relock, and checked there.
        let commands = base
            .commands_sent_since(&v.id, world.clock.now() - time::Duration::days(1))
            .await
            .unwrap();
        let unlocks: Vec<(time::OffsetDateTime, Option<String>)> = world
            .garage
            .executions()
            .into_iter()
            .filter(|e| e.vin == v.oem_id && e.command == "unlock")
            .map(|e| {
                let name = sends
                    .iter()
                    .find(|s| s.delivery == Some(e.delivery))
                    .map(|s| s.command.clone());
                let owner = commands
                    .iter()
                    .find(|c| Some(world.name(&c.id)) == name)
                    .and_then(|c| c.reference.clone());
                (e.at, owner)
            })
            .collect();
        for g in base
            .grants_for_vehicle(&TENANT.into(), &v.id)
            .await
            .unwrap()
        {
            let locked = world.garage.car(&v.oem_id).unwrap().locked;
            let opened_by_another = unlocks.iter().any(|(at, owner)| {
                owner.as_deref() != Some(g.id.as_str()) && g.relocked_at.is_some_and(|r| *at > r)
            });
            match g.relock_state {
                RelockState::Locked | RelockState::Watching if !locked && !opened_by_another => bad
                    .push(format!(
                        "(c) grant {} reports relocked, the car is open",
                        world.name(&g.id)
                    )),
                RelockState::Due => bad.push(format!(
                    "(c) grant {} still owes its relock",
                    world.name(&g.id)
                )),
                _ => {}
            }
        }
    }
    // (e) The audit chain.
    if let Err(e) = keyway::audit::verify(base.as_ref()).await {
        bad.push(format!("(e) audit chain broken: {e:?}"));
    }
    bad
}

fn run_seed(seed: u64) -> Run {
    run_seed_in(seed, &CARS)
}

/// Runs one seed in the world of `cars`.
fn run_seed_in(seed: u64, cars: Cars) -> Run {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run(seed, cars))
}

fn seeds(first: u64, n: u64) {
    run_seeds(&format!("seeds {first}..{}", first + n), first..first + n);
}

fn run_seeds(name: &str, list: impl IntoIterator<Item = u64>) {
    run_seeds_in(name, list, &CARS);
}

fn run_seeds_in(name: &str, list: impl IntoIterator<Item = u64>, cars: Cars) {
    let mut failed = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for seed in list {
        let r = run_seed_in(seed, cars);
        for (k, v) in &r.counts {
            *counts.entry(k.clone()).or_default() += v;
        }
        if !r.violations.is_empty() {
            eprintln!("seed {seed} broke:\n  {}", r.violations.join("\n  "));
            eprintln!("trace of seed {seed}:\n{}", r.trace.join("\n"));
            failed.push(seed);
        }
    }
    eprintln!("{name}: {counts:?}");
    assert!(failed.is_empty(), "seeds that broke a promise: {failed:?}");
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeds_0_to_124() {
    seeds(0, 125);
}

#[test]
fn seeds_125_to_249() {
    seeds(125, 125);
}

#[test]
fn seeds_250_to_374() {
    seeds(250, 125);
}

#[test]
fn seeds_375_to_499() {
    seeds(375, 125);
}

#[test]
fn seeds_500_to_624() {
    seeds(500, 125);
}

#[test]
fn seeds_625_to_749() {
    seeds(625, 125);
}

#[test]
fn seeds_750_to_874() {
    seeds(750, 125);
}

#[test]
fn seeds_875_to_999() {
    seeds(875, 125);
}

/// Seeds a 10,000-seed soak found beyond the 1,000 above. 1930, 5377, 6420, 7662: a
/// lock that ran, then undone by the owner's key fob, was recorded `failed` on the
/// opposite state seen after the OEM's window. 7585: a relock whose request died before
/// the OEM was recorded `succeeded` on a read that showed the next relock's work (that
/// relock was sent while the read was on its way; keyway asked "anything sent since?"
/// before the read instead of after). They broke invariant (b) before their fixes; they
/// must never again. They play in the two-OEM world they were found in.
///
/// In the whole world: 10653, a grant blamed by check (c) for an open car a later
/// grant's late unlock opened; 7715, a car woken by the watch over a command's unknown
/// outcome, which check (h) first counted against watching. Both were the checks' errors.
#[test]
fn seeds_the_soak_found() {
    run_seeds_in(
        "seeds the soak found",
        [1930, 5377, 6420, 7662, 7585],
        CLASSIC,
    );
    run_seeds("seeds the soak found", [10653, 7715]);
}

#[test]
fn a_seed_replays_identically() {
    for seed in [4242, 6, 87, 89] {
        let a = run_seed(seed);
        let b = run_seed(seed);
        assert!(a.trace.len() > 5, "{:?}", a.trace);
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a.counts, b.counts, "seed {seed}");
    }
}

/// `KEYWAY_SIM_SEED=N`: one seed, with its trace.
#[test]
fn one_seed() {
    let Some(seed) = env_u64("KEYWAY_SIM_SEED") else {
        return;
    };
    // `KEYWAY_SIM_CLASSIC=1`: in the two-OEM world of the older seeds.
    let classic = std::env::var("KEYWAY_SIM_CLASSIC").is_ok_and(|v| v == "1");
    let r = run_seed_in(seed, if classic { CLASSIC } else { &CARS });
    eprintln!("{}", r.trace.join("\n"));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

/// `KEYWAY_SIM_SEEDS=N` (from `KEYWAY_SIM_FIRST`, default 1,000,000): a soak.
#[test]
fn soak() {
    let Some(n) = env_u64("KEYWAY_SIM_SEEDS") else {
        return;
    };
    seeds(env_u64("KEYWAY_SIM_FIRST").unwrap_or(1_000_000), n);
}
