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

mod accounts;
mod audit;
mod changes;
mod commands;
mod events;
mod grants;
mod leases;
mod rows;
mod typed;
mod vehicles;
mod watches;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Executor, Row};

use super::*;

/// SQLite's migrations (`migrations/sqlite/NNNN_name.sql`), embedded at build time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// PostgreSQL's migrations (`migrations/postgres/NNNN_name.sql`), embedded at build
/// time.
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

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
    /// PostgreSQL: the database's URL, for listening on that channel (may carry a
    /// password: redacted in `Debug`).
    listen_url: Option<keyway_adapter::Secret>,
    /// Serializes appends to the ordered logs (events, audit chain) in this process;
    /// PostgreSQL replicas also take an advisory lock.
    appends: Arc<tokio::sync::Mutex<()>>,
    /// PostgreSQL: that advisory lock's key, derived from the schema so deployments
    /// sharing a database do not wait for each other.
    append_key: i64,
    /// The clock its stamps (`updated_at`, a lease's taking) come from: the wall
    /// clock unless [`SqlStore::with_clock`] gave the gateway's.
    clock: crate::clock::Clock,
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
            .before_acquire(|conn, _| Box::pin(async move { Ok(clean(conn)) }))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db)?;
        migrate(&pool, &SQLITE_MIGRATIONS).await?;
        Ok(Self {
            pool,
            engine: Engine::Sqlite,
            channel: None,
            listen_url: None,
            appends: Arc::default(),
            append_key: 0,
            clock: Default::default(),
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
            .before_acquire(|conn, _| Box::pin(async move { Ok(clean(conn)) }))
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
        migrate(&pool, &POSTGRES_MIGRATIONS).await?;
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
            listen_url: Some(keyway_adapter::Secret::new(url)),
            appends: Arc::default(),
            append_key: append_key(&schema),
            clock: Default::default(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// This store, stamping with `clock` (the one its gateway runs on).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by this store's clock.
    fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
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

/// Whether a pooled connection may be handed out: not if it is still inside a
/// transaction. A transaction whose `COMMIT` failed (SQLite rolls back by itself on a
/// full disk) and whose `ROLLBACK` then failed too stays open as far as sqlx counts, and
/// every later `BEGIN` on that connection would fail: the pool closes it and opens a
/// fresh one instead.
fn clean(conn: &sqlx::AnyConnection) -> bool {
    use sqlx::Connection;
    let open = conn.is_in_transaction();
    if open {
        tracing::warn!("closing a store connection left inside a failed transaction");
    }
    !open
}

async fn migrate<'a, A>(to: A, migrator: &Migrator) -> Result<(), StoreError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    migrator
        .run(to)
        .await
        .map_err(|e| StoreError::Database(format!("migrating: {e}")))
}

impl SqlStore {
    /// Imports many vehicles in one transaction (benchmarks, migrations); existing
    /// (oem, oem_id) pairs are skipped.
    pub async fn import_vehicles(&self, vehicles: &[VehicleRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let created = to_ms(self.now());
        for v in vehicles {
            sqlx::query(
                "INSERT INTO vehicles (id, account_id, oem, oem_id, vin, display_name, model,
                    year, created_at, tenant, capabilities)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
            .bind(rows::stored_capabilities(v))
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

pub(super) type Conn = sqlx::AnyConnection;

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.exec(sqlx::query("SELECT 1")).await?;
        Ok(())
    }
    async fn ping_write(&self, replica: &str) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "INSERT INTO probes (replica, at) VALUES ($1, $2)
                 ON CONFLICT (replica) DO UPDATE SET at = excluded.at",
            )
            .bind(replica)
            .bind(to_ms(self.now())),
        )
        .await?;
        Ok(())
    }
    fn shared(&self) -> bool {
        self.engine == Engine::Postgres
    }
    fn vehicle_changes(&self) -> Option<VehicleChanges> {
        let (url, channel) = (self.listen_url.clone()?, self.channel.clone()?);
        Some(changes::changes(url, channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a full disk SQLite rolls a transaction back by itself (`SQLITE_FULL`); sqlx,
    /// not knowing, then fails its own `ROLLBACK` and counts the connection as still
    /// inside the transaction, so every later `BEGIN` on it failed ("attempted to call
    /// begin_with at non-zero transaction depth") until a restart. The pool must not
    /// hand that connection out again.
    #[tokio::test]
    async fn a_connection_left_inside_a_failed_transaction_is_not_reused() {
        let dir = std::env::temp_dir().join(format!("keyway-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("full.db").display());
        let store = SqlStore::sqlite(&url, 1).await.unwrap();
        for _ in 0..3 {
            let (guard, mut tx) = store.append_tx().await.unwrap();
            // What SQLite does on SQLITE_FULL: the transaction ends under sqlx.
            sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
            drop(tx);
            drop(guard);
            // The disk has room again: writes work at once, without a restart.
            store.ping_write("r1").await.unwrap();
            let (_guard, tx) = store.append_tx().await.unwrap();
            tx.commit().await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
