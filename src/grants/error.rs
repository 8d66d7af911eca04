//! [`GrantError`]: why a grant could not be made, seen or used.

use serde_json::Value;

use crate::auth::AuthError;
use crate::commands::CommandError;
use crate::error::{Classify, Code};
use crate::store::StoreError;
use crate::text::TextError;
use crate::vehicles::VehicleError;

/// Why a grant could not be made, seen or used.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GrantError {
    /// No such grant for this caller (`grant_not_found`).
    #[error("no grant {0}")]
    NotFound(String),
    /// The new grant is not acceptable (`invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// The idempotency key was used with another request (`idempotency_key_reused`).
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused {
        /// The command the key made.
        command_id: String,
    },
    /// The grant was revoked (`grant_revoked`).
    #[error("this grant was revoked")]
    Revoked,
    /// The grant was completed (`grant_not_active`).
    #[error("this grant was completed")]
    Completed,
    /// Now is outside the grant's window (`grant_not_active`).
    #[error("this grant can be used only inside its window")]
    OutsideWindow {
        /// Its start (RFC 3339).
        not_before: String,
        /// Its end (RFC 3339).
        not_after: String,
    },
    /// Its unlocks are used (`grant_exhausted`).
    #[error("this grant's {0} unlock(s) are used")]
    Exhausted(u32),
    /// Its last unlock was taken meanwhile (`grant_exhausted`).
    #[error("this grant has no unlock left")]
    NoUnlockLeft,
    /// The grant's vehicle is gone (`vehicle_not_found`).
    #[error("the grant's vehicle is gone")]
    VehicleGone,
    /// The car is not where the grant allows an unlock (`outside_geofence`).
    #[error("the car is {distance_m:.0} m from the agreed place (allowed: {radius_m:.0} m)")]
    OutsideGeofence {
        /// How far it is.
        distance_m: f64,
        /// How far it may be.
        radius_m: f64,
    },
    /// An unlock refused under the grant (audited): the reason, with the grant's id.
    #[error("{reason}")]
    Refused {
        /// The grant.
        grant_id: String,
        /// Why.
        reason: Box<GrantError>,
    },
    /// The caller may not do this.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The caller's text is refused.
    #[error(transparent)]
    Text(#[from] TextError),
    /// The vehicle or its OEM failed.
    #[error(transparent)]
    Vehicle(#[from] VehicleError),
    /// The unlock command was refused.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Codes for GrantError {
    fn codes() -> Vec<Code> {
        let mut all = vec![
            Code::GrantNotFound,
            Code::InvalidRequest,
            Code::IdempotencyKeyReused,
            Code::GrantRevoked,
            Code::GrantNotActive,
            Code::GrantExhausted,
            Code::VehicleNotFound,
            Code::OutsideGeofence,
            Code::Internal,
        ];
        all.extend(<(AuthError, TextError, VehicleError, CommandError)>::codes());
        all
    }
}

impl Classify for GrantError {
    fn wrapped(&self) -> Option<&dyn Classify> {
        match self {
            GrantError::Refused { reason, .. } => Some(reason.as_ref()),
            GrantError::Auth(e) => Some(e),
            GrantError::Text(e) => Some(e),
            GrantError::Vehicle(e) => Some(e),
            GrantError::Command(e) => Some(e),
            GrantError::Store(e) => Some(e),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            GrantError::NotFound(_) => Code::GrantNotFound,
            GrantError::Invalid(_) => Code::InvalidRequest,
            GrantError::KeyReused { .. } => Code::IdempotencyKeyReused,
            GrantError::Revoked => Code::GrantRevoked,
            GrantError::Completed | GrantError::OutsideWindow { .. } => Code::GrantNotActive,
            GrantError::Exhausted(_) | GrantError::NoUnlockLeft => Code::GrantExhausted,
            GrantError::VehicleGone => Code::VehicleNotFound,
            GrantError::OutsideGeofence { .. } => Code::OutsideGeofence,
            _ => self.wrapped().map_or(Code::Internal, Classify::code),
        }
    }

    fn extra(&self) -> Vec<(&'static str, Value)> {
        match self {
            GrantError::KeyReused { command_id } => {
                vec![("command_id", command_id.clone().into())]
            }
            GrantError::OutsideWindow {
                not_before,
                not_after,
            } => vec![
                ("not_before", not_before.clone().into()),
                ("not_after", not_after.clone().into()),
            ],
            GrantError::OutsideGeofence { distance_m, .. } => {
                vec![("distance_m", distance_m.round().into())]
            }
            GrantError::Refused { grant_id, reason } => {
                let mut extra = reason.extra();
                extra.push(("grant_id", grant_id.clone().into()));
                extra
            }
            _ => self.wrapped().map(Classify::extra).unwrap_or_default(),
        }
    }
}
