//! [`GrantStore`] on SQL: delivery grants, their unlock allowance and due relocks.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::rows::*;
use super::*;

#[async_trait]
impl GrantStore for SqlStore {
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
        tenant: &TenantId,
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
        tenant: &TenantId,
        vehicle_id: &VehicleId,
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
                .bind(to_ms(self.now()))
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
    async fn grants_in_use(&self, at: OffsetDateTime) -> Result<Vec<GrantRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM grants
                 WHERE (revoked_at IS NULL AND completed_at IS NULL
                        AND not_before <= $1 AND not_after > $1)
                    OR relock_state IN ('due', 'watching')
                 ORDER BY vehicle_id",
            )
            .bind(to_ms(at)),
            grant_from,
        )
        .await
    }
}
