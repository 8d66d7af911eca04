//! The SQL store: one implementation of [`Store`] for both engines keyway runs on,
//! through sqlx's `Any` driver with portable SQL (`$n` parameters, upserts,
//! `RETURNING`, integer milliseconds and 0/1 booleans).
//!
//! - **SQLite** (embedded default): one file in WAL mode with `synchronous = FULL`, so
//!   a command recorded before the OEM call is on disk before the car can act on it.
//! - **PostgreSQL** (cluster mode): a pool shared by several replicas; the schema is the
//!   first entry of the connection's `search_path` (created if missing), and changes to
//!   a car are announced with `NOTIFY` on a channel named after that schema.
//!
//! Each engine has its own embedded migrations, run at start-up.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keyway_adapter::Command;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Executor, Row, SqlSafeStr};
use time::OffsetDateTime;

use super::*;

type Migrations = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "linking",
        include_str!("../../migrations/sqlite/0002_linking.sql"),
    ),
    (
        3,
        "cluster",
        include_str!("../../migrations/sqlite/0003_cluster.sql"),
    ),
    (
        4,
        "grants",
        include_str!("../../migrations/sqlite/0004_grants.sql"),
    ),
    (
        5,
        "tenancy",
        include_str!("../../migrations/sqlite/0005_tenancy.sql"),
    ),
    (
        6,
        "unknown outcomes",
        include_str!("../../migrations/sqlite/0006_unknown_outcomes.sql"),
    ),
];

const POSTGRES_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "grants",
        include_str!("../../migrations/postgres/0002_grants.sql"),
    ),
    (
        3,
        "tenancy",
        include_str!("../../migrations/postgres/0003_tenancy.sql"),
    ),
    (
        4,
        "unknown outcomes",
        include_str!("../../migrations/postgres/0004_unknown_outcomes.sql"),
    ),
];

/// Which engine a [`SqlStore`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// One SQLite file (one keyway process).
    Sqlite,
    /// PostgreSQL (any number of replicas).
    Postgres,
}

/// [`Store`] on SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    engine: Engine,
    /// PostgreSQL: the `NOTIFY` channel for vehicle changes.
    channel: Option<String>,
    /// Serializes appends to the ordered logs (events, audit chain) in this process;
    /// PostgreSQL replicas also take an advisory lock.
    appends: Arc<tokio::sync::Mutex<()>>,
    /// PostgreSQL: that advisory lock's key, derived from the schema so deployments
    /// sharing a database do not wait for each other.
    append_key: i64,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
    PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

impl SqlStore {
    /// Opens (creating if missing) the SQLite file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::sqlite(&url, 8).await
    }

    /// A private in-memory SQLite database (tests).
    pub async fn memory() -> Result<Self, StoreError> {
        // An in-memory database lives in its one connection.
        Self::sqlite("sqlite::memory:", 1).await
    }

    async fn sqlite(url: &str, connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(db)?;
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db)?;
        migrate(&pool, SQLITE_MIGRATIONS).await?;
        Ok(Self {
            pool,
            engine: Engine::Sqlite,
            channel: None,
            appends: Arc::default(),
            append_key: 0,
        })
    }

    /// Connects a pool of `connections` to PostgreSQL at `url` (`postgres://…`; a
    /// schema is chosen with `?options=-c%20search_path%3Dname`) and migrates it.
    ///
    /// Every session has `idle_in_transaction_session_timeout = idle_in_tx`: keyway's
    /// transactions last milliseconds, so a session idle inside one belongs to a replica
    /// that froze or died with its socket still open — PostgreSQL ends it and frees its
    /// locks (the ordered logs' append lock among them) instead of stalling the cluster.
    pub async fn postgres(
        url: &str,
        connections: u32,
        idle_in_tx: Duration,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(db)?;
        let schema = ensure_schema(&options).await?;
        let set_timeout = format!(
            "SET idle_in_transaction_session_timeout = {}",
            idle_in_tx.as_millis().max(1)
        );
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                let set_timeout = set_timeout.clone();
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(set_timeout)).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db)?;
        // sqlx's migrator holds an advisory lock: replicas starting together wait.
        migrate(&pool, POSTGRES_MIGRATIONS).await?;
        let channel = format!(
            "keyway_{}",
            schema
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        );
        Ok(Self {
            pool,
            engine: Engine::Postgres,
            channel: Some(channel),
            appends: Arc::default(),
            append_key: append_key(&schema),
        })
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }
}

