//! The store's contract: one trait per area (accounts, vehicles, commands, grants,
//! events, watches, audit, leases), [`Store`] as all of them, and the audit chain's hash
//! and the millisecond timestamps every backend shares.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;
use super::records::*;

/// OEM accounts, their sealed tokens, and pending account links.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Inserts or replaces an account.
    async fn put_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// One account.
    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account (operations: key rotation).
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// The tenant's accounts.
    async fn tenant_accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError>;
    /// One of the tenant's accounts.
    async fn tenant_account(
        &self,
        tenant: &TenantId,
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
    /// The account's PIN, if one is set.
    async fn account_pin(&self, account_id: &str) -> Result<Option<PinRecord>, StoreError>;
    /// Sets (replaces) the account's PIN, usable again.
    async fn set_account_pin(&self, account_id: &str, sealed: &str) -> Result<(), StoreError>;
    /// Replaces the sealed PIN `old` by `new` (a re-seal: the same PIN, refused or not),
    /// unless it changed meanwhile. True if replaced.
    async fn reseal_account_pin(
        &self,
        account_id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Marks the PIN `sealed` refused, unless another replaced it meanwhile. True if marked.
    async fn reject_account_pin(&self, account_id: &str, sealed: &str) -> Result<bool, StoreError>;
}

/// Vehicles: discovered records, looked up by id, tenant or OEM id.
#[async_trait]
pub trait VehicleStore: Send + Sync + 'static {
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
        tenant: &TenantId,
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
    /// (keyset pages). A car linked through several accounts is listed once, by its
    /// first-linked record; the others are its routes ([`VehicleStore::routes`]).
    async fn vehicles_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, StoreError>;
    /// Keeps what the OEM says one car can do (`None`: all its adapter declares).
    async fn set_capabilities(
        &self,
        id: &str,
        capabilities: Option<&[keyway_adapter::Capability]>,
    ) -> Result<(), StoreError>;
    /// Every record of the tenant's car with this VIN — one per account it is linked
    /// through (a direct link, an aggregator) — first-linked first.
    async fn routes(&self, tenant: &TenantId, vin: &str) -> Result<Vec<VehicleRecord>, StoreError>;
}

