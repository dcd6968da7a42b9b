//! Loading, editing or choosing from the config (and a store built in code).

use std::path::PathBuf;

use super::ErrorClass;

use super::{known_list, location};

/// Loading, editing or choosing from the config (and a store built in code).
///
/// Each variant names what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file is malformed or names an invalid value.
    #[error("{}{}: {msg}", path.display(), location(*line, *col))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        col: Option<usize>,
        msg: String,
    },

    /// A store built in code (not loaded from a file) is invalid.
    #[error("store {store:?}: {msg}")]
    InvalidStore { store: String, msg: String },

    /// The config path exists but cannot be read as text (a directory,
    /// not UTF-8, no permission): a usage error, like a malformed config.
    #[error("cannot read config {}: {source} (point --config or LOGKEEPER_CONFIG at a TOML file)", path.display())]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// No config file where one was expected.
    #[error("no config file at {}", path.display())]
    NoConfig { path: PathBuf },

    /// A store name that the config does not declare.
    #[error("no store named {name:?} in {}{}", config.display(), known_list(known))]
    UnknownStore {
        name: String,
        config: PathBuf,
        known: Vec<String>,
    },

    /// Adding a store under a name the config already declares.
    #[error("a store named {name:?} already exists in {}", config.display())]
    StoreExists { name: String, config: PathBuf },

    /// The config declares no stores to act on.
    #[error("{} declares no stores", config.display())]
    NoStores { config: PathBuf },

    /// Several stores and none named (nor all asked for).
    #[error("{} declares several stores and none was named (stores: {})", config.display(), known.join(", "))]
    NoStoreNamed { config: PathBuf, known: Vec<String> },

    /// An operation for one kind of store asked of the other kind.
    #[error("store {store:?}: {msg}")]
    WrongStoreKind { store: String, msg: &'static str },
}

impl ConfigError {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConfigError::Invalid { .. }
            | ConfigError::InvalidStore { .. }
            | ConfigError::ConfigUnreadable { .. }
            | ConfigError::NoConfig { .. }
            | ConfigError::UnknownStore { .. }
            | ConfigError::StoreExists { .. }
            | ConfigError::NoStores { .. }
            | ConfigError::NoStoreNamed { .. }
            | ConfigError::WrongStoreKind { .. } => ErrorClass::Usage,
        }
    }
}
