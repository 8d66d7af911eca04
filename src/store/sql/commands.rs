//! [`CommandStore`] on SQL: commands and their idempotency keys, written before the OEM hears of them; command leases and takeover claims.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::audit::insert_audit;
use super::events::insert_event;
use super::rows::*;
use super::*;

/// Writes a command's progress.
pub(super) async fn write_command(conn: &mut Conn, c: &CommandRecord) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE commands SET status = $1, sent_at = $2, oem_handle = $3, error_code = $4,
            error_detail = $5, updated_at = $6, completed_at = $7, observed_locked = $8,
            observed_at = $9, retry_at = $10, acknowledged_by = $11, acknowledged_at = $12,
            error_members = $14
            WHERE id = $13",
    )
    .bind(c.status.as_str())
    .bind(opt_ms(c.sent_at))
    .bind(handle_json(c)?)
    .bind(c.error_code.map(|code| code.as_str()))
    .bind(&c.error_detail)
    .bind(to_ms(c.updated_at))
    .bind(opt_ms(c.completed_at))
    .bind(c.observed.map(|(l, _)| i64::from(l)))
    .bind(opt_ms(c.observed.map(|(_, at)| at)))
    .bind(opt_ms(c.retry_at))
    .bind(c.acknowledged.as_ref().map(|(by, _)| by.as_str()))
    .bind(opt_ms(c.acknowledged.as_ref().map(|(_, at)| *at)))
    .bind(&c.id)
    .bind(members_json(&c.error_members))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl CommandStore for SqlStore {
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
                completed_at, lease_holder, lease_until, tenant, reserved, error_members)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $19)",
        )
        .bind(&c.id)
        .bind(&c.vehicle_id)
        .bind(c.action.as_str())
        .bind(c.status.as_str())
        .bind(&c.caller)
        .bind(&c.reference)
        .bind(&c.request_id)
        .bind(opt_ms(c.sent_at))
        .bind(handle_json(c)?)
        .bind(c.error_code.map(|code| code.as_str()))
        .bind(&c.error_detail)
        .bind(to_ms(c.created_at))
        .bind(to_ms(c.updated_at))
        .bind(opt_ms(c.completed_at))
        .bind(&lease.holder)
        .bind(to_ms(lease.until))
        .bind(&c.tenant)
        .bind(i64::from(c.reserved))
        .bind(members_json(&c.error_members))
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
        tenant: &TenantId,
        sub: &str,
        id: &CommandId,
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
        vehicle_id: &VehicleId,
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
    async fn unknown_commands(
        &self,
        sent_after: OffsetDateTime,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM commands WHERE status = 'unknown' AND sent_at > $1
                    ORDER BY sent_at",
            )
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
}
