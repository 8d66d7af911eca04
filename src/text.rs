//! Free text that callers send (a command's `reference`, a grant's `grantee` and
//! `purpose`, a webhook URL): checked once, the same way everywhere, so no control
//! character (NUL, CR, LF, …) reaches a record, a log line, an event or a header.

use crate::error::{Classify, Code};

/// Free text a caller sent that keyway refuses (`invalid_request`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Longer than allowed.
    #[error("{field} must be at most {max} characters")]
    TooLong {
        /// The field.
        field: String,
        /// Its limit.
        max: usize,
    },
    /// Holds a control character.
    #[error("{field} must not contain control characters")]
    Control {
        /// The field.
        field: String,
    },
}

impl crate::error::Codes for TextError {
    fn codes() -> Vec<Code> {
        vec![Code::InvalidRequest]
    }
}

impl Classify for TextError {
    fn code(&self) -> Code {
        Code::InvalidRequest
    }
}

/// Refused unless `value` is at most `max` characters and holds no control character.
pub fn check(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    if value.chars().count() > max {
        return Err(TextError::TooLong {
            field: field.into(),
            max,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(TextError::Control {
            field: field.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_control_characters_and_long_text() {
        assert!(check("reference", "order 42 — ünïcode", 200).is_ok());
        for bad in ["a\0b", "a\rb", "a\nb", "tab\there", "\u{7f}", "\u{85}"] {
            let e = check("reference", bad, 200).unwrap_err();
            assert!(e.to_string().contains("control"), "{bad:?}: {e}");
        }
        assert!(check("reference", &"x".repeat(201), 200).is_err());
        assert!(check("reference", &"é".repeat(200), 200).is_ok());
    }
}
