//! The operations settings: `metrics_file`, `on_failure`, `on_success`,
//! `hook_timeout` (top level), and a store's own `on_failure` /
//! `on_success`.
//!
//! Invariants: a store's own hook overrides the global one and an empty
//! string turns it off; `metrics_file` is absolute (relative to the config's
//! folder); errors name the file, the line and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{RawConfig, expand_path, line_col, parse_duration};
use crate::error::{Error, Result};
use crate::io::durable;

/// A store's hooks, resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hooks {
    pub on_failure: Option<String>,
    pub on_success: Option<String>,
    /// How long a hook may run before it (and its process group) is killed.
    pub timeout: Duration,
}

pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

impl Hooks {
    /// A store's hooks: its own, else these (the global ones).
    pub(super) fn for_store(
        &self,
        on_failure: Option<String>,
        on_success: Option<String>,
    ) -> Hooks {
        Hooks {
            on_failure: own_or(on_failure, &self.on_failure),
            on_success: own_or(on_success, &self.on_success),
            timeout: self.timeout,
        }
    }
}

fn own_or(own: Option<String>, global: &Option<String>) -> Option<String> {
    match own {
        Some(c) if c.trim().is_empty() => None,
        Some(c) => Some(c),
        None => global.clone(),
    }
}

/// Validate the top-level fields: the metrics file and the global hooks.
pub(super) fn global(path: &Path, text: &str, raw: &RawConfig) -> Result<(Option<PathBuf>, Hooks)> {
    let err = |field: &str, msg: String| {
        Error::Config(crate::error::ConfigError::Invalid {
            path: path.to_path_buf(),
            line: global_line(text, field),
            col: None,
            msg: format!("`{field}`: {msg}"),
        })
    };
    let metrics_file = match raw.metrics_file.as_deref() {
        Some(m) if m.trim().is_empty() => {
            return Err(err(
                "metrics_file",
                "is empty: give a path ending in .prom in node_exporter's textfile directory"
                    .into(),
            ));
        }
        Some(m) => Some(expand_path(m, durable::parent_dir(path))),
        None => None,
    };
    let timeout = match &raw.hook_timeout {
        Some(t) => parse_duration(t).map_err(|m| err("hook_timeout", m))?,
        None => DEFAULT_HOOK_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(err("hook_timeout", "must be greater than 0".into()));
    }
    let hooks = Hooks {
        on_failure: raw.on_failure.clone().filter(|c| !c.trim().is_empty()),
        on_success: raw.on_success.clone().filter(|c| !c.trim().is_empty()),
        timeout,
    };
    Ok((metrics_file, hooks))
}

/// The line of a top-level `field` (before the first table).
fn global_line(text: &str, field: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let span = doc.as_table().key(field).and_then(|k| k.span())?;
    Some(line_col(text, span.start).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn ops_settings_resolve_and_their_errors_name_line_and_field() {
        let text = "metrics_file = \"m/lk.prom\"\non_failure = \"notify\"\non_success = \"ping\"\n\n[[store]]\nname = \"a\"\nlog = \"/a\"\non_failure = \"mine\"\n\n[[store]]\nname = \"b\"\nlog = \"/b\"\non_success = \"\"\n";
        let c = Config::parse(Path::new("/etc/lk/c.toml"), text).unwrap();
        assert_eq!(
            c.metrics_file.as_deref(),
            Some(Path::new("/etc/lk/m/lk.prom"))
        );
        let (a, b) = (&c.stores[0].hooks, &c.stores[1].hooks);
        assert_eq!(a.on_failure.as_deref(), Some("mine"));
        assert_eq!(a.on_success.as_deref(), Some("ping"));
        assert_eq!(b.on_failure.as_deref(), Some("notify"));
        assert_eq!(b.on_success, None);
        assert_eq!(a.timeout, DEFAULT_HOOK_TIMEOUT);

        let e = Config::parse(Path::new("/c.toml"), "\nhook_timeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/c.toml:2") && e.contains("`hook_timeout`"),
            "{e}"
        );
        let e = Config::parse(Path::new("/c.toml"), "metrics_file = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/c.toml:1") && e.contains("`metrics_file`"),
            "{e}"
        );
    }
}
