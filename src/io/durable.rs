//! Durable file primitives shared by every writer of files in logkeeper.
//!
//! Invariants:
//! - A file that a reader may see is only ever replaced whole: written to a
//!   temp file in the same directory, fsynced, renamed over the target, and
//!   then the directory is fsynced, so a crash leaves the old or the new file.
//! - Temp files are created exclusively (`O_EXCL`) with unpredictable names by
//!   `tempfile`, so a planted symlink is never followed. Their names start with
//!   `.<target>.lk-tmp.`, which is how [`remove_stale_temps`] finds the ones a
//!   crashed run left.
//! - A replaced file keeps the mode (and, where permitted, the owner) of the
//!   file it replaces; `tempfile` creates 0600 files, so this is explicit.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

pub use crate::io::sys::parent_dir;

/// The prefix of temp files made for `target`.
pub fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.lk-tmp.")
}

/// Create a temp file beside `target`, exclusively, with an unpredictable name.
pub fn temp_beside(target: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_dir(target);
    tempfile::Builder::new()
        .prefix(&temp_prefix(target))
        .tempfile_in(dir)
        .ctx("create temp file in", dir)
}

/// fsync a directory so that a rename or unlink inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).ctx("open directory", dir)?;
    d.sync_all().ctx("fsync directory", dir)
}

/// Give `file` the permission bits (and, where permitted, the owner) of `like`.
pub fn copy_mode_and_owner(file: &File, path: &Path, like: &fs::Metadata) -> Result<()> {
    file.set_permissions(fs::Permissions::from_mode(like.mode() & 0o7777))
        .ctx("set permissions of", path)?;
    if file.metadata().ctx("stat", path)?.uid() != like.uid()
        || file.metadata().ctx("stat", path)?.gid() != like.gid()
    {
        // Only root (or the owner, to one of its groups) may give a file
        // away. A file the app could no longer write must never replace its
        // log: fail now, while nothing has been changed (G8).
        std::os::unix::fs::fchown(file, Some(like.uid()), Some(like.gid())).map_err(|e| {
            crate::Error::Unsafe {
                path: path.to_path_buf(),
                msg: format!(
                    "cannot give the new file the owner {}:{} of the file it replaces ({e}); nothing was changed: run as that user or as root",
                    crate::io::safe::user_name(like.uid()),
                    crate::io::safe::group_name(like.gid())
                ),
            }
        })?;
    }
    Ok(())
}

/// Atomically replace (or create) `target` with `bytes`, through the one
/// rewrite primitive ([`crate::io::rewrite`]).
///
/// An existing target's mode is kept; a new one gets `new_mode`.
pub fn atomic_write(target: &Path, bytes: &[u8], new_mode: u32) -> Result<()> {
    atomic_write_all(&[(target, bytes)], new_mode)
}

/// Atomically replace (or create) several files of one directory, as
/// [`atomic_write`] does each, with two waits on the disk instead of two
/// per file: the temp files are fsynced at once (one thread each, so the
/// filesystem can commit them together), renamed in order, and the
/// directory is fsynced once.
///
/// A crash before that last fsync leaves each target old or new, not
/// necessarily all alike: use it for files that are each whole on their
/// own (a run's records), not for a set that must change together.
pub fn atomic_write_all(files: &[(&Path, &[u8])], new_mode: u32) -> Result<()> {
    use crate::io::rewrite::{Like, Rewrite};
    let Some((first, _)) = files.first() else {
        return Ok(());
    };
    let dir = parent_dir(first);
    debug_assert!(files.iter().all(|(p, _)| parent_dir(p) == dir));
    let mut tmps = Vec::with_capacity(files.len());
    for (target, bytes) in files {
        let mut tmp = Rewrite::beside(target, Like::Target(new_mode))?;
        let path = tmp.path().to_path_buf();
        tmp.file_mut().write_all(bytes).ctx("write", &path)?;
        tmps.push(tmp);
    }
    std::thread::scope(|s| {
        let (last, rest) = tmps.split_last_mut().expect("not empty");
        let others: Vec<_> = rest.iter_mut().map(|t| s.spawn(|| sync_one(t))).collect();
        let mut synced = sync_one(last);
        for h in others {
            synced = synced.and(h.join().expect("fsync thread panicked"));
        }
        synced
    })?;
    crate::failpoint::failpoint!(AtomicWriteBeforeRename);
    for tmp in tmps {
        tmp.rename()?;
    }
    fsync_dir(dir)
}

fn sync_one(tmp: &mut crate::io::rewrite::Rewrite) -> Result<()> {
    let path = tmp.path().to_path_buf();
    tmp.sync().ctx("fsync", &path)
}

/// Remove the temp files a crashed run left for `target`
/// (`.<target>.lk-tmp.*`); returns what was removed. The caller holds the
/// lock that every maker of such a file holds, so none is in use.
///
/// Only a file this run can prove is logkeeper's own is removed: a regular
/// file (a symlink, FIFO or directory under that name is left alone, and
/// nothing is followed), owned by this user, or, when root, by the
/// target's owner (root gives its temp files away; it only runs in
/// directories no other user can write, so nobody else could have made
/// one there). Another user's file under that name (planted in a
/// directory both can write) is left alone with a warning, not removed
/// and not an error that would stop every run.
pub fn remove_stale_temps(target: &Path) -> Result<Vec<PathBuf>> {
    let dir = parent_dir(target);
    let prefix = temp_prefix(target);
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(crate::Error::io("list directory", dir, e)),
    };
    let me = crate::io::safe::euid();
    let target_owner = fs::symlink_metadata(target).ok().map(|m| m.uid());
    let ours = |uid: u32| uid == me || (crate::io::safe::is_root() && Some(uid) == target_owner);
    for entry in entries {
        let entry = entry.ctx("list directory", dir)?;
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let p = entry.path();
        // lstat: the name itself, never what a link points to. A name gone
        // since the listing (another run, or its owner) is not an error.
        let meta = match fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r.ctx("stat stale temp file", &p)?,
        };
        if !meta.file_type().is_file() || !ours(meta.uid()) {
            tracing::warn!(
                "left {} alone: it has the name of a logkeeper temp file but is not one of this user's regular files",
                p.display()
            );
            continue;
        }
        match fs::remove_file(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r.ctx("remove stale temp file", &p)?,
        }
        removed.push(p);
    }
    if !removed.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Create `dir` (and parents) and make it private (0700): it holds run
/// records that name the user's files. A directory that another user owns
/// or can write (it, or one above it) is refused, never trusted: its state
/// files could have been planted (G8; [`crate::io::safe::check_private_dir`]).
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx("create directory", dir)?;
    let meta = fs::metadata(dir).ctx("stat", dir)?;
    if meta.mode() & 0o077 != 0 && meta.uid() == crate::io::safe::euid() {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .ctx("set permissions of", dir)?;
    }
    crate::io::safe::check_private_dir(dir)
        .map_err(|(path, msg)| crate::Error::Unsafe { path, msg })
}

/// Open `path` for reading and appending, creating it with `mode` if it does
/// not exist.
pub fn open_append(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
        .ctx("open for appending", path)
}

/// This machine's host name, for lock holder records.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether a process with this pid exists on this machine.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
