//! The deterministic simulation's world: cars from the mock kit's garage (lagging
//! state, queued, late and duplicate commands), two in-process OEMs in front of them
//! (an asynchronous one shaped like BMW and a synchronous one shaped like Tesla) that
//! lose, fail and delay answers as a seeded random source says, and the pieces that
//! make one tokio runtime on paused time replay identically.
//!
//! Every random choice comes from one source per car, seeded from the run's seed, so a
//! car's story depends only on the order of calls about it — which the per-car command
//! rule fixes.
//!
//! Clocks: each OEM's cloud runs its own clock, off keyway's by a seeded offset (up to
//! minutes, ahead or behind) that drifts; the BMW-like cloud stamps states with its own
//! clock, the Tesla-like one passes on each car's, which may be off the cloud's again. Every answer carries the cloud's `Date` (whole
//! seconds) to keyway's clock estimate, as the HTTP stack would.

pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use keyway::upstream::clock::OemClock;
use keyway_adapter::mock::garage::{Car, Garage};
use keyway_adapter::mock::timeline::{CarTiming, Delivery, DeliveryFault, now_utc};
use keyway_adapter::{
    Adapter, AdapterInfo, Call, Capability, Command, CommandMode, Delivered, Limits, Location,
    OemError, OemTiming, OemVehicle, Pending, Progress, SecurityState, Sent, Stamps, VehicleRef,
};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

/// SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
}

/// Keeps tokio's paused clock still while a store call runs on SQLite's own thread:
/// while any call is in flight a task keeps yielding, so the runtime is never idle and
/// never jumps to the next timer before the call's answer is in.
#[derive(Clone, Default)]
pub struct Spinner {
    busy: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

/// One call in flight (dropped when it ends).
pub struct Busy(Spinner);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Spinner {
    /// Marks a call in flight.
    pub fn busy(&self) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        Busy(self.clone())
    }

    /// The yielding task; runs until the runtime ends.
    pub async fn run(self) {
        loop {
            if self.busy.load(Ordering::SeqCst) > 0 {
                tokio::task::yield_now().await;
            } else {
                self.wake.notified().await;
            }
        }
    }
}

/// The OEMs' side of the world, shared by every keyway incarnation.
pub struct World {
    /// The cars.
    pub garage: Garage,
    /// Every command keyway sent, whether or not it reached the OEM.
    pub sends: Mutex<Vec<Sent1>>,
    /// What happened, in order (printed for a failing seed).
    pub trace: Mutex<Vec<String>>,
    /// Broken promises seen as they happened.
    pub violations: Mutex<Vec<String>>,
    /// The owner's key-fob presses: (car, when by keyway's clock, locked after).
    pub fobs: Mutex<Vec<(String, OffsetDateTime, bool)>>,
    /// Every wake-up a car took: (car, when by keyway's clock).
    pub wakes: Mutex<Vec<(String, OffsetDateTime)>>,
    rngs: Mutex<BTreeMap<String, Rng>>,
    start: Instant,
    names: Mutex<BTreeMap<String, String>>,
    /// Each OEM cloud's clock.
    pub clouds: BTreeMap<String, SimClock>,
    /// How far each car's clock runs off its cloud's (ms).
    pub car_offsets: BTreeMap<String, i64>,
    /// Each car's first-linked route (its OEM): the only one its commands may take.
    pub primaries: Mutex<BTreeMap<String, String>>,
    /// keyway's clock (following the paused tokio time), shared with the gateway.
    pub clock: keyway::clock::Clock,
}

/// A clock off keyway's: by `offset_ms` at the start, drifting `drift_ppm`.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    /// Ahead of keyway's at the start (ms; negative: behind).
    pub offset_ms: i64,
    /// Parts per million it gains (negative: loses).
    pub drift_ppm: i64,
}

impl SimClock {
    /// A seeded clock: exact in one seed of five, in another off by up to three seconds
    /// either way (the skew that looks like none), in one up to two minutes behind, and
    /// in two ahead by 2 s to 2 min (the clock that makes old snapshots look new).
    pub fn seeded(rng: &mut Rng) -> Self {
        let offset_ms = match rng.between(0, 4) {
            0 => 0,
            1 => rng.between(0, 6_000) as i64 - 3_000,
            2 => -(rng.between(0, 120_000) as i64),
            _ => rng.between(2_000, 120_000) as i64,
        };
        Self {
            offset_ms,
            drift_ppm: rng.between(0, 400) as i64 - 200,
        }
    }
}

