//! Edits of the config file (`store add` / `store remove`) through
//! `toml_edit`, so comments and layout survive; the edited text is validated
//! before it atomically replaces the file.

use std::path::{Path, PathBuf};

use crate::config::{Config, line_col};
use crate::error::{Error, IoContext, Result};
use crate::io::durable;

/// A new store's fields, as `store add` takes them.
#[derive(Clone, Debug, Default)]
pub struct NewStore {
    pub name: String,
    pub log: PathBuf,
    pub key: Vec<String>,
    pub op: Option<String>,
    pub delete: Vec<String>,
    pub schedule: Option<String>,
    pub keep_rotated: Option<usize>,
    /// A segmented store: this pattern is written as `segments` instead of
    /// `log`, with the retention and compaction settings below.
    pub segments: Option<PathBuf>,
    pub keep_files: Option<usize>,
    pub max_age: Option<String>,
    pub max_bytes: Option<String>,
    pub min_compaction_lag: Option<String>,
    pub delete_retention: Option<String>,
    pub min_dirty_ratio: Option<f64>,
    pub seq: Option<String>,
    /// Single-file stores: compact only past this growth (`min_growth`).
    pub min_growth: Option<f64>,
    /// Append-only single-file stores: rotate past this size.
    pub rotate_bytes: Option<u64>,
    /// A random delay before scheduled runs, e.g. "5m".
    pub jitter: Option<String>,
    /// Segmented stores: how long merged inputs wait before deletion.
    pub file_delete_delay: Option<String>,
    /// The daemon's growth trigger: `growth`, `min_size`, `min_interval`.
    pub growth: Option<f64>,
    pub min_size: Option<String>,
    pub min_interval: Option<String>,
    /// Where each event's time is, for `replay --as-of`.
    pub time: Option<String>,
}

/// Add a store to the config file (creating it), keeping its comments.
pub fn add_store(config_path: &Path, new: &NewStore) -> Result<Config> {
    let text = read_or_empty(config_path)?;
    let mut doc = edit_doc(config_path, &text)?;
    let current = Config::parse(config_path, &text)?;
    if current.stores.iter().any(|s| s.name == new.name) || current.broken(&new.name).is_some() {
        return Err(Error::Config(crate::error::ConfigError::StoreExists {
            name: new.name.clone(),
            config: config_path.to_path_buf(),
        }));
    }
    let mut t = store_table(config_path, new)?;
    match doc.get_mut("store") {
        Some(item) => item
            .as_array_of_tables_mut()
            .ok_or_else(|| {
                Error::Config(crate::error::ConfigError::Invalid {
                    path: config_path.to_path_buf(),
                    line: None,
                    col: None,
                    msg: "`store` must be an array of tables ([[store]])".into(),
                })
            })?
            .push(t),
        None => {
            // Comments in a file without tables are trailing decor, which
            // would print after the new table: keep them above it instead.
            let trailing = doc.trailing().as_str().unwrap_or("").to_string();
            if !trailing.trim().is_empty() {
                let sep = if trailing.ends_with("\n\n") { "" } else { "\n" };
                t.decor_mut().set_prefix(format!("{trailing}{sep}"));
                doc.set_trailing("");
            }
            let mut arr = toml_edit::ArrayOfTables::new();
            arr.push(t);
            doc.insert("store", toml_edit::Item::ArrayOfTables(arr));
        }
    }
    let added = Config::parse(config_path, &doc.to_string())?;
    // The new store is the last table: its error is about the arguments,
    // not about a line of a file that was never written (C.15).
    if let Some(b) = added.broken.iter().find(|b| b.name == new.name) {
        let msg = b
            .msg
            .strip_prefix("store #")
            .and_then(|r| r.split_once(' '))
            .map_or(b.msg.as_str(), |(_, m)| m);
        return Err(Error::Config(crate::error::ConfigError::InvalidStore {
            store: new.name.clone(),
            msg: format!("{msg} (nothing was written to {})", config_path.display()),
        }));
    }
    write_validated(config_path, &doc.to_string())
}

