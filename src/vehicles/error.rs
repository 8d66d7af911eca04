//! [`VehicleError`]: why a vehicle could not be found, read or called.

use crate::auth::AuthError;
use crate::error::{Classify, Code};
use crate::store::StoreError;
use crate::tokens::TokenError;

/// Why a vehicle could not be found, read or called.
#[derive(Clone, Debug, thiserror::Error)]
pub enum VehicleError {
    /// No such vehicle for this caller (`vehicle_not_found`).
    #[error("no vehicle {0}")]
    NotFound(String),
    /// The vehicle's OEM is not enabled on this gateway (`not_capable`).
    #[error("the OEM {0} is not enabled on this gateway")]
    NotEnabled(String),
    /// The vehicle or its OEM cannot do this (`not_capable`).
    #[error("{what}")]
    NotCapable {
        /// The OEM.
        oem: String,
        /// What it cannot do.
        what: String,
    },
    /// The caller may not touch it.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The OEM failed, or keyway had no usable token for it.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// keyway's own read machinery failed (`internal`).
    #[error("{0}")]
    Internal(&'static str),
}

impl crate::error::Codes for VehicleError {
    fn codes() -> Vec<Code> {
        let mut all = vec![Code::VehicleNotFound, Code::NotCapable, Code::Internal];
        all.extend(<(AuthError, TokenError)>::codes());
        all
    }
}

impl Classify for VehicleError {
    fn wrapped(&self) -> Option<&dyn Classify> {
        match self {
            VehicleError::Auth(e) => Some(e),
            VehicleError::Token(e) => Some(e),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            VehicleError::NotFound(_) => Code::VehicleNotFound,
            VehicleError::NotEnabled(_) | VehicleError::NotCapable { .. } => Code::NotCapable,
            VehicleError::Auth(e) => e.code(),
            VehicleError::Token(e) => e.code(),
            VehicleError::Store(_) | VehicleError::Internal(_) => Code::Internal,
        }
    }

    fn oem(&self) -> Option<&str> {
        match self {
            VehicleError::NotEnabled(oem) | VehicleError::NotCapable { oem, .. } => Some(oem),
            _ => self.wrapped().and_then(Classify::oem),
        }
    }
}
