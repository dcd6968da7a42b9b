//! Appending lines by the writer protocol.

use super::ErrorClass;

/// Appending lines by the writer protocol.
///
/// Each variant names what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// A line handed to the writer is not one valid JSON value.
    #[error("line {index} is not a single valid JSON value ({reason}); nothing was written")]
    InvalidLine { index: usize, reason: String },
}

impl AppendError {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            AppendError::InvalidLine { .. } => ErrorClass::Usage,
        }
    }
}
