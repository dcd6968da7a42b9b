//! Building a [`StoreConfig`] in code, without a config file: the same
//! fields, defaults and validation as a `[[store]]` table, so a program that
//! embeds logkeeper gets exactly what the TOML would have given it.
//!
//! ```no_run
//! # fn main() -> logkeeper::Result<()> {
//! use logkeeper::StoreConfig;
//! let store = StoreConfig::builder("marshal", "/var/lib/marshal/events.jsonl")
//!     .key(["/item_type", "/item/id"])
//!     .op("/change_type")
//!     .delete(["DEL"])
//!     .schedule("*/30 * * * *")
//!     .keep_rotated(3)
//!     .build()?;
//! assert!(store.is_keyed());
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::time::Duration;

use crate::config::{RawStore, StoreConfig, validate_store};
use crate::error::{Error, Result};

/// A store's fields before validation; [`StoreBuilder::build`] checks them
/// as the config loader does.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct StoreBuilder {
    raw: RawStore,
    /// A log path that is not UTF-8 (the loader takes paths as TOML strings).
    bad_log: bool,
}

impl StoreConfig {
    /// Start a store named `name` whose live log is `log` (a relative path is
    /// taken from the current directory; `~` is expanded). Unset fields take
    /// the config file's defaults: append-only, no schedule,
    /// `keep_rotated = 3`, `min_growth = 0`.
    pub fn builder(name: impl Into<String>, log: impl AsRef<Path>) -> StoreBuilder {
        let log = log.as_ref().to_str();
        StoreBuilder {
            raw: RawStore {
                name: name.into(),
                log: Some(log.unwrap_or_default().to_string()),
                ..RawStore::default()
            },
            bad_log: log.is_none(),
        }
    }
}

impl StoreConfig {
    /// Start a segmented store named `name` on `pattern`, a path whose file
    /// name holds `{seq}` (e.g. `/var/lib/feed/events-{seq}.jsonl`). Unset
    /// fields take the config file's defaults: no retention limit, no key.
    pub fn segmented_builder(name: impl Into<String>, pattern: impl AsRef<Path>) -> StoreBuilder {
        let pattern = pattern.as_ref().to_str();
        StoreBuilder {
            raw: RawStore {
                name: name.into(),
                segments: Some(pattern.unwrap_or_default().to_string()),
                ..RawStore::default()
            },
            bad_log: pattern.is_none(),
        }
    }
}

impl StoreBuilder {
    /// Segmented: the newest sealed segments to keep.
    pub fn keep_files(mut self, n: usize) -> Self {
        self.raw.keep_files = Some(n);
        self
    }