/// One command keyway sent.
#[derive(Clone, Debug)]
pub struct Sent1 {
    /// keyway's command (its trace name).
    pub command: String,
    /// The car.
    pub vin: String,
    /// Lock or unlock.
    pub lock_to: bool,
    /// The garage's delivery, when it reached the OEM.
    pub delivery: Option<u64>,
    /// The car's lock when it was sent.
    pub before: bool,
}

impl World {
    /// A world with `cars`, each with its own random source derived from `seed`.
    pub fn new(seed: u64, cars: Vec<Car>) -> Arc<Self> {
        let mut clock_rng = Rng::new(seed ^ 0xC10C);
        let mut clouds: BTreeMap<String, SimClock> = ["bmw", "tesla"]
            .into_iter()
            .map(|oem| (oem.to_string(), SimClock::seeded(&mut clock_rng)))
            .collect();
        let car_offsets = cars
            .iter()
            .map(|c| {
                let off = if clock_rng.chance(0.5) {
                    clock_rng.between(0, 60_000) as i64 - 20_000
                } else {
                    0
                };
                (c.vin.clone(), off)
            })
            .collect();
        // Drawn last, so a seed of the two-OEM world draws as it always did.
        clouds.insert("smartcar".into(), SimClock::seeded(&mut clock_rng));
        let rngs = cars
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    c.vin.clone(),
                    Rng::new(seed.wrapping_mul(31).wrapping_add(i as u64 + 1)),
                )
            })
            .collect();
        Arc::new(Self {
            garage: Garage::new(cars),
            sends: Mutex::default(),
            trace: Mutex::default(),
            violations: Mutex::default(),
            fobs: Mutex::default(),
            wakes: Mutex::default(),
            rngs: Mutex::new(rngs),
            start: Instant::now(),
            clock: keyway::clock::Clock::following_tokio(),
            names: Mutex::default(),
            clouds,
            car_offsets,
            primaries: Mutex::default(),
        })
    }

    /// `t` (keyway's clock, as the mocks keep it) on `oem`'s cloud clock.
    pub fn cloud_time(&self, oem: &str, t: OffsetDateTime) -> OffsetDateTime {
        let c = self.clouds.get(oem).copied().unwrap_or(SimClock {
            offset_ms: 0,
            drift_ppm: 0,
        });
        let elapsed = self.start.elapsed().as_millis() as i64;
        t + time::Duration::milliseconds(c.offset_ms + elapsed * c.drift_ppm / 1_000_000)
    }

    /// `t` on car `vin`'s clock (of `oem`).
    pub fn car_time(&self, oem: &str, vin: &str, t: OffsetDateTime) -> OffsetDateTime {
        let off = self.car_offsets.get(vin).copied().unwrap_or(0);
        self.cloud_time(oem, t) + time::Duration::milliseconds(off)
    }

    /// A draw from `vin`'s source.
    pub fn draw<T>(&self, vin: &str, f: impl FnOnce(&mut Rng) -> T) -> T {
        let mut rngs = self.rngs.lock().unwrap();
        f(rngs.get_mut(vin).expect("a known car"))
    }

    /// A short stable name for a keyway id (ids are random; traces must replay).
    pub fn name(&self, id: &str) -> String {
        let mut names = self.names.lock().unwrap();
        let n = names.len() + 1;
        names
            .entry(id.to_string())
            .or_insert_with(|| format!("#{n}"))
            .clone()
    }

    /// Every keyway id named so far.
    pub fn named(&self) -> Vec<String> {
        self.names.lock().unwrap().keys().cloned().collect()
    }

    /// Appends a line to the trace, stamped with the simulated time.
    pub fn note(&self, line: String) {
        let t = self.start.elapsed().as_millis();
        self.trace
            .lock()
            .unwrap()
            .push(format!("{:>9}ms {line}", t));
    }

    /// Records a broken promise (and notes it in the trace).
    pub fn violation(&self, what: String) {
        self.note(format!("VIOLATION {what}"));
        self.violations.lock().unwrap().push(what);
    }
}

