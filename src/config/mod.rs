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

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fold::json::Pointers;
use crate::io::durable;
use crate::job::segmented::SegmentPolicy;
use crate::schedule::Schedule;

mod builder;
mod edit;
mod ops;
mod segments;

pub use builder::StoreBuilder;
pub use edit::{NewStore, add_store, remove_store};
pub use ops::{DEFAULT_HOOK_TIMEOUT, Hooks};
pub use segments::parse_bytes;

/// One store: a live log plus its policy. Always validated: it comes from
/// [`Config::load`] or [`StoreConfig::builder`] (it cannot be written as a
/// struct literal outside this crate); the fields are there to read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    pub name: String,
    /// The live log; for a segmented store, its `segments` pattern (a path
    /// with `{seq}` in the file name, never opened as a file).
    pub log: PathBuf,
    /// JSON pointers whose values form the key; empty for append-only stores.
    pub key: Vec<String>,
    pub op: Option<String>,
    pub delete: Vec<String>,
    pub schedule: Option<Schedule>,
    pub keep_rotated: usize,
    pub min_growth: f64,
    pub rotate_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Compact even while a process holds the log open for writing without
    /// `O_APPEND` (docs/writers.md, "Writer classes"); off by default.
    pub allow_positional_writers: bool,
    /// Commands run after the record is written (the global ones unless the
    /// store sets its own).
    pub hooks: Hooks,
    /// Set for a segmented store (`segments = ...` instead of `log`).
    pub segments: Option<SegmentPolicy>,
}

impl StoreConfig {
    pub fn is_keyed(&self) -> bool {
        !self.key.is_empty()
    }

    /// The path whose `.lock` sibling is the store's lock: the log itself,
    /// or `<dir>/.<name>` for a segmented store (lock `<dir>/.<name>.lock`).
    pub fn lock_anchor(&self) -> PathBuf {
        match &self.segments {
            Some(p) => p.pattern.lock_anchor(&self.name),
            None => self.log.clone(),
        }
    }
}

/// A loaded config file.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub stores: Vec<StoreConfig>,
    /// The Prometheus textfile rewritten after every run.
    pub metrics_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: Vec<RawStore>,
    // Operations: metrics and hooks (see `ops`).
    metrics_file: Option<String>,
    on_failure: Option<String>,
    on_success: Option<String>,
    hook_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    name: String,
    log: Option<String>,
    segments: Option<String>,
    keep_files: Option<usize>,
    max_bytes: Option<segments::RawBytes>,
    min_compaction_lag: Option<String>,
    delete_retention: Option<String>,
    min_dirty_ratio: Option<f64>,
    file_delete_delay: Option<String>,
    seq: Option<String>,
    #[serde(default)]
    key: Vec<String>,
    op: Option<String>,
    #[serde(default)]
    delete: Vec<String>,
    schedule: Option<String>,
    keep_rotated: Option<usize>,
    min_growth: Option<f64>,
    rotate_bytes: Option<u64>,
    max_age: Option<String>,
    jitter: Option<String>,
    allow_positional_writers: Option<bool>,
    on_failure: Option<String>,
    on_success: Option<String>,
}

pub const DEFAULT_KEEP_ROTATED: usize = 3;

impl Config {
    /// Load and validate the config at `path`; a missing file is [`Error::NoConfig`].
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoConfig {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => {
                return Err(Error::ConfigUnreadable {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        };
        Config::parse(path, &text)
    }

    /// Load, or an empty config if the file does not exist.
    pub fn load_or_empty(path: &Path) -> Result<Config> {
        match Config::load(path) {
            Err(Error::NoConfig { .. }) => Ok(Config {
                path: path.to_path_buf(),
                stores: Vec::new(),
                metrics_file: None,
            }),
            other => other,
        }
    }

    /// Parse and validate config text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| line_col(text, s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            Error::Config {
                path: path.to_path_buf(),
                line,
                col,
                msg: e.message().trim().to_string(),
            }
        })?;
        let base = durable::parent_dir(path);
        let (metrics_file, hooks) = ops::global(path, text, &raw)?;
        let mut stores = Vec::with_capacity(raw.store.len());
        for (i, rs) in raw.store.into_iter().enumerate() {
            let err = |field: &str, msg: String| {
                let line = field_line(text, i, field);
                Error::Config {
                    path: path.to_path_buf(),
                    line,
                    col: None,
                    msg: format!("store #{} `{field}`: {msg}", i + 1),
                }
            };
            stores.push(validate_store(rs, base, &hooks, &err)?);
        }
        for (i, s) in stores.iter().enumerate() {
            if stores[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    line: field_line(text, i, "name"),
                    col: None,
                    msg: format!("store #{} `name`: {:?} is declared twice", i + 1, s.name),
                });
            }
            if let Some(o) = stores[..i].iter().find(|o| o.log == s.log) {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    line: field_line(text, i, "log"),
                    col: None,
                    msg: format!(
                        "store #{} `log`: {} is already the log of store {:?}; two stores cannot share a log",
                        i + 1,
                        s.log.display(),
                        o.name
                    ),
                });
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            stores,
            metrics_file,
        })
    }

    pub fn store(&self, name: &str) -> Result<&StoreConfig> {
        self.stores
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownStore {
                name: name.to_string(),
                config: self.path.clone(),
                known: self.stores.iter().map(|s| s.name.clone()).collect(),
            })
    }

    /// The named stores, in the order given; all stores if `names` is empty
    /// and `all` is set.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<&StoreConfig>> {
        if names.is_empty() {
            if all || self.stores.len() == 1 {
                return Ok(self.stores.iter().collect());
            }
            return Err(if self.stores.is_empty() {
                Error::NoStores {
                    config: self.path.clone(),
                }
            } else {
                Error::NoStoreNamed {
                    config: self.path.clone(),
                    known: self.stores.iter().map(|s| s.name.clone()).collect(),
                }
            });
        }
        names.iter().map(|n| self.store(n)).collect()
    }
}

