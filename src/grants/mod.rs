//! Delivery access grants: the owner's service (`grants:write`) lets one grantee
//! (`grants:use`) unlock one car, inside a time window, a counted number of times, and
//! — with a geofence — only while the car is where it should be. keyway enforces every
//! limit itself, so a bug or a leaked credential at the delivery service cannot open a
//! car outside what was granted:
//!
//! - **unlock** ([`Grants::unlock`]) checks, in order: the grant is the caller's, not
//!   revoked or completed, inside `[not_before, not_after)`, has unlocks left, and (with
//!   a geofence) a fresh location read puts the car inside it. The decision is written
//!   to the audit log and a relock is owed *before* the unlock is sent, so a crash right
//!   after sending still leaves the relock to do.
//! - **guaranteed relock**: at `relock_after_s` after the unlock, at `complete`, at
//!   revocation or when the window ends — whichever comes first — the relock worker
//!   ([`run`]) locks the car and confirms it by reading the lock state back. A failed
//!   attempt is retried with doubling backoff; after `relock_max_attempts` the grant is
//!   marked `failed` and `grant.relock_failed` is emitted for a human to act on. The
//!   owed relock is a row in the store, so it survives restarts, and in cluster mode a
//!   `relock:<grant>` lease lets exactly one replica work on it.
//!
//! Grant times use the gateway's [`Clock`] (tests move it forward).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_adapter::Capability;
use time::OffsetDateTime;

use crate::audit::{Audit, Decision};
use crate::auth::{Caller, Scope};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::commands::Commands;
use crate::events::{Events, Kind};
use crate::store::{Geofence, GrantAreas, GrantRecord, RelockState, VehicleId};
use crate::vehicles::Fleet;

mod error;
mod moved;
mod owner;
mod relock;
mod timeline;
mod unlock;
mod view;

pub use error::GrantError;
pub use view::{GrantEvent, GrantView, status, view};

/// Relock timing.
#[derive(Clone, Copy, Debug)]
pub struct GrantSettings {
    /// How often the relock worker looks for due relocks.
    pub tick: Duration,
    /// Attempts before a relock is given up and escalated.
    pub relock_max_attempts: u32,
    /// Delay before the second attempt (doubling, at most a minute).
    pub relock_backoff: Duration,
    /// Longest wait for one relock command's outcome.
    pub relock_wait: Duration,
    /// Pause between lock-state reads that confirm a relock or watch for a late unlock.
    pub confirm_poll: Duration,
    /// Longest grant window.
    pub max_window: Duration,
}

/// What a `POST /v1/grants` asks for.
#[derive(Clone, Debug)]
pub struct NewGrant {
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// The `sub` that may use it.
    pub grantee: String,
    /// From (default: now).
    pub not_before: Option<OffsetDateTime>,
    /// Until.
    pub not_after: OffsetDateTime,
    /// Unlocks (default 1).
    pub max_unlocks: Option<u32>,
    /// Where the car must be.
    pub geofence: Option<Geofence>,
    /// Relock this long after an unlock (default 120 s).
    pub relock_after_s: Option<u32>,
    /// Free text.
    pub purpose: Option<String>,
}

/// The grant service.
pub struct Grants {
    store: Arc<dyn GrantAreas>,
    fleet: Arc<Fleet>,
    commands: Arc<Commands>,
    events: Arc<Events>,
    audit: Arc<Audit>,
    /// The gateway's clock (tests move it forward through grant windows).
    pub clock: Clock,
    cluster: Arc<Cluster>,
    settings: GrantSettings,
    /// Relocks running in this process.
    relocking: Mutex<HashSet<String>>,
    /// Wakes the relock worker (a relock became due now).
    wake: tokio::sync::Notify,
    /// One unlock request per idempotency key at a time in this process.
    key_locks: crate::sync::KeyLocks,
}

pub use crate::geo::distance_m;

