//! [`AccountStore`] on SQL: OEM accounts, their sealed tokens, and pending account links.

use async_trait::async_trait;

use super::rows::*;
use super::*;

#[async_trait]
impl AccountStore for SqlStore {
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
            .bind(to_ms(self.now())),
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
    async fn tenant_accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM accounts WHERE owner = $1 ORDER BY id").bind(tenant),
            account_from,
        )
        .await
    }
    async fn tenant_account(
        &self,
        tenant: &TenantId,
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
        .bind(to_ms(self.now()))
        .bind(account_id)).await?;
        Ok(())
    }
    async fn account_pin(&self, account_id: &str) -> Result<Option<PinRecord>, StoreError> {
        self.one(
            sqlx::query("SELECT pin, rejected_at FROM account_pins WHERE account_id = $1")
                .bind(account_id),
            |row| {
                Ok(PinRecord {
                    sealed: get(row, "pin")?,
                    rejected_at: get::<Option<i64>>(row, "rejected_at")?
                        .map(from_ms)
                        .transpose()?,
                })
            },
        )
        .await
    }
    async fn set_account_pin(&self, account_id: &str, sealed: &str) -> Result<(), StoreError> {
        self.exec(
            sqlx::query(
                "INSERT INTO account_pins (account_id, pin, rejected_at, updated_at)
                 VALUES ($1, $2, NULL, $3)
                 ON CONFLICT (account_id) DO UPDATE
                 SET pin = excluded.pin, rejected_at = NULL, updated_at = excluded.updated_at",
            )
            .bind(account_id)
            .bind(sealed)
            .bind(to_ms(self.now())),
        )
        .await?;
        Ok(())
    }
    async fn reseal_account_pin(
        &self,
        account_id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                sqlx::query("UPDATE account_pins SET pin = $1 WHERE account_id = $2 AND pin = $3")
                    .bind(new)
                    .bind(account_id)
                    .bind(old),
            )
            .await?;
        Ok(n == 1)
    }
    async fn reject_account_pin(&self, account_id: &str, sealed: &str) -> Result<bool, StoreError> {
        let t = to_ms(self.now());
        let n = self
            .exec(
                sqlx::query(
                    "UPDATE account_pins SET rejected_at = $1, updated_at = $1
                     WHERE account_id = $2 AND pin = $3 AND rejected_at IS NULL",
                )
                .bind(t)
                .bind(account_id)
                .bind(sealed),
            )
            .await?;
        Ok(n == 1)
    }
    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError> {
        self.exec(
            sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(to_ms(self.now()))
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
        .bind(to_ms(self.now()))
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
        sqlx::query("DELETE FROM account_pins WHERE account_id = $1")
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
        self.exec(
            sqlx::query("DELETE FROM link_states WHERE expires_at < $1").bind(to_ms(self.now())),
        )
        .await?;
        self.exec(sqlx::query(
            "INSERT INTO link_states (state_hash, oem, caller, verifier, redirect_uri, created_at,
                expires_at, pin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&l.state_hash)
        .bind(&l.oem)
        .bind(&l.caller)
        .bind(&l.verifier)
        .bind(&l.redirect_uri)
        .bind(to_ms(l.created_at))
        .bind(to_ms(l.expires_at))
        .bind(&l.pin)).await?;
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
                pin: get(&r, "pin")?,
                created_at: from_ms(get(&r, "created_at")?)?,
                expires_at: from_ms(get(&r, "expires_at")?)?,
            })
        })
        .transpose()
    }
}
