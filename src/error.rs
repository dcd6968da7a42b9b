//! The library's one error type. Every variant says what failed and on which
//! file; [`Error::class`] says whose move it is (the caller's input, a busy
//! lock, or a failure), which the CLI maps to its exit codes.

use std::path::{Path, PathBuf};

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed on a named file.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The config file is malformed or names an invalid value.
    #[error("{}{}: {msg}", path.display(), location(*line, *col))]
    Config {
        path: PathBuf,
        line: Option<usize>,
        col: Option<usize>,
        msg: String,
    },

    /// No config file where one was expected.
    #[error(
        "no config file at {}: create one with `logkeeper store add NAME --log PATH`, or pass --config",
        path.display()
    )]
    NoConfig { path: PathBuf },

    /// A store name that the config does not declare.
    #[error("no store named {name:?} in {}{}", config.display(), known_list(known))]
    UnknownStore {
        name: String,
        config: PathBuf,
        known: Vec<String>,
    },

    /// Bad input given on the command line or through the library API.
    #[error("{0}")]
    Usage(String),

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

    /// A line handed to the writer is not one valid JSON value.
    #[error("line {index} is not a single valid JSON value ({reason}); nothing was written")]
    InvalidLine { index: usize, reason: String },

    /// The log is not something logkeeper can compact (a directory, a device...).
    #[error("{}: {msg}", path.display())]
    BadLog { path: PathBuf, msg: String },
}

fn location(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn known_list(known: &[String]) -> String {
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
            Error::Config { .. }
            | Error::NoConfig { .. }
            | Error::UnknownStore { .. }
            | Error::Usage(_)
            | Error::InvalidLine { .. } => ErrorClass::Usage,
            Error::Busy { .. } | Error::DaemonRunning { .. } => ErrorClass::Busy,
            Error::Io { .. } | Error::BadLog { .. } => ErrorClass::Failed,
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

/// Attach an operation and a path to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