fn validate_store(
    rs: RawStore,
    base: &Path,
    global_hooks: &Hooks,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<StoreConfig> {
    if rs.name.is_empty()
        || rs.name.starts_with('.')
        || !rs
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(
            "name",
            format!(
                "{:?} is not a valid store name: use letters, digits, '-', '_' and '.', not starting with '.'",
                rs.name
            ),
        ));
    }
    let (log, segments) = segments::kind(&rs, base, err)?;
    Pointers::new(&rs.key).map_err(|m| err("key", m))?;
    if let Some(op) = &rs.op {
        Pointers::new(&[op]).map_err(|m| err("op", m))?;
        if rs.key.is_empty() {
            return Err(err(
                "op",
                "is set but `key` is empty: an operation only means something for a keyed store"
                    .into(),
            ));
        }
    }
    if !rs.delete.is_empty() && rs.op.is_none() {
        return Err(err(
            "delete",
            "is set but `op` is not: say where the operation is (e.g. op = \"/change_type\")"
                .into(),
        ));
    }
    let schedule = rs
        .schedule
        .as_deref()
        .map(Schedule::parse)
        .transpose()
        .map_err(|m| err("schedule", m))?;
    let min_growth = rs.min_growth.unwrap_or(0.0);
    if !(min_growth.is_finite() && min_growth >= 0.0) {
        return Err(err(
            "min_growth",
            format!("{min_growth} must be a fraction >= 0 (0.5 means the log grew by 50%)"),
        ));
    }
    if rs.rotate_bytes == Some(0) {
        return Err(err("rotate_bytes", "must be greater than 0".into()));
    }
    let dur = |field: &str, v: Option<String>| -> Result<Option<Duration>> {
        v.map(|s| parse_duration(&s).map_err(|m| err(field, m)))
            .transpose()
    };
    let segments = segments
        .map(|pattern| segments::policy(pattern, &rs, err))
        .transpose()?;
    Ok(StoreConfig {
        segments,
        name: rs.name,
        log,
        key: rs.key,
        op: rs.op,
        delete: rs.delete,
        schedule,
        keep_rotated: rs.keep_rotated.unwrap_or(DEFAULT_KEEP_ROTATED),
        min_growth,
        rotate_bytes: rs.rotate_bytes,
        max_age: dur("max_age", rs.max_age)?,
        jitter: dur("jitter", rs.jitter)?,
        allow_positional_writers: rs.allow_positional_writers.unwrap_or(false),
        hooks: global_hooks.for_store(rs.on_failure, rs.on_success),
    })
}

/// Expand `~` and make `p` absolute relative to `base`.
pub fn expand_path(p: &str, base: &Path) -> PathBuf {
    let expanded = if p == "~" || p.starts_with("~/") {
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(p.trim_start_matches('~').trim_start_matches('/')),
            None => PathBuf::from(p),
        }
    } else {
        PathBuf::from(p)
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
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

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// The line of `field` in the `index`-th `[[store]]` table (or of the table).
fn field_line(text: &str, index: usize, field: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let tables = doc.get("store")?.as_array_of_tables()?;
    let table = tables.get(index)?;
    let span = table
        .key(field)
        .and_then(|k| k.span())
        .or_else(|| table.span())?;
    Some(line_col(text, span.start).0)
}

#[cfg(test)]
mod tests;
