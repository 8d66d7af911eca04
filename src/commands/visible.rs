//! Which commands a caller may see: its own (made under its `sub` in its tenant, or a
//! grant's unlock it made as a grantee), or any of its tenant's with `admin` — and only
//! on vehicles its token may touch. Anything else is `command_not_found`, exactly as an
//! id that never existed.

use crate::auth::{Caller, Scope};
use crate::error::{Classify, Code, Codes};
use crate::store::{CommandId, CommandRecord, StoreError};

use super::Commands;

/// Why a command could not be read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ReadError {
    /// None the caller may see (`command_not_found`).
    #[error("no command {0}")]
    NotFound(String),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Codes for ReadError {
    fn codes() -> Vec<Code> {
        vec![Code::CommandNotFound, Code::Internal]
    }
}

impl Classify for ReadError {
    fn code(&self) -> Code {
        match self {
            ReadError::NotFound(_) => Code::CommandNotFound,
            ReadError::Store(_) => Code::Internal,
        }
    }
}

impl Commands {
    /// Command `id`, if the caller may see it.
    pub async fn visible(
        &self,
        caller: &Caller,
        id: &CommandId,
    ) -> Result<CommandRecord, ReadError> {
        let not_found = || ReadError::NotFound(id.to_string());
        let c = self
            .store
            .visible_command(&caller.tenant, &caller.sub, id)
            .await?
            .ok_or_else(not_found)?;
        let own = c.caller == caller.sub && (c.tenant == caller.tenant || c.reserved);
        let tenant_admin = c.tenant == caller.tenant && caller.has(Scope::Admin);
        if (own || tenant_admin) && caller.may_touch(&c.vehicle_id) {
            Ok(c)
        } else {
            Err(not_found())
        }
    }
}
