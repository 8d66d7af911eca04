//! The unified vocabulary shared by keyway's core and every adapter: what a vehicle,
//! a location, a lock state and a command are, independent of any OEM's wire format.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A thing keyway can do with a vehicle of some OEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Capability {
    /// Read the GPS position.
    Locate,
    /// Read the lock state from the vehicle itself.
    Security,
    /// Lock the doors.
    Lock,
    /// Unlock the doors.
    Unlock,
    /// Wake a sleeping vehicle.
    Wake,
}

/// How an OEM completes commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandMode {
    /// The command answer is the final outcome (Tesla, Volvo).
    Sync,
    /// The OEM accepts the command and the client polls for the outcome (GM, Ford, ...).
    Async,
    /// The OEM accepts the command and reports no outcome a client can ask for (Škoda's
    /// backend tells its app over MQTT, which keyway does not subscribe to): keyway
    /// decides from the car's lock state observed after the send ([`Sent::Accepted`]).
    Observed,
}

/// Whether a car's modem can be reached now, as the OEM reports it without waking it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// Online: reads and commands reach it now.
    Online,
    /// Asleep: it wakes on request (or the OEM queues for it).
    Asleep,
    /// Offline: no connection (parked out of coverage, 12 V off).
    Offline,
}

/// How a client authenticates at the OEM's token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` / `client_secret` in the form body.
    Body,
    /// HTTP Basic with `client_id:client_secret`.
    Basic,
}

/// The OEM's OAuth profile, as data: paths are relative to the configured auth base URL.
#[derive(Clone, Debug)]
pub struct OAuthProfile {
    /// Authorization endpoint path.
    pub authorize_path: &'static str,
    /// Token endpoint path.
    pub token_path: &'static str,
    /// Scopes to request.
    pub scopes: &'static [&'static str],
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// How a refresh token is redeemed there.
    pub refresh: RefreshGrant,
    /// Whether refresh tokens rotate (each refresh returns a new one; the old dies).
    pub rotating_refresh: bool,
    /// Access-token lifetime to assume when the OEM omits `expires_in`.
    pub default_access_ttl: Duration,
    /// Whether the code exchange is followed by an RFC 8693 token exchange (GM, Ford).
    pub token_exchange: bool,
    /// How owners link: the code flow, or the OEM's own app login ([`crate::login`]).
    pub linking: crate::Linking,
}

/// How a refresh token is redeemed at the profile's token path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshGrant {
    /// RFC 6749 §6: a form with `grant_type=refresh_token`, as the client authenticates.
    Form,
    /// The OEM's own: a JSON body `{"<field>": "<refresh token>"}` and no client
    /// credentials (Škoda's `refresh-token?tokenType=CONNECT` takes `{"token"}`), the
    /// tokens answered in camel case.
    Json {
        /// The body's one member.
        field: &'static str,
    },
}

/// An OEM's published limits, as defaults (operators may override them).
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Every request: `(max, per seconds)` windows.
    pub requests: &'static [(u32, u64)],
    /// Commands only: `(max, per seconds)` windows.
    pub commands: &'static [(u32, u64)],
}

/// One limit as keyway enforces it: at most `max` in any interval of `per` (a
/// [`Limits`] pair, or an operator's override).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// At most this many …
    pub max: u32,
    /// … in any interval this long.
    pub per: Duration,
}

