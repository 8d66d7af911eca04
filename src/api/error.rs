//! [`ApiError`]: a failure as the caller sees it, the error of every handler. Any
//! service error becomes one through [`Classify`] (one `From`, here at the edge):
//! its code, its detail (an `internal` one is logged and replaced by a generic
//! sentence), the OEM, `Retry-After`, extra members — and the service error itself
//! stays attached as the [`source`](std::error::Error::source). The HTTP status of each
//! code is decided here too.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::error::{Classify, Code, INTERNAL_DETAIL, public_detail};

/// A failure as the caller sees it.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// Stable code.
    pub code: Code,
    /// What happened, for a human; never secrets.
    pub detail: String,
    /// The OEM involved, if any.
    pub oem: Option<Box<str>>,
    /// When to try again (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Extra members of the problem object (e.g. `command_id`, `account_id`).
    pub extra: Map<String, Value>,
    /// Extra response headers (e.g. `RateLimit`, `RateLimit-Policy`).
    pub headers: Box<[(&'static str, String)]>,
    /// The service error it was made from.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
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
            headers: Box::default(),
            source: None,
        }
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
        Self::new(Code::Internal, INTERNAL_DETAIL)
    }
}

impl<E: Classify> From<E> for ApiError {
    fn from(e: E) -> Self {
        let mut api = ApiError::new(e.code(), public_detail(&e));
        if api.code != Code::Internal {
            api.oem = e.oem().map(Into::into);
            api.retry_after = e.retry_after();
            for (k, v) in e.extra() {
                api.extra.insert(k.into(), v);
            }
            api.headers = e.headers().into();
        }
        api.source = Some(Arc::new(e));
        api
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The HTTP status of a code.
pub fn status(code: Code) -> StatusCode {
    match code {
        Code::InvalidRequest => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden
        | Code::AuthorizationDenied
        | Code::GrantNotActive
        | Code::GrantExhausted
        | Code::OutsideGeofence
        | Code::GrantRevoked => StatusCode::FORBIDDEN,
        Code::NotFound | Code::VehicleNotFound | Code::CommandNotFound | Code::GrantNotFound => {
            StatusCode::NOT_FOUND
        }
        Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::NotCapable
        | Code::IdempotencyKeyReused
        | Code::CommandFailed
        | Code::PinRequired
        | Code::PinRejected => StatusCode::UNPROCESSABLE_ENTITY,
        Code::RateLimited | Code::VehicleBusy => StatusCode::TOO_MANY_REQUESTS,
        Code::ReauthorizationRequired => StatusCode::FAILED_DEPENDENCY,
        Code::CircuitOpen | Code::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        Code::UpstreamTimeout | Code::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
        // The car's own state stands in the way (asleep, offline, keyway's key unknown to
        // it, no fix, an unlock still in doubt): a conflict with the target's state, not a
        // failure of keyway or the OEM (Smartcar answers its VEHICLE_STATE errors 409 too).
        Code::VehicleAsleep
        | Code::VehicleUnreachable
        | Code::CommandInDoubt
        | Code::CommandNotInDoubt
        | Code::LocationUnavailable
        | Code::VirtualKeyNotPaired => StatusCode::CONFLICT,
        Code::UpstreamError | Code::OemMisconfigured => StatusCode::BAD_GATEWAY,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OemFailure;
    use keyway_adapter::OemError;

    #[test]
    fn a_service_error_keeps_its_cause_and_hides_internal_detail() {
        let e = ApiError::from(OemFailure::new(
            "tesla",
            OemError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
        ));
        assert_eq!(e.code, Code::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.oem.as_deref(), Some("tesla"));
        let cause = std::error::Error::source(&e).expect("the OEM failure is the source");
        assert!(cause.to_string().contains("rate limit"));

        let e = ApiError::from(crate::store::StoreError::Database(
            "password=hunter2".into(),
        ));
        assert_eq!(e.code, Code::Internal);
        assert!(!e.detail.contains("hunter2"));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn every_code_has_an_error_status() {
        for c in crate::error::all_codes() {
            let s = status(c);
            assert!(s.is_client_error() || s.is_server_error(), "{c:?}");
        }
    }
}
