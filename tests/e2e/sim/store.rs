//! The store as one simulated keyway process sees it: the real SQLite store, plus
//! - a kill switch: once the process "crashes", every call it makes hangs for ever
//!   (a call already in flight still lands — a crash right after a write);
//! - whether replicas share it (cluster mode: command and car leases, takeover);
//! - a disk that fills (shared by every process, [`Disk`]): while full, and now and then
//!   at random, a write fails before it takes effect, as SQLite's does on `SQLITE_FULL` —
//!   commands, grants, events, audit, leases, claims, tokens and deliveries alike;
//! - a count of calls in flight, which keeps tokio's paused clock from jumping ahead
//!   while SQLite works on its own thread (see [`super::Spinner`]).
//!
//! Every method delegates; the impls follow `keyway::store`'s area traits.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use keyway::store::*;
use time::OffsetDateTime;

use super::{Rng, Spinner};

/// The store's disk: full or not, and how often a write fails at random.
pub struct Disk {
    /// Every write fails while set.
    pub full: AtomicBool,
    /// The chance that any one write fails.
    pub flaky: f64,
    rng: Mutex<Rng>,
}

impl Disk {
    /// A disk whose writes fail with chance `flaky`, drawn from `seed`.
    pub fn new(seed: u64, flaky: f64) -> Self {
        Self {
            full: AtomicBool::new(false),
            flaky,
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    fn refuses(&self) -> bool {
        self.full.load(Ordering::SeqCst) || self.rng.lock().unwrap().chance(self.flaky)
    }
}

/// One process's handle on the shared store.
pub struct SimStore {
    inner: Arc<dyn Store>,
    dead: Arc<AtomicBool>,
    spinner: Spinner,
    shared: bool,
    disk: Option<Arc<Disk>>,
}

impl SimStore {
    /// A live handle. `shared`: replicas share it (cluster mode: leases, takeover).
    pub fn new(
        inner: Arc<dyn Store>,
        dead: Arc<AtomicBool>,
        spinner: Spinner,
        shared: bool,
        disk: Option<Arc<Disk>>,
    ) -> Self {
        Self {
            inner,
            dead,
            spinner,
            shared,
            disk,
        }
    }

    /// A write: refused before it takes effect while the disk refuses it.
    async fn write<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.disk.as_ref().is_some_and(|d| d.refuses()) {
            return self
                .guard(async { Err(StoreError::Database("database or disk is full".into())) })
                .await;
        }
        self.guard(call).await
    }

    async fn guard<T>(&self, call: impl Future<Output = T>) -> T {
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let out = {
            let _busy = self.spinner.busy();
            call.await
        };
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        out
    }
}

#[async_trait]
impl AccountStore for SimStore {
    async fn account_pin(&self, account_id: &str) -> Result<Option<PinRecord>, StoreError> {
        self.guard(self.inner.account_pin(account_id)).await
    }
    async fn set_account_pin(&self, account_id: &str, sealed: &str) -> Result<(), StoreError> {
        self.guard(self.inner.set_account_pin(account_id, sealed))
            .await
    }
    async fn reseal_account_pin(
        &self,
        account_id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        self.guard(self.inner.reseal_account_pin(account_id, old, new))
            .await
    }
    async fn reject_account_pin(&self, account_id: &str, sealed: &str) -> Result<bool, StoreError> {
        self.guard(self.inner.reject_account_pin(account_id, sealed))
            .await
    }
    async fn put_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.guard(self.inner.put_account(account)).await
    }
    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.guard(self.inner.account(id)).await
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.guard(self.inner.accounts()).await
    }
    async fn tenant_accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        self.guard(self.inner.tenant_accounts(tenant)).await
    }
    async fn tenant_account(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.guard(self.inner.tenant_account(tenant, id)).await
    }
    async fn save_tokens(&self, account_id: &str, tokens: &StoredTokens) -> Result<(), StoreError> {
        self.write(self.inner.save_tokens(account_id, tokens)).await
    }
    async fn replace_tokens(
        &self,
        account_id: &str,
        expected: &StoredTokens,
        tokens: &StoredTokens,
    ) -> Result<bool, StoreError> {
        self.guard(self.inner.replace_tokens(account_id, expected, tokens))
            .await
    }
    async fn delete_account(&self, id: &str) -> Result<bool, StoreError> {
        self.guard(self.inner.delete_account(id)).await
    }
    async fn account_vehicle_ids(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        self.guard(self.inner.account_vehicle_ids(account_id)).await
    }
    async fn put_link_state(&self, state: &LinkState) -> Result<(), StoreError> {
        self.guard(self.inner.put_link_state(state)).await
    }
    async fn take_link_state(&self, state_hash: &str) -> Result<Option<LinkState>, StoreError> {
        self.guard(self.inner.take_link_state(state_hash)).await
    }
    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError> {
        self.write(self.inner.set_account_status(id, status)).await
    }
}

