//! The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, so a
//! command recorded before the OEM call is on disk before the car can act on it.
//! Migrations are compiled into the binary and run at start-up.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use keyway_adapter::Command;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr};
use time::OffsetDateTime;

use super::*;

const MIGRATIONS: &[(i64, &str, &str)] = &[
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
];

/// SQLite-backed [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::connect(options).await
    }

    /// A private in-memory database (tests).
    pub async fn memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(db)?;
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let in_memory = options.get_filename() == Path::new(":memory:");
        let pool = SqlitePoolOptions::new()
            // An in-memory database lives in its one connection.
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db)?;
        let migrations = MIGRATIONS
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
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating: {e}")))?;
        Ok(Self { pool })
    }
}

impl SqliteStore {
    /// Imports many vehicles in one transaction (benchmarks, migrations); existing
    /// (oem, oem_id) pairs are skipped.
    pub async fn import_vehicles(&self, vehicles: &[VehicleRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let created = to_ms(now());
        for v in vehicles {
            sqlx::query(
                "INSERT INTO vehicles (id, account_id, oem, oem_id, vin, display_name, model,
                    year, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

impl SqliteStore {
    /// At most one row, mapped.
    async fn one<T>(
        &self,
        q: Query<'_>,
        map: fn(&SqliteRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        q.fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(map)
            .transpose()
    }

    /// Every row, mapped.
    async fn all<T>(
        &self,
        q: Query<'_>,
        map: fn(&SqliteRow) -> Result<T, StoreError>,
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

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn account_from(row: &SqliteRow) -> Result<AccountRecord, StoreError> {
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

fn vehicle_from(row: &SqliteRow) -> Result<VehicleRecord, StoreError> {
    let last_locked: Option<bool> = get(row, "last_locked")?;
    let last_locked_at = opt_time(get(row, "last_locked_at")?)?;
    Ok(VehicleRecord {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        oem: get(row, "oem")?,
        oem_id: get(row, "oem_id")?,
        vin: get(row, "vin")?,
        display_name: get(row, "display_name")?,
        model: get(row, "model")?,
        year: get::<Option<i64>>(row, "year")?.and_then(|y| u16::try_from(y).ok()),
        last_locked: last_locked.zip(last_locked_at),
    })
}

fn command_from(row: &SqliteRow) -> Result<CommandRecord, StoreError> {
    let action: String = get(row, "action")?;
    Ok(CommandRecord {
        id: get(row, "id")?,
        vehicle_id: get(row, "vehicle_id")?,
        action: Command::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("command action {action:?}")))?,
        status: CommandStatus::parse(&get::<String>(row, "status")?)?,
        caller: get(row, "caller")?,
        reference: get(row, "reference")?,
        request_id: get(row, "request_id")?,
        sent_at: opt_time(get(row, "sent_at")?)?,
        oem_handle: get(row, "oem_handle")?,
        error_code: get(row, "error_code")?,
        error_detail: get(row, "error_detail")?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn put_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (id, oem, owner, status, access_token, access_expires_at,
                access_refresh_at, refresh_token, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .bind(to_ms(now()))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM accounts WHERE id = ?").bind(id),
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

    async fn save_tokens(&self, account_id: &str, t: &StoredTokens) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET access_token = ?, access_expires_at = ?, access_refresh_at = ?,
                refresh_token = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&t.access_token)
        .bind(opt_ms(t.access_expires_at))
        .bind(opt_ms(t.access_refresh_at))
        .bind(&t.refresh_token)
        .bind(to_ms(now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(to_ms(now()))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn replace_tokens(
        &self,
        account_id: &str,
        expected: &StoredTokens,
        t: &StoredTokens,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE accounts SET access_token = ?, access_expires_at = ?, access_refresh_at = ?,
                refresh_token = ?, updated_at = ?
             WHERE id = ? AND access_token IS ? AND refresh_token IS ?",
        )
        .bind(&t.access_token)
        .bind(opt_ms(t.access_expires_at))
        .bind(opt_ms(t.access_refresh_at))
        .bind(&t.refresh_token)
        .bind(to_ms(now()))
        .bind(account_id)
        .bind(&expected.access_token)
        .bind(&expected.refresh_token)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn delete_account(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM vehicles WHERE account_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let deleted = sqlx::query("DELETE FROM accounts WHERE id = ?")
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
        sqlx::query("SELECT id FROM vehicles WHERE account_id = ? ORDER BY id")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|r| get(r, "id"))
            .collect()
    }

    async fn put_link_state(&self, l: &LinkState) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM link_states WHERE expires_at < ?")
            .bind(to_ms(now()))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO link_states (state_hash, oem, caller, verifier, redirect_uri, created_at,
                expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&l.state_hash)
        .bind(&l.oem)
        .bind(&l.caller)
        .bind(&l.verifier)
        .bind(&l.redirect_uri)
        .bind(to_ms(l.created_at))
        .bind(to_ms(l.expires_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn take_link_state(&self, state_hash: &str) -> Result<Option<LinkState>, StoreError> {
        let row = sqlx::query("DELETE FROM link_states WHERE state_hash = ? RETURNING *")
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

    async fn upsert_vehicle(&self, v: &VehicleRecord) -> Result<VehicleRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO vehicles (id, account_id, oem, oem_id, vin, display_name, model, year,
                created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (oem, oem_id) DO UPDATE SET account_id = excluded.account_id,
                vin = excluded.vin, display_name = excluded.display_name,
                model = excluded.model, year = excluded.year
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
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        vehicle_from(&row)
    }

    async fn vehicle(&self, id: &str) -> Result<Option<VehicleRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM vehicles WHERE id = ?").bind(id),
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
            sqlx::query("SELECT * FROM vehicles WHERE oem = ? AND oem_id = ?")
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
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM vehicles WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit)),
            vehicle_from,
        )
        .await
    }

    async fn set_last_locked(
        &self,
        vehicle_id: &str,
        locked: bool,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE vehicles SET last_locked = ?, last_locked_at = ? WHERE id = ?")
            .bind(locked)
            .bind(to_ms(at))
            .bind(vehicle_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn create_command(
        &self,
        c: &CommandRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if let Some(claim) = claim {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (caller, key, fingerprint, command_id, created_at)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (caller, key) DO NOTHING",
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
                     WHERE k.caller = ? AND k.key = ?",
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
                completed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Created::New)
    }

    async fn command(&self, id: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT * FROM commands WHERE id = ?").bind(id),
            command_from,
        )
        .await
    }

    async fn command_for_key(&self, caller: &str, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT command_id FROM idempotency_keys WHERE caller = ? AND key = ?")
            .bind(caller)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|r| get(&r, "command_id"))
            .transpose()
    }

    async fn update_command(&self, c: &CommandRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE commands SET status = ?, sent_at = ?, oem_handle = ?, error_code = ?,
                error_detail = ?, updated_at = ?, completed_at = ? WHERE id = ?",
        )
        .bind(c.status.as_str())
        .bind(opt_ms(c.sent_at))
        .bind(&c.oem_handle)
        .bind(&c.error_code)
        .bind(&c.error_detail)
        .bind(to_ms(c.updated_at))
        .bind(opt_ms(c.completed_at))
        .bind(&c.id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn pending_commands(&self) -> Result<Vec<CommandRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM commands WHERE status = 'pending' ORDER BY created_at"),
            command_from,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(id: &str) -> CommandRecord {
        let t = now();
        CommandRecord {
            id: id.into(),
            vehicle_id: "veh_1".into(),
            action: Command::Lock,
            status: CommandStatus::Pending,
            caller: "svc".into(),
            reference: Some("order-1".into()),
            request_id: None,
            sent_at: None,
            oem_handle: None,
            error_code: None,
            error_detail: None,
            created_at: t,
            updated_at: t,
            completed_at: None,
        }
    }

    #[tokio::test]
    async fn idempotency_claim_returns_the_first_command() {
        let s = SqliteStore::memory().await.unwrap();
        let claim = IdempotencyClaim {
            caller: "svc".into(),
            key: "k1".into(),
            fingerprint: "f1".into(),
        };
        assert!(matches!(
            s.create_command(&command("cmd_a"), Some(&claim))
                .await
                .unwrap(),
            Created::New
        ));
        match s
            .create_command(&command("cmd_b"), Some(&claim))
            .await
            .unwrap()
        {
            Created::Existing {
                command,
                fingerprint,
            } => {
                assert_eq!(command.id, "cmd_a");
                assert_eq!(fingerprint, "f1");
            }
            Created::New => panic!("key claimed twice"),
        }
        assert!(s.command("cmd_b").await.unwrap().is_none());
        // Another caller's identical key is its own.
        let other = IdempotencyClaim {
            caller: "other".into(),
            ..claim
        };
        assert!(matches!(
            s.create_command(&command("cmd_c"), Some(&other))
                .await
                .unwrap(),
            Created::New
        ));
    }

    #[tokio::test]
    async fn command_round_trip_and_pending_list() {
        let s = SqliteStore::memory().await.unwrap();
        let mut c = command("cmd_x");
        s.create_command(&c, None).await.unwrap();
        assert_eq!(s.command("cmd_x").await.unwrap().as_ref(), Some(&c));
        assert_eq!(s.pending_commands().await.unwrap().len(), 1);
        c.status = CommandStatus::Succeeded;
        c.completed_at = Some(now());
        s.update_command(&c).await.unwrap();
        assert_eq!(s.command("cmd_x").await.unwrap().as_ref(), Some(&c));
        assert!(s.pending_commands().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_link_state_is_taken_once() {
        let s = SqliteStore::memory().await.unwrap();
        let t = now();
        let l = LinkState {
            state_hash: "h".into(),
            oem: "tesla".into(),
            caller: "svc".into(),
            verifier: "kw1.k1.x".into(),
            redirect_uri: "http://127.0.0.1:1/v1/oauth/callback".into(),
            created_at: t,
            expires_at: t + time::Duration::minutes(10),
        };
        s.put_link_state(&l).await.unwrap();
        assert_eq!(s.take_link_state("h").await.unwrap(), Some(l));
        assert_eq!(s.take_link_state("h").await.unwrap(), None);
    }

    #[tokio::test]
    async fn rediscovered_vehicle_keeps_its_id() {
        let s = SqliteStore::memory().await.unwrap();
        let v = VehicleRecord {
            id: "veh_first".into(),
            account_id: "acct_1".into(),
            oem: "tesla".into(),
            oem_id: "VIN1".into(),
            vin: Some("VIN1".into()),
            display_name: Some("A".into()),
            model: None,
            year: Some(2020),
            last_locked: None,
        };
        assert_eq!(s.upsert_vehicle(&v).await.unwrap().id, "veh_first");
        let again = VehicleRecord {
            id: "veh_second".into(),
            display_name: Some("B".into()),
            ..v
        };
        let stored = s.upsert_vehicle(&again).await.unwrap();
        assert_eq!(stored.id, "veh_first");
        assert_eq!(stored.display_name.as_deref(), Some("B"));
        assert_eq!(s.vehicles().await.unwrap().len(), 1);
    }
}
