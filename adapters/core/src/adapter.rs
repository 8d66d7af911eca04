//! The `Adapter` trait: the translation an OEM crate provides. Each method is one OEM
//! operation; none of them retries, refreshes or waits — that is the core's job.

use async_trait::async_trait;

use crate::{
    AdapterInfo, Call, Command, Location, OemError, OemVehicle, Pending, Progress, SecurityState,
    Sent, VehicleRef,
};

fn not_capable<T>() -> Result<T, OemError> {
    Err(OemError::NotCapable {
        what: "read the location asynchronously".into(),
    })
}

/// One OEM's API, translated into the unified vocabulary.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// What the adapter is and can do.
    fn info(&self) -> &AdapterInfo;

    /// The vehicles of the account whose token `cx` carries.
    async fn vehicles(&self, cx: &Call) -> Result<Vec<OemVehicle>, OemError>;

    /// The vehicle's position.
    async fn locate(&self, cx: &Call, v: &VehicleRef) -> Result<Location, OemError>;

    /// The vehicle's lock state as the vehicle reports it.
    async fn security(&self, cx: &Call, v: &VehicleRef) -> Result<SecurityState, OemError>;

    /// Sends a lock or unlock.
    async fn send(&self, cx: &Call, v: &VehicleRef, c: Command) -> Result<Sent, OemError>;

    /// Polls an accepted asynchronous command.
    async fn poll(
        &self,
        cx: &Call,
        v: &VehicleRef,
        c: Command,
        p: &Pending,
    ) -> Result<Progress, OemError>;

    /// Asks a sleeping vehicle to wake. `Ok(())` means it is online now;
    /// `Err(OemError::Asleep)` means it is still waking: the core asks again later.
    async fn wake(&self, cx: &Call, v: &VehicleRef) -> Result<(), OemError>;

    /// How this car takes commands, as far as the adapter knows now (Tesla: signed or
    /// REST, and whether the car knows keyway's key). `None`: the OEM has one way only.
    fn command_path(&self, _oem_id: &str) -> Option<crate::CommandPath> {
        None
    }

    /// What the OEM bills per request, if it bills (Tesla's Fleet API).
    fn billing(&self) -> Option<&'static crate::Billing> {
        None
    }

    /// Starts an asynchronous location read (`location_mode: Async` only).
    async fn request_location(&self, _cx: &Call, _v: &VehicleRef) -> Result<Pending, OemError> {
        not_capable()
    }

    /// Polls an asynchronous location read: `None` while it is still running.
    async fn poll_location(
        &self,
        _cx: &Call,
        _v: &VehicleRef,
        _p: &Pending,
    ) -> Result<Option<Location>, OemError> {
        not_capable()
    }
}
