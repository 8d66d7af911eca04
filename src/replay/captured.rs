//! A captured OEM answer as `keyway replay` takes it ([`Captured`]: status, headers,
//! body and where it came from), and why a replay cannot run ([`ReplayError`]).

use bytes::Bytes;

/// A captured HTTP answer.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its whole body.
    pub body: Bytes,
    /// Where it came from (a file name, a HAR entry), for the steps.
    pub label: String,
}

impl Captured {
    /// A captured answer; fails when `status` or a header cannot be an HTTP answer's.
    pub fn new(
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
        label: impl Into<String>,
    ) -> Result<Self, ReplayError> {
        let mut b = http::Response::builder().status(status);
        for (name, value) in &headers {
            b = b.header(name.as_str(), value.as_str());
        }
        b.body(())
            .map_err(|e| ReplayError::Invalid(e.to_string()))?;
        Ok(Self {
            status,
            headers,
            body,
            label: label.into(),
        })
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No adapter for that OEM.
    #[error("no adapter for {0:?}; known: {1}")]
    UnknownOem(String, String),
    /// The captured answer cannot be an HTTP response.
    #[error("not a valid HTTP answer: {0}")]
    Invalid(String),
}
