//! [`CommandError`]: why a command was refused, or why it ended as it did (the code
//! and detail its record keeps).

use std::time::Duration;

use serde_json::Value;

use crate::error::{Classify, Code};
use crate::store::StoreError;
use crate::text::TextError;
use crate::tokens::TokenError;
use crate::vehicles::VehicleError;

/// Why a command was refused, failed, or has an unknown outcome.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CommandError {
    /// Too many commands are queued for the car (`vehicle_busy`).
    #[error("{max} commands are already queued for this vehicle; try again later")]
    Busy {
        /// The cap.
        max: usize,
    },
    /// The idempotency key was used with another request (`idempotency_key_reused`).
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused {
        /// The command the key made.
        command_id: String,
    },
    /// The vehicle is gone (`vehicle_not_found`).
    #[error("the vehicle was removed")]
    VehicleRemoved,
    /// The OEM's command quota is spent (`rate_limited`); the command was not sent.
    #[error("the OEM's command quota is spent; the command was not sent")]
    QuotaSpent {
        /// The OEM.
        oem: String,
        /// When a slot frees up.
        retry_after: Duration,
    },
    /// An earlier unlock of the car may still execute (`command_in_doubt`).
    #[error(
        "an earlier unlock of this car ({earlier}) may still execute; keyway sends no second \
         unlock until the OEM's command window ends"
    )]
    InDoubt {
        /// The earlier unlock.
        earlier: String,
        /// When its window ends.
        retry_after: Duration,
    },
    /// keyway is sure the command did not and will not execute (`command_failed`).
    #[error("{detail}")]
    NotExecuted {
        /// The OEM.
        oem: String,
        /// How keyway knows.
        detail: String,
    },
    /// The car may or may not execute it (`outcome_unknown`).
    #[error("{detail}")]
    Unconfirmed {
        /// The OEM.
        oem: String,
        /// What keyway knows.
        detail: String,
    },
    /// Only an unlock whose outcome is in doubt can be acknowledged (`invalid_request`).
    #[error(
        "only an unlock in doubt (unknown, or succeeded only by the car's state) can be acknowledged; this one is {0}"
    )]
    NotInDoubt(&'static str),
    /// Another replica took the command over (`internal`).
    #[error("another replica took this command over before it was sent")]
    TakenOver,
    /// The unlock abuse guard refused a new unlock of the car (`rate_limited`).
    #[error(transparent)]
    Throttled(#[from] super::guard::Throttled),
    /// The vehicle, its OEM, or an OEM call failed.
    #[error(transparent)]
    Vehicle(#[from] VehicleError),
    /// The car's account must be linked again, or keyway has no usable token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The caller's reference is refused (`invalid_request`).
    #[error(transparent)]
    Text(#[from] TextError),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Codes for CommandError {
    fn codes() -> Vec<Code> {
        let mut all = vec![
            Code::VehicleBusy,
            Code::IdempotencyKeyReused,
            Code::VehicleNotFound,
            Code::RateLimited,
            Code::CommandInDoubt,
            Code::CommandNotInDoubt,
            Code::InvalidRequest,
            Code::CommandFailed,
            Code::OutcomeUnknown,
            Code::Internal,
        ];
        all.extend(<(VehicleError, TokenError, TextError, StoreError)>::codes());
        all
    }
}

impl Classify for CommandError {
    fn wrapped(&self) -> Option<&dyn Classify> {
        match self {
            CommandError::Throttled(e) => Some(e),
            CommandError::Vehicle(e) => Some(e),
            CommandError::Token(e) => Some(e),
            CommandError::Text(e) => Some(e),
            CommandError::Store(e) => Some(e),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            CommandError::Busy { .. } => Code::VehicleBusy,
            CommandError::KeyReused { .. } => Code::IdempotencyKeyReused,
            CommandError::VehicleRemoved => Code::VehicleNotFound,
            CommandError::QuotaSpent { .. } => Code::RateLimited,
            CommandError::InDoubt { .. } => Code::CommandInDoubt,
            CommandError::NotInDoubt(_) => Code::CommandNotInDoubt,
            CommandError::NotExecuted { .. } => Code::CommandFailed,
            CommandError::Unconfirmed { .. } => Code::OutcomeUnknown,
            CommandError::TakenOver => Code::Internal,
            _ => self.wrapped().map_or(Code::Internal, Classify::code),
        }
    }

    fn oem(&self) -> Option<&str> {
        match self {
            CommandError::QuotaSpent { oem, .. }
            | CommandError::NotExecuted { oem, .. }
            | CommandError::Unconfirmed { oem, .. } => Some(oem),
            _ => self.wrapped().and_then(Classify::oem),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CommandError::Busy { .. } => Some(Duration::from_secs(5)),
            CommandError::QuotaSpent { retry_after, .. }
            | CommandError::InDoubt { retry_after, .. } => Some(*retry_after),
            _ => self.wrapped().and_then(Classify::retry_after),
        }
    }

    fn extra(&self) -> Vec<(&'static str, Value)> {
        match self {
            CommandError::KeyReused { command_id } => {
                vec![("command_id", command_id.clone().into())]
            }
            CommandError::InDoubt { earlier, .. } => {
                vec![("command_in_doubt", earlier.clone().into())]
            }
            _ => self.wrapped().map(Classify::extra).unwrap_or_default(),
        }
    }
}
