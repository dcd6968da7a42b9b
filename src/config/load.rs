//! Loading the config: TOML text to validated [`Config`] and
//! [`StoreConfig`], each `[[store]]` table on its own, every error naming
//! the file, the line and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{
    BrokenStore, Config, DEFAULT_BLIND_GRACE, DEFAULT_CARRY_WINDOW, DEFAULT_KEEP_ROTATED, Hooks,
    LogPolicy, Schedule, StoreConfig, StoreKind, Strategy, growth, ops, parse_duration, segments,
};
use crate::error::{Error, Result};
use crate::fold::json::Pointers;
use crate::io::durable;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Each store is checked on its own (see [`Config::broken`]).
    #[serde(default)]
    pub(super) store: Vec<toml::Table>,
    // Operations: metrics and hooks (see `ops`).
    pub(super) metrics_file: Option<String>,
    pub(super) on_failure: Option<String>,
    pub(super) on_success: Option<String>,
    pub(super) hook_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) name: String,
    pub(super) log: Option<String>,
    pub(super) segments: Option<String>,
    pub(super) keep_files: Option<usize>,
    pub(super) max_bytes: Option<segments::RawBytes>,
    pub(super) min_compaction_lag: Option<String>,
    pub(super) delete_retention: Option<String>,
    pub(super) min_dirty_ratio: Option<f64>,
    pub(super) file_delete_delay: Option<String>,
    pub(super) seq: Option<String>,
    #[serde(default)]
    pub(super) key: Vec<String>,
    pub(super) op: Option<String>,
    #[serde(default)]
    pub(super) delete: Vec<String>,
    pub(super) schedule: Option<String>,
    pub(super) keep_rotated: Option<usize>,
    pub(super) min_growth: Option<f64>,
    pub(super) rotate_bytes: Option<u64>,
    pub(super) max_age: Option<String>,
    pub(super) jitter: Option<String>,
    pub(super) allow_positional_writers: Option<bool>,
    pub(super) strategy: Option<String>,
    pub(super) carry_window: Option<String>,
    pub(super) blind_grace: Option<String>,
    pub(super) on_failure: Option<String>,
    pub(super) on_success: Option<String>,
    pub(super) growth: Option<f64>,
    pub(super) min_size: Option<segments::RawBytes>,
    pub(super) min_interval: Option<String>,
    pub(super) time: Option<String>,
}

impl Config {
    /// Load and validate the config at `path`; a missing file is [`ConfigError::NoConfig`](crate::error::ConfigError::NoConfig).
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Config(crate::error::ConfigError::NoConfig {
                    path: path.to_path_buf(),
                }));
            }
            Err(e) => {
                return Err(Error::Config(crate::error::ConfigError::ConfigUnreadable {
                    path: path.to_path_buf(),
                    source: e,
                }));
            }
        };
        Config::parse(path, &text)
    }

    /// Load, or an empty config if the file does not exist.
    pub fn load_or_empty(path: &Path) -> Result<Config> {
        match Config::load(path) {
            Err(Error::Config(crate::error::ConfigError::NoConfig { .. })) => Ok(Config {
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
            Error::Config(crate::error::ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                col,
                msg: e.message().trim().to_string(),
            })
        })?;
        let base = durable::parent_dir(path);
        let (metrics_file, hooks) = ops::global(path, text, &raw)?;
        let spans = store_spans(text);
        let mut stores: Vec<StoreConfig> = Vec::with_capacity(raw.store.len());
        let mut broken = Vec::new();
        for (i, table) in raw.store.into_iter().enumerate() {
            let err = |field: &str, msg: String| {
                Error::Config(crate::error::ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: field_line(text, i, field),
                    col: None,
                    msg: format!("store #{} `{field}`: {msg}", i + 1),
                })
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
                Err(Error::Config(crate::error::ConfigError::Invalid { line, msg, .. })) => {
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
    result.map_err(|(line, msg)| {
        Error::Config(crate::error::ConfigError::Invalid {
            path: PathBuf::new(),
            line,
            col: None,
            msg: format!("store #{}: {msg}", index + 1),
        })
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

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn validate_store(
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
    check_fold(&rs, err)?;
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

/// The fold settings: `key` pointers, `op` only with a key, `delete` only
/// with `op`.
fn check_fold(rs: &RawStore, err: &dyn Fn(&str, String) -> Error) -> Result<()> {
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
    Ok(())
}
