//! A secret string (access token, refresh token, client secret, PIN) that redacts
//! itself in `Debug` and `Display`, so that a stray `{:?}` in a log line can never
//! leak it. The value is reachable only through [`Secret::expose`], which makes every
//! use of the plaintext visible in review.

use std::fmt;
use std::sync::Arc;

/// A string that must never reach logs, errors or metrics. Shared, not copied: every
/// OEM call carries its account's access token, and cloning it is a reference count.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a plaintext secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into())
    }

    /// The plaintext. Call it only where the secret is sent or sealed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value.into())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("eyJhbGciOi.supersecret");
        assert!(!format!("{s:?}").contains("supersecret"));
        assert!(!format!("{s}").contains("supersecret"));
        assert_eq!(s.expose(), "eyJhbGciOi.supersecret");
    }

    #[test]
    fn deserializes_from_a_string_and_clones_share_it() {
        let s: Secret = serde_json::from_str(r#""abc""#).unwrap();
        assert_eq!(s.expose(), "abc");
        assert!(std::ptr::eq(s.clone().expose(), s.expose()));
        assert!(serde_json::from_str::<Secret>("1").is_err());
    }
}
