//! Vehicle lookups and reads: finds a vehicle the caller may touch, and locates it or
//! reads its lock state through its OEM's adapter — cached, coalesced and careful with
//! sleeping cars.
//!
//! - **Records**: vehicle records are kept in memory for 30 s (a lookup on every request
//!   would cost a database round trip); discovery, unlinking and confirmed commands
//!   invalidate them.
//! - **Cache**: the last reading of each car is kept (up to a day); a reading
//!   younger than the OEM's TTL, or than the caller's `Cache-Control: max-age`, is
//!   answered without an OEM call. `max-age=0` forces a fresh read.
//! - **Single flight**: concurrent reads of one car needing a fresh value share one OEM
//!   call, made by the first of them in its own task; if that caller goes away, the
//!   others start over, so none is stranded.
//! - **Sleeping cars** (waking is billed like ~20 commands): a read of a sleeping car
//!   answers the last known value with its age when there is one, else
//!   `vehicle_asleep`; it wakes the car only when the caller sent `max-age=0` (per-OEM
//!   `reads.wake` policy: `on_request` by default, or `if_no_cache`, `always`, `never`).
//!   Commands always wake: an `Asleep` answer means the OEM did not act, so the command
//!   is sent again once the car is online.
//! - **Other replicas' changes** (cluster mode): [`follow_changes`] drops the cached
//!   record and lock state of a car another replica announces a change of.
//! - **Watched and pushed news**: what the watcher read or an OEM pushed is kept like a
//!   read of its own ([`Fleet::observed`]), so a read within the TTL answers it without
//!   an OEM call (a pushed one says `source: push`).

mod call;
mod error;
mod fleet;
mod follow;
mod observed;
mod routes;