/// What an adapter declares about itself.
#[derive(Clone, Debug)]
pub struct AdapterInfo {
    /// Stable OEM id used in vehicle records and URLs, e.g. `tesla`.
    pub oem: &'static str,
    /// The make to show for its vehicles, e.g. `Tesla`.
    pub make: &'static str,
    /// What its vehicles can do.
    pub capabilities: &'static [Capability],
    /// Sync or async commands.
    pub command_mode: CommandMode,
    /// Sync or async location reads: GM's location is itself a request to poll
    /// (`Adapter::request_location` / `poll_location`); everyone else answers `locate`.
    pub location_mode: CommandMode,
    /// Its OAuth profile.
    pub oauth: OAuthProfile,
    /// Its published rate limits.
    pub limits: Limits,
    /// The header carrying the application's API key on every call, when the OEM wants
    /// one (Volvo: `vcc-api-key`); keyway then requires `api_key` in its configuration.
    pub api_key_header: Option<&'static str>,
    /// Whether some of its cars' commands need the owner's PIN (Hyundai/Kia CCS2): keyway
    /// then hands a command's send the account's PIN ([`crate::Call::pin`]).
    pub owner_pin: bool,
    /// How the OEM's answers relate to the car in time.
    pub timing: OemTiming,
    /// Every kind of request the adapter makes, with fixture answers (`keyway replay`).
    pub exchanges: &'static crate::Exchanges,
}

/// How an OEM's cloud lags its cars, as defaults (operators may override them).
///
/// The command lifecycle trusts a lock state only when it was observed after the
/// command was sent: the read was issued `state_lag` after it, or — for an OEM whose
/// servers stamp its states ([`Stamps::Server`]) — the OEM's timestamp is later than the
/// send by more than its clock can run ahead of keyway's. A command the OEM may still
/// hold (queued for a sleeping car, or delayed on its way) may execute up to
/// `command_window` after it was sent; until then keyway never sends a second unlock in
/// its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OemTiming {
    /// The longest time the OEM's view of a car lags the car.
    pub state_lag: Duration,
    /// The longest time after sending that the OEM may still execute a command.
    pub command_window: Duration,
    /// Which clock stamps the OEM's state answers.
    pub stamps: Stamps,
}

/// Which clock stamps an OEM's state answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamps {
    /// The OEM's servers, with the clock that dates its answers (`Date`): keyway bounds
    /// its offset from those answers, and a stamp beyond the bound is evidence.
    Server,
    /// The car's own clock, or one keyway cannot tell: nothing bounds how far it runs
    /// ahead, so its stamps alone never prove that a state is newer than a send.
    Car,
}

impl AdapterInfo {
    /// Whether the adapter declares `c`.
    pub fn can(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }
}

/// What an OEM bills per request, for OEMs that bill (Tesla): each request's class and
/// the published price per request of each class (configurable per deployment).
#[derive(Debug)]
pub struct Billing {
    /// The class of a request (`data`, `command`, `wake`, …), `None` when not billed.
    pub classify: fn(&http::Method, &str) -> Option<&'static str>,
    /// Default price per request of each class, in US dollars.
    pub prices: &'static [(&'static str, f64)],
}

/// How a car takes commands, where an OEM has more than one way (Tesla).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CommandPath {
    /// `signed` (Tesla's Vehicle Command Protocol) or `rest`; `None` until known.
    pub protocol: Option<&'static str>,
    /// Whether the car knows keyway's key (signed cars; `None` until known).
    pub key_paired: Option<bool>,
}

/// A vehicle as the OEM lists it for an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OemVehicle {
    /// The id the OEM's API addresses the vehicle by (a VIN for most OEMs).
    pub oem_id: String,
    /// The VIN when the OEM reports it.
    pub vin: Option<String>,
    /// The owner's name for the car.
    pub display_name: Option<String>,
    /// Model name, when known.
    pub model: Option<String>,
    /// Model year, when known.
    pub year: Option<u16>,
    /// What this car can do, when the OEM says so per car (a subset of the adapter's
    /// declared capabilities: Volkswagen lists each car's services, and one without an
    /// active `access` service cannot lock or unlock); `None`: all the adapter declares.
    pub capabilities: Option<Vec<Capability>>,
}

/// How an adapter addresses one vehicle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VehicleRef {
    /// The id the OEM's API uses in paths or headers.
    pub oem_id: String,
}

/// A position fix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// WGS84 latitude in degrees.
    pub latitude: f64,
    /// WGS84 longitude in degrees.
    pub longitude: f64,
    /// Heading in degrees clockwise from north, when known.
    pub heading: Option<f64>,
    /// Horizontal accuracy in metres, when the OEM says.
    pub accuracy_m: Option<f64>,
    /// When the vehicle recorded the fix; `None` when the OEM does not say (never
    /// invented).
    #[serde(with = "time::serde::rfc3339::option")]
    pub recorded_at: Option<OffsetDateTime>,
}

