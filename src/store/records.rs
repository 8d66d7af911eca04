//! The records the store keeps — accounts, link states, vehicles, commands, grants,
//! events, webhooks and deliveries, audit entries, leases — and their status enums,
//! as plain data.

use keyway_adapter::Command;
use time::OffsetDateTime;

use crate::error::Code;
pub use crate::ids::{CommandId, OemId, TenantId, VehicleId};

/// Whether an OEM account can be used.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AccountStatus {
    /// Tokens work (or can be refreshed).
    Active,
    /// The OEM rejected the refresh token: the owner must link the account again.
    ReauthorizationRequired,
}

impl AccountStatus {
    /// Wire and column name (the variant in snake case, as serde names it too).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The tokens of one OEM account as stored: sealed by `crypto::Sealer`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredTokens {
    /// Current access token, sealed.
    pub access_token: Option<String>,
    /// When it stops working.
    pub access_expires_at: Option<OffsetDateTime>,
    /// When keyway refreshes it (before it expires).
    pub access_refresh_at: Option<OffsetDateTime>,
    /// Current refresh token (single-use where the OEM rotates them), sealed.
    pub refresh_token: Option<String>,
}

/// A pending OAuth authorization, waiting for the owner's browser to come back.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkState {
    /// SHA-256 (hex) of the `state` parameter; the state itself is not stored.
    pub state_hash: String,
    /// Which OEM.
    pub oem: OemId,
    /// Who started it (becomes the account's owner).
    pub caller: String,
    /// The PKCE verifier, sealed.
    pub verifier: String,
    /// The redirect URI sent to the OEM (the code exchange must repeat it).
    pub redirect_uri: String,
    /// The owner's PIN given with the link, sealed; set on the account it creates.
    pub pin: Option<String>,
    /// Started.
    pub created_at: OffsetDateTime,
    /// Good until.
    pub expires_at: OffsetDateTime,
}

/// A linked OEM account.
#[derive(Clone, Debug)]
pub struct AccountRecord {
    /// keyway's id.
    pub id: String,
    /// Which OEM.
    pub oem: OemId,
    /// Who linked it (caller `sub`).
    pub owner: String,
    /// Usable or not.
    pub status: AccountStatus,
    /// Its tokens, sealed.
    pub tokens: StoredTokens,
    /// When linked.
    pub created_at: OffsetDateTime,
}

/// An account's PIN, sealed, and whether its OEM refused it.
#[derive(Clone, Debug, PartialEq)]
pub struct PinRecord {
    /// The PIN, sealed (AAD: the account).
    pub sealed: String,
    /// When the OEM refused it; `None` while keyway may use it.
    pub rejected_at: Option<OffsetDateTime>,
}

/// A vehicle keyway knows.
#[derive(Clone, Debug, PartialEq)]
pub struct VehicleRecord {
    /// keyway's id (`veh_...`), stable across re-discovery.
    pub id: VehicleId,
    /// The account it was discovered through.
    pub account_id: String,
    /// The tenant of that account: the only one that reaches the vehicle.
    pub tenant: TenantId,
    /// Which OEM.
    pub oem: OemId,
    /// The OEM's id for it.
    pub oem_id: String,
    /// VIN, when known.
    pub vin: Option<String>,
    /// The owner's name for it.
    pub display_name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Model year.
    pub year: Option<u16>,
    /// Lock state left by the last confirmed command, with its time.
    pub last_locked: Option<(bool, OffsetDateTime)>,
    /// What this car can do when its OEM says so per car (a subset of the adapter's
    /// capabilities); `None`: all its adapter declares.
    pub capabilities: Option<Vec<keyway_adapter::Capability>>,
}

impl VehicleRecord {
    /// Whether the OEM says of this car that it cannot do `c` (per-car capabilities);
    /// what the adapter declares is checked beside it.
    pub fn may(&self, c: keyway_adapter::Capability) -> bool {
        self.capabilities.as_ref().is_none_or(|cs| cs.contains(&c))
    }
}

/// Where a command stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum CommandStatus {
    /// Not final yet.
    Pending,
    /// The vehicle executed it.
    Succeeded,
    /// It did not happen and will not happen: keyway is sure.
    Failed,
    /// The car may or may not have done it: the OEM may have received it, and no state
    /// observed after the send settles it. keyway keeps watching the car for the OEM's
    /// command window and records the outcome if it learns it (`command.resolved`).
    Unknown,
}

