//! Watching cars: keyway reads a watched car while someone needs it and emits each
//! change of its signals — lock, openings, position, connectivity — as one
//! `vehicle.state_changed` event, whoever made the change (keyway, the owner's app, a
//! key fob, a drive).
//!
//! - **Who is watched:** the cars a tenant watches (`PUT /v1/vehicles/{id}/watch`, up
//!   to `watch.max_watch` ahead; `DELETE` ends it), and the car of every grant in use,
//!   from its window's start until its relock is confirmed.
//! - **Never a wake-up:** a watched car is read only with calls that do not wake it; a
//!   sleeping car's answer is "asleep" (a connectivity change where the OEM tells it) and
//!   its other signals keep their last known values.
//! - **Cost-aware cadence:** each OEM's watched cars are read every
//!   `watch.min_period` — a grant's car while its unlock and relock are under way
//!   every `watch.busy_period` — and never faster than `watch.quota_share` of the
//!   OEM's request quota allows for all of them together (many watched cars: every pause
//!   stretched alike). What a read finds also serves callers' reads within the TTL.
//! - **Each change once:** the last emitted state of each car is kept in the store with
//!   a version; a change is written together with its event only if the version is
//!   still the one it was read with, so two replicas (or a restart) never emit one
//!   change twice. In a cluster one replica reads a car per period (a lease).
//! - **Pushes** ([`push`]): what an OEM pushes is merged the same way, and the car is
//!   read less while pushes come.

mod cadence;
pub mod push;
mod read;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::cluster::Cluster;
use crate::config::WatchConfig;
use crate::error::{Classify, Code, Codes};
use crate::events::{Events, Kind, Payload, Subject};
use crate::grants::Grants;
use crate::store::{
    Lease, RelockState, StoreError, VehicleId, VehicleRecord, WatchAreas, WatchRecord,
};
use crate::sync::lock;
use crate::vehicles::Fleet;
use cadence::{Load, backoff, stretched};

pub use state::{Connectivity, Signals};

/// Why a watch could not be set, ended or listed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WatchError {
    /// `until` is not ahead, or too far ahead (`invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// The car is not watched by the caller's tenant (`not_found`).
    #[error("vehicle {0} is not watched")]
    NotWatched(String),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Codes for WatchError {
    fn codes() -> Vec<Code> {
        vec![Code::InvalidRequest, Code::NotFound, Code::Internal]
    }
}

impl Classify for WatchError {
    fn code(&self) -> Code {
        match self {
            WatchError::Invalid(_) => Code::InvalidRequest,
            WatchError::NotWatched(_) => Code::NotFound,
            WatchError::Store(_) => Code::Internal,
        }
    }
}

/// The `vehicle.state_changed` event: which signals changed, the car's signals now and
/// before (each with the time the car recorded it, so a consumer can order late news).
#[derive(Serialize)]
pub struct StateChanged<'a> {
    /// The tenant.
    #[serde(skip)]
    pub tenant: &'a str,
    /// The car.
    pub vehicle_id: &'a str,
    /// The names of the signals that changed (`locked`, `doors`, `location`,
    /// `connectivity`).
    pub changed: &'a [&'static str],
    /// The signals now.
    pub state: &'a Signals,
    /// The signals before.
    pub previous: &'a Signals,
}

/// A watched car's change (`vehicle.state_changed`): which signals changed, and the
/// car's signals now and before (the API document's `StateChange`).
#[derive(utoipa::ToSchema)]
#[schema(as = StateChange)]
#[allow(dead_code)]
pub struct StateChangeDoc {
    /// The car (`veh_…`).
    vehicle_id: String,
    /// The names of the signals that changed.
    #[schema(value_type = Vec<String>, example = json!(["locked"]))]
    changed: Vec<String>,
    /// The signals now.
    state: Signals,
    /// The signals before.
    previous: Signals,
}

impl Payload for StateChanged<'_> {
    fn kind(&self) -> Kind {
        Kind::VehicleStateChanged
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            tenant: self.tenant,
            vehicle_id: Some(self.vehicle_id),
            ..Subject::default()
        }
    }
}