#[async_trait]
impl VehicleStore for SimStore {
    async fn upsert_vehicle(
        &self,
        vehicle: &VehicleRecord,
    ) -> Result<Option<VehicleRecord>, StoreError> {
        self.guard(self.inner.upsert_vehicle(vehicle)).await
    }
    async fn vehicle(&self, id: &str) -> Result<Option<VehicleRecord>, StoreError> {
        self.guard(self.inner.vehicle(id)).await
    }
    async fn tenant_vehicle(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<VehicleRecord>, StoreError> {
        self.guard(self.inner.tenant_vehicle(tenant, id)).await
    }
    async fn vehicle_by_oem_id(
        &self,
        oem: &str,
        oem_id: &str,
    ) -> Result<Option<VehicleRecord>, StoreError> {
        self.guard(self.inner.vehicle_by_oem_id(oem, oem_id)).await
    }
    async fn vehicles(&self) -> Result<Vec<VehicleRecord>, StoreError> {
        self.guard(self.inner.vehicles()).await
    }
    async fn vehicles_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, StoreError> {
        self.guard(self.inner.vehicles_page(tenant, after, limit))
            .await
    }
    async fn set_capabilities(
        &self,
        id: &str,
        capabilities: Option<&[keyway_adapter::Capability]>,
    ) -> Result<(), StoreError> {
        self.guard(self.inner.set_capabilities(id, capabilities))
            .await
    }
    async fn routes(&self, tenant: &TenantId, vin: &str) -> Result<Vec<VehicleRecord>, StoreError> {
        self.guard(self.inner.routes(tenant, vin)).await
    }
}

#[async_trait]
impl CommandStore for SimStore {
    async fn create_command(
        &self,
        command: &CommandRecord,
        claim: Option<&IdempotencyClaim>,
        lease: &Lease,
        audit: Option<&AuditEntry>,
    ) -> Result<Created, StoreError> {
        self.write(self.inner.create_command(command, claim, lease, audit))
            .await
    }
    async fn finish_command(
        &self,
        command: &CommandRecord,
        audit: &AuditEntry,
        event: &EventRecord,
        webhooks: &[String],
    ) -> Result<i64, StoreError> {
        self.write(self.inner.finish_command(command, audit, event, webhooks))
            .await
    }
    async fn renew_command_lease(&self, id: &str, lease: &Lease) -> Result<bool, StoreError> {
        self.write(self.inner.renew_command_lease(id, lease)).await
    }
    async fn claim_commands(
        &self,
        lease: &Lease,
        lapsed_before: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.write(self.inner.claim_commands(lease, lapsed_before))
            .await
    }
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.guard(self.inner.command(id)).await
    }
    async fn visible_command(
        &self,
        tenant: &TenantId,
        sub: &str,
        id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.guard(self.inner.visible_command(tenant, sub, id))
            .await
    }
    async fn command_for_key(&self, caller: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.guard(self.inner.command_for_key(caller, key)).await
    }
    async fn commands_sent_since(
        &self,
        vehicle_id: &VehicleId,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.guard(self.inner.commands_sent_since(vehicle_id, sent_after))
            .await
    }
    async fn unknown_commands(
        &self,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.guard(self.inner.unknown_commands(sent_after)).await
    }
    async fn update_command(&self, command: &CommandRecord) -> Result<(), StoreError> {
        self.write(self.inner.update_command(command)).await
    }
}