/// The advisory lock key of a schema's ordered logs.
fn append_key(schema: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("keyway/append/{schema}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The first schema of the connection's search path, created if it does not exist.
async fn ensure_schema(options: &AnyConnectOptions) -> Result<String, StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect_with(options)
        .await
        .map_err(db)?;
    let path: String = conn
        .fetch_one("SELECT current_setting('search_path') AS path")
        .await
        .map_err(db)?
        .try_get("path")
        .map_err(db)?;
    let first = path
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .find(|s| !s.is_empty() && *s != "$user")
        .unwrap_or("public")
        .to_string();
    if !first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::Database(format!(
            "schema name {first:?}: use letters, digits and _"
        )));
    }
    // Checked above: letters, digits and _ only.
    let create = format!("CREATE SCHEMA IF NOT EXISTS {first}");
    conn.execute(sqlx::AssertSqlSafe(create))
        .await
        .map_err(db)?;
    let _ = conn.close().await;
    Ok(first)
}

async fn migrate<'a, A>(to: A, list: Migrations) -> Result<(), StoreError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let migrations = list
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
        .run(to)
        .await
        .map_err(|e| StoreError::Database(format!("migrating: {e}")))
}

impl SqlStore {
    /// Imports many vehicles in one transaction (benchmarks, migrations); existing
    /// (oem, oem_id) pairs are skipped.
    pub async fn import_vehicles(&self, vehicles: &[VehicleRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let created = to_ms(now());
        for v in vehicles {
            sqlx::query(
                "INSERT INTO vehicles (id, account_id, oem, oem_id, vin, display_name, model,
                    year, created_at, tenant) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (oem, oem_id) DO NOTHING",
            )
            .bind(&v.id)
            .bind(&v.account_id)
            .bind(&v.oem)
            .bind(&v.oem_id)
            .bind(&v.vin)
            .bind(&v.display_name)
            .bind(&v.model)
            .bind(v.year.map(i64::from))
            .bind(created)
            .bind(&v.tenant)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl SqlStore {
    /// At most one row, mapped.
    async fn one<T>(
        &self,
        q: Query<'_>,
        map: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        q.fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(map)
            .transpose()
    }

    /// Runs a statement; how many rows it changed.
    async fn exec(&self, q: Query<'_>) -> Result<u64, StoreError> {
        Ok(q.execute(&self.pool).await.map_err(db)?.rows_affected())
    }

    /// Every row, mapped.
    async fn all<T>(
        &self,
        q: Query<'_>,
        map: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        q.fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(map)
            .collect()
    }
}

fn opt_ms(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(to_ms)
}

fn opt_time(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_ms).transpose()
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn account_from(row: &AnyRow) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        id: get(row, "id")?,
        oem: get(row, "oem")?,
        owner: get(row, "owner")?,
        status: AccountStatus::parse(&get::<String>(row, "status")?)?,
        tokens: StoredTokens {
            access_token: get(row, "access_token")?,
            access_expires_at: opt_time(get(row, "access_expires_at")?)?,
            access_refresh_at: opt_time(get(row, "access_refresh_at")?)?,
            refresh_token: get(row, "refresh_token")?,
        },
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

fn vehicle_from(row: &AnyRow) -> Result<VehicleRecord, StoreError> {
    let last_locked = get::<Option<i64>>(row, "last_locked")?.map(|l| l != 0);
    let last_locked_at = opt_time(get(row, "last_locked_at")?)?;
    Ok(VehicleRecord {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        tenant: get(row, "tenant")?,
        oem: get(row, "oem")?,
        oem_id: get(row, "oem_id")?,
        vin: get(row, "vin")?,
        display_name: get(row, "display_name")?,
        model: get(row, "model")?,
        year: get::<Option<i64>>(row, "year")?.and_then(|y| u16::try_from(y).ok()),
        last_locked: last_locked.zip(last_locked_at),
    })
}

fn command_from(row: &AnyRow) -> Result<CommandRecord, StoreError> {
    let action: String = get(row, "action")?;
    Ok(CommandRecord {
        id: get(row, "id")?,
        vehicle_id: get(row, "vehicle_id")?,
        action: Command::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("command action {action:?}")))?,
        status: CommandStatus::parse(&get::<String>(row, "status")?)?,
        caller: get(row, "caller")?,
        tenant: get(row, "tenant")?,
        reserved: get::<i64>(row, "reserved")? != 0,
        reference: get(row, "reference")?,
        request_id: get(row, "request_id")?,
        sent_at: opt_time(get(row, "sent_at")?)?,
        oem_handle: get(row, "oem_handle")?,
        error_code: get(row, "error_code")?,
        error_detail: get(row, "error_detail")?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
        observed: get::<Option<i64>>(row, "observed_locked")?
            .map(|l| l != 0)
            .zip(opt_time(get(row, "observed_at")?)?),
        retry_at: opt_time(get(row, "retry_at")?)?,
    })
}

fn grant_from(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    let lat: Option<f64> = get(row, "geofence_lat")?;
    let lon: Option<f64> = get(row, "geofence_lon")?;
    let radius: Option<f64> = get(row, "geofence_radius_m")?;
    let count = |col: &str| -> Result<u32, StoreError> {
        u32::try_from(get::<i64>(row, col)?).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    };
    Ok(GrantRecord {
        id: get(row, "id")?,
        vehicle_id: get(row, "vehicle_id")?,
        grantee: get(row, "grantee")?,
        created_by: get(row, "created_by")?,
        tenant: get(row, "tenant")?,
        purpose: get(row, "purpose")?,
        not_before: from_ms(get(row, "not_before")?)?,
        not_after: from_ms(get(row, "not_after")?)?,
        max_unlocks: count("max_unlocks")?,
        unlocks_used: count("unlocks_used")?,
        geofence: match (lat, lon, radius) {
            (Some(latitude), Some(longitude), Some(radius_m)) => Some(Geofence {
                latitude,
                longitude,
                radius_m,
            }),
            _ => None,
        },
        relock_after_s: count("relock_after_s")?,
        revoked_at: opt_time(get(row, "revoked_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
        relock_state: RelockState::parse(&get::<String>(row, "relock_state")?)?,
        relock_due_at: opt_time(get(row, "relock_due_at")?)?,
        relock_attempts: count("relock_attempts")?,
        relocked_at: opt_time(get(row, "relocked_at")?)?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
    })
}

fn event_from(row: &AnyRow) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        seq: get(row, "seq")?,
        id: get(row, "id")?,
        kind: get(row, "type")?,
        tenant: get(row, "tenant")?,
        vehicle_id: get(row, "vehicle_id")?,
        grant_id: get(row, "grant_id")?,
        command_id: get(row, "command_id")?,
        data: get(row, "data")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

fn webhook_from(row: &AnyRow) -> Result<WebhookRecord, StoreError> {
    Ok(WebhookRecord {
        id: get(row, "id")?,
        url: get(row, "url")?,
        secret: get(row, "secret")?,
        types: get(row, "types")?,
        created_by: get(row, "created_by")?,
        tenant: get(row, "tenant")?,
        vehicles: get::<Option<String>>(row, "vehicles")?
            .map(|v| v.split(',').map(str::to_string).collect()),
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

fn delivery_from(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: get(row, "id")?,
        webhook_id: get(row, "webhook_id")?,
        event_seq: get(row, "event_seq")?,
        status: get(row, "status")?,
        attempts: get::<i64>(row, "attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: from_ms(get(row, "next_attempt_at")?)?,
        last_status: get::<Option<i64>>(row, "last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: get(row, "last_error")?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
    })
}

fn audit_from(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: get(row, "seq")?,
        entry: AuditEntry {
            at: from_ms(get(row, "at")?)?,
            actor: get(row, "actor")?,
            action: get(row, "action")?,
            decision: get(row, "decision")?,
            vehicle_id: get(row, "vehicle_id")?,
            grant_id: get(row, "grant_id")?,
            command_id: get(row, "command_id")?,
            detail: get(row, "detail")?,
        },
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

impl SqlStore {
    /// Starts a transaction that appends to an ordered log: one writer at a time in
    /// this process, and across PostgreSQL replicas (an advisory transaction lock).
    async fn append_tx(
        &self,
    ) -> Result<
        (
            tokio::sync::MutexGuard<'_, ()>,
            sqlx::Transaction<'static, sqlx::Any>,
        ),
        StoreError,
    > {
        let guard = self.appends.lock().await;
        // SQLite: take the write lock up front; a deferred transaction that reads
        // first cannot become a writer while another connection writes.
        let mut tx = match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
        .map_err(db)?;
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1) IS NULL AS locked")
                .bind(self.append_key)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        Ok((guard, tx))
    }
}

type Conn = sqlx::AnyConnection;

/// Appends an audit row inside the caller's (serialized) transaction.
async fn insert_audit(conn: &mut Conn, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let (seq, prev_hash) = match last {
        Some(r) => (get::<i64>(&r, "seq")? + 1, get::<String>(&r, "hash")?),
        None => (1, AUDIT_GENESIS.to_string()),
    };
    let hash = audit_hash(&prev_hash, seq, e);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, decision, vehicle_id, grant_id,
            command_id, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(seq)
    .bind(to_ms(e.at))
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.decision)
    .bind(&e.vehicle_id)
    .bind(&e.grant_id)
    .bind(&e.command_id)
    .bind(&e.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(AuditRecord {
        seq,
        entry: e.clone(),
        prev_hash,
        hash,
    })
}

/// Appends an event and its deliveries inside the caller's (serialized) transaction.
async fn insert_event(
    conn: &mut Conn,
    e: &EventRecord,
    webhooks: &[String],
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO events (id, type, vehicle_id, grant_id, command_id, data, created_at, tenant)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
    )
    .bind(&e.id)
    .bind(&e.kind)
    .bind(&e.vehicle_id)
    .bind(&e.grant_id)
    .bind(&e.command_id)
    .bind(&e.data)
    .bind(to_ms(e.created_at))
    .bind(&e.tenant)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let seq: i64 = get(&row, "seq")?;
    let t = to_ms(e.created_at);
    for webhook in webhooks {
        sqlx::query(
            "INSERT INTO deliveries (id, webhook_id, event_seq, status, attempts,
                next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6)",
        )
        .bind(crate::ids::new("dlv"))
        .bind(webhook)
        .bind(seq)
        .bind(t)
        .bind(t)
        .bind(t)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(seq)
}

/// Writes a command's progress.
async fn write_command(conn: &mut Conn, c: &CommandRecord) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE commands SET status = $1, sent_at = $2, oem_handle = $3, error_code = $4,
            error_detail = $5, updated_at = $6, completed_at = $7, observed_locked = $8,
            observed_at = $9, retry_at = $10 WHERE id = $11",
    )
    .bind(c.status.as_str())
    .bind(opt_ms(c.sent_at))
    .bind(&c.oem_handle)
    .bind(&c.error_code)
    .bind(&c.error_detail)
    .bind(to_ms(c.updated_at))
    .bind(opt_ms(c.completed_at))
    .bind(c.observed.map(|(l, _)| i64::from(l)))
    .bind(opt_ms(c.observed.map(|(_, at)| at)))
    .bind(opt_ms(c.retry_at))
    .bind(&c.id)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.exec(sqlx::query("SELECT 1")).await?;
        Ok(())
    }

    fn shared(&self) -> bool {
        self.engine == Engine::Postgres
    }

    fn change_channel(&self) -> Option<String> {
        self.channel.clone()
    }

    async fn try_lease(&self, name: &str, lease: &Lease) -> Result<bool, StoreError> {
        let n = self
            .exec(
                sqlx::query(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
                )
                .bind(name)
                .bind(&lease.holder)
                .bind(to_ms(lease.until))
                .bind(to_ms(now())),
            )
            .await?;
        Ok(n == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.exec(
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder),
        )
        .await?;
        Ok(())
    }

    async fn renew_command_lease(&self, id: &str, lease: &Lease) -> Result<bool, StoreError> {
        let n = self
            .exec(
                sqlx::query(
                    "UPDATE commands SET lease_until = $1
             WHERE id = $2 AND lease_holder = $3 AND status = 'pending'",
                )
                .bind(to_ms(lease.until))
                .bind(id)
                .bind(&lease.holder),
            )
            .await?;
        Ok(n == 1)
    }

    async fn release_all(&self, holder: &str) -> Result<(), StoreError> {
        self.exec(sqlx::query("DELETE FROM leases WHERE holder = $1").bind(holder))
            .await?;
        self.exec(
            sqlx::query(
                "UPDATE commands SET lease_until = 0
                 WHERE lease_holder = $1 AND status = 'pending'",
            )
            .bind(holder),
        )
        .await?;
        Ok(())
    }

    async fn claim_commands(
        &self,
        lease: &Lease,
        lapsed_before: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        // One statement: under PostgreSQL a row two replicas race for is re-checked
        // after the first commits, so the second finds the lease taken and skips it.
        let mut claimed = self
            .all(
                sqlx::query(
                    "UPDATE commands SET lease_holder = $1, lease_until = $2
                     WHERE status = 'pending'
                        AND (lease_until IS NULL OR lease_until < $3)
                     RETURNING *",
                )
                .bind(&lease.holder)
                .bind(to_ms(lease.until))
                .bind(to_ms(lapsed_before)),
                command_from,
            )
            .await?;
        claimed.sort_by_key(|c| c.created_at);
        Ok(claimed)
    }

    async fn put_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "INSERT INTO accounts (id, oem, owner, status, access_token, access_expires_at,
                access_refresh_at, refresh_token, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET oem = excluded.oem, owner = excluded.owner,
                status = excluded.status, access_token = excluded.access_token,
                access_expires_at = excluded.access_expires_at,
                access_refresh_at = excluded.access_refresh_at,
                refresh_token = excluded.refresh_token, updated_at = excluded.updated_at",
            )
            .bind(&a.id)
            .bind(&a.oem)
            .bind(&a.owner)
            .bind(a.status.as_str())
            .bind(&a.tokens.access_token)
            .bind(opt_ms(a.tokens.access_expires_at))
            .bind(opt_ms(a.tokens.access_refresh_at))
            .bind(&a.tokens.refresh_token)
            .bind(to_ms(a.created_at))
            .bind(to_ms(now())),
        )
        .await?;
        Ok(())
    }

    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM accounts WHERE id = $1").bind(id),
            account_from,
        )
        .await
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM accounts ORDER BY id"),
            account_from,
        )
        .await
    }

    async fn tenant_accounts(&self, tenant: &str) -> Result<Vec<AccountRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM accounts WHERE owner = $1 ORDER BY id").bind(tenant),
            account_from,
        )
        .await
    }

    async fn tenant_account(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM accounts WHERE id = $1 AND owner = $2")
                .bind(id)
                .bind(tenant),
            account_from,
        )
        .await
    }

    async fn save_tokens(&self, account_id: &str, t: &StoredTokens) -> Result<(), StoreError> {
        self.exec(sqlx::query(
            "UPDATE accounts SET access_token = $1, access_expires_at = $2, access_refresh_at = $3,
                refresh_token = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&t.access_token)
        .bind(opt_ms(t.access_expires_at))
        .bind(opt_ms(t.access_refresh_at))
        .bind(&t.refresh_token)
        .bind(to_ms(now()))
        .bind(account_id)).await?;
        Ok(())
    }

    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError> {
        self.exec(
            sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(to_ms(now()))
                .bind(id),
        )
        .await?;
        Ok(())
    }

    async fn replace_tokens(
        &self,
        account_id: &str,
        expected: &StoredTokens,
        t: &StoredTokens,
    ) -> Result<bool, StoreError> {
        let n = self.exec(sqlx::query(
            "UPDATE accounts SET access_token = $1, access_expires_at = $2, access_refresh_at = $3,
                refresh_token = $4, updated_at = $5
             WHERE id = $6 AND access_token IS NOT DISTINCT FROM $7
                AND refresh_token IS NOT DISTINCT FROM $8",
        )
        .bind(&t.access_token)
        .bind(opt_ms(t.access_expires_at))
        .bind(opt_ms(t.access_refresh_at))
        .bind(&t.refresh_token)
        .bind(to_ms(now()))
        .bind(account_id)
        .bind(&expected.access_token)
        .bind(&expected.refresh_token)).await?;
        Ok(n == 1)
    }

    async fn delete_account(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM vehicles WHERE account_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let deleted = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
            == 1;
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }

    async fn account_vehicle_ids(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT id FROM vehicles WHERE account_id = $1 ORDER BY id")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|r| get(r, "id"))
            .collect()
    }

    async fn put_link_state(&self, l: &LinkState) -> Result<(), StoreError> {
        self.exec(sqlx::query("DELETE FROM link_states WHERE expires_at < $1").bind(to_ms(now())))
            .await?;
        self.exec(sqlx::query(
            "INSERT INTO link_states (state_hash, oem, caller, verifier, redirect_uri, created_at,
                expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&l.state_hash)
        .bind(&l.oem)
        .bind(&l.caller)
        .bind(&l.verifier)
        .bind(&l.redirect_uri)
        .bind(to_ms(l.created_at))
        .bind(to_ms(l.expires_at))).await?;
        Ok(())
    }

    async fn take_link_state(&self, state_hash: &str) -> Result<Option<LinkState>, StoreError> {
        let row = sqlx::query("DELETE FROM link_states WHERE state_hash = $1 RETURNING *")
            .bind(state_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| {
            Ok(LinkState {
                state_hash: get(&r, "state_hash")?,
                oem: get(&r, "oem")?,
                caller: get(&r, "caller")?,
                verifier: get(&r, "verifier")?,
                redirect_uri: get(&r, "redirect_uri")?,
                created_at: from_ms(get(&r, "created_at")?)?,
                expires_at: from_ms(get(&r, "expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn upsert_vehicle(&self, v: &VehicleRecord) -> Result<Option<VehicleRecord>, StoreError> {
        // A car another tenant linked is not moved: no row is updated or returned.
        let row = sqlx::query(
            "INSERT INTO vehicles (id, account_id, oem, oem_id, vin, display_name, model, year,
                created_at, tenant)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (oem, oem_id) DO UPDATE SET account_id = excluded.account_id,
                vin = excluded.vin, display_name = excluded.display_name,
                model = excluded.model, year = excluded.year
             WHERE vehicles.tenant = excluded.tenant
             RETURNING *",
        )
        .bind(&v.id)
        .bind(&v.account_id)
        .bind(&v.oem)
        .bind(&v.oem_id)
        .bind(&v.vin)
        .bind(&v.display_name)
        .bind(&v.model)
        .bind(v.year.map(i64::from))
        .bind(to_ms(now()))
        .bind(&v.tenant)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(vehicle_from).transpose()
    }

    async fn vehicle(&self, id: &str) -> Result<Option<VehicleRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM vehicles WHERE id = $1").bind(id),
            vehicle_from,
        )
        .await
    }

    async fn tenant_vehicle(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<VehicleRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM vehicles WHERE id = $1 AND tenant = $2")
                .bind(id)
                .bind(tenant),
            vehicle_from,
        )
        .await
    }

    async fn vehicle_by_oem_id(
        &self,
        oem: &str,
        oem_id: &str,
    ) -> Result<Option<VehicleRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM vehicles WHERE oem = $1 AND oem_id = $2")
                .bind(oem)
                .bind(oem_id),
            vehicle_from,
        )
        .await
    }

    async fn vehicles(&self) -> Result<Vec<VehicleRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM vehicles ORDER BY id"),
            vehicle_from,
        )
        .await
    }

    async fn vehicles_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM vehicles WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(tenant)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit)),
            vehicle_from,
        )
        .await
    }

    async fn create_command(
        &self,
        c: &CommandRecord,
        claim: Option<&IdempotencyClaim>,
        lease: &Lease,
        audit: Option<&AuditEntry>,
    ) -> Result<Created, StoreError> {
        let (_one_writer, mut tx) = self.append_tx().await?;
        if let Some(claim) = claim {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (caller, key, fingerprint, command_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (caller, key) DO NOTHING",
            )
            .bind(&claim.caller)
            .bind(&claim.key)
            .bind(&claim.fingerprint)
            .bind(&c.id)
            .bind(to_ms(c.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
                == 1;
            if !claimed {
                let row = sqlx::query(
                    "SELECT k.fingerprint AS fingerprint, c.* FROM idempotency_keys k
                     JOIN commands c ON c.id = k.command_id
                     WHERE k.caller = $1 AND k.key = $2",
                )
                .bind(&claim.caller)
                .bind(&claim.key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                let existing = Created::Existing {
                    fingerprint: get(&row, "fingerprint")?,
                    command: Box::new(command_from(&row)?),
                };
                // Nothing was written; end the transaction here rather than on drop.
                tx.rollback().await.map_err(db)?;
                return Ok(existing);
            }
        }
        sqlx::query(
            "INSERT INTO commands (id, vehicle_id, action, status, caller, reference, request_id,
                sent_at, oem_handle, error_code, error_detail, created_at, updated_at,
                completed_at, lease_holder, lease_until, tenant, reserved)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18)",
        )
        .bind(&c.id)
        .bind(&c.vehicle_id)
        .bind(c.action.as_str())
        .bind(c.status.as_str())
        .bind(&c.caller)
        .bind(&c.reference)
        .bind(&c.request_id)
        .bind(opt_ms(c.sent_at))
        .bind(&c.oem_handle)
        .bind(&c.error_code)
        .bind(&c.error_detail)
        .bind(to_ms(c.created_at))
        .bind(to_ms(c.updated_at))
        .bind(opt_ms(c.completed_at))
        .bind(&lease.holder)
        .bind(to_ms(lease.until))
        .bind(&c.tenant)
        .bind(i64::from(c.reserved))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(entry) = audit {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(Created::New)
    }

    async fn finish_command(
        &self,
        c: &CommandRecord,
        audit: &AuditEntry,
        event: &EventRecord,
        webhooks: &[String],
    ) -> Result<i64, StoreError> {
        let (_one_writer, mut tx) = self.append_tx().await?;
        write_command(&mut tx, c).await?;
        if c.status == CommandStatus::Succeeded {
            sqlx::query("UPDATE vehicles SET last_locked = $1, last_locked_at = $2 WHERE id = $3")
                .bind(i64::from(c.action.leaves_locked()))
                .bind(to_ms(c.completed_at.unwrap_or(c.updated_at)))
                .bind(&c.vehicle_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        insert_audit(&mut tx, audit).await?;
        let seq = insert_event(&mut tx, event, webhooks).await?;
        if let Some(channel) = &self.channel {
            // Delivered at commit, and only if the outcome is committed.
            sqlx::query("SELECT pg_notify($1, $2) IS NULL AS sent")
                .bind(channel)
                .bind(&c.vehicle_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(seq)
    }

    async fn command(&self, id: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM commands WHERE id = $1").bind(id),
            command_from,
        )
        .await
    }

    async fn visible_command(
        &self,
        tenant: &str,
        sub: &str,
        id: &str,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM commands WHERE id = $1 AND (tenant = $2 OR caller = $3)")
                .bind(id)
                .bind(tenant)
                .bind(sub),
            command_from,
        )
        .await
    }

    async fn commands_sent_since(
        &self,
        vehicle_id: &str,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM commands WHERE vehicle_id = $1 AND sent_at > $2
                    ORDER BY sent_at",
            )
            .bind(vehicle_id)
            .bind(to_ms(sent_after)),
            command_from,
        )
        .await
    }

    async fn command_for_key(&self, caller: &str, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT command_id FROM idempotency_keys WHERE caller = $1 AND key = $2")
            .bind(caller)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|r| get(&r, "command_id"))
            .transpose()
    }

    async fn update_command(&self, c: &CommandRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        write_command(&mut conn, c).await
    }

    async fn insert_grant(&self, g: &GrantRecord) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "INSERT INTO grants (id, vehicle_id, grantee, created_by, purpose, not_before,
                    not_after, max_unlocks, unlocks_used, geofence_lat, geofence_lon,
                    geofence_radius_m, relock_after_s, revoked_at, completed_at, relock_state,
                    relock_due_at, relock_attempts, relocked_at, created_at, updated_at, tenant)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18, $19, $20, $21, $22)",
            )
            .bind(&g.id)
            .bind(&g.vehicle_id)
            .bind(&g.grantee)
            .bind(&g.created_by)
            .bind(&g.purpose)
            .bind(to_ms(g.not_before))
            .bind(to_ms(g.not_after))
            .bind(i64::from(g.max_unlocks))
            .bind(i64::from(g.unlocks_used))
            .bind(g.geofence.map(|f| f.latitude))
            .bind(g.geofence.map(|f| f.longitude))
            .bind(g.geofence.map(|f| f.radius_m))
            .bind(i64::from(g.relock_after_s))
            .bind(opt_ms(g.revoked_at))
            .bind(opt_ms(g.completed_at))
            .bind(g.relock_state.as_str())
            .bind(opt_ms(g.relock_due_at))
            .bind(i64::from(g.relock_attempts))
            .bind(opt_ms(g.relocked_at))
            .bind(to_ms(g.created_at))
            .bind(to_ms(g.updated_at))
            .bind(&g.tenant),
        )
        .await?;
        Ok(())
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM grants WHERE id = $1").bind(id),
            grant_from,
        )
        .await
    }

    async fn visible_grant(
        &self,
        tenant: &str,
        grantee: &str,
        id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM grants WHERE id = $1 AND (tenant = $2 OR grantee = $3)")
                .bind(id)
                .bind(tenant)
                .bind(grantee),
            grant_from,
        )
        .await
    }

    async fn grants_for_vehicle(
        &self,
        tenant: &str,
        vehicle_id: &str,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM grants WHERE vehicle_id = $1 AND tenant = $2
                 ORDER BY created_at DESC, id",
            )
            .bind(vehicle_id)
            .bind(tenant),
            grant_from,
        )
        .await
    }

    async fn update_grant(&self, g: &GrantRecord) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "UPDATE grants SET revoked_at = $1, completed_at = $2, relock_state = $3,
                    relock_due_at = $4, relock_attempts = $5, relocked_at = $6, updated_at = $7
                 WHERE id = $8",
            )
            .bind(opt_ms(g.revoked_at))
            .bind(opt_ms(g.completed_at))
            .bind(g.relock_state.as_str())
            .bind(opt_ms(g.relock_due_at))
            .bind(i64::from(g.relock_attempts))
            .bind(opt_ms(g.relocked_at))
            .bind(to_ms(g.updated_at))
            .bind(&g.id),
        )
        .await?;
        Ok(())
    }

    async fn take_grant_unlock(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .exec(
                sqlx::query(
                    "UPDATE grants SET unlocks_used = unlocks_used + 1, updated_at = $1
                     WHERE id = $2 AND unlocks_used < max_unlocks AND revoked_at IS NULL
                        AND completed_at IS NULL",
                )
                .bind(to_ms(now()))
                .bind(id),
            )
            .await?;
        Ok(n == 1)
    }

    async fn refund_grant_unlock(&self, id: &str) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "UPDATE grants SET unlocks_used = unlocks_used - 1 WHERE id = $1 AND unlocks_used > 0",
            )
            .bind(id),
        )
        .await?;
        Ok(())
    }

    async fn due_relocks(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM grants WHERE relock_state IN ('due', 'watching')
                    AND relock_due_at <= $1
                 ORDER BY relock_due_at LIMIT 100",
            )
            .bind(to_ms(at)),
            grant_from,
        )
        .await
    }

    async fn append_event(&self, e: &EventRecord, webhooks: &[String]) -> Result<i64, StoreError> {
        let (_one_writer, mut tx) = self.append_tx().await?;
        let seq = insert_event(&mut tx, e, webhooks).await?;
        tx.commit().await.map_err(db)?;
        Ok(seq)
    }

    async fn events_after(
        &self,
        tenant: &str,
        vehicles: Option<&[String]>,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let Some(vehicles) = vehicles else {
            return self
                .all(
                    sqlx::query(
                        "SELECT * FROM events WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(tenant)
                    .bind(seq)
                    .bind(i64::from(limit)),
                    event_from,
                )
                .await;
        };
        if vehicles.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (0..vehicles.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT * FROM events WHERE tenant = $1 AND seq > $2 AND vehicle_id IN ({})
             ORDER BY seq LIMIT $3",
            list.join(", ")
        );
        // Only numbered placeholders are formatted in; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(seq)
            .bind(i64::from(limit));
        for v in vehicles {
            q = q.bind(v);
        }
        self.all(q, event_from).await
    }

    async fn event(&self, seq: i64) -> Result<Option<EventRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM events WHERE seq = $1").bind(seq),
            event_from,
        )
        .await
    }

    async fn insert_webhook(&self, w: &WebhookRecord) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "INSERT INTO webhooks (id, url, secret, types, created_by, created_at, tenant,
                    vehicles)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&w.id)
            .bind(&w.url)
            .bind(&w.secret)
            .bind(&w.types)
            .bind(&w.created_by)
            .bind(to_ms(w.created_at))
            .bind(&w.tenant)
            .bind(w.vehicles.as_ref().map(|v| v.join(","))),
        )
        .await?;
        Ok(())
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM webhooks ORDER BY created_at, id"),
            webhook_from,
        )
        .await
    }

    async fn tenant_webhooks(&self, tenant: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM webhooks WHERE tenant = $1 ORDER BY created_at, id")
                .bind(tenant),
            webhook_from,
        )
        .await
    }

    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let n = self
            .exec(
                sqlx::query("DELETE FROM webhooks WHERE id = $1 AND tenant = $2")
                    .bind(id)
                    .bind(tenant),
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        // Nothing more is sent to a deleted subscription.
        self.exec(
            sqlx::query(
                "UPDATE deliveries SET status = 'failed', last_error = 'subscription deleted'
                 WHERE webhook_id = $1 AND status = 'pending'",
            )
            .bind(id),
        )
        .await?;
        Ok(n == 1)
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.all(
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1
                 WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending'
                    AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3)
                    AND status = 'pending' AND next_attempt_at <= $2
                 RETURNING *",
            )
            .bind(to_ms(until))
            .bind(to_ms(now))
            .bind(i64::from(limit)),
            delivery_from,
        )
        .await
    }

    async fn update_delivery(&self, d: &DeliveryRecord) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3,
                    last_status = $4, last_error = $5, updated_at = $6 WHERE id = $7",
            )
            .bind(&d.status)
            .bind(i64::from(d.attempts))
            .bind(to_ms(d.next_attempt_at))
            .bind(d.last_status.map(i64::from))
            .bind(&d.last_error)
            .bind(to_ms(d.updated_at))
            .bind(&d.id),
        )
        .await?;
        Ok(())
    }

    async fn deliveries(
        &self,
        tenant: &str,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT d.* FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.webhook_id = $1 AND w.tenant = $2
                 ORDER BY d.created_at DESC, d.event_seq DESC LIMIT $3",
            )
            .bind(webhook_id)
            .bind(tenant)
            .bind(i64::from(limit)),
            delivery_from,
        )
        .await
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let (_one_writer, mut tx) = self.append_tx().await?;
        let record = insert_audit(&mut tx, e).await?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM audit_log ORDER BY seq"),
            audit_from,
        )
        .await
    }
}
