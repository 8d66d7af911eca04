//! The one error taxonomy at keyway's edge: every failure a caller can see is an
//! [`ApiError`] with a stable [`Code`], rendered once as RFC 9457 problem+json by
//! `api::problem`. OEM failures are mapped here from `OemError` (the adapter's
//! classification), store failures become `internal` with the details kept for logs.

use std::time::Duration;

use http::StatusCode;
use keyway_adapter::OemError;
use serde_json::{Map, Value};

use crate::store::StoreError;

/// A stable error code: the last segment of the problem `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// The OEM did not answer in time.
    UpstreamTimeout,
    /// The OEM may or may not have executed the command; keyway keeps watching.
    OutcomeUnknown,
    /// The OEM answered but has no position for the car now.
    LocationUnavailable,
    /// An earlier unlock of the car may still execute; no second unlock until it settles.
    CommandInDoubt,
    /// The car does not know keyway's key (Tesla signed commands): the owner must pair it.
    VirtualKeyNotPaired,
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
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::VehicleNotFound => "vehicle_not_found",
            Code::CommandNotFound => "command_not_found",
            Code::NotCapable => "not_capable",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::RateLimited => "rate_limited",
            Code::VehicleBusy => "vehicle_busy",
            Code::ReauthorizationRequired => "reauthorization_required",
            Code::AuthorizationDenied => "authorization_denied",
            Code::VehicleAsleep => "vehicle_asleep",
            Code::VehicleUnreachable => "vehicle_unreachable",
            Code::CommandFailed => "command_failed",
            Code::UpstreamError => "upstream_error",
            Code::UpstreamTimeout => "upstream_timeout",
            Code::OutcomeUnknown => "outcome_unknown",
            Code::LocationUnavailable => "location_unavailable",
            Code::CommandInDoubt => "command_in_doubt",
            Code::VirtualKeyNotPaired => "virtual_key_not_paired",
            Code::CircuitOpen => "circuit_open",
            Code::Overloaded => "overloaded",
            Code::GrantNotFound => "grant_not_found",
            Code::GrantNotActive => "grant_not_active",
            Code::GrantExhausted => "grant_exhausted",
            Code::OutsideGeofence => "outside_geofence",
            Code::GrantRevoked => "grant_revoked",
            Code::Internal => "internal",
        }
    }

    /// Parses the stable string (command records store it).
    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Forbidden
            | Code::AuthorizationDenied
            | Code::GrantNotActive
            | Code::GrantExhausted
            | Code::OutsideGeofence
            | Code::GrantRevoked => StatusCode::FORBIDDEN,
            Code::NotFound
            | Code::VehicleNotFound
            | Code::CommandNotFound
            | Code::GrantNotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::NotCapable | Code::IdempotencyKeyReused | Code::CommandFailed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Code::RateLimited | Code::VehicleBusy => StatusCode::TOO_MANY_REQUESTS,
            Code::ReauthorizationRequired => StatusCode::FAILED_DEPENDENCY,
            Code::VehicleAsleep | Code::CircuitOpen | Code::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::VehicleUnreachable | Code::UpstreamTimeout | Code::OutcomeUnknown => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Code::CommandInDoubt | Code::LocationUnavailable | Code::VirtualKeyNotPaired => {
                StatusCode::CONFLICT
            }
            Code::UpstreamError => StatusCode::BAD_GATEWAY,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
            Code::UpstreamTimeout => "OEM timeout",
            Code::OutcomeUnknown => "Outcome unknown",
            Code::LocationUnavailable => "No position for the vehicle",
            Code::CommandInDoubt => "An earlier unlock may still execute",
            Code::VirtualKeyNotPaired => "The vehicle does not know keyway's key",
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

const ALL: &[Code] = &[
    Code::InvalidRequest,
    Code::Unauthenticated,
    Code::Forbidden,
    Code::NotFound,
    Code::MethodNotAllowed,
    Code::PayloadTooLarge,
    Code::UnsupportedMediaType,
    Code::VehicleNotFound,
    Code::CommandNotFound,
    Code::NotCapable,
    Code::IdempotencyKeyReused,
    Code::RateLimited,
    Code::VehicleBusy,
    Code::ReauthorizationRequired,
    Code::AuthorizationDenied,
    Code::VehicleAsleep,
    Code::VehicleUnreachable,
    Code::CommandFailed,
    Code::UpstreamError,
    Code::UpstreamTimeout,
    Code::OutcomeUnknown,
    Code::CommandInDoubt,
    Code::LocationUnavailable,
    Code::VirtualKeyNotPaired,
    Code::CircuitOpen,
    Code::Overloaded,
    Code::GrantNotFound,
    Code::GrantNotActive,
    Code::GrantExhausted,
    Code::OutsideGeofence,
    Code::GrantRevoked,
    Code::Internal,
];

