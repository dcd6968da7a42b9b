//! Replaying a store as of a time.

use std::path::PathBuf;

use super::ErrorClass;

/// Replaying a store as of a time.
///
/// Each variant names what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// `replay --as-of` asked for a time before the oldest retained point.
    #[error(
        "store {store:?}: {asked} is before the oldest retained point, {oldest} ({}); nothing older is kept (raise keep_rotated to keep more)",
        file.display()
    )]
    AsOfTooEarly {
        store: String,
        asked: String,
        oldest: String,
        file: PathBuf,
    },

    /// `replay --as-of` was given a time it cannot read.
    #[error(
        "{input:?} is not a time: use RFC 3339 (2026-11-29T08:00:00Z), a local \"YYYY-MM-DD HH:MM[:SS]\" or \"YYYY-MM-DD\", or Unix seconds"
    )]
    BadTime { input: String },
}

impl ReplayError {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReplayError::AsOfTooEarly { .. } | ReplayError::BadTime { .. } => ErrorClass::Usage,
        }
    }
}
