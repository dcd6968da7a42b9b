//! Taking a single-flight lock: a store's, or the daemon's.

use std::path::PathBuf;

use super::ErrorClass;

/// Taking a single-flight lock: a store's, or the daemon's.
///
/// Each variant names what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The store's single-flight lock is held by another run.
    #[error("store {store:?} is busy: {holder} holds {}", lock.display())]
    Busy {
        store: String,
        lock: PathBuf,
        holder: String,
    },

    /// A daemon already runs for this config (its single-instance lock is held).
    #[error("a logkeeper daemon already runs for this config ({holder}; lock {})", lock.display())]
    DaemonRunning { lock: PathBuf, holder: String },
}

impl LockError {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            LockError::Busy { .. } | LockError::DaemonRunning { .. } => ErrorClass::Busy,
        }
    }
}
