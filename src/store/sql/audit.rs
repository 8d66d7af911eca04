//! [`AuditStore`] on SQL: the hash-chained audit log (appended under the append lock).

use async_trait::async_trait;

use super::rows::*;
use super::*;

/// Appends an audit row inside the caller's (serialized) transaction.
pub(super) async fn insert_audit(
    conn: &mut Conn,
    e: &AuditEntry,
) -> Result<AuditRecord, StoreError> {
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

#[async_trait]
impl AuditStore for SqlStore {
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
