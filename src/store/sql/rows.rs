//! Reading rows back into records: column getters and one mapper per record type,
//! each refusing a value it cannot read (`StoreError::Corrupt`) instead of guessing.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::super::*;
use keyway_adapter::Command;

pub(super) fn opt_ms(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(to_ms)
}

pub(super) fn opt_time(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_ms).transpose()
}

pub(super) fn get<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(super) fn account_from(row: &AnyRow) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        id: get(row, "id")?,
        oem: get(row, "oem")?,
        owner: get(row, "owner")?,
        status: get(row, "status")?,
        tokens: StoredTokens {
            access_token: get(row, "access_token")?,
            access_expires_at: opt_time(get(row, "access_expires_at")?)?,
            access_refresh_at: opt_time(get(row, "access_refresh_at")?)?,
            refresh_token: get(row, "refresh_token")?,
        },
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

pub(super) fn vehicle_from(row: &AnyRow) -> Result<VehicleRecord, StoreError> {
    let last_locked = get::<Option<i64>>(row, "last_locked")?.map(|l| l != 0);
    let last_locked_at = opt_time(get(row, "last_locked_at")?)?;
    Ok(VehicleRecord {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        tenant: get(row, "tenant")?,
        oem: get(row, "oem")?,
        oem_id: get(row, "oem_id")?,
        vin: get(row, "vin")?,
        display_name: get(row, "display_name")?,
        model: get(row, "model")?,
        year: get::<Option<i64>>(row, "year")?.and_then(|y| u16::try_from(y).ok()),
        last_locked: last_locked.zip(last_locked_at),
        capabilities: capabilities(get(row, "capabilities")?),
    })
}

/// A car's capabilities as stored: a JSON array of names, or NULL.
pub(super) fn stored_capabilities(v: &VehicleRecord) -> Option<String> {
    v.capabilities
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
}

/// A car's stored capabilities (a JSON array of names); one this version cannot read
/// counts as none said (the adapter's declaration holds).
fn capabilities(stored: Option<String>) -> Option<Vec<keyway_adapter::Capability>> {
    let stored = stored?;
    serde_json::from_str(&stored)
        .inspect_err(|e| tracing::warn!(error = %e, "a car's stored capabilities do not read"))
        .ok()
}

/// A stored error code; one this version no longer knows (renamed since) reads as
/// `internal` rather than making the command unreadable.
fn error_code(s: &str) -> crate::error::Code {
    crate::error::Code::parse(s).unwrap_or_else(|| {
        tracing::warn!(
            code = s,
            "a stored command has an error code this version does not know"
        );
        crate::error::Code::Internal
    })
}

/// A command's OEM handle as stored (NULL when none).
pub(super) fn handle_json(c: &CommandRecord) -> Result<Option<String>, StoreError> {
    c.oem_handle
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("oem_handle: {e}")))
}

/// A command's problem members as stored (NULL when none).
pub(super) fn members_json(m: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    (!m.is_empty()).then(|| serde_json::Value::Object(m.clone()).to_string())
}

pub(super) fn command_from(row: &AnyRow) -> Result<CommandRecord, StoreError> {
    let action: String = get(row, "action")?;
    Ok(CommandRecord {
        id: get(row, "id")?,
        vehicle_id: get(row, "vehicle_id")?,
        action: Command::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("command action {action:?}")))?,
        status: get(row, "status")?,
        caller: get(row, "caller")?,
        tenant: get(row, "tenant")?,
        reserved: get::<i64>(row, "reserved")? != 0,
        reference: get(row, "reference")?,
        request_id: get(row, "request_id")?,
        sent_at: opt_time(get(row, "sent_at")?)?,
        oem_handle: match get::<Option<String>>(row, "oem_handle")? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("oem_handle: {e}")))?,
            ),
            None => None,
        },
        error_code: get::<Option<String>>(row, "error_code")?.map(|s| error_code(&s)),
        error_detail: get(row, "error_detail")?,
        error_members: match get::<Option<String>>(row, "error_members")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("error_members: {e}")))?,
            None => serde_json::Map::new(),
        },
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
        observed: get::<Option<i64>>(row, "observed_locked")?
            .map(|l| l != 0)
            .zip(opt_time(get(row, "observed_at")?)?),
        retry_at: opt_time(get(row, "retry_at")?)?,
        acknowledged: get::<Option<String>>(row, "acknowledged_by")?
            .zip(opt_time(get(row, "acknowledged_at")?)?),
    })
}

