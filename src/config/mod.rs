//! The TOML config: stores and their policies.
//!
//! Invariants:
//! - A loaded [`Config`] is fully validated: pointers compile, schedules
//!   parse, names are unique and usable as directory names, paths are
//!   absolute (`~` expanded, relative paths taken from the config's folder).
//! - Every error names the file, the line and the field.
//! - Edits (`store add` / `store remove`) go through `toml_edit`, so the
//!   user's comments and layout survive, and the edited text is validated
//!   before it atomically replaces the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

mod builder;
mod edit;
mod growth;
mod kind;
mod load;
mod ops;
pub mod pattern;
pub mod schedule;
mod segments;
mod spec;

use load::{RawConfig, RawStore, line_col, valid_name, validate_store};

pub use builder::StoreBuilder;
pub use edit::{NewStore, add_store, remove_store};
pub use growth::GrowthTrigger;
pub use kind::{DEFAULT_KEEP_ROTATED, LogPolicy, SegmentPolicy, StoreKind};
pub use ops::{DEFAULT_HOOK_TIMEOUT, Hooks};
pub use schedule::Schedule;

/// One store: a live log plus its policy. Always validated: it comes from
/// [`Config::load`] or [`StoreConfig::builder`] (it cannot be written as a
/// struct literal outside this crate); the fields are there to read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    pub name: String,
    /// One live log, or a directory of segments, with the settings of
    /// that kind only.
    pub kind: StoreKind,
    /// JSON pointers whose values form the key; empty for append-only stores.
    pub key: Vec<String>,
    pub op: Option<String>,
    pub delete: Vec<String>,
    pub schedule: Option<Schedule>,
    pub max_age: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Compact even while a process holds the log open for writing without
    /// `O_APPEND` (docs/writers.md, "Writer classes"); off by default.
    pub allow_positional_writers: bool,
    /// How a compaction replaces the log (`strategy = "auto"|"swap"|"in-place"`,
    /// docs/writers.md): auto chooses per run from the writer census.
    pub strategy: Strategy,
    /// After a swap, how long the run keeps carrying what lock-less writers
    /// append to the old inode into the live log (`carry_window`, default
    /// 1s), unless every writer has left the old inode sooner.
    pub carry_window: Duration,
    /// Where the writer census cannot see every process (another user's,
    /// another PID namespace), a rotated file is pruned or stops being
    /// watched only once it has been quiet (size and mtime unchanged) this
    /// long: an unseen writer may still append to it. Default 1h.
    pub blind_grace: Duration,
    /// Commands run after the record is written (the global ones unless the
    /// store sets its own).
    pub hooks: Hooks,
    /// The daemon's growth trigger (`growth`, `min_size`, `min_interval`).
    pub growth: Option<GrowthTrigger>,
    /// Where each event's time is (`time = "/created_at"`): `replay
    /// --as-of` then stops exactly at the time asked.
    pub time: Option<String>,
}

impl StoreConfig {
    pub fn is_keyed(&self) -> bool {
        !self.key.is_empty()
    }

    /// The path whose `.lock` sibling is the store's lock: the log itself,
    /// or `<dir>/.<name>` for a segmented store (lock `<dir>/.<name>.lock`).
    pub fn lock_anchor(&self) -> PathBuf {
        match &self.kind {
            StoreKind::Segmented(p) => p.pattern.lock_anchor(&self.name),
            StoreKind::Log(p) => p.log.clone(),
        }
    }

    /// What the store is known by in records and messages: its live log,
    /// or its `segments` pattern (a path with `{seq}`, never opened).
    pub fn path(&self) -> &Path {
        self.kind.path()
    }

    /// The live log, for a store of one log.
    pub fn log(&self) -> Option<&Path> {
        self.log_policy().map(|p| p.log.as_path())
    }

    /// The policy of a store of one log.
    pub fn log_policy(&self) -> Option<&LogPolicy> {
        match &self.kind {
            StoreKind::Log(p) => Some(p),
            StoreKind::Segmented(_) => None,
        }
    }

    /// The policy of a segmented store.
    pub fn segments(&self) -> Option<&SegmentPolicy> {
        match &self.kind {
            StoreKind::Segmented(p) => Some(p),
            StoreKind::Log(_) => None,
        }
    }
}

/// A loaded config file.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub stores: Vec<StoreConfig>,
    /// Stores whose own table is invalid (issue 16 B.8): each is refused on
    /// its own (by name it is a config error), while the others still run.
    /// An error outside the `[[store]]` tables still refuses the whole file.
    pub broken: Vec<BrokenStore>,
    /// The Prometheus textfile rewritten after every run.
    pub metrics_file: Option<PathBuf>,
}

