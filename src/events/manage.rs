//! A caller's webhook subscriptions, as the service rules them: which ones a caller
//! manages (its tenant's; a token restricted to some vehicles only those limited to its
//! vehicles), listing them, ending one (every replica's cache of subscriptions is told),
//! and one's delivery log. Anything the caller may not manage is `not_found`, exactly as
//! an id that never existed.

use crate::auth::Caller;
use crate::error::{Classify, Code, Codes};
use crate::store::{DeliveryRecord, StoreError, WebhookRecord};

use super::webhooks::Webhooks;

/// Why a subscription could not be managed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ManageError {
    /// None of the caller's (`not_found`).
    #[error("no webhook {0}")]
    NotFound(String),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Codes for ManageError {
    fn codes() -> Vec<Code> {
        vec![Code::NotFound, Code::Internal]
    }
}

impl Classify for ManageError {
    fn code(&self) -> Code {
        match self {
            ManageError::NotFound(_) => Code::NotFound,
            ManageError::Store(_) => Code::Internal,
        }
    }
}

/// Whether `caller` manages `w`, one of its tenant's subscriptions.
fn manages(caller: &Caller, w: &WebhookRecord) -> bool {
    match (&caller.vehicles, &w.vehicles) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(theirs)) => theirs.iter().all(|v| caller.may_touch(v)),
    }
}

impl Webhooks {
    /// The subscriptions the caller manages.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<WebhookRecord>, ManageError> {
        let mut all = self.store.tenant_webhooks(&caller.tenant).await?;
        all.retain(|w| manages(caller, w));
        Ok(all)
    }

    /// One subscription the caller manages, or `not_found`.
    async fn managed(&self, caller: &Caller, id: &str) -> Result<WebhookRecord, ManageError> {
        self.list(caller)
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| ManageError::NotFound(id.to_string()))
    }

    /// Ends a subscription (what it still had pending is dropped).
    pub async fn unsubscribe(&self, caller: &Caller, id: &str) -> Result<(), ManageError> {
        let w = self.managed(caller, id).await?;
        if !self.store.delete_webhook(&caller.tenant, &w.id).await? {
            return Err(ManageError::NotFound(id.to_string()));
        }
        // This replica stops delivering to it at once (others within a second).
        self.events.hooks_changed();
        Ok(())
    }

    /// The newest `n` deliveries of one subscription, newest first.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: &str,
        n: u32,
    ) -> Result<Vec<DeliveryRecord>, ManageError> {
        let w = self.managed(caller, id).await?;
        Ok(self.store.deliveries(&caller.tenant, &w.id, n).await?)
    }
}