impl CommandStatus {
    /// Wire and column name (the variant in snake case, as serde names it too).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One lock/unlock request: who, what vehicle, when, and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandRecord {
    /// keyway's id (`cmd_...`).
    pub id: CommandId,
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// Lock or unlock.
    pub action: Command,
    /// Where it stands.
    pub status: CommandStatus,
    /// The caller's `sub`.
    pub caller: String,
    /// The vehicle's tenant.
    pub tenant: TenantId,
    /// A relock or a grant's unlock: may use the OEM command quota's reserve, and is
    /// never refused by the per-car queue cap.
    pub reserved: bool,
    /// The caller's own reference (e.g. an order id).
    pub reference: Option<String>,
    /// The request that created it.
    pub request_id: Option<String>,
    /// When it was first handed to the OEM (from then on it may have reached the car).
    pub sent_at: Option<OffsetDateTime>,
    /// The OEM's handle on the accepted command (async OEMs), stored as JSON.
    pub oem_handle: Option<keyway_adapter::Pending>,
    /// Error code when failed or unknown.
    pub error_code: Option<Code>,
    /// Error detail when failed or unknown.
    pub error_detail: Option<String>,
    /// The problem's extension members the failure carried (e.g. Tesla's
    /// `pairing_url`), as the caller was told them; empty when none.
    pub error_members: serde_json::Map<String, serde_json::Value>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Reached a final status.
    pub completed_at: Option<OffsetDateTime>,
    /// The last lock state observed after the send, and when the car reported it.
    pub observed: Option<(bool, OffsetDateTime)>,
    /// When failed or unknown: the earliest a new command makes sense.
    pub retry_at: Option<OffsetDateTime>,
    /// An in-doubt unlock a caller acknowledged: who, and when (it no longer blocks the
    /// car's next unlock).
    pub acknowledged: Option<(String, OffsetDateTime)>,
}

/// An idempotency key claim made together with a new command.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    /// Whose keys: [`crate::auth::Caller::key_scope`] (keys are scoped per caller
    /// within its tenant).
    pub caller: String,
    /// The key as sent.
    pub key: String,
    /// Hash of the request the key was first used with.
    pub fingerprint: String,
}

/// The answer to creating a command under an idempotency key.
#[derive(Debug)]
pub enum Created {
    /// A new command was recorded.
    New,
    /// The key was already used: the command it created and the request fingerprint.
    Existing {
        /// The earlier command.
        command: Box<CommandRecord>,
        /// The earlier request's fingerprint.
        fingerprint: String,
    },
}

/// A claim on some work: by whom, until when (renewed while the work runs).
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// The replica holding it.
    pub holder: String,
    /// When it lapses unless renewed.
    pub until: OffsetDateTime,
}

/// Where a grant's owed relock stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RelockState {
    /// Nothing owed (never unlocked through the grant).
    None,
    /// A relock is owed at `relock_due_at`.
    Due,
    /// The car was locked and the lock read back after the relock.
    Locked,
    /// Locked, and watched until the OEM's command window of the grant's unlocks has
    /// passed: a late unlock is relocked again (`grant.relock_repeated`). Checked at
    /// `relock_due_at`.
    Watching,
    /// Every attempt failed; escalated (`grant.relock_failed`).
    Failed,
}

impl RelockState {
    /// Wire and column name (the variant in snake case, as serde names it too).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A circle a car must be inside.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geofence {
    /// Centre latitude, degrees.
    pub latitude: f64,
    /// Centre longitude, degrees.
    pub longitude: f64,
    /// Radius, metres.
    pub radius_m: f64,
}

