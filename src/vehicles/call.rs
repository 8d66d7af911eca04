//! One OEM-call path: an [`OemCall`] is a vehicle with its OEM resolved once (adapter,
//! HTTP stack, quotas, timing), and owns the three ways of talking to it about that
//! car — [`OemCall::call`] (one operation with a fresh token, replayed once after a
//! rejected token), [`OemCall::awake`] (the same, waking the car once if it sleeps)
//! and [`OemCall::wake_up`]. Reads and commands both go through it, so the registry is
//! consulted once per request and the wake-up rules live in one place.

use std::future::Future;
use std::sync::Arc;

use keyway_adapter::{
    Adapter, Call, Capability, Command, OemError, OemTiming, Pending, Progress, SecurityState,
    VehicleRef,
};
use tokio::time::Instant;

use super::WakePolicy;
use crate::registry::Oem;
use crate::store::VehicleRecord;
use crate::tokens::pin::Pin;
use crate::tokens::{CallError, TokenError, Tokens};

/// A vehicle and its resolved OEM (references only: copied freely).
#[derive(Clone, Copy)]
pub struct OemCall<'a> {
    tokens: &'a Tokens,
    wake: &'a WakePolicy,
    /// The vehicle.
    pub vehicle: &'a VehicleRecord,
    /// Its OEM as the registry holds it.
    pub oem: &'a Oem,
    /// keyway's clock.
    pub clock: &'a crate::clock::Clock,
}

impl<'a> OemCall<'a> {
    pub(super) fn new(
        tokens: &'a Tokens,
        wake: &'a WakePolicy,
        vehicle: &'a VehicleRecord,
        oem: &'a Oem,
        clock: &'a crate::clock::Clock,
    ) -> Self {
        Self {
            tokens,
            wake,
            vehicle,
            oem,
            clock,
        }
    }

    /// The OEM's adapter.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.oem.adapter
    }

    /// Whether the OEM's adapter declares `c`, and the OEM does not say this car lacks it.
    pub fn can(&self, c: Capability) -> bool {
        self.oem.adapter.info().can(c) && self.vehicle.may(c)
    }

    /// The OEM's timing (declared, with configured overrides).
    pub fn timing(&self) -> OemTiming {
        self.oem.timing
    }

    /// The OEM's id, e.g. `tesla` (metric labels, errors).
    pub fn name(&self) -> &str {
        &self.vehicle.oem
    }

    /// The owner's PIN as a command to this car may use it: read only for an OEM whose
    /// commands may need one ([`Pin::Unset`] for the others, with no store read).
    pub async fn pin(&self) -> Result<Pin, TokenError> {
        match self.oem.adapter.info().owner_pin {
            true => self.tokens.pin(&self.vehicle.account_id).await,
            false => Ok(Pin::Unset),
        }
    }

    /// What a command's send learned of the PIN `pin` it was given: the OEM's `e`
    /// (`PinRequired`, `PinRejected`) as the account's failure; a refused PIN is marked
    /// so and never tried again until replaced.
    pub async fn pin_failure(&self, pin: &Pin, e: &OemError) -> TokenError {
        let id = &self.vehicle.account_id;
        let set = format!("set a new one with PUT /v1/accounts/{id}/pin");
        let (rejected, detail) = match (e, pin) {
            (OemError::PinRejected { detail }, Pin::Usable { sealed, .. }) => {
                if let Err(e) = self.tokens.reject_pin(id, sealed).await {
                    tracing::error!(account = %id, error = %e, "could not mark the PIN refused");
                }
                let why = format!(
                    "the OEM refused account {id}'s PIN ({detail}); keyway will not try it again: {set}"
                );
                (true, why)
            }
            (_, Pin::Rejected { at }) => {
                let at = crate::clock::timestamp(*at);
                let why = format!(
                    "the OEM refused account {id}'s PIN at {at}; keyway does not try it again: {set}"
                );
                (true, why)
            }
            (e, _) => {
                let why = format!(
                    "this car's commands need its owner's PIN ({e}); account {id} has none: set it with PUT /v1/accounts/{id}/pin"
                );
                (false, why)
            }
        };
        TokenError::Pin {
            account_id: id.clone(),
            oem: self.vehicle.oem.to_string(),
            rejected,
            detail,
        }
    }

    /// Runs one OEM operation for the vehicle's account: `op` gets the call context,
    /// the adapter and the car. A rejected token is refreshed and the operation replayed
    /// once (the token manager's rule).
    pub async fn call<T, F, Fut>(&self, operation: &'static str, op: F) -> Result<T, CallError>
    where
        F: Fn(Call, Arc<dyn Adapter>, VehicleRef) -> Fut,
        Fut: Future<Output = Result<T, OemError>>,
    {
        self.tokens
            .call(&self.vehicle.account_id, self.oem, operation, |cx| {
                let car = VehicleRef {
                    oem_id: self.vehicle.oem_id.clone(),
                };
                op(cx, self.oem.adapter.clone(), car)
            })
            .await
    }

    /// [`OemCall::call`]; if the car is asleep and its OEM can wake it, wakes it and runs
    /// `op` once more. `Asleep` means the OEM did not act, so the second run is safe
    /// even for a command.
    pub async fn awake<T, F, Fut>(&self, operation: &'static str, op: F) -> Result<T, CallError>
    where
        F: Fn(Call, Arc<dyn Adapter>, VehicleRef) -> Fut,
        Fut: Future<Output = Result<T, OemError>>,
    {
        match self.call(operation, &op).await {
            Err(CallError::Oem(OemError::Asleep)) => {}
            other => return other,
        }
        self.wake_up().await?;
        self.call(operation, &op).await
    }

    /// Reads the lock state from the car now (waking it if needed), bypassing caches.
    pub async fn read_security(&self) -> Result<SecurityState, CallError> {
        self.awake("security", |cx, adapter, car| async move {
            adapter.security(&cx, &car).await
        })
        .await
    }

    /// Where the OEM's command with handle `pending` (an `action`) stands.
    pub async fn poll(&self, action: Command, pending: &Pending) -> Result<Progress, CallError> {
        self.call("poll", |cx, adapter, car| {
            let pending = pending.clone();
            async move { adapter.poll(&cx, &car, action, &pending).await }
        })
        .await
    }

    /// [`OemCall::read_security`] for watching a command's outcome: through the OEM's
    /// watch stack (no breaker, no retries, a small concurrency budget of its own).
    pub async fn watch_security(&self) -> Result<SecurityState, CallError> {
        let http = &self.oem.watch_http;
        self.awake("security", |mut cx, adapter, car| {
            cx.http = http.clone();
            async move { adapter.security(&cx, &car).await }
        })
        .await
    }

    /// Wakes the vehicle until it is online; `Asleep` if its OEM cannot wake it or it
    /// did not wake in time.
    pub async fn wake_up(&self) -> Result<(), CallError> {
        if !self.can(Capability::Wake) {
            return Err(CallError::Oem(OemError::Asleep));
        }
        let deadline = Instant::now() + self.wake.timeout;
        tracing::info!(vehicle = %self.vehicle.id, oem = %self.vehicle.oem, "waking vehicle");
        loop {
            let woke = self
                .call("wake", |cx, adapter, car| async move {
                    adapter.wake(&cx, &car).await
                })
                .await;
            match woke {
                Ok(()) => return Ok(()),
                Err(CallError::Oem(OemError::Asleep)) if Instant::now() < deadline => {
                    self.clock
                        .sleep(self.wake.poll.min(deadline - Instant::now()))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
