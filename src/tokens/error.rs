//! The token manager's errors: [`TokenError`] (keyway could not get a usable OEM
//! token, or an account must be linked again) and [`CallError`] (an OEM operation
//! failed: the OEM said so, or keyway could not make the call).

use keyway_adapter::OemError;
use serde_json::Value;

use crate::crypto::CryptoError;
use crate::error::{Classify, Code, OemFailure};
use crate::store::{AccountRecord, StoreError};

/// Why keyway has no usable OEM token, or could not link an account.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    /// The account must be linked again by its owner (`reauthorization_required`).
    #[error("the {oem} account must be linked again by its owner: {why}")]
    Reauthorize {
        /// The account.
        account_id: String,
        /// Its OEM.
        oem: String,
        /// Why.
        why: String,
    },
    /// The account's OEM is not enabled on this gateway (`not_capable`).
    #[error("the OEM {0} is not enabled on this gateway")]
    NotEnabled(String),
    /// Another replica is refreshing the account's token and has not finished
    /// (`upstream_timeout`).
    #[error("another keyway replica is refreshing this account's OEM token and has not finished")]
    RefreshPending {
        /// The OEM.
        oem: String,
    },
    /// The OEM rejects keyway's OAuth client (`oem_misconfigured`).
    #[error("the OEM rejected this gateway's OAuth client; an operator must fix its credentials")]
    BadClient {
        /// The OEM.
        oem: String,
    },
    /// The OEM's token endpoint answered what keyway cannot use (`upstream_error`).
    #[error("{detail}")]
    Exchange {
        /// The OEM.
        oem: String,
        /// What it answered.
        detail: String,
    },
    /// The OEM's token endpoint refused the authorization code the callback brought
    /// (`invalid_grant`: unknown, used, expired or another client's): the owner starts
    /// the link again (`authorization_denied`).
    #[error("the OEM refused the authorization code; start the link again")]
    CodeRefused {
        /// The OEM.
        oem: String,
    },
    /// The command needs the account's PIN, and none is usable: none is set
    /// (`pin_required`), or the OEM refused the one set (`pin_rejected`).
    #[error("{detail}")]
    Pin {
        /// The account.
        account_id: String,
        /// Its OEM.
        oem: String,
        /// Refused (else missing).
        rejected: bool,
        /// What happened.
        detail: String,
    },
    /// The OEM failed.
    #[error(transparent)]
    Oem(#[from] OemFailure),
    /// The account vanished from the store while in use (`internal`).
    #[error("account {0} vanished")]
    Vanished(String),
    /// The OEM's OAuth settings are unusable (`internal`).
    #[error("the OAuth settings of {oem} are unusable: {detail}")]
    Settings {
        /// The OEM.
        oem: String,
        /// What is wrong.
        detail: String,
    },
    /// A token could not be sealed or opened (`internal`).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed (`internal`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The OEM `oem` failed with `e`.
    pub fn from_oem(oem: &str, e: OemError) -> Self {
        TokenError::Oem(OemFailure::new(oem, e))
    }

    /// `account` must be linked again by its owner, because `why`.
    pub fn reauthorize(account: &AccountRecord, why: &str) -> Self {
        TokenError::Reauthorize {
            account_id: account.id.clone(),
            oem: account.oem.to_string(),
            why: why.to_string(),
        }
    }
}

impl crate::error::Codes for TokenError {
    fn codes() -> Vec<Code> {
        let mut all = vec![
            Code::ReauthorizationRequired,
            Code::NotCapable,
            Code::UpstreamTimeout,
            Code::OemMisconfigured,
            Code::UpstreamError,
            Code::AuthorizationDenied,
            Code::PinRequired,
            Code::PinRejected,
            Code::Internal,
        ];
        all.extend(crate::error::OemFailure::codes());
        all
    }
}

impl Classify for TokenError {
    fn wrapped(&self) -> Option<&dyn Classify> {
        match self {
            TokenError::Oem(e) => Some(e),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            TokenError::Reauthorize { .. } => Code::ReauthorizationRequired,
            TokenError::NotEnabled(_) => Code::NotCapable,
            TokenError::RefreshPending { .. } => Code::UpstreamTimeout,
            TokenError::BadClient { .. } => Code::OemMisconfigured,
            TokenError::Exchange { .. } => Code::UpstreamError,
            TokenError::CodeRefused { .. } => Code::AuthorizationDenied,
            TokenError::Pin { rejected: true, .. } => Code::PinRejected,
            TokenError::Pin { .. } => Code::PinRequired,
            TokenError::Oem(e) => e.code(),
            TokenError::Vanished(_)
            | TokenError::Settings { .. }
            | TokenError::Crypto(_)
            | TokenError::Store(_) => Code::Internal,
        }
    }

    fn oem(&self) -> Option<&str> {
        match self {
            TokenError::Reauthorize { oem, .. }
            | TokenError::RefreshPending { oem }
            | TokenError::BadClient { oem }
            | TokenError::Exchange { oem, .. }
            | TokenError::CodeRefused { oem }
            | TokenError::Pin { oem, .. } => Some(oem),
            _ => self.wrapped().and_then(Classify::oem),
        }
    }

    fn extra(&self) -> Vec<(&'static str, Value)> {
        match self {
            TokenError::Reauthorize {
                account_id, oem, ..
            } => vec![
                ("account_id", account_id.clone().into()),
                (
                    "relink",
                    format!("POST /v1/accounts/{oem}/authorize").into(),
                ),
            ],
            TokenError::Pin { account_id, .. } => vec![
                ("account_id", account_id.clone().into()),
                (
                    "set_pin",
                    format!("PUT /v1/accounts/{account_id}/pin").into(),
                ),
            ],
            _ => self.wrapped().map(Classify::extra).unwrap_or_default(),
        }
    }
}

/// Why an OEM call failed: the OEM said so, or keyway could not make the call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    /// The OEM's answer, classified by the adapter.
    #[error(transparent)]
    Oem(OemError),
    /// keyway could not get a usable token.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl CallError {
    /// The failure, with the OEM named.
    pub fn at(self, oem: &str) -> TokenError {
        match self {
            CallError::Oem(e) => TokenError::from_oem(oem, e),
            CallError::Token(e) => e,
        }
    }
}

impl From<StoreError> for CallError {
    fn from(e: StoreError) -> Self {
        CallError::Token(e.into())
    }
}

impl From<CryptoError> for CallError {
    fn from(e: CryptoError) -> Self {
        CallError::Token(e.into())
    }
}
