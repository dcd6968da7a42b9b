//! One carry: the complete lines that reached the old inode since the
//! last carry, appended to the live log under the writers' `flock`, with
//! the journal that makes it crash-safe (the crash order is in `mod.rs`).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{IoContext, Result};
use crate::fold;
use crate::job::late::{self, Carrying, LateWrites};

/// The most bytes carried in one append (one `write`).
const BATCH: u64 = 4 << 20;

/// The first carry, right after the rename and before the directory fsync
/// (keyed stores only): lines a lock-less writer appended to the old inode
/// between the tail copy and the rename would otherwise be missing from the
/// live path, and their keys' values go back, until the window's first
/// poll. Not journalled (the state cannot name the new inode before the
/// directory fsync): a kill before the window's first journal can carry
/// these lines again at the next run, as keyed duplicates placed before
/// their copy, which fold to the same value.
pub fn first(
    log: &Path,
    live: &File,
    rotated: &Path,
    old: &File,
    state: &mut LateWrites,
) -> Result<u64> {
    let ends = Ends {
        log,
        live,
        rotated,
        old,
    };
    carry_once(&ends, None, state)
}

/// The two ends of a carry: the live log (`live`, the new inode, opened
/// with `O_APPEND` before the gate was armed: the run never opens the
/// live path while its own gate holds opens of it) and the old inode.
pub(super) struct Ends<'a> {
    pub(super) log: &'a Path,
    pub(super) live: &'a File,
    pub(super) rotated: &'a Path,
    pub(super) old: &'a File,
}

/// A second handle on the new file (before the exchange), appending:
/// `fcntl(F_SETFL, O_APPEND)` on a duplicate, not an open of its name.
/// The temp file's own handle shares the flag and is not written after.
pub fn append_handle(tmp: &File, path: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let f = tmp.try_clone().ctx("duplicate the handle of", path)?;
    // SAFETY: fcntl on an fd we own.
    let rc = unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        if fl < 0 {
            fl
        } else {
            libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_APPEND)
        }
    };
    if rc < 0 {
        return Err(crate::Error::io(
            "set O_APPEND on",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

/// Carry until no complete line is left in the old inode (or the log was
/// replaced, or a writer holds its lock too long: then what is left waits
/// for the next poll).
pub(super) fn carry_all(ends: &Ends, state_dir: &Path, state: &mut LateWrites) -> Result<u64> {
    let mut total = 0;
    loop {
        let n = carry_once(ends, Some(state_dir), state)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

pub(super) fn carry_once(
    ends: &Ends,
    state_dir: Option<&Path>,
    state: &mut LateWrites,
) -> Result<u64> {
    let Ends {
        log,
        live,
        rotated,
        old,
    } = *ends;
    let Some(i) = state.watches.iter().position(|w| w.rotated == rotated) else {
        return Ok(0);
    };
    let from = state.watches[i].carried;
    let size = old.metadata().ctx("stat", rotated)?.len();
    if size <= from {
        return Ok(0);
    }
    let size = size.min(from + BATCH);
    let to = fold::find_cut(old, size).ctx("read late writes in", rotated)?;
    if to <= from {
        return Ok(0);
    }
    let mut buf = vec![0u8; (to - from) as usize];
    old.read_exact_at(&mut buf, from)
        .ctx("read late writes in", rotated)?;

    let meta = live.metadata().ctx("stat log", log)?;
    let at_path = std::fs::metadata(log).ctx("stat log", log)?;
    if !state
        .live
        .as_ref()
        .is_some_and(|g| g.dev == meta.dev() && g.ino == meta.ino())
        || (at_path.dev(), at_path.ino()) != (meta.dev(), meta.ino())
    {
        // Someone replaced the log since the swap: leave the lines to the
        // next run's fold (they stay watched).
        return Ok(0);
    }
    // Bounded: a writer that holds the lock while it opens the path would
    // wait on the gate, which waits on this carry. Left for the next poll.
    if !try_lock_for(live, log, LOCK_WAIT)? {
        return Ok(0);
    }
    let done = append(live, log, &buf, from, to, rotated, state_dir, state, i);
    let _ = live.unlock();
    done?;
    Ok(buf.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// How long one carry waits for the writers' lock before it leaves the
/// lines to the next poll.
const LOCK_WAIT: Duration = Duration::from_millis(200);

fn try_lock_for(file: &File, log: &Path, wait: Duration) -> Result<bool> {
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(crate::Error::io("take the writers' lock on", log, e));
            }
        }
    }
}

/// The journalled append of one carry (writers' lock held on `live`).
#[allow(clippy::too_many_arguments)]
fn append(
    live: &File,
    log: &Path,
    buf: &[u8],
    from: u64,
    to: u64,
    rotated: &Path,
    state_dir: Option<&Path>,
    state: &mut LateWrites,
    i: usize,
) -> Result<()> {
    // A line in flight at the end of the live log (a lock-less writer
    // between its two write calls): give it up to 20 ms to finish; a line
    // still torn then (a dead writer's) gets a `\n` first, so the carried
    // lines never glue to it.
    let mut tries = 0;
    let (live_at, torn) = loop {
        let at = live.metadata().ctx("stat log", log)?.len();
        let torn = at > 0 && {
            let mut b = [0u8; 1];
            live.read_exact_at(&mut b, at - 1).ctx("read log", log)?;
            b[0] != b'\n'
        };
        if !torn || tries == 20 {
            break (at, torn);
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut bytes = Vec::with_capacity(buf.len() + 1);
    if torn {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(buf);
    let w = &mut state.watches[i];
    w.carried = to;
    w.print = late::stamp(&File::open(rotated).ctx("open", rotated)?, to);
    let cr = Carrying {
        rotated: rotated.to_path_buf(),
        from,
        to,
        live_at: live_at + torn as u64,
        point: state.live.as_ref().map_or(0, |g| g.swap_point),
    };
    // Lines of the old inode not carried yet are newer than these: the
    // next fold places them after this append, not at the old swap point.
    if let Some(g) = state.live.as_mut() {
        g.swap_point = cr.live_at + buf.len() as u64;
    }
    if let Some(dir) = state_dir {
        late::journal_carry(dir, state, &cr)?;
    }
    crate::failpoint::failpoint!(AfterCarryJournal);
    (&*live)
        .write_all(&bytes)
        .ctx("append carried late writes to", log)?;
    crate::failpoint::failpoint!(AfterCarryAppend);
    // Durable before the next journal replaces this one: only the carry a
    // journal names can be in doubt after a power cut.
    live.sync_data().ctx("fsync log", log)?;
    crate::failpoint::failpoint!(AfterCarryFsync);
    Ok(())
}
