//! The `Adapter` trait: the translation an OEM crate provides. Each method is one OEM
//! operation; none of them retries, refreshes or waits — that is the core's job.

use async_trait::async_trait;

use crate::{
    AdapterInfo, Call, Command, Connectivity, Location, OemError, OemVehicle, Pending, Progress,
    SecurityState, Sent, VehicleRef,
};

fn not_capable<T>(what: &str) -> Result<T, OemError> {
    Err(OemError::NotCapable { what: what.into() })
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

    /// Polls an accepted asynchronous command. Default: not capable (an OEM whose
    /// commands are synchronous never answers `Sent::Pending`).
    async fn poll(
        &self,
        _cx: &Call,
        _v: &VehicleRef,
        _c: Command,
        _p: &Pending,
    ) -> Result<Progress, OemError> {
        not_capable("poll a command (this OEM's commands are synchronous)")
    }

    /// Asks a sleeping vehicle to wake. `Ok(())` means it is online now;
    /// `Err(OemError::Asleep)` means it is still waking: the core asks again later.
    /// Default: not capable (the OEM has no wake-up, or reaches a sleeping car itself);
    /// the core calls it only where the adapter declares `Capability::Wake`.
    async fn wake(&self, _cx: &Call, _v: &VehicleRef) -> Result<(), OemError> {
        not_capable("wake a vehicle (this OEM has no wake-up)")
    }

    /// How this car takes commands, as far as the adapter knows now (Tesla: signed or
    /// REST, and whether the car knows keyway's key). `None`: the OEM has one way only.
    fn command_path(&self, _oem_id: &str) -> Option<crate::CommandPath> {
        None
    }

    /// What the OEM bills per request, if it bills (Tesla's Fleet API).
    fn billing(&self) -> Option<&'static crate::Billing> {
        None
    }

    /// Whether the car can be reached now, read without waking it (Tesla's vehicle
    /// record, which its wake-up polls).
    async fn connectivity(&self, _cx: &Call, _v: &VehicleRef) -> Result<Connectivity, OemError> {
        not_capable("read whether the vehicle is online without waking it")
    }

    /// The OEM's own check whether the car can take a command now (Volvo's command
    /// accessibility). `Ok(())` when it can or the OEM has no such check; an error that
    /// was not delivered (`Unreachable`, `Asleep`, `Refused`) when it says no, so the
    /// command is not sent into an ambiguous answer. Adapters call it from `send`.
    async fn precheck(&self, _cx: &Call, _v: &VehicleRef) -> Result<(), OemError> {
        Ok(())
    }

    /// Starts an asynchronous location read: GM's location (`location_mode: Async`), or
    /// a separate locate flow for a car whose state has no position (BMW's vehicle
    /// finder, used when `locate` answers `NoFix`).
    async fn request_location(&self, _cx: &Call, _v: &VehicleRef) -> Result<Pending, OemError> {
        not_capable("read the location asynchronously")
    }

    /// Reads what the OEM pushed to keyway (an inbound webhook: its `headers` and raw
    /// `body`), verifying first that the OEM sent it, with `secret`, the operator's
    /// shared secret with the OEM. Pure translation: no call, no state (see
    /// [`crate::push`]). Default: the OEM pushes nothing keyway reads.
    fn push(
        &self,
        _headers: &http::HeaderMap,
        _body: &[u8],
        _secret: &crate::Secret,
    ) -> Result<crate::Pushed, crate::PushError> {
        Err(crate::PushError::NotCapable)
    }

    /// Where an owner logs in, for an OEM whose profile links through its own app
    /// ([`crate::Linking::App`]): built from `link` (keyway's fresh `state` and PKCE
    /// challenge) or asked of the OEM at `login_base` over `http` (no token yet).
    /// Default: the OEM links with the code flow.
    async fn app_login(
        &self,
        _http: &crate::Http,
        _login_base: &str,
        _link: &crate::LinkSecrets,
    ) -> Result<crate::AppLogin, OemError> {
        not_capable("link through an app login")
    }

    /// Trades an app login's redirect (its parameters: `state`, `code`, …) and the
    /// link's PKCE `verifier` for the account's tokens at `auth_base`. Default: the OEM
    /// links with the code flow.
    async fn finish_app_login(
        &self,
        _http: &crate::Http,
        _auth_base: &str,
        _redirect: &[(String, String)],
        _verifier: &crate::Secret,
    ) -> Result<crate::Tokens, OemError> {
        not_capable("link through an app login")
    }

    /// For an OEM whose profile links by naming the owner ([`crate::Linking::Owner`]):
    /// whether the owner `cx` names (its token is the owner's id) connected to this
    /// application at or after `since`, the link's start. A redirect's owner id is not
    /// bound to the link as a code is: this check is what stops a caller presenting
    /// someone else's id with its own link. `Forbidden` when the owner did not connect.
    /// Default: the OEM links otherwise.
    async fn owner_connected(
        &self,
        _cx: &Call,
        _since: time::OffsetDateTime,
    ) -> Result<(), OemError> {
        not_capable("link by naming the owner")
    }

    /// Polls an asynchronous location read: `None` while it is still running.
    async fn poll_location(
        &self,
        _cx: &Call,
        _v: &VehicleRef,
        _p: &Pending,
    ) -> Result<Option<Location>, OemError> {
        not_capable("read the location asynchronously")
    }
}