/// A `[[store]]` table that does not validate: its name (as written, if it
/// is a string) and the error, kept apart so that the others can run.
#[derive(Clone, Debug)]
pub struct BrokenStore {
    /// The `name` as written (it may be the invalid part), else `store #N`.
    pub name: String,
    /// The `log` as written, if it is a string.
    pub log: Option<String>,
    /// The line of the offending field (or of the table).
    pub line: Option<usize>,
    /// What is wrong, starting `store #N `field``.
    pub msg: String,
}

impl BrokenStore {
    /// The error for this store, naming the config file and line.
    pub fn error(&self, config: &Path) -> Error {
        Error::Config(crate::error::ConfigError::Invalid {
            path: config.to_path_buf(),
            line: self.line,
            col: None,
            msg: self.msg.clone(),
        })
    }

    /// Whether the name is one a valid store could have (its state may then
    /// be read under that name).
    pub fn has_valid_name(&self) -> bool {
        valid_name(&self.name)
    }
}

/// How a run replaces a keyed or append-only log (docs/writers.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Chosen per run from the writer census and earlier runs.
    #[default]
    Auto,
    /// A new file exchanged in (`RENAME_EXCHANGE`), then a carry window.
    Swap,
    /// Rewritten in place under the writers' `flock`: the inode never changes.
    InPlace,
}

impl Strategy {
    fn parse(s: &str) -> std::result::Result<Strategy, String> {
        match s {
            "auto" => Ok(Strategy::Auto),
            "swap" => Ok(Strategy::Swap),
            "in-place" => Ok(Strategy::InPlace),
            _ => Err(format!(
                "{s:?} is not a strategy: use \"auto\", \"swap\" or \"in-place\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Swap => "swap",
            Strategy::InPlace => "in-place",
        }
    }
}

/// The default `carry_window`.
pub const DEFAULT_CARRY_WINDOW: Duration = Duration::from_secs(1);

/// The default `blind_grace`: how long a rotated file must be quiet before
/// a run with an incomplete census lets it go.
pub const DEFAULT_BLIND_GRACE: Duration = Duration::from_secs(3600);

impl Config {
    /// The broken store of that name, if any.
    pub fn broken(&self, name: &str) -> Option<&BrokenStore> {
        self.broken.iter().find(|b| b.name == name)
    }

    /// The store of that name; a broken one is its config error (a name
    /// declared twice is the first, valid, one).
    pub fn store(&self, name: &str) -> Result<&StoreConfig> {
        if let Some(s) = self.stores.iter().find(|s| s.name == name) {
            return Ok(s);
        }
        if let Some(b) = self.broken(name) {
            return Err(b.error(&self.path));
        }
        Err(Error::Config(crate::error::ConfigError::UnknownStore {
            name: name.to_string(),
            config: self.path.clone(),
            known: self.stores.iter().map(|s| s.name.clone()).collect(),
        }))
    }

    /// The named stores, in the order given; all valid stores if `names` is
    /// empty and `all` is set (the caller reports [`Config::broken`]). A
    /// broken store named, or the only one, is its config error.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<&StoreConfig>> {
        if names.is_empty() {
            if let ([], [only]) = (self.stores.as_slice(), self.broken.as_slice()) {
                return Err(only.error(&self.path));
            }
            if all || self.stores.len() + self.broken.len() == 1 {
                return Ok(self.stores.iter().collect());
            }
            return Err(if self.stores.is_empty() {
                Error::Config(crate::error::ConfigError::NoStores {
                    config: self.path.clone(),
                })
            } else {
                Error::Config(crate::error::ConfigError::NoStoreNamed {
                    config: self.path.clone(),
                    known: self.stores.iter().map(|s| s.name.clone()).collect(),
                })
            });
        }
        names.iter().map(|n| self.store(n)).collect()
    }
}

/// Expand `~` and make `p` absolute relative to `base`, without `.`
/// components (`./events.jsonl` is `base/events.jsonl`, C.15); `..` stays,
/// as it may cross a symlink.
pub fn expand_path(p: &str, base: &Path) -> PathBuf {
    let expanded = if p == "~" || p.starts_with("~/") {
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(p.trim_start_matches('~').trim_start_matches('/')),
            None => PathBuf::from(p),
        }
    } else {
        PathBuf::from(p)
    };
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    absolute.components().collect()
}

/// Parse durations like `90s`, `30m`, `12h`, `7d`, `2w`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. \"90s\", \"30m\", \"12h\", \"7d\")"))?;
    let secs = match unit.trim() {
        "s" | "" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long a duration"))
}

#[cfg(test)]
mod tests;