/// A delivery access grant.
#[derive(Clone, Debug, PartialEq)]
pub struct GrantRecord {
    /// `grt_...`
    pub id: String,
    /// The one vehicle it opens.
    pub vehicle_id: VehicleId,
    /// The `sub` allowed to use it.
    pub grantee: String,
    /// Who created it.
    pub created_by: String,
    /// The creator's (and the vehicle's) tenant.
    pub tenant: TenantId,
    /// Free text (order id, "parcel delivery").
    pub purpose: Option<String>,
    /// Usable from …
    pub not_before: OffsetDateTime,
    /// … until.
    pub not_after: OffsetDateTime,
    /// Unlocks allowed.
    pub max_unlocks: u32,
    /// Unlocks taken.
    pub unlocks_used: u32,
    /// Where the car must be for an unlock.
    pub geofence: Option<Geofence>,
    /// Relock this long after a grant unlock.
    pub relock_after_s: u32,
    /// Revoked at.
    pub revoked_at: Option<OffsetDateTime>,
    /// Completed by the grantee at.
    pub completed_at: Option<OffsetDateTime>,
    /// The owed relock.
    pub relock_state: RelockState,
    /// When the owed relock is due (next attempt).
    pub relock_due_at: Option<OffsetDateTime>,
    /// Relock attempts so far.
    pub relock_attempts: u32,
    /// When the relock was confirmed.
    pub relocked_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// One event (`command.succeeded`, `grant.unlocked`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// Order of its tenant's events (each tenant's are numbered on their own); the SSE
    /// id and resume cursor. 0 until stored.
    pub seq: i64,
    /// `evt_...`
    pub id: String,
    /// The event type.
    pub kind: super::Kind,
    /// The tenant it is about: the only one that sees it.
    pub tenant: TenantId,
    /// The vehicle concerned.
    pub vehicle_id: Option<VehicleId>,
    /// The grant concerned.
    pub grant_id: Option<String>,
    /// The command concerned.
    pub command_id: Option<CommandId>,
    /// The payload, JSON.
    pub data: String,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A webhook subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRecord {
    /// `whk_...`
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret, sealed.
    pub secret: String,
    /// Event types delivered.
    pub types: super::EventTypes,
    /// Who subscribed.
    pub created_by: String,
    /// The subscriber's tenant: only its events are delivered.
    pub tenant: TenantId,
    /// The subscribing token's vehicle restriction: only these vehicles' events.
    pub vehicles: Option<Vec<String>>,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A car a tenant watches: keyway reads it (without waking it) while the watch lasts
/// and emits its changes.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchRecord {
    /// The watching tenant.
    pub tenant: TenantId,
    /// The car.
    pub vehicle_id: VehicleId,
    /// When the watch ends.
    pub until: OffsetDateTime,
    /// Who set it.
    pub created_by: String,
    /// When it was first set.
    pub created_at: OffsetDateTime,
}

/// Where one event's delivery to one subscription stands (its column and wire name:
/// the variant in snake case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempts go on.
    Pending,
    /// The receiver took it (a 2xx).
    Delivered,
    /// Given up: every attempt failed, or the subscription was deleted.
    Failed,
}

impl DeliveryStatus {
    /// Column and wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One event's delivery to one subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRecord {
    /// `dlv_...`
    pub id: String,
    /// The subscription.
    pub webhook_id: String,
    /// The event: its global number inside keyway; in a tenant's delivery log, its
    /// number among the tenant's events.
    pub event_seq: i64,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: OffsetDateTime,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last attempt.
    pub updated_at: OffsetDateTime,
}

/// One audit entry, as appended.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// When.
    pub at: OffsetDateTime,
    /// Who (caller `sub`, or `keyway` for its own actions).
    pub actor: String,
    /// What (`grant.unlock`, `command.unlock`, …).
    pub action: String,
    /// `allowed`, `refused`, `succeeded`, `failed`, …
    pub decision: String,
    /// The vehicle.
    pub vehicle_id: Option<VehicleId>,
    /// The grant.
    pub grant_id: Option<String>,
    /// The command.
    pub command_id: Option<CommandId>,
    /// Why, or what happened.
    pub detail: Option<String>,
}

/// An audit row: the entry, its place and its chain hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Position.
    pub seq: i64,
    /// The entry.
    pub entry: AuditEntry,
    /// The previous row's hash (`genesis` for the first).
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON name (the API's) and the column name are one.
    #[test]
    fn wire_names_are_the_column_names() {
        fn wire(v: impl serde::Serialize) -> String {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }
        for s in [
            AccountStatus::Active,
            AccountStatus::ReauthorizationRequired,
        ] {
            assert_eq!(wire(s), s.as_str());
            assert_eq!(s.as_str().parse::<AccountStatus>().unwrap(), s);
        }
        for s in [
            CommandStatus::Pending,
            CommandStatus::Succeeded,
            CommandStatus::Failed,
            CommandStatus::Unknown,
        ] {
            assert_eq!(wire(s), s.as_str());
            assert_eq!(s.as_str().parse::<CommandStatus>().unwrap(), s);
        }
        for s in [
            RelockState::None,
            RelockState::Due,
            RelockState::Locked,
            RelockState::Watching,
            RelockState::Failed,
        ] {
            assert_eq!(wire(s), s.as_str());
            assert_eq!(s.as_str().parse::<RelockState>().unwrap(), s);
        }
    }
}

/// A change another replica announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VehicleChange {
    /// This vehicle's state changed (its id).
    Changed(String),
    /// Announcements may have been lost (a dropped connection): any vehicle may have
    /// changed.
    Missed,
}

/// The changes other replicas announce, until dropped ([`Store::vehicle_changes`]).
///
/// [`Store::vehicle_changes`]: super::Store::vehicle_changes
pub type VehicleChanges = futures_util::stream::BoxStream<'static, VehicleChange>;