/// Watches cars.
pub struct Watches {
    store: Arc<dyn WatchAreas>,
    fleet: Arc<Fleet>,
    events: Arc<Events>,
    cluster: Arc<Cluster>,
    /// Told of each move of a car (a grant's geofence); its clock is the grant windows'.
    grants: Arc<Grants>,
    settings: WatchConfig,
    /// When each watched car is next read (this process).
    next_read: Mutex<HashMap<VehicleId, tokio::time::Instant>>,
    /// The cars being read now.
    reading: Mutex<std::collections::HashSet<VehicleId>>,
    /// How many readings in a row found each car asleep or offline.
    away: Mutex<HashMap<VehicleId, u32>>,
    /// The OEMs whose watched cars were last counted.
    counted: Mutex<std::collections::HashSet<&'static str>>,
    /// The gateway's clock.
    clock: crate::clock::Clock,
}

impl Watches {
    /// The watch service.
    pub fn new(
        store: Arc<dyn WatchAreas>,
        fleet: Arc<Fleet>,
        events: Arc<Events>,
        cluster: Arc<Cluster>,
        grants: Arc<Grants>,
        settings: WatchConfig,
        clock: crate::clock::Clock,
    ) -> Self {
        Self {
            clock,
            store,
            fleet,
            events,
            cluster,
            grants,
            settings,
            next_read: Mutex::default(),
            reading: Mutex::default(),
            away: Mutex::default(),
            counted: Mutex::default(),
        }
    }

    /// Watches `vehicle` (one the caller may touch) for the caller's tenant until
    /// `until`; setting it again moves the end.
    pub async fn put(
        &self,
        caller: &Caller,
        vehicle: &VehicleRecord,
        until: OffsetDateTime,
    ) -> Result<WatchRecord, WatchError> {
        let t = self.clock.now();
        let longest = time::Duration::seconds(self.settings.max_watch.as_secs() as i64);
        if until <= t || until > t + longest {
            return Err(WatchError::Invalid(format!(
                "until must lie ahead, at most {} s from now",
                self.settings.max_watch.as_secs()
            )));
        }
        let w = self
            .store
            .put_watch(&WatchRecord {
                tenant: caller.tenant.clone(),
                vehicle_id: vehicle.id.clone(),
                until,
                created_by: caller.sub.clone(),
                created_at: t,
            })
            .await?;
        tracing::info!(vehicle = %vehicle.id, until = %crate::clock::timestamp(until), "watching");
        Ok(w)
    }

    /// Ends the caller's tenant's watch of `vehicle_id`.
    pub async fn end(&self, caller: &Caller, vehicle_id: &VehicleId) -> Result<(), WatchError> {
        if self.store.delete_watch(&caller.tenant, vehicle_id).await? {
            Ok(())
        } else {
            Err(WatchError::NotWatched(vehicle_id.to_string()))
        }
    }

