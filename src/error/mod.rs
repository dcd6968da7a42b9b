//! The library's errors: one enum per operation ([`ConfigError`],
//! [`LockError`], [`SyncError`], [`ReplayError`], [`ScheduleError`],
//! [`AppendError`]), each converting into the umbrella [`Error`] that every
//! function returns. Every variant says what failed and on which file;
//! [`Error::class`] (and each enum's `class`) says whose move it is (the
//! caller's input, a busy lock, or a failure), which the CLI maps to its exit
//! codes. The umbrella's messages are its inner error's, unchanged. Messages
//! do not name CLI commands or flags: the CLI adds those as hints.

use std::path::{Path, PathBuf};

mod append;
mod config;
mod lock;
mod replay;
mod schedule;
mod sync;

pub use append::AppendError;
pub use config::ConfigError;
pub use lock::LockError;
pub use replay::ReplayError;
pub use schedule::ScheduleError;
pub use sync::SyncError;
pub use sync::{Digest, Verification};

/// Whose move an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The input is wrong (arguments, config): fix it and retry.
    Usage,
    /// Another process holds a lock: retry later (or wait).
    Busy,
    /// Something failed while doing the work.
    Failed,
}

/// Everything that can go wrong: the error of the operation that failed, or
/// an I/O failure on a named file common to all of them. Each variant names
/// what failed and on which file, and keeps the underlying error as its
/// `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading, editing or choosing from the config (and a store built in code).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Taking a single-flight lock: a store's, or the daemon's.
    #[error(transparent)]
    Lock(#[from] LockError),

    /// One run of the job (sync, compaction) on a store's log.
    #[error(transparent)]
    Sync(#[from] SyncError),

    /// Replaying a store as of a time.
    #[error(transparent)]
    Replay(#[from] ReplayError),

    /// Registering the schedules with the OS scheduler.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),

    /// Appending lines by the writer protocol.
    #[error(transparent)]
    Append(#[from] AppendError),

    /// An I/O operation failed on a named file.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `demo DIR` on a directory with files of its own.
    #[error("{} is not empty and was not made by `logkeeper demo`: the demo would overwrite files there; give a new or empty directory", dir.display())]
    DemoDirInUse { dir: PathBuf },

    /// No home directory to derive a default location from.
    #[error("cannot find {what} (no home directory): {hint}")]
    NoHome {
        what: &'static str,
        hint: &'static str,
    },

    /// A record could not be encoded as JSON (a path in it is not UTF-8).
    #[error("cannot encode {what} for {} as JSON: {source}", path.display())]
    Encode {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A name beside the log or in the state dir that another user could
    /// have planted, a directory they can write, or an owner the run cannot
    /// keep: refused before anything is changed (G8).
    #[error("{}: {msg}", path.display())]
    Unsafe { path: PathBuf, msg: String },
}

pub(super) fn location(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

pub(super) fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it declares no stores)".into()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

impl Error {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(e) => e.class(),
            Error::Lock(e) => e.class(),
            Error::Sync(e) => e.class(),
            Error::Replay(e) => e.class(),
            Error::Schedule(e) => e.class(),
            Error::Append(e) => e.class(),
            Error::DemoDirInUse { .. } | Error::NoHome { .. } => ErrorClass::Usage,
            Error::Io { .. } | Error::Encode { .. } | Error::Unsafe { .. } => ErrorClass::Failed,
        }
    }

    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `value` as JSON (pretty or compact) for the file at `path`. Fails only
/// on values serde_json cannot encode, such as a path that is not UTF-8.
pub(crate) fn to_json<T: serde::Serialize>(
    what: &'static str,
    path: &Path,
    value: &T,
    pretty: bool,
) -> Result<Vec<u8>> {
    let r = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    r.map_err(|source| Error::Encode {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Attach an operation and a path to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
