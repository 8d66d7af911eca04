//! A store failure ([`StoreError`]): the database's, or a row that does not read back.

/// A store failure. Details are for logs; callers see `internal`.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(String),
    /// A row could not be read back (bad value in a column).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl crate::error::Codes for StoreError {
    fn codes() -> Vec<crate::error::Code> {
        vec![crate::error::Code::Internal]
    }
}

impl crate::error::Classify for StoreError {
    fn code(&self) -> crate::error::Code {
        crate::error::Code::Internal
    }
}
