//! The one error taxonomy: every failure a caller can see has a stable [`Code`].
//! Each service has its own small error type (`AuthError`, `TokenError`,
//! `VehicleError`, `CommandError`, `GrantError`, `AccountError`, …), and each
//! implements [`Classify`]: its code, and what the caller may be told (the OEM involved,
//! when to try again, extra members). The API edge turns any of them into one
//! problem+json answer (`api::ApiError`); a command record stores the code and detail.
//! An OEM's failure, as its adapter classified it, is an [`OemFailure`]; a store failure
//! is `internal`, its details kept for logs.

use std::time::Duration;

use keyway_adapter::OemError;
use serde_json::Value;

// Its string is the variant's name in snake case, declared once for serde (the API
// document) and strum (`as_str`, `parse`, the list of every code); a test holds the two
// to the same string.
/// A stable error code: the last segment of the problem `type`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Code {
    /// The request is malformed.
    InvalidRequest,
    /// No valid caller token.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is too large.
    PayloadTooLarge,
    /// The request's body did not arrive in time.
    RequestTimeout,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// Unknown vehicle (or not visible to this caller).
    VehicleNotFound,
    /// Unknown command.
    CommandNotFound,
    /// The vehicle or its OEM cannot do this.
    NotCapable,
    /// An idempotency key was reused with a different request.
    IdempotencyKeyReused,
    /// Too many requests (keyway's or the OEM's limit).
    RateLimited,
    /// Too many commands already queued for this car.
    VehicleBusy,
    /// The OEM account must be linked again by its owner.
    ReauthorizationRequired,
    /// The owner declined the OEM's authorization.
    AuthorizationDenied,
    /// The car stayed asleep.
    VehicleAsleep,
    /// The car is offline.
    VehicleUnreachable,
    /// The OEM or the car refused the command.
    CommandFailed,
    /// The OEM failed.
    UpstreamError,
    /// The OEM rejects this gateway's own credentials (OAuth client, API key): an
    /// operator must fix keyway's configuration; the owner need not relink.
    OemMisconfigured,
    /// The OEM did not answer in time.
    UpstreamTimeout,
    /// The OEM may or may not have executed the command; keyway keeps watching.
    OutcomeUnknown,
    /// The OEM answered but has no position for the car now.
    LocationUnavailable,
    /// An earlier unlock of the car may still execute; no second unlock until it settles.
    CommandInDoubt,
    /// Only an unlock in doubt can be acknowledged; this command is not one.
    CommandNotInDoubt,
    /// The car does not know keyway's key (Tesla signed commands): the owner must pair it.
    VirtualKeyNotPaired,
    /// The command needs the owner's PIN and the account has none: set it with
    /// `PUT /v1/accounts/{id}/pin`.
    PinRequired,
    /// The OEM refused the account's PIN; keyway will not try it again until it is
    /// replaced (`PUT /v1/accounts/{id}/pin`).
    PinRejected,
    /// keyway stopped calling a failing OEM for a while.
    CircuitOpen,
    /// keyway is at capacity; try again shortly.
    Overloaded,
    /// Unknown grant (or not visible to this caller).
    GrantNotFound,
    /// The grant cannot be used now (before or after its window, or completed).
    GrantNotActive,
    /// The grant's unlocks are used up.
    GrantExhausted,
    /// The car is not inside the grant's geofence.
    OutsideGeofence,
    /// The grant was revoked.
    GrantRevoked,
    /// keyway failed.
    Internal,
}

impl Code {
    /// The stable string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the stable string (command records store it).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// A short human title (the problem `title`).
    pub fn title(self) -> &'static str {
        match self {
            Code::InvalidRequest => "Invalid request",
            Code::Unauthenticated => "Authentication required",
            Code::Forbidden => "Forbidden",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::PayloadTooLarge => "Request body too large",
            Code::RequestTimeout => "Request body not received in time",
            Code::UnsupportedMediaType => "Unsupported media type",
            Code::VehicleNotFound => "Vehicle not found",
            Code::CommandNotFound => "Command not found",
            Code::NotCapable => "Not supported for this vehicle",
            Code::IdempotencyKeyReused => "Idempotency key reused",
            Code::RateLimited => "Too many requests",
            Code::VehicleBusy => "Too many commands queued for this vehicle",
            Code::ReauthorizationRequired => "OEM account must be linked again",
            Code::AuthorizationDenied => "Authorization declined at the OEM",
            Code::VehicleAsleep => "Vehicle asleep",
            Code::VehicleUnreachable => "Vehicle unreachable",
            Code::CommandFailed => "Command failed",
            Code::UpstreamError => "OEM error",
            Code::OemMisconfigured => "OEM integration misconfigured",
            Code::UpstreamTimeout => "OEM timeout",
            Code::OutcomeUnknown => "Outcome unknown",
            Code::LocationUnavailable => "No position for the vehicle",
            Code::CommandInDoubt => "An earlier unlock may still execute",
            Code::CommandNotInDoubt => "Only an unlock in doubt can be acknowledged",
            Code::VirtualKeyNotPaired => "The vehicle does not know keyway's key",
            Code::PinRequired => "The owner's PIN is needed",
            Code::PinRejected => "The OEM refused the owner's PIN",
            Code::CircuitOpen => "OEM temporarily disabled",
            Code::Overloaded => "Gateway at capacity",
            Code::GrantNotFound => "Grant not found",
            Code::GrantNotActive => "Grant not active now",
            Code::GrantExhausted => "Grant used up",
            Code::OutsideGeofence => "Vehicle outside the grant's geofence",
            Code::GrantRevoked => "Grant revoked",
            Code::Internal => "Internal error",
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Code::RateLimited
                | Code::RequestTimeout
                | Code::VehicleBusy
                | Code::VehicleAsleep
                | Code::VehicleUnreachable
                | Code::UpstreamError
                | Code::UpstreamTimeout
                | Code::LocationUnavailable
                | Code::CircuitOpen
                | Code::Overloaded
                | Code::Internal
        )
    }
}