/// Who a caller is to a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The tenant that created it (reads, lists, revokes, completes).
    Creator,
    /// The courier it names (reads, unlocks, completes).
    Grantee,
}

impl Role {
    fn scope(self) -> Scope {
        match self {
            Role::Creator => Scope::GrantsWrite,
            Role::Grantee => Scope::GrantsUse,
        }
    }
}

fn not_found(id: &str) -> GrantError {
    GrantError::NotFound(id.to_string())
}

impl Grants {
    /// The grant service.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn GrantAreas>,
        fleet: Arc<Fleet>,
        commands: Arc<Commands>,
        events: Arc<Events>,
        audit: Arc<Audit>,
        clock: Clock,
        cluster: Arc<Cluster>,
        settings: GrantSettings,
    ) -> Self {
        Self {
            store,
            fleet,
            commands,
            events,
            audit,
            clock,
            cluster,
            settings,
            relocking: Mutex::default(),
            key_locks: crate::sync::KeyLocks::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Creates a grant for a vehicle the caller may touch.
    pub async fn create(&self, caller: &Caller, n: NewGrant) -> Result<GrantRecord, GrantError> {
        caller.require(Scope::GrantsWrite)?;
        let now = self.clock.now();
        let not_before = n.not_before.unwrap_or(now);
        let max_unlocks = n.max_unlocks.unwrap_or(1);
        let relock_after_s = n.relock_after_s.unwrap_or(120);
        let bad = |m: &str| Err(GrantError::Invalid(m.to_string()));
        if n.grantee.trim().is_empty() {
            return bad("grantee must be the grantee's token subject (1-200 characters)");
        }
        crate::text::check("grantee", &n.grantee, 200)?;
        if let Some(p) = &n.purpose {
            crate::text::check("purpose", p, 200)?;
        }
        // A car the caller cannot reach is the first answer, whatever else is wrong.
        let vehicle = self.fleet.find(caller, &n.vehicle_id).await?;
        if n.not_after <= not_before || n.not_after <= now {
            return bad("not_after must be later than not_before and than now");
        }
        if n.not_after - not_before > self.settings.max_window {
            return bad(&format!(
                "the window may last at most {} s",
                self.settings.max_window.as_secs()
            ));
        }
        if !(1..=10).contains(&max_unlocks) {
            return bad("max_unlocks must be 1 to 10");
        }
        if !(10..=3600).contains(&relock_after_s) {
            return bad("relock_after_s must be 10 to 3600");
        }
        if let Some(f) = &n.geofence
            && !((-90.0..=90.0).contains(&f.latitude)
                && (-180.0..=180.0).contains(&f.longitude)
                && (10.0..=50_000.0).contains(&f.radius_m))
        {
            return bad("geofence needs latitude -90..90, longitude -180..180, radius_m 10..50000");
        }
        // A grant unlocks, and keyway must be able to relock and read the lock back.
        for c in [Capability::Unlock, Capability::Lock, Capability::Security] {
            self.fleet.require(&vehicle, c)?;
        }
        if n.geofence.is_some() {
            self.fleet.require(&vehicle, Capability::Locate)?;
        }
        let t = self.clock.now();
        let g = GrantRecord {
            id: crate::ids::new("grt"),
            vehicle_id: vehicle.id.clone(),
            grantee: n.grantee.trim().to_string(),
            created_by: caller.sub.clone(),
            tenant: vehicle.tenant.clone(),
            purpose: n.purpose,
            not_before,
            not_after: n.not_after,
            max_unlocks,
            unlocks_used: 0,
            geofence: n.geofence,
            relock_after_s,
            revoked_at: None,
            completed_at: None,
            relock_state: RelockState::None,
            relock_due_at: None,
            relock_attempts: 0,
            relocked_at: None,
            created_at: t,
            updated_at: t,
        };
        self.audit
            .record(Decision {
                actor: &caller.sub,
                action: "grant.create",
                decision: "allowed",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                detail: Some(&format!("grantee {}", g.grantee)),
                ..Decision::default()
            })
            .await?;
        self.store.insert_grant(&g).await?;
        self.event(Kind::GrantCreated, &g, None).await;
        Ok(g)
    }

    async fn event(&self, kind: Kind, g: &GrantRecord, command: Option<&str>) {
        let now = self.clock.now();
        self.events
            .emit(&GrantEvent::new(kind, g, command, now))
            .await;
    }

    /// A grant the caller may see: its creating tenant's side (`grants:write`) or its
    /// grantee (`grants:use`), either on a vehicle the token may touch; anything else
    /// is `grant_not_found`, whether or not the grant exists.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<GrantRecord, GrantError> {
        self.visible(caller, id, &[Role::Creator, Role::Grantee])
            .await
    }

    /// The grant if the caller has one of `roles` on it.
    async fn visible(
        &self,
        caller: &Caller,
        id: &str,
        roles: &[Role],
    ) -> Result<GrantRecord, GrantError> {
        let scopes: Vec<Scope> = roles.iter().map(|r| r.scope()).collect();
        if !scopes.iter().any(|s| caller.has(*s)) {
            caller.require(scopes[0])?;
        }
        let g = self
            .store
            .visible_grant(&caller.tenant, &caller.sub, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let holds = |r: &Role| {
            caller.has(r.scope())
                && match r {
                    Role::Creator => g.tenant == caller.tenant,
                    Role::Grantee => g.grantee == caller.sub,
                }
        };
        if roles.iter().any(holds) && caller.may_touch(&g.vehicle_id) {
            Ok(g)
        } else {
            Err(not_found(id))
        }
    }

    /// A vehicle's grants.
    pub async fn list(
        &self,
        caller: &Caller,
        vehicle_id: &VehicleId,
    ) -> Result<Vec<GrantRecord>, GrantError> {
        caller.require(Scope::GrantsWrite)?;
        let v = self.fleet.find(caller, vehicle_id).await?;
        Ok(self.store.grants_for_vehicle(&caller.tenant, &v.id).await?)
    }

    /// Revokes a grant; an owed relock becomes due now.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<GrantRecord, GrantError> {
        let mut g = self.visible(caller, id, &[Role::Creator]).await?;
        if g.revoked_at.is_some() {
            return Ok(g);
        }
        g.revoked_at = Some(self.clock.now());
        self.end(caller, &mut g, "grant.revoke", Kind::GrantRevoked)
            .await?;
        Ok(g)
    }

    /// The grantee (or the creating tenant) is done, parcel in: the owed relock becomes
    /// due now.
    pub async fn complete(&self, caller: &Caller, id: &str) -> Result<GrantRecord, GrantError> {
        let mut g = self.get(caller, id).await?;
        if g.completed_at.is_some() || g.revoked_at.is_some() {
            return Ok(g);
        }
        g.completed_at = Some(self.clock.now());
        self.end(caller, &mut g, "grant.complete", Kind::GrantCompleted)
            .await?;
        Ok(g)
    }

    async fn end(
        &self,
        caller: &Caller,
        g: &mut GrantRecord,
        action: &str,
        event: Kind,
    ) -> Result<(), GrantError> {
        if g.relock_state == RelockState::Due {
            g.relock_due_at = Some(self.clock.now());
        }
        g.updated_at = self.clock.now();
        self.store.update_grant(g).await?;
        self.audit
            .note(Decision {
                actor: &caller.sub,
                action,
                decision: "allowed",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                ..Decision::default()
            })
            .await;
        self.event(event, g, None).await;
        self.wake.notify_one();
        Ok(())
    }
}

/// The relock worker: runs due relocks every tick (and when woken) until dropped.
pub async fn run(grants: Arc<Grants>) {
    loop {
        grants.relock_due().await;
        let _ = tokio::time::timeout(grants.settings.tick, grants.wake.notified()).await;
    }
}