pub(super) fn grant_from(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    let lat: Option<f64> = get(row, "geofence_lat")?;
    let lon: Option<f64> = get(row, "geofence_lon")?;
    let radius: Option<f64> = get(row, "geofence_radius_m")?;
    let count = |col: &str| -> Result<u32, StoreError> {
        u32::try_from(get::<i64>(row, col)?).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    };
    Ok(GrantRecord {
        id: get(row, "id")?,
        vehicle_id: get(row, "vehicle_id")?,
        grantee: get(row, "grantee")?,
        created_by: get(row, "created_by")?,
        tenant: get(row, "tenant")?,
        purpose: get(row, "purpose")?,
        not_before: from_ms(get(row, "not_before")?)?,
        not_after: from_ms(get(row, "not_after")?)?,
        max_unlocks: count("max_unlocks")?,
        unlocks_used: count("unlocks_used")?,
        geofence: match (lat, lon, radius) {
            (Some(latitude), Some(longitude), Some(radius_m)) => Some(Geofence {
                latitude,
                longitude,
                radius_m,
            }),
            _ => None,
        },
        relock_after_s: count("relock_after_s")?,
        revoked_at: opt_time(get(row, "revoked_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
        relock_state: get(row, "relock_state")?,
        relock_due_at: opt_time(get(row, "relock_due_at")?)?,
        relock_attempts: count("relock_attempts")?,
        relocked_at: opt_time(get(row, "relocked_at")?)?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
    })
}

pub(super) fn event_from(row: &AnyRow) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        // The tenant's own number (the global one never leaves the store).
        seq: get::<Option<i64>>(row, "tenant_seq")?.map_or_else(|| get(row, "seq"), Ok)?,
        id: get(row, "id")?,
        kind: get(row, "type")?,
        tenant: get(row, "tenant")?,
        vehicle_id: get(row, "vehicle_id")?,
        grant_id: get(row, "grant_id")?,
        command_id: get(row, "command_id")?,
        data: get(row, "data")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

pub(super) fn webhook_from(row: &AnyRow) -> Result<WebhookRecord, StoreError> {
    Ok(WebhookRecord {
        id: get(row, "id")?,
        url: get(row, "url")?,
        secret: get(row, "secret")?,
        types: get(row, "types")?,
        created_by: get(row, "created_by")?,
        tenant: get(row, "tenant")?,
        vehicles: get::<Option<String>>(row, "vehicles")?
            .map(|v| v.split(',').map(str::to_string).collect()),
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

pub(super) fn delivery_from(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: get(row, "id")?,
        webhook_id: get(row, "webhook_id")?,
        event_seq: get(row, "event_seq")?,
        status: get(row, "status")?,
        attempts: get::<i64>(row, "attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: from_ms(get(row, "next_attempt_at")?)?,
        last_status: get::<Option<i64>>(row, "last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: get(row, "last_error")?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
    })
}

pub(super) fn audit_from(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: get(row, "seq")?,
        entry: AuditEntry {
            at: from_ms(get(row, "at")?)?,
            actor: get(row, "actor")?,
            action: get(row, "action")?,
            decision: get(row, "decision")?,
            vehicle_id: get(row, "vehicle_id")?,
            grant_id: get(row, "grant_id")?,
            command_id: get(row, "command_id")?,
            detail: get(row, "detail")?,
        },
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}
