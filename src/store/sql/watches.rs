//! [`WatchStore`] on SQL: watched cars, and each car's last emitted state with the
//! version that makes a change one event across replicas.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::events::insert_event;
use super::rows::*;
use super::*;

fn watch_from(row: &AnyRow) -> Result<WatchRecord, StoreError> {
    Ok(WatchRecord {
        tenant: get(row, "tenant")?,
        vehicle_id: get(row, "vehicle_id")?,
        until: from_ms(get(row, "until_at")?)?,
        created_by: get(row, "created_by")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

#[async_trait]
impl WatchStore for SqlStore {
    async fn put_watch(&self, w: &WatchRecord) -> Result<WatchRecord, StoreError> {
        self.one(
            sqlx::query(
                "INSERT INTO watches (tenant, vehicle_id, until_at, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant, vehicle_id) DO UPDATE SET until_at = excluded.until_at
                 RETURNING *",
            )
            .bind(&w.tenant)
            .bind(&w.vehicle_id)
            .bind(to_ms(w.until))
            .bind(&w.created_by)
            .bind(to_ms(w.created_at)),
            watch_from,
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("the watch was not returned".into()))
    }
    async fn delete_watch(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                sqlx::query("DELETE FROM watches WHERE tenant = $1 AND vehicle_id = $2")
                    .bind(tenant)
                    .bind(vehicle_id),
            )
            .await?;
        Ok(n > 0)
    }
    async fn tenant_watches(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM watches WHERE tenant = $1 AND until_at > $2 ORDER BY vehicle_id",
            )
            .bind(tenant)
            .bind(to_ms(at)),
            watch_from,
        )
        .await
    }
    async fn active_watches(&self, at: OffsetDateTime) -> Result<Vec<WatchRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM watches WHERE until_at > $1 ORDER BY vehicle_id, tenant")
                .bind(to_ms(at)),
            watch_from,
        )
        .await
    }
    async fn vehicle_state(
        &self,
        vehicle_id: &VehicleId,
    ) -> Result<Option<(i64, String)>, StoreError> {
        fn state_from(row: &AnyRow) -> Result<(i64, String), StoreError> {
            Ok((get(row, "version")?, get(row, "state")?))
        }
        self.one(
            sqlx::query("SELECT version, state FROM vehicle_states WHERE vehicle_id = $1")
                .bind(vehicle_id),
            state_from,
        )
        .await
    }
    async fn change_vehicle_state(
        &self,
        vehicle_id: &VehicleId,
        version: Option<i64>,
        state: &str,
        event: Option<(&EventRecord, &[String])>,
    ) -> Result<Option<i64>, StoreError> {
        let (_one_writer, mut tx) = self.append_tx().await?;
        let changed = match version {
            None => sqlx::query(
                "INSERT INTO vehicle_states (vehicle_id, version, state) VALUES ($1, 1, $2)
                 ON CONFLICT (vehicle_id) DO NOTHING",
            )
            .bind(vehicle_id)
            .bind(state),
            Some(v) => sqlx::query(
                "UPDATE vehicle_states SET version = version + 1, state = $2
                 WHERE vehicle_id = $1 AND version = $3",
            )
            .bind(vehicle_id)
            .bind(state)
            .bind(v),
        }
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await.map_err(db)?;
            return Ok(None);
        }
        let seq = match event {
            Some((e, hooks)) => insert_event(&mut tx, e, hooks).await?,
            None => 0,
        };
        tx.commit().await.map_err(db)?;
        Ok(Some(seq))
    }
}
