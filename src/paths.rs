//! Where the config and the state live.
//!
//! Config: `--config`, else `$LOGKEEPER_CONFIG`, else
//! `$XDG_CONFIG_HOME/logkeeper/config.toml`, else the platform config dir.
//! State: `--state-dir`, else `$LOGKEEPER_STATE_DIR`, else
//! `$XDG_STATE_HOME/logkeeper`, else the platform state dir (or, where the
//! platform has none, as on macOS, its local data dir).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The resolved config file and state directory.
#[derive(Clone, Debug)]
pub struct Paths {
    pub config: PathBuf,
    pub state_dir: PathBuf,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// XDG base dirs must be absolute; a relative value is ignored per the spec.
fn xdg(var: &str) -> Option<PathBuf> {
    env_path(var).filter(|p| p.is_absolute())
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "logkeeper")
}

/// Make `p` absolute against the current directory, without touching disk.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve path", p, e))
}

impl Paths {
    pub fn resolve(config: Option<&Path>, state_dir: Option<&Path>) -> Result<Paths> {
        let config = match config
            .map(Path::to_path_buf)
            .or_else(|| env_path("LOGKEEPER_CONFIG"))
        {
            Some(p) => p,
            None => match xdg("XDG_CONFIG_HOME") {
                Some(d) => d.join("logkeeper").join("config.toml"),
                None => project_dirs()
                    .map(|d| d.config_dir().join("config.toml"))
                    .ok_or(Error::NoHome {
                        what: "a config directory",
                        hint: "pass --config or set LOGKEEPER_CONFIG",
                    })?,
            },
        };
        let state_dir = match state_dir
            .map(Path::to_path_buf)
            .or_else(|| env_path("LOGKEEPER_STATE_DIR"))
        {
            Some(p) => p,
            None => match xdg("XDG_STATE_HOME") {
                Some(d) => d.join("logkeeper"),
                None => project_dirs()
                    .map(|d| {
                        d.state_dir()
                            .unwrap_or_else(|| d.data_local_dir())
                            .to_path_buf()
                    })
                    .ok_or(Error::NoHome {
                        what: "a state directory",
                        hint: "pass --state-dir or set LOGKEEPER_STATE_DIR",
                    })?,
            },
        };
        Ok(Paths {
            config: absolute(&config)?,
            state_dir: absolute(&state_dir)?,
        })
    }

    /// The directory holding one store's run records.
    pub fn store_state(&self, store: &str) -> PathBuf {
        self.state_dir.join("stores").join(store)
    }
}
