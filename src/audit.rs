//! The audit log: every grant and command decision — who, which car, when, what was
//! decided and how it ended — appended to one hash-chained table. Each row carries the
//! previous row's hash and its own hash over the previous hash and all its fields, so
//! editing a row breaks its hash, and deleting or reordering rows breaks the chain;
//! [`verify`] (and `keyway audit verify`) walks the chain and names the first bad row.
//! Deleting rows at the very end cannot be seen from the chain alone: operators keep
//! the head hash [`verify`] prints somewhere else to detect that.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::store::{AUDIT_GENESIS, AuditEntry, AuditStore, StoreError, audit_hash};

/// Appends audit entries.
pub struct Audit {
    store: Arc<dyn AuditStore>,
    clock: Clock,
}

/// A decision to record.
#[derive(Debug, Default)]
pub struct Decision<'a> {
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// The verdict or outcome.
    pub decision: &'a str,
    /// The vehicle.
    pub vehicle_id: Option<&'a str>,
    /// The grant.
    pub grant_id: Option<&'a str>,
    /// The command.
    pub command_id: Option<&'a str>,
    /// Why.
    pub detail: Option<&'a str>,
}

impl Audit {
    /// An audit log in `store`.
    pub fn new(store: Arc<dyn AuditStore>, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// Appends one entry. An unlock is only carried out after its decision is
    /// recorded, so callers treat an error here as a refusal.
    pub async fn record(&self, d: Decision<'_>) -> Result<(), StoreError> {
        let entry = entry(&d, self.clock.now());
        self.store
            .append_audit(&entry)
            .await
            .inspect_err(|e| {
                tracing::error!(error = %e, action = d.action, "audit entry could not be written");
            })
            .map(|_| ())
    }

    /// Appends one entry about work already done; a failure is logged, not returned.
    pub async fn note(&self, d: Decision<'_>) {
        let _ = self.record(d).await;
    }
}

/// The entry for a decision, stamped `at` (for stores that append it together with
/// the change it records).
pub fn entry(d: &Decision<'_>, at: OffsetDateTime) -> AuditEntry {
    AuditEntry {
        at,
        actor: d.actor.to_string(),
        action: d.action.to_string(),
        decision: d.decision.to_string(),
        vehicle_id: d.vehicle_id.map(Into::into),
        grant_id: d.grant_id.map(str::to_string),
        command_id: d.command_id.map(Into::into),
        detail: d.detail.map(str::to_string),
    }
}

/// What [`verify`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Rows checked.
    pub rows: usize,
    /// The last row's hash (keep it elsewhere to detect deleted tail rows).
    pub head: String,
}

/// Why the chain does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Broken {
    /// A row's content does not match its hash (edited).
    #[error("audit row {seq} was changed: its hash does not match its content")]
    Edited {
        /// The row.
        seq: i64,
    },
    /// A row does not follow the one before it (deleted, inserted or reordered).
    #[error(
        "audit row {seq} does not follow row {previous}: rows were deleted, inserted or reordered"
    )]
    Unchained {
        /// The row.
        seq: i64,
        /// The row before it (0: none).
        previous: i64,
    },
    /// The log could not be read.
    #[error("reading the audit log: {0}")]
    Read(String),
}

/// Walks the whole chain.
pub async fn verify(store: &dyn AuditStore) -> Result<Verified, Broken> {
    let rows = store
        .audit_log()
        .await
        .map_err(|e| Broken::Read(e.to_string()))?;
    let mut prev_hash = AUDIT_GENESIS.to_string();
    let mut prev_seq = 0;
    for r in &rows {
        if r.prev_hash != prev_hash || r.seq != prev_seq + 1 {
            return Err(Broken::Unchained {
                seq: r.seq,
                previous: prev_seq,
            });
        }
        if audit_hash(&r.prev_hash, r.seq, &r.entry) != r.hash {
            return Err(Broken::Edited { seq: r.seq });
        }
        prev_hash = r.hash.clone();
        prev_seq = r.seq;
    }
    Ok(Verified {
        rows: rows.len(),
        head: prev_hash,
    })
}
