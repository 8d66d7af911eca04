//! [`VehicleStore`] on SQL: vehicle records (upserts keep ids stable across relinks) and pages of them.

use async_trait::async_trait;

use super::rows::*;
use super::*;

#[async_trait]
impl VehicleStore for SqlStore {
    async fn upsert_vehicle(&self, v: &VehicleRecord) -> Result<Option<VehicleRecord>, StoreError> {
        // A car another tenant linked is not moved: no row is updated or returned.
        let row = sqlx::query(
            "INSERT INTO vehicles (id, account_id, oem, oem_id, vin, display_name, model, year,
                created_at, tenant, capabilities)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (oem, oem_id) DO UPDATE SET account_id = excluded.account_id,
                vin = excluded.vin, display_name = excluded.display_name,
                model = excluded.model, year = excluded.year,
                capabilities = excluded.capabilities
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
        .bind(to_ms(self.now()))
        .bind(&v.tenant)
        .bind(stored_capabilities(v))
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
        tenant: &TenantId,
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
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VehicleRecord>, StoreError> {
        self.all(
            // A record with an earlier-linked one of the same car (tenant and VIN) is
            // a route of that car, not a car of its own.
            sqlx::query(
                "SELECT * FROM vehicles v WHERE tenant = $1 AND id > $2
                   AND NOT EXISTS (SELECT 1 FROM vehicles o
                     WHERE o.tenant = v.tenant AND o.vin = v.vin
                       AND (o.created_at < v.created_at
                         OR (o.created_at = v.created_at AND o.id < v.id)))
                 ORDER BY id LIMIT $3",
            )
            .bind(tenant)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit)),
            vehicle_from,
        )
        .await
    }
    async fn set_capabilities(
        &self,
        id: &str,
        capabilities: Option<&[keyway_adapter::Capability]>,
    ) -> Result<(), StoreError> {
        let stored = capabilities.map(|c| serde_json::to_string(c).unwrap_or_default());
        sqlx::query("UPDATE vehicles SET capabilities = $2 WHERE id = $1")
            .bind(id)
            .bind(stored)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
    async fn routes(&self, tenant: &TenantId, vin: &str) -> Result<Vec<VehicleRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM vehicles WHERE tenant = $1 AND vin = $2 ORDER BY created_at, id",
            )
            .bind(tenant)
            .bind(vin),
            vehicle_from,
        )
        .await
    }
}
