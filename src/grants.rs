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
//! Grant times use [`Clock`] (wall time; tests move it forward).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_adapter::{Capability, Command};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::audit::{Audit, Decision};
use crate::auth::{Caller, Scope};
use crate::clock::Clock;
use crate::clock::timestamp;
use crate::cluster::Cluster;
use crate::commands::{Commands, Request};
use crate::error::{ApiError, Code};
use crate::events::{Events, Subject};
use crate::store::{CommandRecord, CommandStatus, Geofence, GrantRecord, RelockState, Store};
use crate::sync::lock;
use crate::vehicles::Fleet;

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
    pub vehicle_id: String,
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
    store: Arc<dyn Store>,
    fleet: Arc<Fleet>,
    commands: Arc<Commands>,
    events: Arc<Events>,
    audit: Arc<Audit>,
    /// Grant time.
    pub clock: Arc<Clock>,
    cluster: Arc<Cluster>,
    settings: GrantSettings,
    /// Relocks running in this process.
    relocking: Mutex<HashSet<String>>,
    /// Wakes the relock worker (a relock became due now).
    wake: tokio::sync::Notify,
}

/// A grant's status at `now`.
pub fn status(g: &GrantRecord, now: OffsetDateTime) -> &'static str {
    if g.revoked_at.is_some() {
        "revoked"
    } else if g.completed_at.is_some() {
        "completed"
    } else if now >= g.not_after {
        "expired"
    } else if g.unlocks_used >= g.max_unlocks {
        "exhausted"
    } else if now < g.not_before {
        "scheduled"
    } else {
        "active"
    }
}

/// The JSON view of a grant.
pub fn view(g: &GrantRecord, now: OffsetDateTime) -> Value {
    json!({
        "id": g.id,
        "vehicle_id": g.vehicle_id,
        "grantee": g.grantee,
        "purpose": g.purpose,
        "status": status(g, now),
        "not_before": timestamp(g.not_before),
        "not_after": timestamp(g.not_after),
        "max_unlocks": g.max_unlocks,
        "unlocks_used": g.unlocks_used,
        "geofence": g.geofence.map(|f| json!({
            "latitude": f.latitude, "longitude": f.longitude, "radius_m": f.radius_m,
        })),
        "relock_after_s": g.relock_after_s,
        "relock": {
            "state": g.relock_state.as_str(),
            "due_at": g.relock_due_at.map(timestamp),
            "attempts": g.relock_attempts,
            "relocked_at": g.relocked_at.map(timestamp),
        },
        "revoked_at": g.revoked_at.map(timestamp),
        "completed_at": g.completed_at.map(timestamp),
        "created_at": timestamp(g.created_at),
    })
}

/// Great-circle distance in metres (haversine on a spherical Earth).
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R: f64 = 6_371_008.8;
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dla = la2 - la1;
    let dlo = (b.1 - a.1).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

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

fn not_found(id: &str) -> ApiError {
    ApiError::new(Code::GrantNotFound, format!("no grant {id}"))
}

impl Grants {
    /// The grant service.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        fleet: Arc<Fleet>,
        commands: Arc<Commands>,
        events: Arc<Events>,
        audit: Arc<Audit>,
        clock: Arc<Clock>,
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
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Creates a grant for a vehicle the caller may touch.
    pub async fn create(&self, caller: &Caller, n: NewGrant) -> Result<GrantRecord, ApiError> {
        caller.require(Scope::GrantsWrite)?;
        let now = self.clock.now();
        let not_before = n.not_before.unwrap_or(now);
        let max_unlocks = n.max_unlocks.unwrap_or(1);
        let relock_after_s = n.relock_after_s.unwrap_or(120);
        let bad = |m: &str| Err(ApiError::invalid(m.to_string()));
        if n.grantee.trim().is_empty() {
            return bad("grantee must be the grantee's token subject (1-200 characters)");
        }
        crate::text::check("grantee", &n.grantee, 200)?;
        if let Some(p) = &n.purpose {
            crate::text::check("purpose", p, 200)?;
        }
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
        let vehicle = self.fleet.find(caller, &n.vehicle_id).await?;
        // A grant unlocks, and keyway must be able to relock and read the lock back.
        for c in [Capability::Unlock, Capability::Lock, Capability::Security] {
            self.fleet.require(&vehicle, c)?;
        }
        if n.geofence.is_some() {
            self.fleet.require(&vehicle, Capability::Locate)?;
        }
        let t = crate::store::now();
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
        self.event("grant.created", &g, None).await;
        Ok(g)
    }