    /// Segmented: the total size to keep the segments under.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.raw.max_bytes = Some(super::segments::RawBytes::Int(bytes));
        self
    }

    /// Segmented, keyed: compact sealed segments only once this old
    /// (whole seconds).
    pub fn min_compaction_lag(mut self, lag: Duration) -> Self {
        self.raw.min_compaction_lag = Some(format!("{}s", lag.as_secs()));
        self
    }

    /// Segmented, keyed: keep tombstones this long (whole seconds).
    pub fn delete_retention(mut self, d: Duration) -> Self {
        self.raw.delete_retention = Some(format!("{}s", d.as_secs()));
        self
    }

    /// Segmented, keyed: compact when this share of sealed bytes is new.
    pub fn min_dirty_ratio(mut self, ratio: f64) -> Self {
        self.raw.min_dirty_ratio = Some(ratio);
        self
    }

    /// Segmented: how long merged inputs stay before deletion (whole
    /// seconds).
    pub fn file_delete_delay(mut self, d: Duration) -> Self {
        self.raw.file_delete_delay = Some(format!("{}s", d.as_secs()));
        self
    }

    /// Segmented: the JSON pointer of each event's seq.
    pub fn seq(mut self, pointer: impl Into<String>) -> Self {
        self.raw.seq = Some(pointer.into());
        self
    }

    /// JSON pointers whose values form the key (empty: append-only).
    pub fn key<S: Into<String>>(mut self, pointers: impl IntoIterator<Item = S>) -> Self {
        self.raw.key = pointers.into_iter().map(Into::into).collect();
        self
    }

    /// The JSON pointer of the operation (needs a key).
    pub fn op(mut self, pointer: impl Into<String>) -> Self {
        self.raw.op = Some(pointer.into());
        self
    }

    /// Values of `op` that delete the key (needs `op`).
    pub fn delete<S: Into<String>>(mut self, values: impl IntoIterator<Item = S>) -> Self {
        self.raw.delete = values.into_iter().map(Into::into).collect();
        self
    }

    /// A 5-field crontab expression in local time.
    pub fn schedule(mut self, expr: impl Into<String>) -> Self {
        self.raw.schedule = Some(expr.into());
        self
    }

    /// Rotated pre-compaction files to keep.
    pub fn keep_rotated(mut self, n: usize) -> Self {
        self.raw.keep_rotated = Some(n);
        self
    }

    /// Compact only when the log grew by this fraction since the last
    /// compaction (0.5 = 50%).
    pub fn min_growth(mut self, fraction: f64) -> Self {
        self.raw.min_growth = Some(fraction);
        self
    }

    /// Append-only stores: rotate the log once it is larger than this.
    pub fn rotate_bytes(mut self, bytes: u64) -> Self {
        self.raw.rotate_bytes = Some(bytes);
        self
    }

    /// Prune rotated files older than this (whole seconds).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.raw.max_age = Some(format!("{}s", age.as_secs()));
        self
    }

    /// A random delay in `[0, jitter)` before each scheduled run (daemon
    /// mode; whole seconds).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.raw.jitter = Some(format!("{}s", jitter.as_secs()));
        self
    }

    /// A shell command run after a failed run (see `ops::hooks`).
    pub fn on_failure(mut self, command: &str) -> Self {
        self.raw.on_failure = Some(command.to_string());
        self
    }

    /// A shell command run after a successful run (see `ops::hooks`).
    pub fn on_success(mut self, command: &str) -> Self {
        self.raw.on_success = Some(command.to_string());
        self
    }

    /// Validate the fields as the config loader does.
    pub fn build(self) -> Result<StoreConfig> {
        let store = self.raw.name.clone();
        let err = |field: &str, msg: String| {
            Error::Config(crate::error::ConfigError::InvalidStore {
                store: store.clone(),
                msg: format!("`{field}`: {msg}"),
            })
        };
        if self.bad_log {
            let field = if self.raw.segments.is_some() {
                "segments"
            } else {
                "log"
            };
            return Err(err(field, "is not valid UTF-8".into()));
        }
        let base =
            std::env::current_dir().map_err(|e| Error::io("find", "current directory", e))?;
        let hooks = super::Hooks {
            timeout: super::DEFAULT_HOOK_TIMEOUT,
            ..Default::default()
        };
        validate_store(self.raw, &base, &hooks, &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn built_store_equals_the_loaded_one() {
        let text = "[[store]]\nname = \"m\"\nlog = \"/tmp/m.jsonl\"\nkey = [\"/t\", \"/id\"]\nop = \"/op\"\ndelete = [\"DEL\"]\nschedule = \"*/30 * * * *\"\nkeep_rotated = 5\nmin_growth = 0.5\nmax_age = \"7d\"\n";
        let loaded = &Config::parse(Path::new("/c.toml"), text).unwrap().stores[0];
        let built = StoreConfig::builder("m", "/tmp/m.jsonl")
            .key(["/t", "/id"])
            .op("/op")
            .delete(["DEL"])
            .schedule("*/30 * * * *")
            .keep_rotated(5)
            .min_growth(0.5)
            .max_age(Duration::from_secs(7 * 86_400))
            .build()
            .unwrap();
        assert_eq!(format!("{built:?}"), format!("{loaded:?}"));
    }

    #[test]
    fn built_segmented_store_equals_the_loaded_one() {
        let text = "[[store]]\nname = \"f\"\nsegments = \"/tmp/f/events-{seq}.jsonl\"\nkeep_files = 50\nmax_bytes = 2147483648\nkey = [\"/a\"]\nmin_compaction_lag = \"1h\"\ndelete_retention = \"1d\"\nmin_dirty_ratio = 0.3\nfile_delete_delay = \"90s\"\nseq = \"/seq\"\n";
        let loaded = &Config::parse(Path::new("/c.toml"), text).unwrap().stores[0];
        let built = StoreConfig::segmented_builder("f", "/tmp/f/events-{seq}.jsonl")
            .keep_files(50)
            .max_bytes(2 << 30)
            .key(["/a"])
            .min_compaction_lag(Duration::from_secs(3600))
            .delete_retention(Duration::from_secs(86_400))
            .min_dirty_ratio(0.3)
            .file_delete_delay(Duration::from_secs(90))
            .seq("/seq")
            .build()
            .unwrap();
        assert_eq!(format!("{built:?}"), format!("{loaded:?}"));
        assert!(
            StoreConfig::segmented_builder("f", "/tmp/f/events.jsonl")
                .build()
                .is_err()
        );
    }

    #[test]
    fn build_validates_like_the_loader() {
        let e = StoreConfig::builder("m", "/tmp/m.jsonl")
            .key(["item"])
            .build()
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Config(crate::error::ConfigError::InvalidStore { .. })
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("`key`"), "{e}");
        let e = StoreConfig::builder("m", "/tmp/m.jsonl")
            .delete(["DEL"])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("`delete`"), "{e}");
        assert!(StoreConfig::builder(".hidden", "/tmp/x").build().is_err());
        assert!(
            StoreConfig::builder("m", "/tmp/m")
                .schedule("every day")
                .build()
                .is_err()
        );
    }
}