/// A failure as the caller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// Stable code.
    pub code: Code,
    /// What happened, for a human; never secrets.
    pub detail: String,
    /// The OEM involved, if any.
    pub oem: Option<String>,
    /// When to try again (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Extra members of the problem object (e.g. `command_id`, `account_id`).
    pub extra: Map<String, Value>,
    /// Extra response headers (e.g. `RateLimit`, `RateLimit-Policy`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with a code and detail.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            oem: None,
            retry_after: None,
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds the OEM involved.
    pub fn with_oem(mut self, oem: impl Into<String>) -> Self {
        self.oem = Some(oem.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, detail)
    }

    /// `internal`, logging the cause (which callers never see).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(Code::Internal, "keyway failed; the request can be retried")
    }

    /// Maps an adapter's classification of an OEM failure.
    pub fn from_oem(e: &OemError, oem: &str) -> Self {
        let (code, detail) = match e {
            OemError::Unauthorized { .. } => (
                Code::ReauthorizationRequired,
                "the OEM rejected the account's freshly refreshed token".to_string(),
            ),
            OemError::ReauthorizationRequired { detail } => (
                Code::ReauthorizationRequired,
                format!("the OEM no longer accepts this account's authorization: {detail}"),
            ),
            OemError::Forbidden { detail } => (
                Code::ReauthorizationRequired,
                format!("the OEM refused access for this account: {detail}"),
            ),
            OemError::NotFound => (
                Code::VehicleNotFound,
                "the OEM does not know this vehicle (any more)".to_string(),
            ),
            OemError::Asleep => (
                Code::VehicleAsleep,
                "the vehicle is asleep and did not wake in time".to_string(),
            ),
            OemError::Unreachable { detail } => (Code::VehicleUnreachable, detail.clone()),
            OemError::Expired => (
                Code::VehicleUnreachable,
                "the vehicle did not pick up the command before it expired".to_string(),
            ),
            OemError::Refused { reason } => (
                Code::CommandFailed,
                format!("the vehicle refused: {reason}"),
            ),
            OemError::RateLimited { retry_after } => {
                let mut err =
                    Self::new(Code::RateLimited, "the OEM's rate limit is exhausted").with_oem(oem);
                err.retry_after = Some(retry_after.unwrap_or(Duration::from_secs(1)));
                return err;
            }
            OemError::CircuitOpen { retry_after } => {
                let mut err = Self::new(
                    Code::CircuitOpen,
                    "the OEM is failing; keyway paused calls to it for a moment",
                )
                .with_oem(oem);
                err.retry_after = Some(*retry_after);
                return err;
            }
            OemError::NotCapable { what } => (Code::NotCapable, format!("the OEM cannot {what}")),
            OemError::NoFix { detail } => (
                Code::LocationUnavailable,
                format!("the OEM has no position for the vehicle now ({detail})"),
            ),
            OemError::KeyNotPaired {
                pairing_url,
                detail,
            } => {
                let mut err = Self::new(
                    Code::VirtualKeyNotPaired,
                    format!(
                        "the vehicle does not know keyway's key ({detail}); its owner must pair it{}",
                        pairing_url
                            .as_deref()
                            .map(|u| format!(" at {u}"))
                            .unwrap_or_default()
                    ),
                )
                .with_oem(oem);
                if let Some(u) = pairing_url {
                    err = err.with("pairing_url", u.clone());
                }
                return err;
            }
            OemError::Timeout { .. } => (
                Code::UpstreamTimeout,
                "the OEM did not answer in time".to_string(),
            ),
            OemError::Upstream { status, detail, .. } => (
                Code::UpstreamError,
                format!("the OEM answered {status}: {detail}"),
            ),
            OemError::Transport { detail, .. } => (
                Code::UpstreamError,
                format!("could not reach the OEM: {detail}"),
            ),
            OemError::InvalidResponse { detail, .. } => (
                Code::UpstreamError,
                format!("the OEM's answer could not be understood: {detail}"),
            ),
            _ => (Code::UpstreamError, e.to_string()),
        };
        Self::new(code, detail).with_oem(oem)
    }
}

/// Every code, in documentation order.
pub fn all_codes() -> impl Iterator<Item = Code> {
    ALL.iter().copied()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for c in ALL {
            assert_eq!(Code::parse(c.as_str()), Some(*c));
        }
        let mut names: Vec<_> = ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn oem_rate_limit_carries_retry_after() {
        let e = ApiError::from_oem(
            &OemError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
            "tesla",
        );
        assert_eq!(e.code, Code::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.oem.as_deref(), Some("tesla"));
    }

    #[test]
    fn refusal_is_command_failed_and_not_retryable() {
        let e = ApiError::from_oem(
            &OemError::Refused {
                reason: "user_present".into(),
            },
            "tesla",
        );
        assert_eq!(e.code, Code::CommandFailed);
        assert!(!e.code.retryable());
        assert!(e.detail.contains("user_present"));
    }
}
