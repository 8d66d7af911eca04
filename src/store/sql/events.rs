//! [`EventStore`] on SQL: the ordered event log (appended under the append lock), webhooks and deliveries.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::rows::*;
use super::*;

/// Appends an event and its deliveries inside the caller's (serialized) transaction: the
/// event's global `seq` (returned; deliveries refer to it) and its number among its
/// tenant's events (`tenant_seq`, the only one a tenant sees) are both taken under the
/// append lock.
pub(super) async fn insert_event(
    conn: &mut Conn,
    e: &EventRecord,
    webhooks: &[String],
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO events (id, type, vehicle_id, grant_id, command_id, data, created_at, tenant,
            tenant_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
            (SELECT COALESCE(MAX(tenant_seq), 0) + 1 FROM events WHERE tenant = $8))
         RETURNING seq",
    )
    .bind(&e.id)
    .bind(e.kind.as_str())
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

#[async_trait]
impl EventStore for SqlStore {
    async fn append_event(&self, e: &EventRecord, webhooks: &[String]) -> Result<i64, StoreError> {
        let (_one_writer, mut tx) = self.append_tx().await?;
        let seq = insert_event(&mut tx, e, webhooks).await?;
        tx.commit().await.map_err(db)?;
        Ok(seq)
    }
    async fn events_after(
        &self,
        tenant: &TenantId,
        vehicles: Option<&[String]>,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let Some(vehicles) = vehicles else {
            return self
                .all(
                    sqlx::query(
                        "SELECT * FROM events WHERE tenant = $1 AND tenant_seq > $2
                            ORDER BY tenant_seq LIMIT $3",
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
            "SELECT * FROM events WHERE tenant = $1 AND tenant_seq > $2 AND vehicle_id IN ({})
             ORDER BY tenant_seq LIMIT $3",
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
    async fn vehicle_events_since(
        &self,
        tenant: &TenantId,
        vehicle_id: &VehicleId,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT * FROM events WHERE tenant = $1 AND vehicle_id = $2 AND created_at >= $3
                    ORDER BY tenant_seq LIMIT $4",
            )
            .bind(tenant)
            .bind(vehicle_id)
            .bind(to_ms(since))
            .bind(i64::from(limit)),
            event_from,
        )
        .await
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
    async fn tenant_webhooks(&self, tenant: &TenantId) -> Result<Vec<WebhookRecord>, StoreError> {
        self.all(
            sqlx::query("SELECT * FROM webhooks WHERE tenant = $1 ORDER BY created_at, id")
                .bind(tenant),
            webhook_from,
        )
        .await
    }
    async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
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
            .bind(d.status.as_str())
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
        tenant: &TenantId,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.all(
            sqlx::query(
                "SELECT d.id, d.webhook_id, e.tenant_seq AS event_seq, d.status, d.attempts,
                    d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at
                 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                    JOIN events e ON e.seq = d.event_seq
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
}
