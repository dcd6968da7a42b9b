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

mod builder;
mod edit;
mod growth;
mod kind;
mod ops;
pub mod pattern;
pub mod schedule;
mod segments;

pub use builder::StoreBuilder;
pub use edit::{NewStore, add_store, remove_store};
pub use growth::{DEFAULT_MIN_INTERVAL, DEFAULT_MIN_SIZE, GrowthTrigger};
pub use kind::{
    DEFAULT_DELETE_RETENTION, DEFAULT_FILE_DELETE_DELAY, DEFAULT_KEEP_ROTATED,
    DEFAULT_MIN_DIRTY_RATIO, LogPolicy, SegmentPolicy, StoreKind,
};
pub use ops::{DEFAULT_HOOK_TIMEOUT, Hooks};
pub use schedule::Schedule;
pub use segments::parse_bytes;

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
        Error::Config {
            path: config.to_path_buf(),
            line: self.line,
            col: None,
            msg: self.msg.clone(),
        }
    }

    /// Whether the name is one a valid store could have (its state may then
    /// be read under that name).
    pub fn has_valid_name(&self) -> bool {
        valid_name(&self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Each store is checked on its own (see [`Config::broken`]).
    #[serde(default)]
    store: Vec<toml::Table>,
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
    strategy: Option<String>,
    carry_window: Option<String>,
    blind_grace: Option<String>,
    on_failure: Option<String>,
    on_success: Option<String>,
    growth: Option<f64>,
    min_size: Option<segments::RawBytes>,
    min_interval: Option<String>,
    time: Option<String>,
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
                broken: Vec::new(),
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
        let spans = store_spans(text);
        let mut stores: Vec<StoreConfig> = Vec::with_capacity(raw.store.len());
        let mut broken = Vec::new();
        for (i, table) in raw.store.into_iter().enumerate() {
            let err = |field: &str, msg: String| Error::Config {
                path: path.to_path_buf(),
                line: field_line(text, i, field),
                col: None,
                msg: format!("store #{} `{field}`: {msg}", i + 1),
            };
            let checked = raw_store(text, spans.get(i).cloned(), &table, i)
                .and_then(|rs| validate_store(rs, base, &hooks, &err))
                .and_then(|s| {
                    if stores.iter().any(|o| o.name == s.name) {
                        return Err(err("name", format!("{:?} is declared twice", s.name)));
                    }
                    if let Some(o) = stores.iter().find(|o| o.path() == s.path()) {
                        return Err(err(
                            "log",
                            format!(
                                "{} is already the log of store {:?}; two stores cannot share a log",
                                s.path().display(),
                                o.name
                            ),
                        ));
                    }
                    Ok(s)
                });
            match checked {
                Ok(s) => stores.push(s),
                Err(Error::Config { line, msg, .. }) => {
                    let text_of = |k: &str| table.get(k).and_then(|v| v.as_str()).map(String::from);
                    broken.push(BrokenStore {
                        name: text_of("name").unwrap_or_else(|| format!("store #{}", i + 1)),
                        log: text_of("log").or_else(|| text_of("segments")),
                        line,
                        msg,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            stores,
            broken,
            metrics_file,
        })
    }

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
        Err(Error::UnknownStore {
            name: name.to_string(),
            config: self.path.clone(),
            known: self.stores.iter().map(|s| s.name.clone()).collect(),
        })
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

/// Deserialize the `index`-th store from its own text (`span`, from its
/// `[[store]]` header to its last value), so that an error names the line
/// in the file; from the parsed table if its text cannot be told apart
/// (an inline `store = [...]`).
fn raw_store(
    text: &str,
    span: Option<std::ops::Range<usize>>,
    table: &toml::Table,
    index: usize,
) -> Result<RawStore> {
    #[derive(Deserialize)]
    struct One {
        store: Vec<RawStore>,
    }
    let located = span.and_then(|span| {
        let own = text.get(span.clone())?;
        Some(match toml::from_str::<One>(own) {
            Ok(mut one) if one.store.len() == 1 => Ok(one.store.remove(0)),
            Ok(_) => return None,
            Err(e) => Err((
                e.span().map(|s| line_col(text, span.start + s.start).0),
                e.message().trim().to_string(),
            )),
        })
    });
    let result = located.unwrap_or_else(|| {
        RawStore::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| (field_line(text, index, ""), e.message().trim().to_string()))
    });
    result.map_err(|(line, msg)| Error::Config {
        path: PathBuf::new(),
        line,
        col: None,
        msg: format!("store #{}: {msg}", index + 1),
    })
}

/// The text span of each `[[store]]` table, in order.
fn store_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Vec::new();
    };
    doc.get("store")
        .and_then(|s| s.as_array_of_tables())
        .map(|a| a.iter().filter_map(|t| t.span()).collect())
        .unwrap_or_default()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn validate_store(
    rs: RawStore,
    base: &Path,
    global_hooks: &Hooks,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<StoreConfig> {
    if !valid_name(&rs.name) {
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
    let kind = match segments {
        Some(pattern) => StoreKind::Segmented(segments::policy(pattern, &rs, err)?),
        None => StoreKind::Log(LogPolicy {
            log,
            keep_rotated: rs.keep_rotated.unwrap_or(DEFAULT_KEEP_ROTATED),
            min_growth,
            rotate_bytes: rs.rotate_bytes,
        }),
    };
    let growth = growth::trigger(&rs, err)?;
    let time = growth::time_pointer(&rs, err)?;
    Ok(StoreConfig {
        growth,
        time,
        kind,
        name: rs.name,
        key: rs.key,
        op: rs.op,
        delete: rs.delete,
        schedule,
        max_age: dur("max_age", rs.max_age)?,
        jitter: dur("jitter", rs.jitter)?,
        allow_positional_writers: rs.allow_positional_writers.unwrap_or(false),
        strategy: rs
            .strategy
            .as_deref()
            .map(Strategy::parse)
            .transpose()
            .map_err(|m| err("strategy", m))?
            .unwrap_or_default(),
        carry_window: dur("carry_window", rs.carry_window)?.unwrap_or(DEFAULT_CARRY_WINDOW),
        blind_grace: dur("blind_grace", rs.blind_grace)?.unwrap_or(DEFAULT_BLIND_GRACE),
        hooks: global_hooks.for_store(rs.on_failure, rs.on_success),
    })
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
