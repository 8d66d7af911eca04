//! How a mock built on the kit's garage is steered: it provides its [`Parts`] and its
//! OEM's own rate-limit style ([`GarageMock`]), and [`MockControl`] follows from them.

use std::time::Duration;

use super::control::{MockControl, PushDelivery};
use super::faults::Faults;
use super::garage::Parts;
use super::journal::Journal;

/// What a garage-based mock provides; [`MockControl`] follows from it.
pub trait GarageMock: Send + Sync {
    /// Its parts.
    fn parts(&self) -> &Parts;
    /// Makes the next request answer in this OEM's rate-limit style; the announced wait.
    fn limit_next(&self) -> Option<Duration>;
    /// The push the OEM would deliver now about a car ([`MockControl::push_delivery`]).
    fn push_delivery(&self, _oem_id: &str) -> Option<PushDelivery> {
        None
    }
    /// The default owner's PIN ([`MockControl::owner_pin`]).
    fn owner_pin(&self) -> Option<String> {
        None
    }
    /// Whether the car's commands need the owner's PIN ([`MockControl::needs_pin`]).
    fn needs_pin(&self, _oem_id: &str) -> bool {
        false
    }
    /// What names the suite's owner to the adapter, when it is not an access token from
    /// the book (an OEM linking by owner id: the id). Default: a fresh access token.
    fn owner_credential(&self) -> Option<String> {
        None
    }
}

impl<T: GarageMock> MockControl for T {
    fn vehicle_ids(&self) -> Vec<String> {
        self.parts()
            .garage
            .owned_by(self.parts().oauth.default_account())
            .into_iter()
            .map(|c| c.vin)
            .collect()
    }

    fn position(&self, oem_id: &str) -> (f64, f64) {
        let c = self.parts().garage.car(oem_id).expect("known car");
        (c.latitude, c.longitude)
    }

    fn locked(&self, oem_id: &str) -> bool {
        self.parts().garage.car(oem_id).expect("known car").locked
    }

    fn set_locked(&self, oem_id: &str, locked: bool) {
        self.parts().garage.update(oem_id, |c| c.locked = locked);
    }

    fn set_asleep(&self, oem_id: &str) {
        self.parts().garage.update(oem_id, |c| c.asleep = true);
    }

    fn set_awake(&self, oem_id: &str) {
        self.parts().garage.update(oem_id, |c| c.asleep = false);
    }

    fn set_refusing(&self, oem_id: &str, refusing: bool) {
        self.parts()
            .garage
            .update(oem_id, |c| c.refusing = refusing);
    }

    fn access_token(&self) -> String {
        if let Some(credential) = self.owner_credential() {
            return credential;
        }
        let owner = self.parts().oauth.default_account();
        self.parts().tokens.issue(owner).access_token
    }

    fn expire_access_tokens(&self) {
        self.parts().tokens.expire_access_tokens();
    }

    fn faults(&self) -> &Faults {
        &self.parts().faults
    }

    fn limit_next(&self) -> Option<Duration> {
        GarageMock::limit_next(self)
    }

    fn journal(&self) -> &Journal {
        &self.parts().journal
    }

    fn push_delivery(&self, oem_id: &str) -> Option<PushDelivery> {
        GarageMock::push_delivery(self, oem_id)
    }

    fn owner_pin(&self) -> Option<String> {
        GarageMock::owner_pin(self)
    }

    fn needs_pin(&self, oem_id: &str) -> bool {
        GarageMock::needs_pin(self, oem_id)
    }
}