/// The `[[store]]` table of `new`: only the fields it sets.
fn store_table(config_path: &Path, new: &NewStore) -> Result<toml_edit::Table> {
    let mut t = toml_edit::Table::new();
    t["name"] = toml_edit::value(new.name.as_str());
    match &new.segments {
        Some(p) => t["segments"] = toml_edit::value(p.to_string_lossy().as_ref()),
        None => t["log"] = toml_edit::value(new.log.to_string_lossy().as_ref()),
    }
    if !new.key.is_empty() {
        t["key"] = toml_edit::value(string_array(&new.key));
    }
    if let Some(op) = &new.op {
        t["op"] = toml_edit::value(op.as_str());
    }
    if !new.delete.is_empty() {
        t["delete"] = toml_edit::value(string_array(&new.delete));
    }
    if let Some(s) = &new.schedule {
        t["schedule"] = toml_edit::value(s.as_str());
    }
    if let Some(k) = new.keep_rotated {
        t["keep_rotated"] = toml_edit::value(k as i64);
    }
    if let Some(k) = new.keep_files {
        t["keep_files"] = toml_edit::value(k as i64);
    }
    for (field, v) in [
        ("max_age", &new.max_age),
        ("max_bytes", &new.max_bytes),
        ("min_compaction_lag", &new.min_compaction_lag),
        ("delete_retention", &new.delete_retention),
        ("seq", &new.seq),
        ("jitter", &new.jitter),
        ("file_delete_delay", &new.file_delete_delay),
        ("min_size", &new.min_size),
        ("min_interval", &new.min_interval),
        ("time", &new.time),
    ] {
        if let Some(v) = v {
            t[field] = toml_edit::value(v.as_str());
        }
    }
    if let Some(r) = new.min_dirty_ratio {
        t["min_dirty_ratio"] = toml_edit::value(r);
    }
    if let Some(g) = new.min_growth {
        t["min_growth"] = toml_edit::value(g);
    }
    if let Some(g) = new.growth {
        t["growth"] = toml_edit::value(g);
    }
    if let Some(b) = new.rotate_bytes {
        // TOML integers are i64; a larger limit is refused, not wrapped.
        let b = i64::try_from(b).map_err(|_| {
            Error::Config(crate::error::ConfigError::Invalid {
                path: config_path.to_path_buf(),
                line: None,
                col: None,
                msg: format!("`rotate_bytes`: {b} is too large"),
            })
        })?;
        t["rotate_bytes"] = toml_edit::value(b);
    }
    Ok(t)
}

/// Remove a store from the config file, keeping everything else.
pub fn remove_store(config_path: &Path, name: &str) -> Result<Config> {
    // One read: the text validated is the text edited.
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Config(crate::error::ConfigError::NoConfig {
                path: config_path.to_path_buf(),
            }));
        }
        Err(e) => return Err(Error::io("read config", config_path, e)),
    };
    let current = Config::parse(config_path, &text)?;
    let mut doc = edit_doc(config_path, &text)?;
    // By the table's `name`: a broken store can be removed too (B.8).
    let index = doc
        .get("store")
        .and_then(toml_edit::Item::as_array_of_tables)
        .and_then(|a| {
            a.iter()
                .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
        })
        .ok_or_else(|| {
            Error::Config(crate::error::ConfigError::UnknownStore {
                name: name.to_string(),
                config: config_path.to_path_buf(),
                known: current.stores.iter().map(|s| s.name.clone()).collect(),
            })
        })?;
    let Some(arr) = doc
        .get_mut("store")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
    else {
        // The store was found above, so `store` is an array of tables.
        return Err(Error::Config(crate::error::ConfigError::Invalid {
            path: config_path.to_path_buf(),
            line: None,
            col: None,
            msg: "`store` is not an array of tables".into(),
        }));
    };
    // Comments above the removed table, up to its last blank line, belong to
    // what precedes it (a file header, say): hand them to the next table.
    let prefix = arr
        .get(index)
        .and_then(|t| t.decor().prefix())
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    let header = prefix.rfind("\n\n").map(|i| &prefix[..i + 2]).unwrap_or("");
    arr.remove(index);
    let moved = header.to_string();
    if let Some(next) = arr.get_mut(index) {
        let own = next
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        next.decor_mut().set_prefix(format!("{moved}{own}"));
    } else if !moved.is_empty() {
        let trailing = doc.trailing().as_str().unwrap_or("").to_string();
        doc.set_trailing(format!("{moved}{trailing}"));
    }
    if doc["store"]
        .as_array_of_tables()
        .is_some_and(|a| a.is_empty())
    {
        doc.remove("store");
    }
    write_validated(config_path, &doc.to_string())
}

/// `text` as an editable document.
fn edit_doc(path: &Path, text: &str) -> Result<toml_edit::DocumentMut> {
    text.parse().map_err(|e: toml_edit::TomlError| {
        Error::Config(crate::error::ConfigError::Invalid {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_col(text, s.start).0),
            col: None,
            msg: e.message().trim().to_string(),
        })
    })
}

fn string_array(v: &[String]) -> toml_edit::Array {
    v.iter().map(String::as_str).collect()
}

fn read_or_empty(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("read config", path, e)),
    }
}

fn write_validated(path: &Path, text: &str) -> Result<Config> {
    let config = Config::parse(path, text)?;
    std::fs::create_dir_all(durable::parent_dir(path))
        .ctx("create directory", durable::parent_dir(path))?;
    durable::atomic_write(path, text.as_bytes(), 0o644)?;
    Ok(config)
}
