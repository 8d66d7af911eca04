//! Why an account could not be linked, listed or unlinked, and how each reason answers
//! (its problem code, OEM and OAuth error).

use crate::auth::AuthError;
use crate::crypto::CryptoError;
use crate::error::{Classify, Code};
use crate::store::StoreError;
use crate::tokens::TokenError;

/// Why an account could not be linked, listed or unlinked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AccountError {
    /// The request or callback is not usable (`invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// The OEM answered the authorization with an error (`authorization_denied`, with
    /// the OAuth `error` as `oauth_error`).
    #[error("the OEM answered the authorization with {error}: {detail}")]
    Declined {
        /// The OEM.
        oem: String,
        /// Its OAuth `error`.
        error: String,
        /// Its `error_description`.
        detail: String,
    },
    /// No such account for this caller (`not_found`).
    #[error("no account {0}")]
    NotFound(String),
    /// The OEM's redirect brought neither a code nor an error
    /// (`authorization_denied`).
    #[error(
        "the callback brought neither an authorization code nor an error; start the link again"
    )]
    NoGrant,
    /// The redirect named an owner who, the OEM says, did not connect during this link
    /// (`authorization_denied`).
    #[error(
        "the OEM has no connection made during this link by the owner the callback names; \
         start the link again"
    )]
    OwnerNotConnected {
        /// The OEM.
        oem: String,
    },
    /// No such OEM on this gateway (`not_found`).
    #[error("{0}")]
    NoOem(String),
    /// No link is waiting for this callback's `state`: unknown, used or expired
    /// (`not_found`).
    #[error("{0}")]
    NoLink(String),
    /// The caller may not do this.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The OEM's OAuth exchange or vehicle list failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A secret could not be sealed or opened (`internal`).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Codes for AccountError {
    fn codes() -> Vec<Code> {
        let mut all = vec![
            Code::InvalidRequest,
            Code::AuthorizationDenied,
            Code::UpstreamError,
            Code::NotFound,
        ];
        all.extend(<(AuthError, TokenError, CryptoError, StoreError)>::codes());
        all
    }
}

impl Classify for AccountError {
    fn wrapped(&self) -> Option<&dyn Classify> {
        match self {
            AccountError::Auth(e) => Some(e),
            AccountError::Token(e) => Some(e),
            AccountError::Crypto(e) => Some(e),
            AccountError::Store(e) => Some(e),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            AccountError::Invalid(_) => Code::InvalidRequest,
            // Whatever the OEM's reason (`access_denied`, or its own trouble), the owner's
            // authorization did not happen; `oauth_error` says why, and the owner starts
            // the link again.
            AccountError::Declined { .. }
            | AccountError::NoGrant
            | AccountError::OwnerNotConnected { .. } => Code::AuthorizationDenied,
            AccountError::NotFound(_) | AccountError::NoOem(_) | AccountError::NoLink(_) => {
                Code::NotFound
            }
            _ => self.wrapped().map_or(Code::Internal, Classify::code),
        }
    }

    fn oem(&self) -> Option<&str> {
        match self {
            AccountError::Declined { oem, .. } | AccountError::OwnerNotConnected { oem } => {
                Some(oem)
            }
            _ => self.wrapped().and_then(Classify::oem),
        }
    }

    fn extra(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            AccountError::Declined { error, .. } => vec![("oauth_error", error.clone().into())],
            _ => self.wrapped().map(Classify::extra).unwrap_or_default(),
        }
    }
}
