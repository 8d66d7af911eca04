//! Vehicle lookups and reads: finds a vehicle the caller may touch, and locates it or
//! reads its lock state through its OEM's adapter. Owns the wake policy shared with
//! commands: an `Asleep` answer (which means the OEM did not act) leads to wake-up
//! calls until the car is online or the wake timeout passes, then one more attempt.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keyway_adapter::{Adapter, Call, Capability, Location, OemError, SecurityState, VehicleRef};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::error::{ApiError, Code};
use crate::registry::Registry;
use crate::store::{Store, VehicleRecord};
use crate::tokens::{CallError, Tokens};

/// Where a security answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from the vehicle now.
    Vehicle,
    /// The state the last confirmed command left (the OEM has no lock-state read).
    LastCommand,
}

impl Source {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Vehicle => "vehicle",
            Source::LastCommand => "last_command",
        }
    }
}

/// Wake timing.
#[derive(Clone, Copy, Debug)]
pub struct WakePolicy {
    /// Give up waking after this long.
    pub timeout: Duration,
    /// Pause between wake-up calls.
    pub poll: Duration,
}

/// Reads vehicles through their adapters.
pub struct Fleet {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    tokens: Arc<Tokens>,
    wake: WakePolicy,
}

impl Fleet {
    /// A fleet over the given parts.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        tokens: Arc<Tokens>,
        wake: WakePolicy,
    ) -> Self {
        Self {
            store,
            registry,
            tokens,
            wake,
        }
    }

    /// The vehicle, if the caller may touch it. A restricted token asking for a vehicle
    /// outside its list gets `forbidden` whether or not the vehicle exists.
    pub async fn find(&self, caller: &Caller, id: &str) -> Result<VehicleRecord, ApiError> {
        caller.require_vehicle(id)?;
        self.store
            .vehicle(id)
            .await?
            .ok_or_else(|| ApiError::new(Code::VehicleNotFound, format!("no vehicle {id}")))
    }

    /// Every vehicle the caller may touch.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<VehicleRecord>, ApiError> {
        let mut all = self.store.vehicles().await?;
        all.retain(|v| caller.may_touch(&v.id));
        Ok(all)
    }

    /// The vehicle's adapter, or `not_capable` when its OEM is not enabled.
    pub fn adapter(&self, v: &VehicleRecord) -> Result<Arc<dyn Adapter>, ApiError> {
        self.registry
            .get(&v.oem)
            .map(|o| o.adapter.clone())
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotCapable,
                    format!("the OEM {} is not enabled on this gateway", v.oem),
                )
                .with_oem(&v.oem)
            })
    }

    /// `not_capable` unless the vehicle's adapter declares `c`.
    pub fn require(&self, v: &VehicleRecord, c: Capability) -> Result<Arc<dyn Adapter>, ApiError> {
        let adapter = self.adapter(v)?;
        if adapter.info().can(c) {
            Ok(adapter)
        } else {
            Err(ApiError::new(
                Code::NotCapable,
                format!("{} vehicles do not support {c:?}", adapter.info().make).to_lowercase(),
            )
            .with_oem(&v.oem))
        }
    }

    /// The vehicle's position.
    pub async fn locate(&self, v: &VehicleRecord) -> Result<Location, ApiError> {
        let adapter = self.require(v, Capability::Locate)?;
        let r = VehicleRef {
            oem_id: v.oem_id.clone(),
        };
        self.awake(v, |cx| {
            let (adapter, r) = (adapter.clone(), r.clone());
            async move { adapter.locate(&cx, &r).await }
        })
        .await
        .map_err(|e| e.into_api(&v.oem))
    }

    /// The vehicle's lock state: read from the car when its OEM can, else the state the
    /// last confirmed command left.
    pub async fn security(&self, v: &VehicleRecord) -> Result<(SecurityState, Source), ApiError> {
        let adapter = self.adapter(v)?;
        if !adapter.info().can(Capability::Security) {
            return match v.last_locked {
                Some((locked, at)) => Ok((
                    SecurityState {
                        locked,
                        doors: None,
                        recorded_at: at,
                    },
                    Source::LastCommand,
                )),
                None => Err(ApiError::new(
                    Code::NotCapable,
                    "this OEM cannot read the lock state, and no command has confirmed one yet",
                )
                .with_oem(&v.oem)),
            };
        }
        let state = self
            .read_security(v, &adapter)
            .await
            .map_err(|e| e.into_api(&v.oem))?;
        Ok((state, Source::Vehicle))
    }

    /// Reads the lock state from the car (waking it if needed).
    pub async fn read_security(
        &self,
        v: &VehicleRecord,
        adapter: &Arc<dyn Adapter>,
    ) -> Result<SecurityState, CallError> {
        let r = VehicleRef {
            oem_id: v.oem_id.clone(),
        };
        self.awake(v, |cx| {
            let (adapter, r) = (adapter.clone(), r.clone());
            async move { adapter.security(&cx, &r).await }
        })
        .await
    }

    /// Runs `op` through the token manager; if the car is asleep and its OEM can wake
    /// it, wakes it and runs `op` once more. `Asleep` means the OEM did not act, so the
    /// second run is safe even for a command.
    pub async fn awake<T, F, Fut>(&self, v: &VehicleRecord, op: F) -> Result<T, CallError>
    where
        F: Fn(Call) -> Fut,
        Fut: Future<Output = Result<T, OemError>>,
    {
        match self.tokens.call(&v.account_id, &v.oem, &op).await {
            Err(CallError::Oem(OemError::Asleep)) => {}
            other => return other,
        }
        let adapter = self.adapter(v)?;
        if !adapter.info().can(Capability::Wake) {
            return Err(CallError::Oem(OemError::Asleep));
        }
        self.wake(v, &adapter).await?;
        self.tokens.call(&v.account_id, &v.oem, &op).await
    }

    async fn wake(&self, v: &VehicleRecord, adapter: &Arc<dyn Adapter>) -> Result<(), CallError> {
        let deadline = Instant::now() + self.wake.timeout;
        let r = VehicleRef {
            oem_id: v.oem_id.clone(),
        };
        tracing::info!(vehicle = %v.id, oem = %v.oem, "waking vehicle");
        loop {
            let woke = self
                .tokens
                .call(&v.account_id, &v.oem, |cx| {
                    let (adapter, r) = (adapter.clone(), r.clone());
                    async move { adapter.wake(&cx, &r).await }
                })
                .await;
            match woke {
                Ok(()) => return Ok(()),
                Err(CallError::Oem(OemError::Asleep)) if Instant::now() < deadline => {
                    tokio::time::sleep(self.wake.poll.min(deadline - Instant::now())).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