#[async_trait]
impl GrantStore for SimStore {
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        self.write(self.inner.insert_grant(grant)).await
    }
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.guard(self.inner.grant(id)).await
    }
    async fn visible_grant(
        &self,
        tenant: &TenantId,
        grantee: &str,
        id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        self.guard(self.inner.visible_grant(tenant, grantee, id))
            .await
    }
    async fn grants_for_vehicle(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        self.guard(self.inner.grants_for_vehicle(tenant, vehicle_id))
            .await
    }
    async fn update_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        self.write(self.inner.update_grant(grant)).await
    }
    async fn take_grant_unlock(&self, id: &str) -> Result<bool, StoreError> {
        self.write(self.inner.take_grant_unlock(id)).await
    }
    async fn refund_grant_unlock(&self, id: &str) -> Result<(), StoreError> {
        self.write(self.inner.refund_grant_unlock(id)).await
    }
    async fn due_relocks(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError> {
        self.guard(self.inner.due_relocks(at)).await
    }
    async fn grants_in_use(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError> {
        self.guard(self.inner.grants_in_use(at)).await
    }
}

#[async_trait]
impl WatchStore for SimStore {
    async fn put_watch(&self, watch: &WatchRecord) -> Result<WatchRecord, StoreError> {
        self.write(self.inner.put_watch(watch)).await
    }
    async fn delete_watch(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
    ) -> Result<bool, StoreError> {
        self.write(self.inner.delete_watch(tenant, vehicle_id))
            .await
    }
    async fn tenant_watches(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        self.guard(self.inner.tenant_watches(tenant, at)).await
    }
    async fn active_watches(&self, at: OffsetDateTime) -> Result<Vec<WatchRecord>, StoreError> {
        self.guard(self.inner.active_watches(at)).await
    }
    async fn vehicle_state(
        &self,
        vehicle_id: &VehicleId,
    ) -> Result<Option<(i64, String)>, StoreError> {
        self.guard(self.inner.vehicle_state(vehicle_id)).await
    }
    async fn change_vehicle_state(
        &self,
        vehicle_id: &VehicleId,
        version: Option<i64>,
        state: &str,
        event: Option<(&EventRecord, &[String])>,
    ) -> Result<Option<i64>, StoreError> {
        self.write(
            self.inner
                .change_vehicle_state(vehicle_id, version, state, event),
        )
        .await
    }
}

#[async_trait]
impl EventStore for SimStore {
    async fn append_event(
        &self,
        event: &EventRecord,
        webhooks: &[String],
    ) -> Result<i64, StoreError> {
        self.write(self.inner.append_event(event, webhooks)).await
    }
    async fn events_after(
        &self,
        tenant: &TenantId,
        vehicles: Option<&[String]>,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.guard(self.inner.events_after(tenant, vehicles, seq, limit))
            .await
    }
    async fn vehicle_events_since(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
        since: time::OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.guard(
            self.inner
                .vehicle_events_since(tenant, vehicle_id, since, limit),
        )
        .await
    }
    async fn event(&self, seq: i64) -> Result<Option<EventRecord>, StoreError> {
        self.guard(self.inner.event(seq)).await
    }
    async fn insert_webhook(&self, webhook: &WebhookRecord) -> Result<(), StoreError> {
        self.guard(self.inner.insert_webhook(webhook)).await
    }
    async fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        self.guard(self.inner.webhooks()).await
    }
    async fn tenant_webhooks(&self, tenant: &TenantId) -> Result<Vec<WebhookRecord>, StoreError> {
        self.guard(self.inner.tenant_webhooks(tenant)).await
    }
    async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.guard(self.inner.delete_webhook(tenant, id)).await
    }
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.write(self.inner.claim_deliveries(now, until, limit))
            .await
    }
    async fn update_delivery(&self, delivery: &DeliveryRecord) -> Result<(), StoreError> {
        self.write(self.inner.update_delivery(delivery)).await
    }
    async fn deliveries(
        &self,
        tenant: &TenantId,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.guard(self.inner.deliveries(tenant, webhook_id, limit))
            .await
    }
}

#[async_trait]
impl AuditStore for SimStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        self.write(self.inner.append_audit(entry)).await
    }
    async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.guard(self.inner.audit_log()).await
    }
}

#[async_trait]
impl LeaseStore for SimStore {
    async fn try_lease(&self, name: &str, lease: &Lease) -> Result<bool, StoreError> {
        self.write(self.inner.try_lease(name, lease)).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.write(self.inner.release_lease(name, holder)).await
    }
    async fn release_all(&self, holder: &str) -> Result<(), StoreError> {
        self.write(self.inner.release_all(holder)).await
    }
}

#[async_trait]
impl Store for SimStore {
    fn shared(&self) -> bool {
        self.shared
    }
    fn vehicle_changes(&self) -> Option<keyway::store::VehicleChanges> {
        None
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.guard(self.inner.ping()).await
    }
    async fn ping_write(&self, replica: &str) -> Result<(), StoreError> {
        self.guard(self.inner.ping_write(replica)).await
    }
}