    /// The watches of the caller's tenant that have not ended (a token restricted to
    /// some vehicles sees those vehicles' only).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<WatchRecord>, WatchError> {
        let mut all = self
            .store
            .tenant_watches(&caller.tenant, self.clock.now())
            .await?;
        all.retain(|w| caller.may_touch(&w.vehicle_id));
        Ok(all)
    }

    /// The cars watched now: those a tenant watches, and every car of a grant in use
    /// (from its window's start until its relock is confirmed); and the latter apart.
    async fn watched(&self) -> Result<Watched, StoreError> {
        let t = self.clock.now();
        let mut cars: Vec<VehicleId> = self
            .store
            .active_watches(t)
            .await?
            .into_iter()
            .map(|w| w.vehicle_id)
            .collect();
        let grants = self.store.grants_in_use(t).await?;
        let ids = |hot_only: bool| {
            let mut ids: Vec<VehicleId> = grants
                .iter()
                .filter(|g| {
                    !hot_only || matches!(g.relock_state, RelockState::Due | RelockState::Watching)
                })
                .map(|g| g.vehicle_id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let (delivering, busy) = (ids(false), ids(true));
        cars.extend(delivering.iter().cloned());
        cars.sort();
        cars.dedup();
        Ok(Watched {
            cars,
            delivering,
            busy,
        })
    }

    /// The watched cars' records (the fleet keeps them for a while).
    async fn vehicles(&self, cars: &[VehicleId]) -> Vec<Arc<VehicleRecord>> {
        let mut out = Vec::with_capacity(cars.len());
        for id in cars {
            match self.fleet.record(id).await {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {}
                Err(e) => tracing::warn!(vehicle = %id, error = %e, "could not read a watched car"),
            }
        }
        out
    }

    /// Starts a read of every watched car that is due and not being read already, each
    /// in its own task (a slow OEM holds up no other car); returns how many started.
    pub async fn tick(self: &Arc<Self>) -> usize {
        let Watched {
            cars,
            delivering,
            busy,
        } = match self.watched().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the watches");
                return 0;
            }
        };
        // `cars` is sorted.
        lock(&self.next_read).retain(|id, _| cars.binary_search(id).is_ok());
        lock(&self.away).retain(|id, _| cars.binary_search(id).is_ok());
        let vehicles = self.vehicles(&cars).await;
        let is_busy = |v: &VehicleRecord| busy.binary_search(&v.id).is_ok();
        let mut per_oem: HashMap<&str, Load> = HashMap::new();
        for v in &vehicles {
            let load = per_oem.entry(v.oem.as_str()).or_default();
            match is_busy(v) {
                true => load.busy += 1,
                false => load.calm += 1,
            }
        }
        self.count(&per_oem);
        let at = tokio::time::Instant::now();
        let mut started = 0;
        for v in &vehicles {
            let period = self.period(v, is_busy(v), per_oem[v.oem.as_str()]);
            {
                let mut next = lock(&self.next_read);
                if next.get(&v.id).is_some_and(|n| *n > at)
                    || !lock(&self.reading).insert(v.id.clone())
                {
                    continue;
                }
                next.insert(v.id.clone(), at + period);
            }
            let (this, v) = (self.clone(), v.clone());
            let longest = match delivering.binary_search(&v.id) {
                Ok(_) => period * 2,
                Err(_) => self.settings.asleep_max_period,
            };
            tokio::spawn(async move {
                this.watch_once(&v, period, longest).await;
                lock(&this.reading).remove(&v.id);
            });
            started += 1;
        }
        started
    }

    /// Publishes how many cars of each OEM are watched (an OEM no longer watched: 0).
    fn count(&self, per_oem: &HashMap<&str, Load>) {
        let mut counted = lock(&self.counted);
        for oem in counted.iter().filter(|o| !per_oem.contains_key(**o)) {
            crate::metrics::watched_cars(oem, 0);
        }
        counted.clear();
        for (oem, load) in per_oem {
            if let Some(info) = crate::registry::info(oem) {
                crate::metrics::watched_cars(info.oem, load.busy + load.calm);
                counted.insert(info.oem);
            }
        }
    }

    /// Reads one car (in a cluster: if this replica holds its watch lease for the
    /// period) and emits what changed. A car found asleep or offline is next read after
    /// a pause that doubles with each such reading, up to `longest`.
    async fn watch_once(&self, v: &VehicleRecord, period: Duration, longest: Duration) {
        if self.cluster.shared {
            let lease = Lease {
                holder: self.cluster.replica.clone(),
                until: self.clock.now() + period.saturating_sub(Duration::from_millis(100)),
            };
            match self
                .store
                .try_lease(&format!("watch:{}", v.id), &lease)
                .await
            {
                Ok(true) => {}
                _ => return,
            }
        }
        let Ok(oem) = self.fleet.oem(v) else {
            return;
        };
        let asked_at = tokio::time::Instant::now();
        let (reading, asked) = read::reading(&oem).await;
        self.observed(v, &reading, asked_at, crate::vehicles::Source::Vehicle);
        crate::metrics::watch_requests(oem.adapter().info().oem, asked);
        let away = reading
            .connectivity
            .is_some_and(|c| c != state::Connectivity::Online);
        let streak = {
            let mut streaks = lock(&self.away);
            match away {
                true => {
                    let n = streaks.entry(v.id.clone()).or_default();
                    *n += 1;
                    *n
                }
                false => {
                    streaks.remove(&v.id);
                    0
                }
            }
        };
        if let Some(pause) = backoff(period, streak, longest) {
            lock(&self.next_read).insert(v.id.clone(), tokio::time::Instant::now() + pause);
        }
        self.emit(v, &reading).await;
    }

    /// Hands `reading` to the fleet, so reads of the car within the TTL answer it.
    fn observed(
        &self,
        v: &VehicleRecord,
        reading: &state::Reading,
        asked_at: tokio::time::Instant,
        source: crate::vehicles::Source,
    ) {
        let news = crate::vehicles::News {
            security: reading.security.as_ref(),
            location: reading.location.as_ref(),
            connectivity: reading.connectivity.map(Into::into),
            asked_at,
            source,
        };
        self.fleet.observed(&v.id, news);
    }

    /// Merges `reading` into the car's kept state and emits the change, once: retried
    /// against the newer state when another writer got there first.
    async fn emit(&self, v: &VehicleRecord, reading: &state::Reading) {
        for _ in 0..3 {
            let kept = match self.store.vehicle_state(&v.id).await {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(vehicle = %v.id, error = %e, "could not read the kept state");
                    return;
                }
            };
            let (version, previous) = match &kept {
                Some((version, json)) => (
                    Some(*version),
                    serde_json::from_str::<Signals>(json).unwrap_or_default(),
                ),
                None => (None, Signals::default()),
            };
            let (next, changed) = previous.merge(reading, self.settings.move_m);
            // Only a change, or a signal known for the first time, is written: a newer
            // `recorded_at` of the same values is no news (and the kept one still tells
            // older news apart).
            if changed.is_empty() && version.is_some() && next.known() == previous.known() {
                return;
            }
            let Ok(json) = serde_json::to_string(&next) else {
                return;
            };
            let payload = StateChanged {
                tenant: &v.tenant,
                vehicle_id: &v.id,
                changed: &changed,
                state: &next,
                previous: &previous,
            };
            let event = (!changed.is_empty()).then(|| Events::record(&payload, self.clock.now()));
            let hooks = match &event {
                Some(e) => self.events.hooks_for(e).await,
                None => Vec::new(),
            };
            let written = self
                .store
                .change_vehicle_state(
                    &v.id,
                    version,
                    &json,
                    event.as_ref().map(|e| (e, hooks.as_slice())),
                )
                .await;
            match written {
                Ok(Some(seq)) => {
                    if event.is_some() {
                        self.events.published(
                            Kind::VehicleStateChanged.as_str(),
                            seq,
                            !hooks.is_empty(),
                        );
                    }
                    if changed.contains(&state::LOCKED)
                        && next.lock.as_ref().is_some_and(|l| l.locked == Some(true))
                    {
                        self.grants.vehicle_locked(v).await;
                    }
                    if changed.contains(&state::DOORS) {
                        let open = |s: &Signals| s.lock.as_ref().and_then(|l| l.open.clone());
                        let before = open(&previous).unwrap_or_default();
                        let opened: Vec<_> = open(&next)
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|d| !before.contains(d))
                            .collect();
                        if !opened.is_empty() {
                            self.grants.vehicle_opened(v, &opened).await;
                        }
                    }
                    if changed.contains(&state::LOCATION)
                        && let (Some(a), Some(b)) = (&previous.location, &next.location)
                    {
                        let (from, to) = ((a.latitude, a.longitude), (b.latitude, b.longitude));
                        self.grants.vehicle_moved(v, from, to).await;
                    }
                    return;
                }
                // Another writer changed it first: merge into its state.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(vehicle = %v.id, error = %e, "could not keep the state");
                    return;
                }
            }
        }
    }
}

