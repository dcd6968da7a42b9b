//! The daemon's files in the state dir: the single-instance lock
//! (`daemon-<id>.lock`) and the status file (`daemon-<id>.json`) that
//! `status` reads without locking.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::io::durable;
use crate::paths::Paths;
use crate::schedule::install::config_id;

/// One store as the daemon sees it (in the daemon file and `status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonStore {
    pub name: String,
    pub schedule: Option<String>,
    pub next_run: Option<DateTime<Local>>,
    pub running: bool,
    /// Consecutive failed runs.
    pub failures: u32,
    /// No run before this time (backoff after repeated failures).
    pub backoff_until: Option<DateTime<Utc>>,
    /// Growth-triggered stores: the log size the daemon last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_checked_bytes: Option<u64>,
    /// Growth-triggered stores: no growth run before this time
    /// (`min_interval`, or backoff after failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_wait_until: Option<DateTime<Utc>>,
}

/// The daemon file: who runs, since when, and each store's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub config: PathBuf,
    pub version: String,
    /// Why the last reload was refused (the old config is kept), if it was.
    pub config_error: Option<String>,
    pub stores: Vec<DaemonStore>,
}

/// What `status` reports about the daemon of a config.
#[derive(Clone, Debug, Serialize)]
pub struct DaemonStatus {
    /// Whether the process is alive (false: it died without cleaning up).
    pub running: bool,
    #[serde(flatten)]
    pub info: DaemonInfo,
}

pub fn lock_path(state_dir: &Path, config: &Path) -> PathBuf {
    state_dir.join(format!("daemon-{}.lock", config_id(config)))
}

pub fn info_path(state_dir: &Path, config: &Path) -> PathBuf {
    state_dir.join(format!("daemon-{}.json", config_id(config)))
}

/// The daemon of this config as its file says, with liveness checked by pid
/// (never by taking the lock). None when no daemon file exists.
pub fn status(paths: &Paths) -> Option<DaemonStatus> {
    let bytes = std::fs::read(info_path(&paths.state_dir, &paths.config)).ok()?;
    let info: DaemonInfo = serde_json::from_slice(&bytes).ok()?;
    let running = info.host != durable::hostname() || durable::pid_alive(info.pid);
    Some(DaemonStatus { running, info })
}

/// Take the daemon's single-instance lock for this config.
pub(super) fn take_lock(paths: &Paths) -> Result<File> {
    durable::ensure_private_dir(&paths.state_dir)?;
    let path = lock_path(&paths.state_dir, &paths.config);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx("open daemon lock", &path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            let holder = match status(paths) {
                Some(s) => format!(
                    "pid {} on {} since {}",
                    s.info.pid,
                    s.info.host,
                    s.info.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => "another process".into(),
            };
            Err(Error::Lock(crate::error::LockError::DaemonRunning {
                lock: path,
                holder,
            }))
        }
        Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

/// Add what a running daemon knows: its next run time for the store (which
/// accounts for jitter and backoff) and the store's backoff.
pub fn with_daemon(status: &mut crate::status::StoreStatus, daemon: &DaemonStatus) {
    if !daemon.running {
        return;
    }
    let Some(d) = daemon.info.stores.iter().find(|d| d.name == status.name) else {
        return;
    };
    if d.next_run.is_some() {
        status.next_run = d.next_run;
    }
    if let Some(until) = d.growth_wait_until {
        status.notes.push(format!(
            "growth run due: the daemon holds it until {} (min_interval, or backoff after failures)",
            crate::status::fmt_time(until)
        ));
    }
    if let Some(until) = d.backoff_until {
        status.reasons.push(format!(
            "the daemon is backing off until {} after {} failures in a row",
            crate::status::fmt_time(until),
            d.failures
        ));
        status.backoff = Some(crate::status::Backoff {
            failures: d.failures,
            until,
        });
    }
}
