//! Durable state behind one trait: OEM accounts and their tokens (sealed: a store never
//! sees a plaintext token), pending account links, vehicles, commands and idempotency
//! keys, and leases (who works on what, until when). SQLite (embedded default) and
//! PostgreSQL (cluster mode) implement it in one [`sql::SqlStore`]. Every command is
//! written before keyway talks to the OEM about it, so its record survives a crash of
//! the gateway; a command's lease says which replica drives it, so another takes it
//! over when that replica dies.

pub mod sql;

use async_trait::async_trait;
use keyway_adapter::Command;
use time::OffsetDateTime;

pub use sql::{Engine, SqlStore};

/// A store failure. Details are for logs; callers see `internal`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(String),
    /// A row could not be read back (bad value in a column).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Whether an OEM account can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    /// Tokens work (or can be refreshed).
    Active,
    /// The OEM rejected the refresh token: the owner must link the account again.
    ReauthorizationRequired,
}

impl AccountStatus {
    /// Wire and column name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::ReauthorizationRequired => "reauthorization_required",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(AccountStatus::Active),
            "reauthorization_required" => Ok(AccountStatus::ReauthorizationRequired),
            _ => Err(StoreError::Corrupt(format!("account status {s:?}"))),
        }
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
    pub oem: String,
    /// Who started it (becomes the account's owner).
    pub caller: String,
    /// The PKCE verifier, sealed.
    pub verifier: String,
    /// The redirect URI sent to the OEM (the code exchange must repeat it).
    pub redirect_uri: String,
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
    pub oem: String,
    /// Who linked it (caller `sub`).
    pub owner: String,
    /// Usable or not.
    pub status: AccountStatus,
    /// Its tokens, sealed.
    pub tokens: StoredTokens,
    /// When linked.
    pub created_at: OffsetDateTime,
}

/// A vehicle keyway knows.
#[derive(Clone, Debug, PartialEq)]
pub struct VehicleRecord {
    /// keyway's id (`veh_...`), stable across re-discovery.
    pub id: String,
    /// The account it was discovered through.
    pub account_id: String,
    /// The tenant of that account: the only one that reaches the vehicle.
    pub tenant: String,
    /// Which OEM.
    pub oem: String,
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
}

/// Where a command stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Wire and column name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(CommandStatus::Pending),
            "succeeded" => Ok(CommandStatus::Succeeded),
            "failed" => Ok(CommandStatus::Failed),
            "unknown" => Ok(CommandStatus::Unknown),
            _ => Err(StoreError::Corrupt(format!("command status {s:?}"))),
        }
    }
}

/// One lock/unlock request: who, what vehicle, when, and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandRecord {
    /// keyway's id (`cmd_...`).
    pub id: String,
    /// The vehicle.
    pub vehicle_id: String,
    /// Lock or unlock.
    pub action: Command,
    /// Where it stands.
    pub status: CommandStatus,
    /// The caller's `sub`.
    pub caller: String,
    /// The vehicle's tenant.
    pub tenant: String,
    /// A relock or a grant's unlock: may use the OEM command quota's reserve, and is
    /// never refused by the per-car queue cap.
    pub reserved: bool,
    /// The caller's own reference (e.g. an order id).
    pub reference: Option<String>,
    /// The request that created it.
    pub request_id: Option<String>,
    /// When it was first handed to the OEM (from then on it may have reached the car).
    pub sent_at: Option<OffsetDateTime>,
    /// The OEM's pending-command handle (async OEMs), JSON.
    pub oem_handle: Option<String>,
    /// Error code when failed.
    pub error_code: Option<String>,
    /// Error detail when failed.
    pub error_detail: Option<String>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Wire and column name.
    pub fn as_str(self) -> &'static str {
        match self {
            RelockState::None => "none",
            RelockState::Due => "due",
            RelockState::Locked => "locked",
            RelockState::Watching => "watching",
            RelockState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "none" => RelockState::None,
            "due" => RelockState::Due,
            "locked" => RelockState::Locked,
            "watching" => RelockState::Watching,
            "failed" => RelockState::Failed,
            _ => return Err(StoreError::Corrupt(format!("relock state {s:?}"))),
        })
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
    pub vehicle_id: String,
    /// The `sub` allowed to use it.
    pub grantee: String,
    /// Who created it.
    pub created_by: String,
    /// The creator's (and the vehicle's) tenant.
    pub tenant: String,
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
    /// Order of events; the SSE id. 0 until stored.
    pub seq: i64,
    /// `evt_...`
    pub id: String,
    /// The event type.
    pub kind: String,
    /// The tenant it is about: the only one that sees it.
    pub tenant: String,
    /// The vehicle concerned.
    pub vehicle_id: Option<String>,
    /// The grant concerned.
    pub grant_id: Option<String>,
    /// The command concerned.
    pub command_id: Option<String>,
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
    /// Event types delivered (`*` for all), comma-separated.
    pub types: String,
    /// Who subscribed.
    pub created_by: String,
    /// The subscriber's tenant: only its events are delivered.
    pub tenant: String,
    /// The subscribing token's vehicle restriction: only these vehicles' events.
    pub vehicles: Option<Vec<String>>,
    /// When.
    pub created_at: OffsetDateTime,
}