/// The cars to watch: all of them (sorted), the grants' cars among them, and the cars
/// whose grant's unlock or relock is under way (relock due or watching).
struct Watched {
    cars: Vec<VehicleId>,
    delivering: Vec<VehicleId>,
    busy: Vec<VehicleId>,
}

/// Reads watched cars every `watch.tick` until the task is dropped.
pub async fn run(watches: Arc<Watches>) {
    let tick = watches.settings.tick;
    loop {
        watches.tick().await;
        watches.clock.sleep(tick).await;
    }
}

impl Watches {
    /// The pause between two reads of `v` (`busy`: its grant's unlock or relock is
    /// under way) when its OEM has `load` watched cars: `busy_period` or
    /// `min_period`, both stretched alike when reading all of them would take more
    /// than `quota_share` of the OEM's request quota.
    fn period(&self, v: &VehicleRecord, busy: bool, load: Load) -> Duration {
        let (hot, calm) = (self.settings.busy_period, self.settings.min_period);
        let base = if busy { hot } else { calm };
        let Ok(oem) = self.fleet.oem(v) else {
            return base;
        };
        let budget = oem
            .oem
            .requests
            .sustained_rate()
            .map(|rate| rate * self.settings.quota_share);
        stretched(base, (hot, calm), load, read::cost(&oem) as f64, budget)
    }
}