/// How one simulated OEM behaves.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Sync (Tesla-like: the answer is the outcome; asleep answers 408), async
    /// (BMW-like: an event id to poll; a sleeping car queues the command) or observed
    /// (Škoda-like: taken, queued like async, and no outcome ever reported).
    pub mode: CommandMode,
    /// Async and observed: the car executes this long after the OEM accepted.
    pub stage: Duration,
    /// The most any car's state lags.
    pub max_lag: Duration,
    /// The most a command is delivered late.
    pub max_late: Duration,
    /// The most a command waits queued for a sleeping car.
    pub max_queue: Duration,
    /// Which clock stamps states: the cloud's (BMW-like) or the car's (Tesla-like).
    pub stamps: Stamps,
    /// Sync only: whether the OEM can wake a car (Tesla-like) or answers "asleep" and
    /// leaves it so (an aggregator like Smartcar, Volvo).
    pub wakes: bool,
}

impl Style {
    /// The timing the adapter declares: its true bounds.
    pub fn declared(&self) -> OemTiming {
        OemTiming {
            stamps: self.stamps,
            state_lag: self.max_lag,
            command_window: self.stage + self.max_late + self.max_queue + Duration::from_secs(5),
        }
    }

    /// A random timing for one car within the bounds.
    pub fn car_timing(&self, rng: &mut Rng) -> CarTiming {
        CarTiming {
            state_lag_ms: rng.between(0, self.max_lag.as_millis() as u64),
            queue_ms: if self.mode != CommandMode::Sync {
                rng.between(0, self.max_queue.as_millis() as u64)
            } else {
                0
            },
            late_ms: 0,
            duplicate: false,
        }
    }
}

/// One simulated OEM, as one keyway incarnation reaches it.
pub struct SimOem {
    info: AdapterInfo,
    style: Style,
    world: Arc<World>,
    dead: Arc<AtomicBool>,
    /// keyway's estimate of this OEM's clock, which every answer's `Date` feeds.
    clock: OnceLock<Arc<OemClock>>,
}

impl SimOem {
    /// The OEM `oem` (`bmw`, `tesla`, `smartcar` or `skoda`) of `style`, reached by an
    /// incarnation that dies when `dead` is set.
    pub fn new(oem: &'static str, style: Style, world: Arc<World>, dead: Arc<AtomicBool>) -> Self {
        let base = match oem {
            "tesla" => &keyway_tesla::adapter::INFO,
            "smartcar" => &keyway_smartcar::adapter::INFO,
            "skoda" => &keyway_skoda::adapter::INFO,
            _ => &keyway_bmw::adapter::INFO,
        };
        let capabilities: &'static [Capability] = match style.mode {
            CommandMode::Sync if style.wakes => &[
                Capability::Locate,
                Capability::Security,
                Capability::Lock,
                Capability::Unlock,
                Capability::Wake,
            ],
            _ => &[
                Capability::Locate,
                Capability::Security,
                Capability::Lock,
                Capability::Unlock,
            ],
        };
        Self {
            info: AdapterInfo {
                oem,
                make: base.make,
                capabilities,
                command_mode: style.mode,
                location_mode: CommandMode::Sync,
                oauth: base.oauth.clone(),
                limits: Limits {
                    requests: &[(100_000, 1)],
                    commands: &[(100_000, 1)],
                },
                api_key_header: None,
                owner_pin: false,
                timing: style.declared(),
                exchanges: &keyway_adapter::Exchanges::NONE,
            },
            style,
            world,
            dead,
            clock: OnceLock::new(),
        }
    }

    /// Feeds every answer's `Date` to keyway's estimate of this OEM's clock.
    pub fn attach(&self, clock: Arc<OemClock>) {
        let _ = self.clock.set(clock);
    }

    /// An answer to a request sent at `sent` (keyway's clock) arrives now: its `Date`
    /// reaches keyway's clock estimate, as the HTTP stack's would.
    fn dated(&self, sent: OffsetDateTime) {
        let Some(clock) = self.clock.get() else {
            return;
        };
        let written = self.world.cloud_time(self.info.oem, now_utc());
        let date = written.replace_millisecond(0).unwrap_or(written);
        clock.date(sent, self.world.clock.now(), date);
    }

    /// The answer takes `ms`; a dead incarnation never gets one.
    async fn travel(&self, ms: u64) {
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    fn car(&self, vin: &str) -> Result<Car, OemError> {
        self.world.garage.car(vin).ok_or(OemError::NotFound)
    }
}

