//! The library's one error type. Every variant says what failed and on which
//! file; [`Error::code`] maps it to the exit codes of the product contract
//! (0 ok, 1 run failed, 2 usage/config, 3 overdue, 75 busy).

use std::path::{Path, PathBuf};

/// Exit code: a run failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: status found a store overdue or never run.
pub const EXIT_OVERDUE: u8 = 3;
/// Exit code: the store's lock is held by another run (sysexits EX_TEMPFAIL).
pub const EXIT_BUSY: u8 = 75;

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
    /// The process exit code this error maps to.
    pub fn code(&self) -> u8 {
        match self {
            Error::Config { .. }
            | Error::NoConfig { .. }
            | Error::UnknownStore { .. }
            | Error::Usage(_)
            | Error::InvalidLine { .. } => EXIT_USAGE,
            Error::Busy { .. } | Error::DaemonRunning { .. } => EXIT_BUSY,
            Error::Io { .. } | Error::BadLog { .. } => EXIT_FAILED,
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