/// One event's delivery to one subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRecord {
    /// `dlv_...`
    pub id: String,
    /// The subscription.
    pub webhook_id: String,
    /// The event.
    pub event_seq: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
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
    pub vehicle_id: Option<String>,
    /// The grant.
    pub grant_id: Option<String>,
    /// The command.
    pub command_id: Option<String>,
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

/// keyway's durable state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether several keyway processes may share this store (PostgreSQL). An
    /// unshared store belongs to one process, which may take over any lease at start.
    fn shared(&self) -> bool;
    /// The PostgreSQL `LISTEN` channel on which [`Store::finish_command`] tells every
    /// replica which vehicle's state changed, if any.
    fn change_channel(&self) -> Option<String>;

    /// Takes or renews the named lease if it is free, lapsed or already the holder's.
    /// True if the holder has it now.
    async fn try_lease(&self, name: &str, lease: &Lease) -> Result<bool, StoreError>;
    /// Gives the named lease up, if the holder has it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Gives up every lease `holder` has — named ones (cars, relocks) and those of its
    /// pending commands — so another replica takes over at once (a clean shutdown).
    async fn release_all(&self, holder: &str) -> Result<(), StoreError>;

    /// Inserts or replaces an account.
    async fn put_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// One account.
    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account (operations: key rotation).
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// The tenant's accounts.
    async fn tenant_accounts(&self, tenant: &str) -> Result<Vec<AccountRecord>, StoreError>;
    /// One of the tenant's accounts.
    async fn tenant_account(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AccountRecord>, StoreError>;
    /// Replaces an account's tokens (durably, before anyone uses the new ones).
    async fn save_tokens(&self, account_id: &str, tokens: &StoredTokens) -> Result<(), StoreError>;
    /// Replaces an account's tokens only if they are still `expected` (compare-and-swap,
    /// so a re-seal never overwrites a refresh that happened meanwhile). True if replaced.
    async fn replace_tokens(
        &self,
        account_id: &str,
        expected: &StoredTokens,
        tokens: &StoredTokens,
    ) -> Result<bool, StoreError>;
    /// Deletes an account and its vehicles (command records stay). False if unknown.
    async fn delete_account(&self, id: &str) -> Result<bool, StoreError>;
    /// Ids of the vehicles discovered through an account.
    async fn account_vehicle_ids(&self, account_id: &str) -> Result<Vec<String>, StoreError>;

    /// Records a pending authorization (and forgets expired ones).
    async fn put_link_state(&self, state: &LinkState) -> Result<(), StoreError>;
    /// Takes a pending authorization: it is deleted, so a state works once.
    async fn take_link_state(&self, state_hash: &str) -> Result<Option<LinkState>, StoreError>;
    /// Changes an account's status.
    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError>;

    /// Records a discovered vehicle; an already known (oem, oem_id) keeps its id.
    /// Returns the stored record, or None when the car belongs to another tenant (it is
    /// never moved between tenants by a link).
    async fn upsert_vehicle(
        &self,
        vehicle: &VehicleRecord,
    ) -> Result<Option<VehicleRecord>, StoreError>;
    /// One vehicle (keyway's own work: commands, relocks).
    async fn vehicle(&self, id: &str) -> Result<Option<VehicleRecord>, StoreError>;
    /// One of the tenant's vehicles.
    async fn tenant_vehicle(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<VehicleRecord>, StoreError>;
    /// The vehicle an OEM knows as `oem_id`.
    async fn vehicle_by_oem_id(
        &self,
        oem: &str,
        oem_id: &str,
    ) -> Result<Option<VehicleRecord>, StoreError>;
    /// Every vehicle, ordered by id.
    async fn vehicles(&self) -> Result<Vec<VehicleRecord>, StoreError>;
    /// Up to `limit` of the tenant's vehicles with ids after `after`, ordered by id
    /// (keyset pages).
    async fn vehicles_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, StoreError>;

    /// Records a new command, leased to its creator, with its audit entry in the same
    /// transaction; with a claim, atomically claims the idempotency key first and returns
    /// the existing command (writing nothing) if the key was already used.
    async fn create_command(
        &self,
        command: &CommandRecord,
        claim: Option<&IdempotencyClaim>,
        lease: &Lease,
        audit: Option<&AuditEntry>,
    ) -> Result<Created, StoreError>;
    /// Writes a command's final record — and for a succeeded one the lock state it left
    /// on the vehicle — with its audit entry and its event (queuing the event's
    /// deliveries to `webhooks`) in one transaction, notifying the change channel at
    /// commit; returns the event's `seq`.
    async fn finish_command(
        &self,
        command: &CommandRecord,
        audit: &AuditEntry,
        event: &EventRecord,
        webhooks: &[String],
    ) -> Result<i64, StoreError>;
    /// Extends a command's lease; false if another replica holds it now.
    async fn renew_command_lease(&self, id: &str, lease: &Lease) -> Result<bool, StoreError>;
    /// Takes over pending commands whose lease lapsed before `lapsed_before` (or that
    /// have none), leasing them to `lease`; each is taken by one replica only.
    async fn claim_commands(
        &self,
        lease: &Lease,
        lapsed_before: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError>;
    /// One command (keyway's own work).
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>, StoreError>;
    /// A command the caller may see at all: one of its tenant's, or one it made itself
    /// (`sub`: a grantee's unlock on another tenant's car).
    async fn visible_command(
        &self,
        tenant: &str,
        sub: &str,
        id: &str,
    ) -> Result<Option<CommandRecord>, StoreError>;
    /// The command an idempotency key already made, if any.
    async fn command_for_key(&self, caller: &str, key: &str) -> Result<Option<String>, StoreError>;
    /// The vehicle's commands sent after `sent_after`, oldest first (an `unknown` unlock
    /// among them may still execute).
    async fn commands_sent_since(
        &self,
        vehicle_id: &str,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError>;
    /// Writes a command's progress.
    async fn update_command(&self, command: &CommandRecord) -> Result<(), StoreError>;

    /// Records a new grant.
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;
    /// One grant (keyway's own work: relocks).
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// A grant the caller may see at all: one of its tenant's, or one naming it
    /// (`grantee`) as the grantee.
    async fn visible_grant(
        &self,
        tenant: &str,
        grantee: &str,
        id: &str,
    ) -> Result<Option<GrantRecord>, StoreError>;
    /// The tenant's grants on a vehicle, newest first.
    async fn grants_for_vehicle(
        &self,
        tenant: &str,
        vehicle_id: &str,
    ) -> Result<Vec<GrantRecord>, StoreError>;
    /// Writes a grant's state (revocation, completion, relock progress).
    async fn update_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;
    /// Takes one unlock of a grant if any is left and it is not revoked (atomic).
    async fn take_grant_unlock(&self, id: &str) -> Result<bool, StoreError>;
    /// Gives an unlock back (the unlock certainly did not happen).
    async fn refund_grant_unlock(&self, id: &str) -> Result<(), StoreError>;
    /// Grants whose relock is due at or before `at`.
    async fn due_relocks(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError>;

    /// Appends an event and queues its delivery to `webhooks`; returns its `seq`.
    async fn append_event(
        &self,
        event: &EventRecord,
        webhooks: &[String],
    ) -> Result<i64, StoreError>;
    /// Up to `limit` of the tenant's events after `seq`, in order; with `vehicles`, only
    /// events about those vehicles.
    async fn events_after(
        &self,
        tenant: &str,
        vehicles: Option<&[String]>,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// One event by `seq`.
    async fn event(&self, seq: i64) -> Result<Option<EventRecord>, StoreError>;

    /// Records a webhook subscription.
    async fn insert_webhook(&self, webhook: &WebhookRecord) -> Result<(), StoreError>;
    /// Every subscription (keyway's own work: fan-out and delivery).
    async fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError>;
    /// The tenant's subscriptions.
    async fn tenant_webhooks(&self, tenant: &str) -> Result<Vec<WebhookRecord>, StoreError>;
    /// Deletes one of the tenant's subscriptions (its delivery log stays). False if
    /// unknown.
    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// Takes the pending deliveries due at `now`, pushing their next attempt to `until`
    /// so no other replica takes them meanwhile.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Writes a delivery's progress.
    async fn update_delivery(&self, delivery: &DeliveryRecord) -> Result<(), StoreError>;
    /// The deliveries of one of the tenant's subscriptions, newest first.
    async fn deliveries(
        &self,
        tenant: &str,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Appends to the hash-chained audit log (serialized: one chain, no forks).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError>;
    /// The whole audit log in order.
    async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError>;
}

/// The hash of an audit row: SHA-256 over the previous hash and every field, each
/// length-prefixed so no two different rows hash alike.
pub fn audit_hash(prev_hash: &str, seq: i64, e: &AuditEntry) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let seq = seq.to_string();
    let at = to_ms(e.at).to_string();
    let parts: [Option<&str>; 10] = [
        Some(prev_hash),
        Some(&seq),
        Some(&at),
        Some(&e.actor),
        Some(&e.action),
        Some(&e.decision),
        e.vehicle_id.as_deref(),
        e.grant_id.as_deref(),
        e.command_id.as_deref(),
        e.detail.as_deref(),
    ];
    for p in parts {
        match p {
            Some(p) => {
                h.update([1u8]);
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    hex::encode(h.finalize())
}

/// The `prev_hash` of the first audit row.
pub const AUDIT_GENESIS: &str = "genesis";

/// Unix milliseconds.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// From unix milliseconds.
pub fn from_ms(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

static FOLLOWS_TOKIO: std::sync::OnceLock<(OffsetDateTime, tokio::time::Instant)> =
    std::sync::OnceLock::new();

/// Now, truncated to milliseconds (what the store keeps): the wall clock, or in a
/// simulation ([`follow_tokio_clock`]) the wall clock at its start plus tokio's
/// (paused) time since.
pub fn now() -> OffsetDateTime {
    let t = match FOLLOWS_TOKIO.get() {
        Some((wall, at)) => *wall + (tokio::time::Instant::now() - *at),
        None => OffsetDateTime::now_utc(),
    };
    from_ms(to_ms(t)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Makes [`now`] follow tokio's clock from here on, for the whole process: a
/// deterministic simulation on paused time calls it once at its start. Never called
/// by `keyway serve`.
pub fn follow_tokio_clock() {
    FOLLOWS_TOKIO.get_or_init(|| (OffsetDateTime::now_utc(), tokio::time::Instant::now()));
}