fn lost() -> OemError {
    OemError::Transport {
        detail: "connection reset".into(),
        delivered: Delivered::Unknown,
    }
}

#[async_trait]
impl Adapter for SimOem {
    fn info(&self) -> &AdapterInfo {
        &self.info
    }

    async fn vehicles(&self, _cx: &Call) -> Result<Vec<OemVehicle>, OemError> {
        Ok(Vec::new())
    }

    async fn locate(&self, _cx: &Call, v: &VehicleRef) -> Result<Location, OemError> {
        self.travel(100).await;
        let c = self.car(&v.oem_id)?;
        Ok(Location {
            latitude: c.latitude,
            longitude: c.longitude,
            heading: None,
            accuracy_m: None,
            recorded_at: Some(now_utc()),
        })
    }

    async fn security(&self, _cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError> {
        let vin = &v.oem_id;
        let (ms, fails) = self
            .world
            .draw(vin, |r| (r.between(50, 1500), r.chance(0.1)));
        let sent = self.world.clock.now();
        let primary = self.world.primaries.lock().unwrap().get(vin).cloned();
        if primary.is_some_and(|p| p != self.info.oem) {
            self.world.note(format!(
                "{vin}: lock read through the {} route",
                self.info.oem
            ));
        }
        self.travel(ms).await;
        self.dated(sent);
        if fails {
            return Err(OemError::Upstream {
                status: 503,
                detail: "state unavailable".into(),
                delivered: Delivered::No,
            });
        }
        let (car, reported) = self.world.garage.view(vin).ok_or(OemError::NotFound)?;
        let reported = match self.style.stamps {
            Stamps::Server => self.world.cloud_time(self.info.oem, reported),
            Stamps::Car => self.world.car_time(self.info.oem, vin, reported),
        };
        if car.asleep && self.style.mode == CommandMode::Sync {
            return Err(OemError::Asleep);
        }
        Ok(SecurityState {
            locked: Some(car.locked),
            doors: None,
            recorded_at: Some(reported),
        })
    }

    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError> {
        let vin = v.oem_id.clone();
        let command = self.world.name(cx.command_id.as_deref().unwrap_or("?"));
        let lock_to = c.leaves_locked();
        // What happens to this request, drawn up front so the order of draws is fixed.
        let (ms, fate, late, duplicate) = self.world.draw(&vin, |r| {
            let fate = r.between(0, 99);
            let late = if r.chance(0.2) {
                r.between(0, self.style.max_late.as_millis() as u64)
            } else {
                0
            };
            (r.between(100, 3000), fate, late, r.chance(0.05))
        });
        let sent = self.world.clock.now();
        self.travel(ms / 2).await;
        let car = self.car(&vin)?;
        let what = format!("{command} {} {vin}", c.as_str());
        // A measurement, off by default (the styles play OEMs without one): with
        // `KEYWAY_SIM_PRECHECK=1` the sync OEM first answers a Volvo-like "can the car
        // take a command now", and a sleeping car is not sent the command at all.
        if precheck() && car.asleep && self.style.mode == CommandMode::Sync {
            self.dated(sent);
            self.world
                .note(format!("{what}: the pre-check says asleep; not sent"));
            return Err(OemError::Asleep);
        }
        // A car linked through two routes takes commands through its first only.
        let primary = self.world.primaries.lock().unwrap().get(&vin).cloned();
        if primary.as_deref().is_some_and(|p| p != self.info.oem) {
            self.world.violation(format!(
                "{what}: sent through the {} route, not the car's first ({primary:?})",
                self.info.oem
            ));
        }
        let mut attempt = Sent1 {
            command: command.clone(),
            vin: vin.clone(),
            lock_to,
            delivery: None,
            before: car.locked,
        };
        if !(16..).contains(&fate) || (car.asleep && self.style.mode == CommandMode::Sync) {
            self.world.sends.lock().unwrap().push(attempt.clone());
        }
        match fate {
            0..=7 => {
                self.world.note(format!("{what}: lost before the OEM"));
                self.travel(ms / 2).await;
                return Err(lost());
            }
            8..=11 => {
                self.dated(sent);
                self.world.note(format!("{what}: 429"));
                return Err(OemError::RateLimited {
                    retry_after: Some(Duration::from_secs(20)),
                });
            }
            12..=15 => {
                self.dated(sent);
                self.world.note(format!("{what}: 503 before the OEM"));
                return Err(OemError::Upstream {
                    status: 503,
                    detail: "unavailable".into(),
                    delivered: Delivered::Unknown,
                });
            }
            _ => {}
        }
        if car.asleep && self.style.mode == CommandMode::Sync {
            self.world.note(format!("{what}: 408 asleep"));
            return Err(OemError::Asleep);
        }
        let after = match self.style.mode {
            CommandMode::Sync => Duration::ZERO,
            CommandMode::Async | CommandMode::Observed => self.style.stage,
        };
        let fault = DeliveryFault {
            late: Duration::from_millis(late),
            duplicate,
        };
        // A second unlock while an earlier one may still run is what must never happen.
        if !lock_to {
            let earlier: Vec<Sent1> = self.world.sends.lock().unwrap().clone();
            for e in earlier.iter().filter(|e| e.vin == vin && !e.lock_to) {
                let Some(d) = e.delivery else { continue };
                if self.world.garage.delivery(&vin, d) == Some(Delivery::Waiting) {
                    self.world.violation(format!(
                        "{what}: sent while unlock {} may still execute",
                        e.command
                    ));
                }
            }
        }
        let delivery = self.world.garage.deliver(&vin, lock_to, after, fault);
        attempt.delivery = Some(delivery);
        self.world.sends.lock().unwrap().push(attempt);
        self.world.note(format!(
            "{what}: delivered d{delivery} (late {late} ms{}){}",
            if duplicate { ", twice" } else { "" },
            if (16..=25).contains(&fate) {
                "; answer lost"
            } else {
                ""
            }
        ));
        self.travel(ms / 2).await;
        if (16..=25).contains(&fate) {
            return Err(OemError::Timeout {
                delivered: Delivered::Unknown,
            });
        }
        self.dated(sent);
        match self.style.mode {
            CommandMode::Async => Ok(Sent::Pending(Pending {
                handle: delivery.to_string(),
                poll_after_ms: 1000,
            })),
            CommandMode::Observed => Ok(Sent::Accepted),
            CommandMode::Sync => match self.world.garage.delivery(&vin, delivery) {
                Some(Delivery::Executed) => Ok(Sent::Completed),
                // The car did not answer in time (late delivery): undecided.
                _ => Err(OemError::Timeout {
                    delivered: Delivered::Unknown,
                }),
            },
        }
    }

    async fn poll(
        &self,
        _cx: &Call,
        v: &VehicleRef,
        _c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError> {
        let vin = &v.oem_id;
        let (ms, fails) = self
            .world
            .draw(vin, |r| (r.between(50, 1000), r.chance(0.15)));
        let sent = self.world.clock.now();
        self.travel(ms).await;
        self.dated(sent);
        if fails {
            return Err(OemError::Upstream {
                status: 502,
                detail: "bad gateway".into(),
                delivered: Delivered::No,
            });
        }
        let id: u64 = p.handle.parse().map_err(|_| OemError::NotFound)?;
        Ok(match self.world.garage.delivery(vin, id) {
            Some(Delivery::Executed) => Progress::Succeeded,
            Some(Delivery::Expired) => Progress::Failed(OemError::Expired),
            _ => Progress::Pending { poll_after: None },
        })
    }

    async fn wake(&self, _cx: &Call, v: &VehicleRef) -> Result<(), OemError> {
        let sent = self.world.clock.now();
        self.travel(2000).await;
        self.dated(sent);
        self.world.note(format!("wake {}", v.oem_id));
        let woken = (v.oem_id.clone(), sent);
        self.world.wakes.lock().unwrap().push(woken);
        self.world.garage.update(&v.oem_id, |c| c.asleep = false);
        Ok(())
    }
}

/// Whether the sync OEM answers a pre-check (`KEYWAY_SIM_PRECHECK=1`).
fn precheck() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("KEYWAY_SIM_PRECHECK").is_ok_and(|v| v == "1"))
}