/// What a service error tells the edge: its stable code and what the caller may be
/// told. Its `Display` is the human detail (never secrets); an `internal` error's
/// detail is logged, never shown.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    /// The stable code.
    fn code(&self) -> Code;
    /// The lower layer's error this one carries, if any: what it tells the caller
    /// passes on unless this error says otherwise.
    fn wrapped(&self) -> Option<&dyn Classify> {
        None
    }
    /// The OEM involved, if any.
    fn oem(&self) -> Option<&str> {
        self.wrapped().and_then(Classify::oem)
    }
    /// When the same request may succeed (`Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        self.wrapped().and_then(Classify::retry_after)
    }
    /// Extra members of the problem object (e.g. `command_id`, `account_id`).
    fn extra(&self) -> Vec<(&'static str, Value)> {
        self.wrapped().map(Classify::extra).unwrap_or_default()
    }
    /// Extra response headers (e.g. a limiter's `RateLimit` and `RateLimit-Policy`).
    fn headers(&self) -> Vec<(&'static str, String)> {
        self.wrapped().map(Classify::headers).unwrap_or_default()
    }
}

/// Every code an error type can become: what the API document lists for a route whose
/// handler can answer that error. Written beside the type's [`Classify::code`], with the
/// codes of the lower layers' errors it wraps; tuples join sets, so a route names the
/// error types of the services it calls (`(Edge, VehicleError)`) and its problem answers
/// follow from them.
pub trait Codes {
    /// The codes, in any order (duplicates are harmless).
    fn codes() -> Vec<Code>;
}

macro_rules! codes_for_tuples {
    ($($t:ident),+) => {
        impl<$($t: Codes),+> Codes for ($($t,)+) {
            fn codes() -> Vec<Code> {
                let mut all = Vec::new();
                $(all.extend($t::codes());)+
                all
            }
        }
    };
}
codes_for_tuples!(A);
codes_for_tuples!(A, B);
codes_for_tuples!(A, B, C);
codes_for_tuples!(A, B, C, D);

/// What callers are told of an `internal` failure.
pub const INTERNAL_DETAIL: &str = "keyway failed; the request can be retried";

/// What a caller may be told about `e` (an answer, a command record): its detail, or
/// for an `internal` failure [`INTERNAL_DETAIL`] (the cause is logged here, never shown).
pub fn public_detail(e: &dyn Classify) -> String {
    if e.code() == Code::Internal {
        tracing::error!(cause = %e, "internal error");
        INTERNAL_DETAIL.to_string()
    } else {
        e.to_string()
    }
}

/// An OEM's failure as its adapter classified it, for the OEM `oem`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", oem_detail(.source))]
pub struct OemFailure {
    /// The OEM's id.
    pub oem: String,
    /// The adapter's classification.
    #[source]
    pub source: OemError,
}

impl OemFailure {
    /// `e`, from `oem`.
    pub fn new(oem: &str, e: OemError) -> Self {
        Self {
            oem: oem.to_string(),
            source: e,
        }
    }
}