pub use call::OemCall;
pub use error::VehicleError;
use fleet::*;
pub use fleet::{Fleet, Link, Source, WakePolicy};
pub use follow::follow_changes;
pub use observed::{News, connectivity_of};
pub use routes::{Car, Routed};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_adapter::{
    Adapter, Call, Capability, Connectivity, Location, OemError, SecurityState, VehicleRef,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::config::WakeForReads;
use crate::metrics;
use crate::registry::Registry;
use crate::store::{FleetAreas, VehicleRecord};
use crate::sync::{Cache, cache, lock};
use crate::tokens::{CallError, TokenError, Tokens};

/// How long an asynchronous location read may take (GM's own clients give up ~60 s).
const ASYNC_READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Fleet {
    /// A fleet over the given parts.
    pub fn new(
        store: Arc<dyn FleetAreas>,
        registry: Arc<Registry>,
        tokens: Arc<Tokens>,
        wake: WakePolicy,
        prefer: crate::config::RoutesConfig,
        clock: crate::clock::Clock,
    ) -> Self {
        Self {
            clock,
            store,
            registry,
            tokens,
            wake,
            last: [cache(KEPT), cache(KEPT)],
            flights: Mutex::default(),
            links: cache(KEPT),
            keeping: Mutex::default(),
            records: cache(KEPT),
            routes: cache(KEPT),
            prefer,
        }
    }

    fn last(&self, kind: Kind) -> &Cache<String, Reading> {
        &self.last[kind as usize]
    }

    /// The car's last reading of `kind`, if one is kept.
    fn kept(&self, vehicle_id: &str, kind: Kind) -> Option<Reading> {
        self.last(kind)
            .get(vehicle_id)
            .filter(|r| r.fetched_at.elapsed() <= READING_KEPT)
    }

    /// Forgets a cached vehicle record (it changed in the store).
    pub fn invalidate_vehicle(&self, id: &str) {
        self.records.remove(id);
    }

    /// Forgets every cached vehicle record (accounts linked or unlinked).
    pub fn invalidate_vehicles(&self) {
        self.records.clear();
        self.routes.clear();
    }

    /// A vehicle record by id, whatever its tenant (keyway's own work: watching),
    /// kept for [`RECORD_KEPT`].
    pub async fn record(&self, id: &str) -> Result<Option<Arc<VehicleRecord>>, VehicleError> {
        if let Some((read_at, v)) = self.records.get(id)
            && read_at.elapsed() <= RECORD_KEPT
        {
            return Ok(Some(v));
        }
        let Some(v) = self.store.vehicle(id).await? else {
            return Ok(None);
        };
        let v = Arc::new(v);
        self.records
            .insert(id.to_string(), (Instant::now(), v.clone()));
        Ok(Some(v))
    }

    /// A page of the vehicles the caller may touch: up to `limit`, ids after `after`,
    /// ordered by id. A token restricted to some vehicles pages through those only.
    pub async fn list(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, VehicleError> {
        let Some(allowed) = &caller.vehicles else {
            return Ok(self
                .store
                .vehicles_page(&caller.tenant, after, limit)
                .await?);
        };
        let mut ids: Vec<&String> = allowed
            .iter()
            .filter(|id| after.is_none_or(|a| id.as_str() > a))
            .collect();
        ids.sort();
        ids.dedup();
        let mut page = Vec::new();
        for id in ids {
            if page.len() == limit as usize {
                break;
            }
            if let Some(v) = self.store.tenant_vehicle(&caller.tenant, id).await? {
                page.push(v);
            }
        }
        Ok(page)
    }

    /// The vehicle with its OEM resolved, or `not_capable` when its OEM is not enabled.
    pub fn oem<'a>(&'a self, v: &'a VehicleRecord) -> Result<OemCall<'a>, VehicleError> {
        let oem = self
            .registry
            .get(&v.oem)
            .ok_or_else(|| VehicleError::NotEnabled(v.oem.to_string()))?;
        Ok(OemCall::new(&self.tokens, &self.wake, v, oem, &self.clock))
    }

    /// The vehicle's adapter, or `not_capable` when its OEM is not enabled.
    pub fn adapter(&self, v: &VehicleRecord) -> Result<Arc<dyn Adapter>, VehicleError> {
        self.oem(v).map(|o| o.adapter().clone())
    }

    /// What keyway can do with the car: its adapter's declaration, less what its OEM
    /// says this car cannot do; nothing when its OEM is not enabled.
    pub fn capabilities(&self, v: &VehicleRecord) -> Vec<Capability> {
        self.adapter(v).map_or_else(
            |_| Vec::new(),
            |a| {
                let declared = a.info().capabilities.iter().copied();
                declared.filter(|c| v.may(*c)).collect()
            },
        )
    }

    /// The vehicle's OEM, or `not_capable` unless its adapter declares `c`.
    pub fn require<'a>(
        &'a self,
        v: &'a VehicleRecord,
        c: Capability,
    ) -> Result<OemCall<'a>, VehicleError> {
        let oem = self.oem(v)?;
        if oem.can(c) {
            Ok(oem)
        } else {
            let make = oem.adapter().info().make;
            let what = match v.may(c) {
                true => format!("{make} vehicles do not support {c:?}"),
                false => format!("this {make} vehicle does not support {c:?}, its OEM says"),
            };
            Err(VehicleError::NotCapable {
                oem: v.oem.to_string(),
                what: what.to_lowercase(),
            })
        }
    }

    /// The vehicle's position, no older than `max_age` (default: the OEM's TTL).
    pub async fn locate(
        &self,
        v: &VehicleRecord,
        max_age: Option<Duration>,
    ) -> Result<Location, VehicleError> {
        self.position(v, max_age).await.map(|(l, _)| l)
    }

    /// [`Fleet::locate`], and whether the position was read or pushed.
    pub async fn position(
        &self,
        v: &VehicleRecord,
        max_age: Option<Duration>,
    ) -> Result<(Location, Source), VehicleError> {
        let oem = self.require(v, Capability::Locate)?;
        let reading = self.read(&oem, Kind::Location, max_age).await?;
        match reading.value {
            Value::Location(l) => Ok((l, reading.source)),
            Value::Security(_) => Err(VehicleError::Internal("cache returned the wrong reading")),
        }
    }

    /// The vehicle's lock state: from the car (cached as for locations) when its OEM can
    /// read it, else the state the last confirmed command left.
    pub async fn security(
        &self,
        v: &VehicleRecord,
        max_age: Option<Duration>,
    ) -> Result<(SecurityState, Source), VehicleError> {
        self.security_via(v, v, max_age).await
    }

    /// [`Fleet::security`] of vehicle `v` read through one of its routes (`route`, its
    /// own record or another of the car's, [`routes`]): keyway's confirmed commands are
    /// the vehicle's, whatever route the snapshot comes through.
    pub async fn security_via(
        &self,
        v: &VehicleRecord,
        route: &VehicleRecord,
        max_age: Option<Duration>,
    ) -> Result<(SecurityState, Source), VehicleError> {
        let oem = self.oem(route)?;
        if !oem.can(Capability::Security) {
            return match v.last_locked {
                Some((locked, at)) => Ok((
                    SecurityState {
                        locked: Some(locked),
                        doors: None,
                        recorded_at: Some(at),
                    },
                    Source::LastCommand,
                )),
                None => Ok((
                    SecurityState {
                        locked: None,
                        doors: None,
                        recorded_at: None,
                    },
                    Source::Nothing,
                )),
            };
        }
        let reading = self.read(&oem, Kind::Security, max_age).await?;
        let Value::Security(s) = reading.value else {
            return Err(VehicleError::Internal("cache returned the wrong reading"));
        };
        // A command keyway confirmed is newer than any OEM snapshot that may have been
        // taken before it: a snapshot asked for within a state lag of the confirmation
        // that shows otherwise is the cloud's older view, not a change of the car.
        if let Some((locked, confirmed_at)) = v.last_locked
            && s.locked != Some(locked)
        {
            let asked_at = self.clock.now()
                - time::Duration::try_from(reading.asked_at.elapsed()).unwrap_or_default();
            // ... unless another command was sent since: the snapshot may show that one
            // (the store is asked only when the snapshot may be the older view).
            let older_view = asked_at < confirmed_at + oem.timing().state_lag;
            if older_view
                && self
                    .store
                    .commands_sent_since(&v.id, confirmed_at)
                    .await
                    .is_ok_and(|later| later.is_empty())
            {
                let confirmed = SecurityState {
                    locked: Some(locked),
                    doors: s.doors,
                    recorded_at: Some(confirmed_at),
                };
                return Ok((confirmed, Source::LastCommand));
            }
        }
        Ok((s, reading.source))
    }

    /// Forgets every cached reading and record (changes may have been missed).
    pub fn invalidate_all(&self) {
        for last in &self.last {
            last.clear();
        }
        self.records.clear();
    }

    /// Forgets the cached lock state (a command just changed it).
    pub fn invalidate_security(&self, vehicle_id: &str) {
        self.last(Kind::Security).remove(vehicle_id);
    }

    /// A reading of `kind` through the vehicle's resolved OEM (`oem`, resolved once
    /// per request): kept, coalesced with others, or fetched.
    async fn read(
        &self,
        oem: &OemCall<'_>,
        kind: Kind,
        max_age: Option<Duration>,
    ) -> Result<Reading, VehicleError> {
        let (v, reads) = (oem.vehicle, &oem.oem.config.reads);
        let ttl = max_age.unwrap_or(match kind {
            Kind::Location => reads.location_ttl,
            Kind::Security => reads.security_ttl,
        });
        // `max-age=0` never takes a kept reading: no lookup.
        let force = max_age == Some(Duration::ZERO);
        if !force
            && let Some(r) = self.kept(&v.id, kind)
            && r.fetched_at.elapsed() <= ttl
        {
            metrics::cache(kind.as_str(), "hit");
            return Ok(r);
        }
        self.coalesced((v.id.clone(), kind), oem, force, reads.wake)
            .await
    }

    /// One fresh read per vehicle and kind at a time; every concurrent caller gets its
    /// result. The first caller leads: it reads in its own task, with no task spawned
    /// and no hand-off. If it goes away before the read ends (its client hung up), its
    /// [`Flight`] entry goes with it and the callers waiting on it start over (one of
    /// them leads the next read), so nobody is stranded. (A caller whose cache check
    /// missed just before a flight finished starts the next flight: re-checking the cache
    /// under this lock would close that narrow window but cost a quarter of forced-fresh
    /// throughput — see BENCHMARKS.md.)
    async fn coalesced(
        &self,
        key: Key,
        oem: &OemCall<'_>,
        force: bool,
        wake: WakeForReads,
    ) -> Result<Reading, VehicleError> {
        loop {
            let waiting = {
                let mut flights = lock(&self.flights);
                match flights.get(&key) {
                    Some(tx) => {
                        metrics::cache(key.1.as_str(), "coalesced");
                        Some(tx.subscribe())
                    }
                    None => {
                        metrics::cache(key.1.as_str(), "miss");
                        flights.insert(key.clone(), watch::channel(None).0);
                        None
                    }
                }
            };
            let Some(mut rx) = waiting else {
                let mut leading = Leading {
                    flights: &self.flights,
                    key: Some(&key),
                };
                let result = self.fetch(oem, key.1, force, wake).await;
                leading.key = None;
                if let Some(tx) = lock(&self.flights).remove(&key)
                    && tx.receiver_count() > 0
                {
                    let _ = tx.send(Some(result.clone()));
                }
                return result;
            };
            if let Ok(r) = rx.wait_for(Option::is_some).await {
                return r
                    .clone()
                    .unwrap_or(Err(VehicleError::Internal("empty flight")));
            }
            // The leader went away before its read ended: start over.
        }
    }

    async fn fetch(
        &self,
        oem: &OemCall<'_>,
        kind: Kind,
        force: bool,
        wake: WakeForReads,
    ) -> Result<Reading, VehicleError> {
        let v = oem.vehicle;
        let asked_at = Instant::now();
        let read = |cx: Call, adapter: Arc<dyn Adapter>, car: VehicleRef| async move {
            match kind {
                Kind::Location => adapter.locate(&cx, &car).await.map(Value::Location),
                Kind::Security => adapter.security(&cx, &car).await.map(Value::Security),
            }
        };
        let first = if kind == Kind::Location
            && oem.adapter().info().location_mode == keyway_adapter::CommandMode::Async
        {
            self.locate_async(oem).await.map(Value::Location)
        } else {
            oem.call(kind.as_str(), read).await
        };
        // A state without a position: the OEM's separate locate flow, where it has one
        // (BMW's vehicle finder); without one, the answer stays "no fix".
        let first = match first {
            Err(CallError::Oem(OemError::NoFix { .. })) if kind == Kind::Location => {
                match self.locate_async(oem).await {
                    Err(CallError::Oem(OemError::NotCapable { .. })) => first,
                    other => other.map(Value::Location),
                }
            }
            other => other,
        };
        if let Err(e) = &first
            && let Some(c) = connectivity_of(e)
        {
            self.seen(&v.id, c);
        }
        let value = match first {
            Err(CallError::Oem(OemError::Asleep)) => {
                let last = self.kept(&v.id, kind);
                let may_wake = oem.can(Capability::Wake)
                    && match wake {
                        WakeForReads::Always => true,
                        WakeForReads::Never => false,
                        WakeForReads::IfNoCache => force || last.is_none(),
                        WakeForReads::OnRequest => force,
                    };
                if !may_wake {
                    if let Some(last) = last {
                        // The car sleeps: answer what it last said, with its age.
                        metrics::cache(kind.as_str(), "stale");
                        return Ok(last);
                    }
                    return Err(TokenError::from_oem(&v.oem, OemError::Asleep).into());
                }
                oem.wake_up().await.map_err(|e| e.at(&v.oem))?;
                oem.call(kind.as_str(), read).await
            }
            other => other,
        }
        .map_err(|e| e.at(&v.oem))?;
        // Only an OEM whose cars sleep tells a sleeping car from an online one.
        if oem.can(Capability::Wake) {
            self.seen(&v.id, Connectivity::Online);
        }
        let reading = Reading {
            value,
            asked_at,
            fetched_at: Instant::now(),
            source: Source::Vehicle,
        };
        self.keep(&v.id, kind, reading.clone());
        Ok(reading)
    }

    /// An asynchronous location read: start it, then poll until the OEM has the fix.
    async fn locate_async(&self, oem: &OemCall<'_>) -> Result<Location, CallError> {
        let pending = oem
            .call("location", |cx, adapter, car| async move {
                adapter.request_location(&cx, &car).await
            })
            .await?;
        let deadline = Instant::now() + ASYNC_READ_TIMEOUT;
        let pause = Duration::from_millis(pending.poll_after_ms).min(self.wake.read_poll);
        loop {
            self.clock.sleep(pause).await;
            let fix = oem
                .call("location_poll", |cx, adapter, car| {
                    let pending = pending.clone();
                    async move { adapter.poll_location(&cx, &car, &pending).await }
                })
                .await?;
            if let Some(location) = fix {
                return Ok(location);
            }
            if Instant::now() >= deadline {
                return Err(CallError::Oem(OemError::Timeout {
                    delivered: keyway_adapter::Delivered::No,
                }));
            }
        }
    }
}
