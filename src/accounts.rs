//! OEM accounts: recording a linked account and discovering its vehicles. Discovery
//! keeps keyway's vehicle ids stable: a car the OEM lists again keeps the id callers
//! already use.

use std::sync::Arc;

use keyway_adapter::Secret;

use crate::error::ApiError;
use crate::ids;
use crate::registry::Registry;
use crate::store::{AccountRecord, AccountStatus, Store, TokenSet, VehicleRecord, now};
use crate::tokens::Tokens;

/// Records a newly linked account holding `refresh_token` (and the access token the
/// exchange returned, if any), then discovers its vehicles.
pub async fn link(
    store: &Arc<dyn Store>,
    registry: &Registry,
    tokens: &Tokens,
    oem: &str,
    owner: &str,
    token_set: TokenSet,
) -> Result<(AccountRecord, Vec<VehicleRecord>), ApiError> {
    let account = AccountRecord {
        id: ids::new("acct"),
        oem: oem.to_string(),
        owner: owner.to_string(),
        status: AccountStatus::Active,
        tokens: token_set,
        created_at: now(),
    };
    store.put_account(&account).await?;
    let vehicles = discover(store, registry, tokens, &account).await?;
    Ok((account, vehicles))
}

/// A token set holding only a refresh token (the access token comes from a refresh).
pub fn from_refresh_token(refresh_token: Secret) -> TokenSet {
    TokenSet {
        access_token: None,
        access_expires_at: None,
        refresh_token: Some(refresh_token),
    }
}

/// Lists the account's vehicles at the OEM and records them.
pub async fn discover(
    store: &Arc<dyn Store>,
    registry: &Registry,
    tokens: &Tokens,
    account: &AccountRecord,
) -> Result<Vec<VehicleRecord>, ApiError> {
    let adapter = registry
        .get(&account.oem)
        .map(|o| o.adapter.clone())
        .ok_or_else(|| ApiError::invalid(format!("the OEM {} is not enabled", account.oem)))?;
    let listed = tokens
        .call(&account.id, &account.oem, |cx| {
            let adapter = adapter.clone();
            async move { adapter.vehicles(&cx).await }
        })
        .await
        .map_err(|e| e.into_api(&account.oem))?;
    let mut stored = Vec::with_capacity(listed.len());
    for v in listed {
        let record = VehicleRecord {
            id: ids::new("veh"),
            account_id: account.id.clone(),
            oem: account.oem.clone(),
            oem_id: v.oem_id,
            vin: v.vin,
            display_name: v.display_name,
            model: v.model,
            year: v.year,
            last_locked: None,
        };
        stored.push(store.upsert_vehicle(&record).await?);
    }
    tracing::info!(account = %account.id, oem = %account.oem, vehicles = stored.len(), "vehicles discovered");
    Ok(stored)
}