/// A door, boot or bonnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DoorPosition {
    /// Driver-side front (left-hand drive).
    FrontLeft,
    /// Passenger-side front.
    FrontRight,
    /// Rear left.
    RearLeft,
    /// Rear right.
    RearRight,
    /// Boot / trunk / tailgate.
    Trunk,
    /// Front trunk / bonnet.
    Frunk,
}

/// One opening's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Door {
    /// Which opening.
    pub position: DoorPosition,
    /// Whether it stands open.
    pub open: bool,
}

/// The lock state as the vehicle reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityState {
    /// Whether the vehicle is locked; `None` when the OEM reports the lock as unknown.
    pub locked: Option<bool>,
    /// Per-opening state, when the OEM reports it.
    pub doors: Option<Vec<Door>>,
    /// When the vehicle reported it; `None` when the OEM does not say (never invented).
    #[serde(with = "time::serde::rfc3339::option")]
    pub recorded_at: Option<OffsetDateTime>,
}

/// A remote command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Action))]
pub enum Command {
    /// Lock all doors.
    Lock,
    /// Unlock the doors.
    Unlock,
}

impl Command {
    /// The wire name (`lock` / `unlock`).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Lock => "lock",
            Command::Unlock => "unlock",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lock" => Some(Command::Lock),
            "unlock" => Some(Command::Unlock),
            _ => None,
        }
    }

    /// The capability the command needs.
    pub fn capability(self) -> Capability {
        match self {
            Command::Lock => Capability::Lock,
            Command::Unlock => Capability::Unlock,
        }
    }

    /// The lock state a successful command leaves.
    pub fn leaves_locked(self) -> bool {
        matches!(self, Command::Lock)
    }
}

/// A handle on an accepted asynchronous command, storable so that polling can resume
/// after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Whatever the adapter needs to poll (a request id, a status URL, ...).
    pub handle: String,
    /// How long to wait before the first poll, in milliseconds.
    pub poll_after_ms: u64,
}

/// The answer to sending a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The OEM reports the command executed (sync OEMs).
    Completed,
    /// The OEM accepted the command; poll with the handle.
    Pending(Pending),
    /// The OEM accepted the command and will report nothing more of it (an OEM of
    /// [`CommandMode::Observed`]): only the car's lock state observed after the send can
    /// show it ran; never that it failed.
    Accepted,
}

/// The answer to polling an asynchronous command.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Not final yet; poll again after the given delay if the OEM suggests one.
    Pending {
        /// Suggested delay before the next poll.
        poll_after: Option<Duration>,
    },
    /// The vehicle executed the command.
    Succeeded,
    /// The command failed on the way or on the device (refused, expired, ...).
    Failed(crate::OemError),
}

/// Model year from the VIN's 10th character (ISO 3779, the 2010–2039 cycle).
pub fn vin_model_year(vin: &str) -> Option<u16> {
    const CODES: &str = "ABCDEFGHJKLMNPRSTVWXY123456789";
    let c = vin.chars().nth(9)?.to_ascii_uppercase();
    CODES.find(c).map(|i| 2010 + i as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vin_years() {
        assert_eq!(vin_model_year("5YJ3E1EA7LF000001"), Some(2020));
        assert_eq!(vin_model_year("5YJYGDEE1MF000002"), Some(2021));
        assert_eq!(vin_model_year("5YJ3E1EA7AF000001"), Some(2010));
        assert_eq!(vin_model_year("short"), None);
        assert_eq!(vin_model_year("5YJ3E1EA7IF000001"), None);
    }

    #[test]
    fn command_names_round_trip() {
        for c in [Command::Lock, Command::Unlock] {
            assert_eq!(Command::parse(c.as_str()), Some(c));
        }
        assert_eq!(Command::parse("open"), None);
    }
}
