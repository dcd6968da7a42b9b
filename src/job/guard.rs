//! The refusals of a run of a log store, each before anything is touched:
//! a state file another user could write, a log whose owner the run cannot
//! keep, a broken late-write watch, a positional writer; and which watches
//! a run may trust at all (G8).

use crate::config::StoreConfig;
use crate::error::Error;
use crate::io::{durable, safe};
use crate::job::record::Stats;
use crate::job::{census, late, rotation};

/// Issue 16 A.3: a watched rotated file that shrank, was replaced or had
/// its carried bytes rewritten fails the run before anything is touched.
/// The broken watch is dropped from the committed state (so the failure is
/// reported once, by this run's record and hook, and the next run goes on);
/// it is never dropped silently.
pub(super) fn refuse_broken_watches(
    state_dir: &std::path::Path,
    state: &late::LateWrites,
) -> crate::Result<()> {
    let broken = late::broken_watches(state);
    let Some((first, what)) = broken.first() else {
        return Ok(());
    };
    let mut next = state.clone();
    next.watches
        .retain(|w| !broken.iter().any(|(b, _)| b.rotated == w.rotated));
    late::commit(state_dir, &next)?;
    Err(Error::Sync(crate::error::SyncError::LateWatchBroken {
        rotated: first.rotated.clone(),
        what: what.clone(),
    }))
}

/// The one writer pattern a swap cannot serve: a process with the live log
/// open for writing *without* `O_APPEND` writes at its own file offset. After
/// a swap it goes on writing into the rotated file at that offset, which
/// can be below what was already carried (another writer appended after
/// it), so its lines would be overwritten or never carried. Detected before
/// anything is touched; the run fails naming the process. `census` is the
/// census of `log` the run takes before it compacts.
pub(super) fn refuse_unsafe_writers(
    store: &StoreConfig,
    log: &std::path::Path,
    census: &census::Census,
) -> crate::Result<()> {
    if store.allow_positional_writers {
        return Ok(());
    }
    let Some(o) = census.openers.iter().find(|o| !o.append) else {
        return Ok(());
    };
    Err(Error::Sync(crate::error::SyncError::UnsafeWriter {
        path: log.to_path_buf(),
        pid: o.pid,
        program: o.program.clone(),
        fd: o.fd,
        flags: o.flags.clone(),
    }))
}

/// The watches a run may act on: a watch names a rotated file of this
/// log, in its directory. One without its inode (`ino` 0, from the old
/// watch file) is kept only for a regular file owned by the log's owner,
/// and gets that file's inode; never is a state file's word enough to
/// read a file elsewhere (G8).
pub(super) fn trusted_watches(
    log: &std::path::Path,
    live: &std::fs::Metadata,
    state: &mut late::LateWrites,
) {
    use std::os::unix::fs::MetadataExt;
    let dir = durable::parent_dir(log);
    let ours: Vec<std::path::PathBuf> = rotation::list(log)
        .map(|l| l.into_iter().map(|(_, p)| p).collect())
        .unwrap_or_default();
    state.watches.retain_mut(|w| {
        if durable::parent_dir(&w.rotated) != dir || !ours.contains(&w.rotated) {
            tracing::warn!(
                "ignoring a late-write watch on {}: not a rotated file of {}",
                w.rotated.display(),
                log.display()
            );
            return false;
        }
        if w.ino != 0 {
            return true;
        }
        match safe::open_beside(&w.rotated, safe::Access::Read).and_then(|f| f.metadata()) {
            Ok(m) if m.uid() == live.uid() => {
                (w.dev, w.ino) = (m.dev(), m.ino());
                true
            }
            _ => false,
        }
    });
}

/// A state file not owned by this user, or writable by others, is refused:
/// its content could have been planted.
pub(super) fn check_state_file(path: &std::path::Path) -> crate::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if m.file_type().is_file() && m.uid() == safe::euid() && m.mode() & 0o022 == 0 {
        return Ok(());
    }
    Err(Error::Unsafe {
        path: path.to_path_buf(),
        msg: format!(
            "is not a private file of {} (owner {}, mode {:o}): a state file another user could write is never trusted; nothing was changed: remove it if you did not make it",
            safe::user_name(safe::euid()),
            safe::user_name(m.uid()),
            m.mode() & 0o7777
        ),
    })
}

/// Before the log is touched: the run can keep the log's owner and group
/// on the rewritten file (root can; another user only for a log it owns,
/// in one of its groups), and the state it reads is its own (G8).
pub(super) fn check_can_keep_owner(
    log: &std::path::Path,
    live: &std::fs::Metadata,
) -> crate::Result<()> {
    check_owner(log, live, "the rewritten log", "its own log")
}

/// Before a segmented store is touched (a prune, a repair, a merge, its
/// lock file): the run can keep the owner and group of every sealed
/// segment (the active one is never touched), as
/// [`check_can_keep_owner`] for a log. A merge writes under its first
/// input's name with that input's owner; a run that could not give it
/// would fail midway, after retention had already deleted files.
pub(super) fn check_can_keep_segment_owners(
    segments: &[crate::config::pattern::Segment],
) -> crate::Result<()> {
    for s in segments {
        // A segment gone since the listing is no one's to keep.
        if let Ok(m) = std::fs::symlink_metadata(&s.path) {
            check_owner(&s.path, &m, "repaired and merged segments", "its own files")?;
        }
    }
    Ok(())
}

/// `path` (of `meta`) may be replaced by this run: root, or its owner in
/// its group. Else the refusal says whom to run as; `new` is what the
/// run would write, `lose` what the app would lose access to.
fn check_owner(
    path: &std::path::Path,
    meta: &std::fs::Metadata,
    new: &str,
    lose: &str,
) -> crate::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if safe::is_root() || (meta.uid() == safe::euid() && safe::in_group(meta.gid())) {
        return Ok(());
    }
    let (u, g) = (safe::user_name(meta.uid()), safe::group_name(meta.gid()));
    Err(Error::Unsafe {
        path: path.to_path_buf(),
        msg: format!(
            "belongs to {u}:{g}, and a run as {me} cannot give {new} that owner (the app would lose access to {lose}); nothing was changed: run this store as {u} (`sudo -u {u} logkeeper sync now`, `User={u}` in the systemd unit) or as root",
            me = safe::user_name(safe::euid())
        ),
    })
}

/// What a failed run records besides its error: for a refusal because of a
/// writer, the census of the log at the refusal (C.12: it recorded an empty,
/// unsupported one), so `status` shows who the writer is.
pub(super) fn refusal_stats(e: &Error) -> Stats {
    let mut stats = Stats::default();
    if let Error::Sync(crate::error::SyncError::UnsafeWriter { path, .. }) = e {
        stats.writers = census::take(&[path]);
    }
    stats
}
