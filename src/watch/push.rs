//! Pushes: what an OEM or aggregator sends keyway unasked (an inbound webhook), taken
//! like a read of the watcher. The OEM's adapter verifies the sender with the operator's
//! `oems.<oem>.webhook_secret` and translates; each pushed car known to keyway (by the
//! OEM's id) has its state merged into the kept one — newest wins, so a replayed or late
//! delivery older than what keyway holds changes nothing, and the same one twice is no
//! news — and each change is emitted once as `vehicle.state_changed`. A pushed car is
//! not read again for `watch.pushed_quiet`: the pushes keep it fresh.

use keyway_adapter::{PushError, Pushed};

use super::Watches;
use super::state::Reading;
use crate::error::{Classify, Code, Codes};
use crate::registry::Oem;
use crate::store::StoreError;
use crate::sync::lock;
use crate::vehicles::Source;

/// Why a push was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PushRefused {
    /// keyway takes no pushes from this OEM (not enabled, no push path, or no webhook
    /// secret configured): `not_found`.
    #[error("keyway takes no pushes from {0}")]
    NotTaken(String),
    /// Not signed by the OEM: `unauthenticated`.
    #[error("{0}")]
    Unverified(String),
    /// Signed, but unreadable: `invalid_request`.
    #[error("{0}")]
    Invalid(String),
    /// The store failed: `internal` (the OEM delivers again).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Codes for PushRefused {
    fn codes() -> Vec<Code> {
        vec![
            Code::NotFound,
            Code::Unauthenticated,
            Code::InvalidRequest,
            Code::Internal,
        ]
    }
}

impl Classify for PushRefused {
    fn code(&self) -> Code {
        match self {
            PushRefused::NotTaken(_) => Code::NotFound,
            PushRefused::Unverified(_) => Code::Unauthenticated,
            PushRefused::Invalid(_) => Code::InvalidRequest,
            PushRefused::Store(_) => Code::Internal,
        }
    }
}

/// What a taken push was.
#[derive(Debug, PartialEq)]
pub enum Taken {
    /// The OEM checks keyway holds the secret: answer with this.
    Challenge(serde_json::Value),
    /// States: how many cars it carried, and how many of them keyway knows.
    States {
        /// Cars in the push.
        received: usize,
        /// Of them, cars keyway has (and merged).
        known: usize,
    },
    /// A kind of push keyway does not use.
    Ignored,
}

impl Watches {
    /// Takes a push from `oem` (`name`): its `headers` and raw `body`.
    pub async fn push(
        &self,
        name: &str,
        oem: Option<&Oem>,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Taken, PushRefused> {
        let not_taken = || PushRefused::NotTaken(name.to_string());
        let oem = oem.ok_or_else(not_taken)?;
        let secret = oem.config.webhook_secret.as_ref().ok_or_else(not_taken)?;
        let pushed = oem
            .adapter
            .push(headers, body, secret)
            .map_err(|e| match e {
                PushError::NotCapable => not_taken(),
                PushError::Unverified(why) => {
                    tracing::warn!(oem = name, %why, "refused an unverified push");
                    PushRefused::Unverified(why)
                }
                PushError::Invalid(why) => PushRefused::Invalid(why),
            })?;
        let (event_id, states) = match pushed {
            Pushed::Challenge(answer) => return Ok(Taken::Challenge(answer)),
            Pushed::Ignored { kind } => {
                tracing::debug!(oem = name, %kind, "ignored a push");
                return Ok(Taken::Ignored);
            }
            Pushed::States { event_id, states } => (event_id, states),
        };
        let quiet = self.settings.pushed_quiet;
        let mut known = 0;
        for s in &states {
            let Some(v) = self.store.vehicle_by_oem_id(name, &s.oem_id).await? else {
                continue;
            };
            known += 1;
            let reading = Reading {
                security: s.security.clone(),
                location: s.location.clone(),
                connectivity: None,
            };
            self.observed(&v, &reading, tokio::time::Instant::now(), Source::Push);
            self.emit(&v, &reading).await;
            lock(&self.next_read).insert(v.id.clone(), tokio::time::Instant::now() + quiet);
        }
        tracing::info!(
            oem = name,
            event = event_id.as_deref().unwrap_or("-"),
            received = states.len(),
            known,
            "took a push"
        );
        Ok(Taken::States {
            received: states.len(),
            known,
        })
    }
}
