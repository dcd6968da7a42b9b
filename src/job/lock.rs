//! The per-store single-flight lock (G5; guarantees and the holder format
//! are in docs/design.md).
//!
//! Invariants:
//! - The lock is the file `<log>.lock` beside the log. It is never unlinked:
//!   unlinking would let a second process lock a fresh inode under the same
//!   name while the first still holds the old one.
//! - Exclusion comes from an OS `flock` on that file, so the kernel releases
//!   it when the holder dies; a killed run never leaves a stale lock.
//! - While held, the file contains one JSON object, the [`Holder`]: pid, host,
//!   start time, trigger and version, and nothing else. The holder empties it
//!   before unlocking; a non-empty file whose pid is dead is a leftover of a
//!   killed run and means nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::io::durable;

/// Who holds a store's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub trigger: String,
    pub version: String,
}

impl Holder {
    pub fn me(trigger: &str) -> Self {
        Holder {
            pid: std::process::id(),
            host: durable::hostname(),
            started_at: Utc::now(),
            trigger: trigger.to_string(),
            version: crate::VERSION.to_string(),
        }
    }

    /// Whether this holder's process is still alive (only decidable on this host).
    pub fn alive(&self) -> Option<bool> {
        (self.host == durable::hostname()).then(|| durable::pid_alive(self.pid))
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} ({} run, logkeeper {}, since {})",
            self.pid,
            self.host,
            self.trigger,
            self.version,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// The lock file's path for a log.
pub fn lock_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// A held store lock; dropping it empties the holder record and unlocks.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    path: PathBuf,
    /// How long [`Wait::Yes`] waited for another holder.
    waited: std::time::Duration,
}

/// How [`StoreLock::acquire`] behaves when the lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    No,
    Yes,
}

/// Say what to do when the log's directory is missing, the usual reason
/// the lock file cannot be created.
fn missing_dir(log: &Path, e: std::io::Error) -> std::io::Error {
    let dir = crate::io::durable::parent_dir(log);
    if e.kind() != std::io::ErrorKind::NotFound || dir.is_dir() {
        return e;
    }
    std::io::Error::new(
        e.kind(),
        format!(
            "the log's directory {} does not exist: create it (mkdir -p {}) or fix the store's path (`log =` or `segments =`) in the config",
            dir.display(),
            dir.display()
        ),
    )
}

impl StoreLock {
    /// Take the lock for the store whose live log is `log`.
    ///
    /// With [`Wait::No`], a held lock is [`Error::Busy`] naming the holder.
    pub fn acquire(store: &str, log: &Path, trigger: &str, wait: Wait) -> Result<StoreLock> {
        let path = lock_path(log);
        // Never more readable than the log it guards.
        let mode = std::fs::metadata(log).map_or(0o644, |m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o666
        });
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .open(&path)
            .map_err(|e| missing_dir(log, e))
            .ctx("open lock file", &path)?;
        let mut waited = std::time::Duration::ZERO;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => match wait {
                Wait::No => {
                    return Err(Error::Busy {
                        store: store.to_string(),
                        lock: path.clone(),
                        holder: describe_holder(read_holder_file(&path)),
                    });
                }
                Wait::Yes => {
                    tracing::info!(
                        "waiting for {} ({})",
                        path.display(),
                        describe_holder(read_holder_file(&path))
                    );
                    let t = std::time::Instant::now();
                    file.lock().ctx("wait for lock", &path)?;
                    waited = t.elapsed();
                }
            },
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        let mut lock = StoreLock { file, path, waited };
        lock.write_holder(&Holder::me(trigger))?;
        Ok(lock)
    }

    fn write_holder(&mut self, holder: &Holder) -> Result<()> {
        let json = serde_json::to_vec(holder).expect("holder serializes");
        self.file.set_len(0).ctx("truncate lock file", &self.path)?;
        self.file
            .seek(SeekFrom::Start(0))
            .ctx("seek lock file", &self.path)?;
        self.file
            .write_all(&json)
            .ctx("write lock file", &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long taking the lock waited for another holder (`--wait`).
    pub fn waited(&self) -> std::time::Duration {
        self.waited
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// What the lock file says about its holder, if anything.
pub fn read_holder_file(path: &Path) -> Option<Holder> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    serde_json::from_str(s.trim()).ok()
}

fn describe_holder(h: Option<Holder>) -> String {
    match h {
        Some(h) => h.to_string(),
        None => {
            "another process (it wrote no holder record; `fuser` on the lock file names it)".into()
        }
    }
}

/// The run currently holding the log's lock, without disturbing it.
///
/// Status must never take the lock itself (that would make a concurrent
/// `sync now` report busy), so it trusts a holder record whose process is
/// alive. A record from another host is reported as running.
pub fn current_holder(log: &Path) -> Option<Holder> {
    let h = read_holder_file(&lock_path(log))?;
    match h.alive() {
        Some(false) => None,
        _ => Some(h),
    }
}
