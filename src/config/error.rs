//! Why a configuration cannot be used ([`ConfigError`]), and the one way a field's
//! check says so ([`invalid`]).

use std::path::PathBuf;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for keyway (the message names line, column and key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, naming the field.
        message: String,
    },
    /// A field has a value keyway cannot use.
    #[error("`{field}`: {message}")]
    Invalid {
        /// Dotted field path, e.g. `auth.hs256_secret`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}
