//! [`LeaseStore`] on SQL: named leases (cars, relocks, token refreshes) and giving them all up.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl LeaseStore for SqlStore {
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
                .bind(to_ms(self.now())),
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
}