    async fn event(&self, kind: &str, g: &GrantRecord, command: Option<&str>) {
        self.events
            .emit(
                kind,
                Subject {
                    tenant: &g.tenant,
                    vehicle_id: Some(&g.vehicle_id),
                    grant_id: Some(&g.id),
                    command_id: command,
                },
                view(g, self.clock.now()),
            )
            .await;
    }

    /// A grant the caller may see: its creating tenant's side (`grants:write`) or its
    /// grantee (`grants:use`), either on a vehicle the token may touch; anything else
    /// is `grant_not_found`, whether or not the grant exists.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<GrantRecord, ApiError> {
        self.visible(caller, id, &[Role::Creator, Role::Grantee])
            .await
    }

    /// The grant if the caller has one of `roles` on it.
    async fn visible(
        &self,
        caller: &Caller,
        id: &str,
        roles: &[Role],
    ) -> Result<GrantRecord, ApiError> {
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
        vehicle_id: &str,
    ) -> Result<Vec<GrantRecord>, ApiError> {
        caller.require(Scope::GrantsWrite)?;
        let v = self.fleet.find(caller, vehicle_id).await?;
        Ok(self.store.grants_for_vehicle(&caller.tenant, &v.id).await?)
    }

    /// Revokes a grant; an owed relock becomes due now.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<GrantRecord, ApiError> {
        let mut g = self.visible(caller, id, &[Role::Creator]).await?;
        if g.revoked_at.is_some() {
            return Ok(g);
        }
        g.revoked_at = Some(self.clock.now());
        self.end(caller, &mut g, "grant.revoke", "grant.revoked")
            .await?;
        Ok(g)
    }

    /// The grantee (or the creating tenant) is done, parcel in: the owed relock becomes
    /// due now.
    pub async fn complete(&self, caller: &Caller, id: &str) -> Result<GrantRecord, ApiError> {
        let mut g = self.get(caller, id).await?;
        if g.completed_at.is_some() || g.revoked_at.is_some() {
            return Ok(g);
        }
        g.completed_at = Some(self.clock.now());
        self.end(caller, &mut g, "grant.complete", "grant.completed")
            .await?;
        Ok(g)
    }

    async fn end(
        &self,
        caller: &Caller,
        g: &mut GrantRecord,
        action: &str,
        event: &str,
    ) -> Result<(), ApiError> {
        if g.relock_state == RelockState::Due {
            g.relock_due_at = Some(self.clock.now());
        }
        g.updated_at = crate::store::now();
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

    async fn refuse(&self, caller: &Caller, g: &GrantRecord, e: ApiError) -> ApiError {
        self.audit
            .note(Decision {
                actor: &caller.sub,
                action: "grant.unlock",
                decision: "refused",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                detail: Some(e.code.as_str()),
                ..Decision::default()
            })
            .await;
        e.with("grant_id", g.id.clone())
    }

    /// Unlocks the grant's car for its grantee, if every limit allows it now. Returns
    /// the unlock command as it stands.
    pub async fn unlock(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        idempotency_key: Option<String>,
        request_id: Option<String>,
    ) -> Result<CommandRecord, ApiError> {
        let g = self.visible(caller, id, &[Role::Grantee]).await?;
        // A replay of an unlock already made returns that command, nothing more.
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.store.command_for_key(&caller.key_scope(), key).await?
            && let Some(c) = self.store.command(&existing).await?
        {
            if c.reference.as_deref() == Some(g.id.as_str()) && c.action == Command::Unlock {
                return Ok(c);
            }
            return Err(ApiError::new(
                Code::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request",
            )
            .with("command_id", c.id));
        }
        let now = self.clock.now();
        let refusal = if g.revoked_at.is_some() {
            Some(ApiError::new(Code::GrantRevoked, "this grant was revoked"))
        } else if g.completed_at.is_some() {
            Some(ApiError::new(
                Code::GrantNotActive,
                "this grant was completed",
            ))
        } else if now < g.not_before || now >= g.not_after {
            Some(
                ApiError::new(
                    Code::GrantNotActive,
                    "this grant can be used only inside its window",
                )
                .with("not_before", timestamp(g.not_before))
                .with("not_after", timestamp(g.not_after)),
            )
        } else if g.unlocks_used >= g.max_unlocks {
            Some(ApiError::new(
                Code::GrantExhausted,
                format!("this grant's {} unlock(s) are used", g.max_unlocks),
            ))
        } else {
            None
        };
        if let Some(e) = refusal {
            return Err(self.refuse(caller, &g, e).await);
        }
        let vehicle =
            self.store.vehicle(&g.vehicle_id).await?.ok_or_else(|| {
                ApiError::new(Code::VehicleNotFound, "the grant's vehicle is gone")
            })?;
        if let Some(f) = g.geofence {
            // A fresh reading: a cached one could predate the car being moved.
            let at = self.fleet.locate(&vehicle, Some(Duration::ZERO)).await?;
            let d = distance_m((f.latitude, f.longitude), (at.latitude, at.longitude));
            if d > f.radius_m {
                let e = ApiError::new(
                    Code::OutsideGeofence,
                    format!(
                        "the car is {d:.0} m from the agreed place (allowed: {:.0} m)",
                        f.radius_m
                    ),
                )
                .with("distance_m", d.round());
                return Err(self.refuse(caller, &g, e).await);
            }
        }
        if !self.store.take_grant_unlock(&g.id).await? {
            let e = ApiError::new(Code::GrantExhausted, "this grant has no unlock left");
            return Err(self.refuse(caller, &g, e).await);
        }
        if let Err(e) = self
            .audit
            .record(Decision {
                actor: &caller.sub,
                action: "grant.unlock",
                decision: "allowed",
                vehicle_id: Some(&g.vehicle_id),
                grant_id: Some(&g.id),
                ..Decision::default()
            })
            .await
        {
            let _ = self.store.refund_grant_unlock(&g.id).await;
            return Err(e);
        }
        // The relock is owed before the car can open.
        let mut owed = self
            .store
            .grant(&g.id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let relock_at = (now + Duration::from_secs(u64::from(g.relock_after_s))).min(g.not_after);
        // A relock still owed from an earlier unlock keeps its (earlier) time.
        owed.relock_due_at = Some(match owed.relock_due_at {
            Some(earlier) if owed.relock_state == RelockState::Due => earlier.min(relock_at),
            _ => relock_at,
        });
        owed.relock_state = RelockState::Due;
        owed.relock_attempts = 0;
        owed.relocked_at = None;
        owed.updated_at = crate::store::now();
        self.store.update_grant(&owed).await?;
        let command = self
            .commands
            .submit(
                &vehicle,
                Request {
                    caller: caller.sub.clone(),
                    key_scope: caller.key_scope(),
                    tenant: g.tenant.clone(),
                    // The courier is owed this unlock: it may use the quota's reserve.
                    reserved: true,
                    action: Command::Unlock,
                    reference: Some(g.id.clone()),
                    idempotency_key,
                    request_id,
                },
            )
            .await;
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                let _ = self.store.refund_grant_unlock(&g.id).await;
                return Err(e);
            }
        };
        // Follow the outcome whether or not the grantee waits for it.
        let (this, cmd) = (self.clone(), command.id.clone());
        tokio::spawn(async move { this.after_unlock(&cmd).await });
        Ok(command)
    }

    async fn after_unlock(&self, command_id: &str) {
        let Ok(Some(c)) = self
            .commands
            .wait(command_id, Duration::from_secs(3600))
            .await
        else {
            return;
        };
        let Some(grant_id) = c.reference.as_deref() else {
            return;
        };
        let Ok(Some(g)) = self.store.grant(grant_id).await else {
            return;
        };
        match c.status {
            CommandStatus::Succeeded => self.event("grant.unlocked", &g, Some(&c.id)).await,
            // `failed` is certain: the car did not open, so the unlock is given back (the
            // owed relock still runs: locking a locked car is harmless).
            CommandStatus::Failed => {
                let _ = self.store.refund_grant_unlock(&g.id).await;
            }
            _ => {}
        }
    }

    /// Runs every relock due now (each at most once at a time, cluster-wide).
    pub async fn relock_due(self: &Arc<Self>) -> usize {
        let due = match self.store.due_relocks(self.clock.now()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read due relocks");
                return 0;
            }
        };
        let mut started = 0;
        for g in due {
            if !lock(&self.relocking).insert(g.id.clone()) {
                continue;
            }
            let lease = format!("relock:{}", g.id);
            if self.cluster.shared
                && !self
                    .store
                    .try_lease(&lease, &self.cluster.lease())
                    .await
                    .unwrap_or(false)
            {
                lock(&self.relocking).remove(&g.id);
                continue;
            }
            started += 1;
            let this = self.clone();
            tokio::spawn(async move {
                let id = g.id.clone();
                let held = this
                    .cluster
                    .shared
                    .then(|| crate::cluster::Held::keep(this.store.clone(), &this.cluster, lease));
                this.relock(g).await;
                drop(held);
                lock(&this.relocking).remove(&id);
            });
        }
        started
    }

    /// One relock attempt: lock, read the lock back, record and emit the outcome.
    async fn relock(&self, g: GrantRecord) {
        // Re-read under the lease: another replica may have finished it.
        let Ok(Some(mut g)) = self.store.grant(&g.id).await else {
            return;
        };
        if g.relock_state == RelockState::Watching && !self.late_unlock(&mut g).await {
            return;
        }
        if g.relock_state != RelockState::Due {
            return;
        }
        g.relock_attempts += 1;
        let outcome = self.lock_and_confirm(&g).await;
        let t = crate::store::now();
        g.updated_at = t;
        match outcome {
            Ok(command) => {
                // Watched for a late unlock for as long as the OEM may still run one.
                g.relock_state = RelockState::Watching;
                g.relock_due_at = Some(self.clock.now() + self.watch_pause(&g).await);
                g.relocked_at = Some(t);
                if let Err(e) = self.store.update_grant(&g).await {
                    tracing::error!(grant = %g.id, error = %e, "could not record the relock");
                }
                self.audit
                    .note(Decision {
                        actor: "keyway",
                        action: "grant.relock",
                        decision: "succeeded",
                        vehicle_id: Some(&g.vehicle_id),
                        grant_id: Some(&g.id),
                        command_id: Some(&command),
                        detail: Some("locked, and read back locked after the relock"),
                    })
                    .await;
                self.event("grant.relocked", &g, Some(&command)).await;
            }
            Err(why) => {
                let last = g.relock_attempts >= self.settings.relock_max_attempts;
                tracing::warn!(grant = %g.id, attempt = g.relock_attempts, error = %why,
                    "relock attempt failed");
                if last {
                    g.relock_state = RelockState::Failed;
                    g.relock_due_at = None;
                } else {
                    let delay = crate::upstream::retry::doubled(
                        self.settings.relock_backoff,
                        g.relock_attempts - 1,
                        Duration::from_secs(60),
                    );
                    g.relock_due_at = Some(self.clock.now() + delay);
                }
                if let Err(e) = self.store.update_grant(&g).await {
                    tracing::error!(grant = %g.id, error = %e, "could not record a relock attempt");
                }
                self.audit
                    .note(Decision {
                        actor: "keyway",
                        action: "grant.relock",
                        decision: "failed",
                        vehicle_id: Some(&g.vehicle_id),
                        grant_id: Some(&g.id),
                        detail: Some(&why),
                        ..Decision::default()
                    })
                    .await;
                if last {
                    tracing::error!(grant = %g.id, vehicle = %g.vehicle_id,
                        "relock failed for good: the car may be open");
                    self.event("grant.relock_failed", &g, None).await;
                }
            }
        }
    }

    /// Locks the car and reads the lock state back; the lock command's id, or why not.
    async fn lock_and_confirm(&self, g: &GrantRecord) -> Result<String, String> {
        let vehicle = self
            .store
            .vehicle(&g.vehicle_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the vehicle is gone")?;
        let c = self
            .commands
            .submit(
                &vehicle,
                Request {
                    caller: "keyway".into(),
                    key_scope: "keyway".into(),
                    tenant: g.tenant.clone(),
                    reserved: true,
                    action: Command::Lock,
                    reference: Some(g.id.clone()),
                    idempotency_key: None,
                    request_id: None,
                },
            )
            .await
            .map_err(|e| e.detail)?;
        let c = self
            .commands
            .wait(&c.id, self.settings.relock_wait)
            .await
            .map_err(|e| e.detail)?
            .ok_or("the lock command vanished")?;
        match c.status {
            CommandStatus::Succeeded => {}
            CommandStatus::Pending => return Err(format!("lock {} not confirmed in time", c.id)),
            CommandStatus::Failed | CommandStatus::Unknown => {
                return Err(format!(
                    "lock {} {}: {}",
                    c.id,
                    c.status.as_str(),
                    c.error_detail.unwrap_or_default()
                ));
            }
        }
        // Confirmed only by a lock state observed after the relock was sent.
        let sent_at = c.sent_at.unwrap_or_else(crate::store::now);
        let timing = self.commands.timing_of(&vehicle.oem);
        let deadline = tokio::time::Instant::now() + self.settings.relock_wait;
        loop {
            match self.commands.look(&vehicle).await {
                Some(o) if o.after(sent_at, &timing) && o.locked => return Ok(c.id),
                Some(o) if o.after(sent_at, &timing) => {
                    return Err("the car reads unlocked after the relock".into());
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "lock {} succeeded, but no lock state observed after it could be read",
                    c.id
                ));
            }
            tokio::time::sleep(self.settings.confirm_poll).await;
        }
    }

    /// How long until a watched grant's car is looked at again.
    async fn watch_pause(&self, g: &GrantRecord) -> Duration {
        let lag = match self.store.vehicle(&g.vehicle_id).await {
            Ok(Some(v)) => self.commands.timing_of(&v.oem).state_lag,
            _ => Duration::from_secs(60),
        };
        (lag / 4).max(self.settings.confirm_poll)
    }

    /// A watched grant: whether a late unlock opened the car after its relock (then the
    /// relock is owed again, and `grant.relock_repeated` emitted). Ends the watch once
    /// the OEM can no longer run an unlock sent before the relock.
    async fn late_unlock(&self, g: &mut GrantRecord) -> bool {
        let Ok(Some(vehicle)) = self.store.vehicle(&g.vehicle_id).await else {
            return false;
        };
        let timing = self.commands.timing_of(&vehicle.oem);
        let relocked_at = g.relocked_at.unwrap_or_else(crate::store::now);
        let watch_end = relocked_at + timing.command_window + timing.state_lag;
        let opened = self
            .commands
            .look(&vehicle)
            .await
            .filter(|o| o.after(relocked_at, &timing) && !o.locked);
        if let Some(o) = opened {
            tracing::warn!(grant = %g.id, vehicle = %g.vehicle_id,
                "the car opened after its relock (a late unlock); relocking again");
            g.relock_state = RelockState::Due;
            g.relock_due_at = Some(self.clock.now());
            g.relock_attempts = 0;
            g.updated_at = crate::store::now();
            if let Err(e) = self.store.update_grant(g).await {
                tracing::error!(grant = %g.id, error = %e, "could not record the repeated relock");
                return false;
            }
            let seen = format!(
                "read unlocked, reported at {}",
                crate::clock::timestamp(o.reported_at.unwrap_or(o.read_at))
            );
            self.audit
                .note(Decision {
                    actor: "keyway",
                    action: "grant.relock",
                    decision: "repeated",
                    vehicle_id: Some(&g.vehicle_id),
                    grant_id: Some(&g.id),
                    detail: Some(&seen),
                    ..Decision::default()
                })
                .await;
            self.event("grant.relock_repeated", g, None).await;
            return true;
        }
        g.relock_due_at = if crate::store::now() >= watch_end {
            g.relock_state = RelockState::Locked;
            None
        } else {
            Some(self.clock.now() + self.watch_pause(g).await)
        };
        g.updated_at = crate::store::now();
        if let Err(e) = self.store.update_grant(g).await {
            tracing::error!(grant = %g.id, error = %e, "could not record the watch");
        }
        false
    }

    /// Waits until the grant's owed relock is settled (locked or failed), up to `max`.
    pub async fn wait_relock(
        &self,
        id: &str,
        max: Duration,
    ) -> Result<Option<GrantRecord>, ApiError> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let g = self.store.grant(id).await?;
            let settled = g
                .as_ref()
                .is_none_or(|g| g.relock_state != RelockState::Due);
            if settled || tokio::time::Instant::now() >= deadline {
                return Ok(g);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The relock worker: runs due relocks every tick (and when woken) until dropped.
pub async fn run(grants: Arc<Grants>) {
    loop {
        grants.relock_due().await;
        let _ = tokio::time::timeout(grants.settings.tick, grants.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        // Berlin Brandenburg Gate to the Reichstag: about 370 m.
        let d = distance_m((52.516275, 13.377704), (52.518620, 13.376198));
        assert!((250.0..450.0).contains(&d), "{d}");
        assert_eq!(distance_m((10.0, 10.0), (10.0, 10.0)), 0.0);
    }
}
