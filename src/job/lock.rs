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

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::io::rewrite::{Like, Rewrite};
use crate::io::{durable, safe};

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

/// The lock file's mode: always read-write for its owner (a log of mode
/// 0444 or 000 must not make its lock unusable), readable by group and
/// others only where the log is.
fn lock_mode(log_mode: u32) -> u32 {
    0o600 | (log_mode & 0o044)
}

/// The hint for a lock file this user can neither open nor repair.
fn lock_fix(path: &Path, owner: (u32, u32)) -> String {
    let (u, g) = (safe::user_name(owner.0), safe::group_name(owner.1));
    format!(
        "the lock file must belong to the log's owner: as root, `chown {u}:{g} {p} && chmod 0600 {p}` (or remove it while no run is going); nothing was changed",
        p = path.display()
    )
}

impl StoreLock {
    /// Take the lock for the store whose live log is `log`.
    ///
    /// The lock file is opened relative to the log's directory without
    /// following a link (a planted FIFO or symlink is refused, never
    /// blocks), belongs to the log's owner and group (root gives it away;
    /// a lock left by an earlier root run is repaired) and stays
    /// read-write for that owner. Run by root, a directory that another
    /// user can write is refused (G8).
    ///
    /// With [`Wait::No`], a held lock is [`LockError::Busy`](crate::error::LockError::Busy) naming the holder.
    pub fn acquire(store: &str, log: &Path, trigger: &str, wait: Wait) -> Result<StoreLock> {
        let path = lock_path(log);
        let dir = safe::Dir::of(&path)
            .map_err(|e| missing_dir(log, e))
            .ctx("open lock file", &path)?;
        let dmeta = dir.metadata().ctx("stat directory", dir.path())?;
        if let Some(why) = safe::untrusted_dir(&dmeta) {
            return Err(Error::Unsafe {
                path: dir.path().to_path_buf(),
                msg: safe::root_refusal(&why, &dmeta),
            });
        }
        let name = path
            .file_name()
            .expect("a lock path has a file name")
            .to_owned();
        // The log's owner owns the lock; before the log exists, the
        // directory's owner.
        let (owner, mode) = match std::fs::metadata(log) {
            Ok(m) => ((m.uid(), m.gid()), lock_mode(m.mode())),
            Err(_) => ((dmeta.uid(), dmeta.gid()), 0o644),
        };
        let mut waited = std::time::Duration::ZERO;
        loop {
            let (file, writable) = open_lock(&dir, &name, &path, mode, owner)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => match wait {
                    Wait::No => {
                        return Err(Error::Lock(crate::error::LockError::Busy {
                            store: store.to_string(),
                            lock: path.clone(),
                            holder: describe_holder(read_holder_file(&path)),
                        }));
                    }
                    Wait::Yes => {
                        tracing::info!(
                            "waiting for {} ({})",
                            path.display(),
                            describe_holder(read_holder_file(&path))
                        );
                        let t = std::time::Instant::now();
                        file.lock().ctx("wait for lock", &path)?;
                        waited += t.elapsed();
                    }
                },
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
            // A run that repaired the lock file replaced it while we waited
            // on the old inode: lock the one the name holds now.
            let now = dir.lstat(&name).ctx("stat lock file", &path)?;
            let held = file.metadata().ctx("stat lock file", &path)?;
            if !now.is_some_and(|st| st.st_ino == held.ino() && st.st_dev == held.dev()) {
                continue;
            }
            let (file, writable) = if writable {
                (file, true)
            } else {
                replace_lock(&dir, &name, &path, mode, owner, file)?
            };
            let mut lock = StoreLock { file, path, waited };
            if writable {
                lock.write_holder(&Holder::me(trigger))?;
            }
            return Ok(lock);
        }
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

/// Open (or create) the lock file and bring it to the log's owner and
/// `mode` where this user may. Returns the file and whether it is open for
/// writing; a lock file this user may only read can still be locked
/// (`flock` needs no write access), and the caller then replaces it.
fn open_lock(
    dir: &safe::Dir,
    name: &std::ffi::OsStr,
    path: &Path,
    mode: u32,
    owner: (u32, u32),
) -> Result<(File, bool)> {
    let (file, writable) = match dir.open_file(name, safe::Access::ReadWrite(mode)) {
        Ok(f) => (f, true),
        Err(denied) if denied.kind() == std::io::ErrorKind::PermissionDenied => {
            match dir.open_file(name, safe::Access::Read) {
                Ok(f) => (f, false),
                // No lock file yet, and this user may not create one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::io(
                        "create lock file",
                        path,
                        safe::access_hint(dir.path(), denied),
                    ));
                }
                Err(e) => {
                    return Err(Error::Unsafe {
                        path: path.to_path_buf(),
                        msg: format!("cannot open the lock file: {e}; {}", lock_fix(path, owner)),
                    });
                }
            }
        }
        Err(e) => return Err(Error::io("open lock file", path, e)),
    };
    let m = file.metadata().ctx("stat lock file", path)?;
    let mine = m.uid() == safe::euid();
    if safe::is_root() && (m.uid(), m.gid()) != owner {
        std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1))
            .ctx("give the lock file to the log's owner:", path)?;
    }
    if (mine || safe::is_root()) && m.mode() & 0o7777 != mode {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .ctx("set permissions of", path)?;
    }
    Ok((file, writable))
}

/// The lock file is held but this user cannot write it (left by another
/// user, e.g. an earlier root run): put a fresh one of this user's at its
/// name, locked before it is visible, so a later run locks the new inode
/// (and one that waited on the old inode sees the name moved and retries).
/// Where the directory is not writable either, keep the read-only lock:
/// exclusion holds, only the holder record is missing.
fn replace_lock(
    dir: &safe::Dir,
    name: &std::ffi::OsStr,
    path: &Path,
    mode: u32,
    owner: (u32, u32),
    old: File,
) -> Result<(File, bool)> {
    let fresh = match Rewrite::beside(path, Like::Mode(mode)) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(
                "{}: the lock file is not writable by this user and cannot be replaced ({e}); running without a holder record: {}",
                path.display(),
                lock_fix(path, owner)
            );
            return Ok((old, false));
        }
    };
    if let Err(e) = fresh.file().try_lock() {
        return Err(Error::io(
            "lock",
            fresh.path(),
            std::io::Error::other(e.to_string()),
        ));
    }
    let _ = (name, dir);
    crate::failpoint::failpoint!(LockReplaceBeforeRename);
    // Renamed over the old lock file, the directory fsynced.
    let file = fresh.persist()?;
    drop(old);
    Ok((file, true))
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Remove the temp files of a lock replacement ([`replace_lock`]) that a
/// crashed run left beside the lock of `anchor` (the log, or a segmented
/// store's anchor); returns what was removed. Call it holding that lock:
/// only a holder makes one, so every one found is stale.
pub fn remove_stale_temps(anchor: &Path) -> Result<Vec<PathBuf>> {
    durable::remove_stale_temps(&lock_path(anchor))
}

/// What the lock file says about its holder, if anything.
pub fn read_holder_file(path: &Path) -> Option<Holder> {
    let mut s = String::new();
    safe::open_beside(path, safe::Access::Read)
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
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
