//! What the accounts module hands its callers: a listed account, a started link (and
//! a device link's code), a device link's poll, and what an OEM's redirect brings back.

use std::time::Duration;

use keyway_adapter::Secret;
use time::OffsetDateTime;

use crate::store::AccountRecord;

/// One listed account.
#[derive(Debug)]
pub struct Listed {
    /// The account.
    pub account: AccountRecord,
    /// Its vehicles.
    pub vehicle_ids: Vec<String>,
    /// Its PIN's state; `None` when none is set.
    pub pin: Option<PinState>,
}

/// Whether keyway may use an account's PIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PinState {
    /// Set, and used for the commands that need it.
    Set,
    /// The OEM refused it: not used again until replaced.
    Rejected,
}

/// A started link.
#[derive(Debug)]
pub struct LinkStart {
    /// Where to send the owner's browser.
    pub authorization_url: String,
    /// The `state` in it (the callback must bring it back).
    pub state: Secret,
    /// Until when the callback is accepted.
    pub expires_at: OffsetDateTime,
    /// For an OEM linking through its own app login: the app's redirect URI, which the
    /// login ends at (the caller hands that whole URL to `POST /v1/oauth/callback`).
    pub app_redirect: Option<&'static str>,
    /// For an OEM linking with RFC 8628's device grant: what the owner is shown.
    pub device: Option<DeviceCode>,
}

/// A device link's code, as the owner sees it (RFC 8628 §3.3).
#[derive(Debug)]
pub struct DeviceCode {
    /// The code the owner confirms at the verification page.
    pub user_code: String,
    /// The OEM's verification page (the link's `authorization_url` has the code in it).
    pub verification_uri: String,
    /// How long to wait between polls.
    pub interval: Duration,
}

/// One poll of a device link.
#[derive(Debug)]
pub enum DevicePoll {
    /// The owner approved: the account.
    Linked(Listed),
    /// Not yet: poll again after this long.
    Pending(Duration),
}

/// What the OEM's redirect brings back.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The state from the link's start: the callback's one credential, single-use.
    #[param(required = true, value_type = String, min_length = 1)]
    pub state: Option<String>,
    /// The owner's id at the OEM, for an OEM whose redirect names the owner instead of
    /// granting a code to exchange (Smartcar API v3; keyway links it only once the OEM
    /// confirms that owner connected during the link).
    pub user_id: Option<String>,
    /// An OAuth error (`access_denied`, …).
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}
