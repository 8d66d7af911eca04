//! What a test (the conformance suite, keyway's end-to-end tests, another team's
//! contract tests) needs to steer and inspect any mock OEM, whatever its API: its cars'
//! true state, sleep and refusal, its tokens, its faults and its rate-limit style (a
//! mock built on the kit's garage provides all of it through `steer::GarageMock`).

use std::time::Duration;

use async_trait::async_trait;

use super::faults::Faults;
use super::journal::Journal;

/// What the suite needs to steer and inspect a mock OEM.
#[async_trait]
pub trait MockControl: Send + Sync {
    /// The OEM ids of the mock's vehicles for the suite's account.
    fn vehicle_ids(&self) -> Vec<String>;
    /// The mock's true position of a vehicle.
    fn position(&self, oem_id: &str) -> (f64, f64);
    /// The mock's true lock state.
    fn locked(&self, oem_id: &str) -> bool;
    /// Sets the lock state directly (as the owner with a key fob would).
    fn set_locked(&self, oem_id: &str, locked: bool);
    /// Puts the vehicle to sleep.
    fn set_asleep(&self, oem_id: &str);
    /// Wakes the vehicle (as its owner opening the door would).
    fn set_awake(&self, oem_id: &str);
    /// Makes the vehicle refuse commands (e.g. "user present") until cleared.
    fn set_refusing(&self, oem_id: &str, refusing: bool);
    /// A valid access token for the suite's account.
    fn access_token(&self) -> String;
    /// Expires every access token issued so far.
    fn expire_access_tokens(&self);
    /// The mock's fault injection (the suite adds generic faults: 5xx, garbled bodies).
    fn faults(&self) -> &Faults;
    /// Makes the next request answer in this OEM's own rate-limit style (429 with
    /// `Retry-After`, a 403 quota text, a 200 with an error code, …); returns the wait
    /// the OEM announces in it.
    fn limit_next(&self) -> Option<Duration>;
    /// Every request the mock saw.
    fn journal(&self) -> &Journal;
    /// The push the OEM would deliver to keyway now about the car's state (signed as
    /// the OEM signs), and the secret keyway is configured with for it; `None` when the
    /// OEM pushes nothing.
    fn push_delivery(&self, _oem_id: &str) -> Option<PushDelivery> {
        None
    }
    /// The PIN the suite's owner set in the OEM's app, if the mock has one.
    fn owner_pin(&self) -> Option<String> {
        None
    }
    /// Whether the car's commands need the owner's PIN.
    fn needs_pin(&self, _oem_id: &str) -> bool {
        false
    }
}

/// One push as an OEM delivers it to keyway's callback.
#[derive(Clone, Debug)]
pub struct PushDelivery {
    /// Its headers (the signature among them).
    pub headers: http::HeaderMap,
    /// Its raw body.
    pub body: Vec<u8>,
    /// The secret the OEM signed it with, which keyway's operator configures.
    pub secret: String,
}