/// Commands, their idempotency keys and leases: written before the OEM hears of them.
#[async_trait]
pub trait CommandStore: Send + Sync + 'static {
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
        tenant: &TenantId,
        sub: &str,
        id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError>;
    /// The command an idempotency key already made, if any.
    async fn command_for_key(&self, caller: &str, key: &str) -> Result<Option<String>, StoreError>;
    /// The vehicle's commands sent after `sent_after`, oldest first (an `unknown` unlock
    /// among them may still execute).
    async fn commands_sent_since(
        &self,
        vehicle_id: &VehicleId,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError>;
    /// Writes a command's progress.
    async fn update_command(&self, command: &CommandRecord) -> Result<(), StoreError>;
    /// Every `unknown` command sent after `sent_after`, oldest first (watches to resume
    /// after a restart).
    async fn unknown_commands(
        &self,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError>;
}

/// Delivery grants and their relocks.
#[async_trait]
pub trait GrantStore: Send + Sync + 'static {
    /// Records a new grant.
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;
    /// One grant (keyway's own work: relocks).
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// A grant the caller may see at all: one of its tenant's, or one naming it
    /// (`grantee`) as the grantee.
    async fn visible_grant(
        &self,
        tenant: &TenantId,
        grantee: &str,
        id: &str,
    ) -> Result<Option<GrantRecord>, StoreError>;
    /// The tenant's grants on a vehicle, newest first.
    async fn grants_for_vehicle(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
    ) -> Result<Vec<GrantRecord>, StoreError>;
    /// Writes a grant's state (revocation, completion, relock progress).
    async fn update_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;
    /// Takes one unlock of a grant if any is left and it is not revoked (atomic).
    async fn take_grant_unlock(&self, id: &str) -> Result<bool, StoreError>;
    /// Gives an unlock back (the unlock certainly did not happen).
    async fn refund_grant_unlock(&self, id: &str) -> Result<(), StoreError>;
    /// Grants whose relock is due at or before `at`.
    async fn due_relocks(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError>;
    /// Grants in use at `at`: inside their window and neither revoked nor completed,
    /// or with a relock still owed or watched.
    async fn grants_in_use(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError>;
}

/// The ordered event log, webhook subscriptions and their deliveries.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
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
        tenant: &TenantId,
        vehicles: Option<&[String]>,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// Up to `limit` of the tenant's events about `vehicle_id` from `since` on, in order
    /// (a grant's timeline).
    async fn vehicle_events_since(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// One event by `seq`.
    async fn event(&self, seq: i64) -> Result<Option<EventRecord>, StoreError>;
    /// Records a webhook subscription.
    async fn insert_webhook(&self, webhook: &WebhookRecord) -> Result<(), StoreError>;
    /// Every subscription (keyway's own work: fan-out and delivery).
    async fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError>;
    /// The tenant's subscriptions.
    async fn tenant_webhooks(&self, tenant: &TenantId) -> Result<Vec<WebhookRecord>, StoreError>;
    /// Deletes one of the tenant's subscriptions (its delivery log stays). False if
    /// unknown.
    async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
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
        tenant: &TenantId,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

/// Watched cars and the last state keyway emitted of each.
#[async_trait]
pub trait WatchStore: Send + Sync + 'static {
    /// Sets (or moves the end of) a tenant's watch of a car.
    async fn put_watch(&self, watch: &WatchRecord) -> Result<WatchRecord, StoreError>;
    /// Ends a tenant's watch of a car; false if there was none.
    async fn delete_watch(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
    ) -> Result<bool, StoreError>;
    /// The tenant's watches that have not ended at `at`.
    async fn tenant_watches(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
    ) -> Result<Vec<WatchRecord>, StoreError>;
    /// Every watch that has not ended at `at` (keyway's own work).
    async fn active_watches(&self, at: OffsetDateTime) -> Result<Vec<WatchRecord>, StoreError>;
    /// The last state emitted of a car, with its version.
    async fn vehicle_state(
        &self,
        vehicle_id: &VehicleId,
    ) -> Result<Option<(i64, String)>, StoreError>;
    /// Replaces a car's state if its version is still `version` (`None`: no state yet)
    /// and, in the same transaction, appends `event` (if any) with its deliveries.
    /// `Ok(None)` when another writer changed the state first (nothing written);
    /// otherwise the event's `seq` (0 without an event).
    async fn change_vehicle_state(
        &self,
        vehicle_id: &VehicleId,
        version: Option<i64>,
        state: &str,
        event: Option<(&EventRecord, &[String])>,
    ) -> Result<Option<i64>, StoreError>;
}

/// The hash-chained audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the hash-chained audit log (serialized: one chain, no forks).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError>;
    /// The whole audit log in order.
    async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Named leases: who works on what (a car, a relock, a token refresh), until when.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes or renews the named lease if it is free, lapsed or already the holder's.
    /// True if the holder has it now.
    async fn try_lease(&self, name: &str, lease: &Lease) -> Result<bool, StoreError>;
    /// Gives the named lease up, if the holder has it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Gives up every lease `holder` has — named ones (cars, relocks) and those of its
    /// pending commands — so another replica takes over at once (a clean shutdown).
    async fn release_all(&self, holder: &str) -> Result<(), StoreError>;
}

// The store areas of each service that uses more than one, named once here: a
// service holds its set, not the whole `Store`, so what it may touch is declared and
// checked by the compiler. Each set is a supertrait of `Store`, so an
// `Arc<dyn Store>` converts to it; a service of one area holds that area's trait
// (`Arc<dyn EventStore>`, `Arc<dyn AuditStore>`, `Arc<dyn LeaseStore>`).

/// The areas account linking uses (`accounts::Accounts`): accounts, and the cars
/// they bring.
pub trait AccountAreas: AccountStore + VehicleStore {}
impl<T: AccountStore + VehicleStore + ?Sized> AccountAreas for T {}

/// The areas OEM tokens use (`tokens::Tokens`): accounts' sealed tokens, refreshed
/// under a lease.
pub trait TokenAreas: AccountStore + LeaseStore {}
impl<T: AccountStore + LeaseStore + ?Sized> TokenAreas for T {}

/// The areas vehicle reads use (`vehicles::Fleet`): the cars, and the commands sent
/// to one.
pub trait FleetAreas: CommandStore + VehicleStore {}
impl<T: CommandStore + VehicleStore + ?Sized> FleetAreas for T {}

/// The areas the command lifecycle uses (`commands::Commands`).
pub trait CommandAreas:
    AccountStore + AuditStore + CommandStore + LeaseStore + VehicleStore
{
}
impl<T: AccountStore + AuditStore + CommandStore + LeaseStore + VehicleStore + ?Sized> CommandAreas
    for T
{
}

/// The areas delivery grants and their relocks use (`grants::Grants`).
pub trait GrantAreas: CommandStore + EventStore + GrantStore + LeaseStore + VehicleStore {}
impl<T: CommandStore + EventStore + GrantStore + LeaseStore + VehicleStore + ?Sized> GrantAreas
    for T
{
}

/// The areas watching cars uses (`watch::Watches`).
pub trait WatchAreas: GrantStore + LeaseStore + VehicleStore + WatchStore {}
impl<T: GrantStore + LeaseStore + VehicleStore + WatchStore + ?Sized> WatchAreas for T {}

/// keyway's durable state: every area's store, plus what is about the database
/// itself. Services take the area they use (`Arc<dyn AuditStore>`, …); an
/// `Arc<dyn Store>` converts to any of them.
#[async_trait]
pub trait Store:
    AccountStore
    + VehicleStore
    + CommandStore
    + GrantStore
    + EventStore
    + AuditStore
    + LeaseStore
    + WatchStore
    + AccountAreas
    + TokenAreas
    + FleetAreas
    + CommandAreas
    + GrantAreas
    + WatchAreas
{
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Checks the database takes a write (one small row per `replica`): a full disk or
    /// a read-only failover answers reads but refuses this.
    async fn ping_write(&self, replica: &str) -> Result<(), StoreError>;
    /// Whether several keyway processes may share this store (PostgreSQL). An
    /// unshared store belongs to one process, which may take over any lease at start.
    fn shared(&self) -> bool;
    /// The vehicle changes other replicas announce ([`Store::finish_command`] tells
    /// every replica which vehicle's state changed), as a stream that reconnects by
    /// itself; `None` for a store one process owns (nobody else changes it).
    fn vehicle_changes(&self) -> Option<VehicleChanges>;
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
