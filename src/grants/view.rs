//! The JSON view of a grant: what the grant routes answer and what a `grant.*` event
//! carries, built in one place so the two never differ.

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock::timestamp;
use crate::events::{Kind, Payload, Subject};
use crate::store::GrantRecord;

/// Where a grant stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Before its window.
    Scheduled,
    /// Usable now.
    Active,
    /// Its unlocks are used.
    Exhausted,
    /// Its window has passed.
    Expired,
    /// The grantee completed it.
    Completed,
    /// The owner's side revoked it.
    Revoked,
}

/// A grant's status at `now`.
pub fn status(g: &GrantRecord, now: OffsetDateTime) -> GrantStatus {
    if g.revoked_at.is_some() {
        GrantStatus::Revoked
    } else if g.completed_at.is_some() {
        GrantStatus::Completed
    } else if now >= g.not_after {
        GrantStatus::Expired
    } else if g.unlocks_used >= g.max_unlocks {
        GrantStatus::Exhausted
    } else if now < g.not_before {
        GrantStatus::Scheduled
    } else {
        GrantStatus::Active
    }
}

/// A grant: what the grant routes answer and `grant.*` events carry.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Grant)]
pub struct GrantView {
    /// `grt_…`.
    pub id: String,
    /// The car.
    pub vehicle_id: String,
    /// The courier service it names.
    pub grantee: String,
    /// Why (free text).
    pub purpose: Option<String>,
    /// Where it stands now.
    pub status: GrantStatus,
    /// Start of its window.
    #[schema(format = DateTime)]
    pub not_before: String,
    /// End of its window.
    #[schema(format = DateTime)]
    pub not_after: String,
    /// Unlocks allowed.
    pub max_unlocks: u32,
    /// Unlocks used.
    pub unlocks_used: u32,
    /// Where the car must stand for an unlock.
    pub geofence: Option<GeofenceView>,
    /// Relock this long after an unlock.
    pub relock_after_s: u32,
    /// The guaranteed relock.
    pub relock: RelockView,
    /// When it was revoked.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// When it was completed.
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A grant's geofence.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Geofence)]
pub struct GeofenceView {
    /// Centre latitude.
    pub latitude: f64,
    /// Centre longitude.
    pub longitude: f64,
    /// Radius in metres.
    pub radius_m: f64,
}

/// A grant's relock.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Relock)]
pub struct RelockView {
    /// Where the guaranteed relock stands.
    pub state: crate::store::RelockState,
    /// When it is due.
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// When the relock was confirmed.
    #[schema(format = DateTime)]
    pub relocked_at: Option<String>,
}

/// The JSON view of a grant at `now`.
pub fn view(g: &GrantRecord, now: OffsetDateTime) -> GrantView {
    GrantView {
        id: g.id.clone(),
        vehicle_id: g.vehicle_id.to_string(),
        grantee: g.grantee.clone(),
        purpose: g.purpose.clone(),
        status: status(g, now),
        not_before: timestamp(g.not_before),
        not_after: timestamp(g.not_after),
        max_unlocks: g.max_unlocks,
        unlocks_used: g.unlocks_used,
        geofence: g.geofence.map(|f| GeofenceView {
            latitude: f.latitude,
            longitude: f.longitude,
            radius_m: f.radius_m,
        }),
        relock_after_s: g.relock_after_s,
        relock: RelockView {
            state: g.relock_state,
            due_at: g.relock_due_at.map(timestamp),
            attempts: g.relock_attempts,
            relocked_at: g.relocked_at.map(timestamp),
        },
        revoked_at: g.revoked_at.map(timestamp),
        completed_at: g.completed_at.map(timestamp),
        created_at: timestamp(g.created_at),
    }
}

/// A `grant.*` event: the grant's view, about its tenant, car, itself and (for an
/// unlock or relock) the command.
#[derive(Debug, Serialize)]
pub struct GrantEvent<'a> {
    #[serde(skip)]
    kind: Kind,
    #[serde(skip)]
    grant: &'a GrantRecord,
    #[serde(skip)]
    command_id: Option<&'a str>,
    #[serde(flatten)]
    view: GrantView,
    /// `grant.relocked` only: who locked the car — `keyway` (its relock command) or
    /// `owner` (the owner's own lock, read back after the grant's unlock).
    #[serde(skip_serializing_if = "Option::is_none")]
    relocked_by: Option<&'static str>,
    /// `grant.opened_after_relock` only: the openings found newly open.
    #[serde(skip_serializing_if = "Option::is_none")]
    opened: Option<Vec<keyway_adapter::DoorPosition>>,
}

impl<'a> GrantEvent<'a> {
    /// The `kind` event of `grant` as it stands at `now`.
    pub fn new(
        kind: Kind,
        grant: &'a GrantRecord,
        command_id: Option<&'a str>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            kind,
            grant,
            command_id,
            view: view(grant, now),
            relocked_by: (kind == Kind::GrantRelocked).then_some("keyway"),
            opened: None,
        }
    }

    /// Names the openings newly found open.
    pub fn opened(mut self, opened: Vec<keyway_adapter::DoorPosition>) -> Self {
        self.opened = Some(opened);
        self
    }

    /// The relock was the owner's own lock, not keyway's command.
    pub fn by_owner(mut self) -> Self {
        self.relocked_by = Some("owner");
        self
    }
}

impl Payload for GrantEvent<'_> {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            tenant: &self.grant.tenant,
            vehicle_id: Some(&self.grant.vehicle_id),
            grant_id: Some(&self.grant.id),
            command_id: self.command_id,
        }
    }
}