fn oem_detail(e: &OemError) -> String {
    match e {
        OemError::Unauthorized { .. } => {
            "the OEM rejected the account's freshly refreshed token".to_string()
        }
        OemError::ReauthorizationRequired { detail } => {
            format!("the OEM no longer accepts this account's authorization: {detail}")
        }
        OemError::Forbidden { detail } => {
            format!("the OEM refused access for this account: {detail}")
        }
        OemError::ClientRejected { detail } => format!(
            "the OEM rejects keyway's own application credentials (its API key): an operator \
             must fix keyway's configuration; the owner need not relink ({detail})"
        ),
        OemError::NotFound => "the OEM does not know this vehicle (any more)".to_string(),
        OemError::Asleep => "the vehicle is asleep and did not wake in time".to_string(),
        OemError::Unreachable { detail } => detail.clone(),
        OemError::Expired => {
            "the vehicle did not pick up the command before it expired".to_string()
        }
        OemError::Refused { reason } => format!("the vehicle refused: {reason}"),
        OemError::RateLimited { .. } => "the OEM's rate limit is exhausted".to_string(),
        OemError::CircuitOpen { .. } => {
            "the OEM is failing; keyway paused calls to it for a moment".to_string()
        }
        OemError::NotCapable { what } => format!("the OEM cannot {what}"),
        OemError::NoFix { detail } => {
            format!("the OEM has no position for the vehicle now ({detail})")
        }
        OemError::KeyNotPaired {
            pairing_url,
            detail,
        } => format!(
            "the vehicle does not know keyway's key ({detail}); its owner must pair it{}",
            pairing_url
                .as_deref()
                .map(|u| format!(" at {u}"))
                .unwrap_or_default()
        ),
        OemError::PinRequired { detail } => {
            format!("the owner's PIN is needed ({detail}); set it with PUT /v1/accounts/{{id}}/pin")
        }
        OemError::PinRejected { detail } => format!(
            "the OEM refused the account's PIN ({detail}); keyway will not try it again until \
             a new one is set with PUT /v1/accounts/{{id}}/pin"
        ),
        OemError::Timeout { .. } => "the OEM did not answer in time".to_string(),
        OemError::Upstream { status, detail, .. } => {
            format!("the OEM answered {status}: {detail}")
        }
        OemError::Transport { detail, .. } => format!("could not reach the OEM: {detail}"),
        OemError::InvalidResponse { detail, .. } => {
            format!("the OEM's answer could not be understood: {detail}")
        }
        _ => e.to_string(),
    }
}

impl Classify for OemFailure {
    fn code(&self) -> Code {
        match &self.source {
            OemError::Unauthorized { .. }
            | OemError::ReauthorizationRequired { .. }
            | OemError::Forbidden { .. } => Code::ReauthorizationRequired,
            OemError::ClientRejected { .. } => Code::OemMisconfigured,
            OemError::NotFound => Code::VehicleNotFound,
            OemError::Asleep => Code::VehicleAsleep,
            OemError::Unreachable { .. } | OemError::Expired => Code::VehicleUnreachable,
            OemError::Refused { .. } => Code::CommandFailed,
            OemError::RateLimited { .. } => Code::RateLimited,
            OemError::CircuitOpen { .. } => Code::CircuitOpen,
            OemError::NotCapable { .. } => Code::NotCapable,
            OemError::NoFix { .. } => Code::LocationUnavailable,
            OemError::KeyNotPaired { .. } => Code::VirtualKeyNotPaired,
            OemError::PinRequired { .. } => Code::PinRequired,
            OemError::PinRejected { .. } => Code::PinRejected,
            OemError::Timeout { .. } => Code::UpstreamTimeout,
            _ => Code::UpstreamError,
        }
    }

    fn oem(&self) -> Option<&str> {
        Some(&self.oem)
    }

    fn retry_after(&self) -> Option<Duration> {
        match &self.source {
            OemError::RateLimited { retry_after } => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            OemError::CircuitOpen { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    fn extra(&self) -> Vec<(&'static str, Value)> {
        match &self.source {
            OemError::KeyNotPaired {
                pairing_url: Some(u),
                ..
            } => vec![("pairing_url", u.clone().into())],
            _ => Vec::new(),
        }
    }
}

impl Codes for OemFailure {
    fn codes() -> Vec<Code> {
        vec![
            Code::ReauthorizationRequired,
            Code::VehicleNotFound,
            Code::VehicleAsleep,
            Code::VehicleUnreachable,
            Code::CommandFailed,
            Code::RateLimited,
            Code::CircuitOpen,
            Code::NotCapable,
            Code::LocationUnavailable,
            Code::VirtualKeyNotPaired,
            Code::PinRequired,
            Code::PinRejected,
            Code::UpstreamTimeout,
            Code::UpstreamError,
            Code::OemMisconfigured,
        ]
    }
}

impl Codes for crate::crypto::CryptoError {
    fn codes() -> Vec<Code> {
        vec![Code::Internal]
    }
}

impl Classify for crate::crypto::CryptoError {
    fn code(&self) -> Code {
        Code::Internal
    }
}

/// Every code, in declaration order.
pub fn all_codes() -> impl Iterator<Item = Code> {
    <Code as strum::IntoEnumIterator>::iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for c in all_codes() {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            // The API document's name (serde's) is the same string.
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        let mut names: Vec<_> = all_codes().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all_codes().count());
    }

    #[test]
    fn oem_rate_limit_carries_retry_after() {
        let e = OemFailure::new(
            "tesla",
            OemError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
        );
        assert_eq!(e.code(), Code::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.oem(), Some("tesla"));
    }

    #[test]
    fn refusal_is_command_failed_and_not_retryable() {
        let e = OemFailure::new(
            "tesla",
            OemError::Refused {
                reason: "user_present".into(),
            },
        );
        assert_eq!(e.code(), Code::CommandFailed);
        assert!(!e.code().retryable());
        assert!(e.to_string().contains("user_present"));
        // The adapter's classification stays reachable as the cause.
        assert!(std::error::Error::source(&e).is_some());
    }
}
