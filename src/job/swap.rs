//! The swap: the steps that turn a folded [`Cut`] into the new live log,
//! one function per step, in this crash order (G1, G2):
//!
//! 1. [`write_snapshot`]: the fold's survivors into an exclusive temp file
//!    beside the log, with the log's mode; [`sync_snapshot`]: fsync, while
//!    the snapshot is verified (`verify.rs`; both must pass). A crash
//!    leaves a temp file, removed by the next run.
//! 2. [`quarantine_bad`]: malformed lines appended to the quarantine file,
//!    fsynced, *before* the swap (a crash after it may repeat an entry, which
//!    the quarantine skips; the other order could lose a line).
//! 3. [`lock_and_verify`]: take the writers' `flock` on the live inode; check
//!    the path still names that inode and that the inode still holds the
//!    folded bytes (size ≥ cut, same fingerprint), so a copytruncate or a
//!    `mv` by another tool fails the run with nothing changed.
//! 4. [`append_late_and_tail`]: read the tail's end first, then copy the late
//!    writes that reached the rotated files meanwhile, then the tail
//!    `[cut, end)`; if another process holds the live log open for writing
//!    (or the log grew since its size was read) and the tail ends mid-line,
//!    only up to its last `\n` (that writer
//!    finishes the line in the old inode, where it is a late write); fsync.
//! 5. [`link_rotated`]: a hard link of the live inode under the next rotated
//!    name, checked to be that inode. A crash leaves a second name on the
//!    live inode, removed next run.
//! 6. (caller) the late-write state that this swap makes true is *prepared*
//!    durably, naming the new file's inode.
//! 7. [`exchange`]: `renameat2(RENAME_EXCHANGE)` of the temp file and the
//!    log, then a check that the name the temp file had now holds the inode
//!    that was compacted; on a mismatch (someone replaced the log since step
//!    3) the exchange is undone and the run fails. Then fsync the directory.
//!    Before the exchange the old log is intact, after it the new one is
//!    complete. Where `RENAME_EXCHANGE` is not supported (macOS, some
//!    filesystems) a plain rename is used after the step-3 check.
//! 8. (caller) commit the late-write state; release the writers' lock.

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, IoContext, Result};
use crate::fold::spans::{self, FileSpan};
use crate::fold::{self, Range};
use crate::io::durable;
use crate::io::rewrite::{self, Like, Rewrite};
use crate::job::census;
use crate::job::cut::Cut;
use crate::job::{late, quarantine, rotation};

/// Step 1, first half: the new file, beside the log, with the log's mode,
/// owner, ACLs and extended attributes (the one rewrite primitive,
/// `io::rewrite`).
pub fn prepare(c: &Cut) -> Result<Rewrite> {
    Rewrite::beside(&c.log, Like::File(&c.file, &c.meta))
}

/// Step 1, the write. Returns the snapshot's length.
pub fn write_snapshot(c: &Cut, keep: &[Range], tmp: &Rewrite, threads: usize) -> Result<u64> {
    let segs = c.spans();
    let n = spans::write_spans(&segs, keep, &c.plan.newlines, tmp.file(), threads)
        .and_then(|n| crate::failpoint::fail_io!(SnapshotWrite).map(|_| n))
        .map_err(|e| write_error(tmp.path(), &c.log, e))?;
    crate::failpoint::failpoint!(AfterSnapshotWrite);
    Ok(n)
}

/// Step 1, the fsync of the snapshot (run beside its verification: the
/// swap waits for both). A full fsync, not `fdatasync`: the mode, owner and
/// attributes the temp file took from the log are made durable with it,
/// so step 4 need not fsync again when it appends nothing.
pub fn sync_snapshot(c: &Cut, tmp: &Rewrite) -> Result<()> {
    crate::failpoint::fail_io!(SnapshotFsync)
        .and_then(|_| tmp.file().sync_all())
        .map_err(|e| write_error(tmp.path(), &c.log, e))?;
    crate::failpoint::failpoint!(AfterSnapshotFsync);
    Ok(())
}

/// Step 2. Returns the quarantine file, if anything was quarantined.
pub fn quarantine_bad(c: &Cut) -> Result<Option<PathBuf>> {
    if c.plan.bad.is_empty() {
        return Ok(None);
    }
    let segs = c.spans();
    let located = spans::locate_bad(&segs, &c.plan.bad);
    let mut qfile = None;
    // Group by source file, keeping order.
    let mut i = 0;
    while i < located.len() {
        let seg: FileSpan = located[i].0;
        let mut bad = Vec::new();
        while i < located.len() && located[i].0.path == seg.path {
            bad.push(located[i].1.clone());
            i += 1;
        }
        qfile = Some(quarantine::append(
            &c.log,
            seg.path,
            seg.file,
            &bad,
            c.meta.mode(),
        )?);
    }
    Ok(qfile)
}

/// How long the swap waits for writers to release the log's lock. Writers
/// hold it for one append; a holder past this is hung, and the run gives up
/// (changing nothing) rather than hang with it.
pub const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Step 3. On success the writers' lock is held on `c.file`.
pub fn lock_and_verify(c: &Cut) -> Result<()> {
    lock_writers(&c.file, &c.log)?;
    let verified = verify(c);
    if verified.is_err() {
        let _ = c.file.unlock();
    }
    verified
}

fn verify(c: &Cut) -> Result<()> {
    let now = fs::metadata(&c.log).ctx("stat log", &c.log)?;
    if now.ino() != c.meta.ino() || now.dev() != c.meta.dev() {
        return Err(Error::Sync(crate::error::SyncError::LogReplaced {
            path: c.log.clone(),
        }));
    }
    let size = c.file.metadata().ctx("stat log", &c.log)?.len();
    let same = size >= c.cut
        && crate::fold::fingerprint(&c.file, c.cut).ctx("read log", &c.log)? == c.fingerprint;
    if !same {
        return Err(Error::Sync(crate::error::SyncError::LogRewritten {
            path: c.log.clone(),
            before: c.size,
            now: size,
        }));
    }
    Ok(())
}

/// What step 4 copied.
pub struct Appended {
    /// `[cut, end)` of the live log copied after the late writes.
    pub tail: Range,
    /// The new file's length.
    pub len: u64,
}

/// Step 4 (writers' lock held). `snapshot` is the snapshot's length.
pub fn append_late_and_tail(c: &mut Cut, tmp: &mut Rewrite, snapshot: u64) -> Result<Appended> {
    let tmp_path = tmp.path().to_path_buf();
    // The tail's end first: see `late::carry_at_swap`.
    let size = c.file.metadata().ctx("stat log", &c.log)?.len();
    let mut end = size;
    if size > c.cut && !ends_in_newline(&c.file, size).ctx("read log", &c.log)? {
        // A torn tail: a dead writer's (kept, G3), or a line a live writer
        // is still writing in two calls (class C), which it will finish in
        // the old inode: then only up to the last `\n`.
        let census = census::take(&[&c.log]);
        // A writer that finished the line and closed between the size read
        // and the census is not in it, but its bytes are: the file grew.
        let grew = c.file.metadata().ctx("stat log", &c.log)?.len() > size;
        // A census that cannot see every process proves no writer absent.
        if !census.is_empty() || !census.complete() || grew {
            end = fold::find_cut(&c.file, size)
                .ctx("read log", &c.log)?
                .max(c.cut);
        }
    }
    tmp.file_mut()
        .seek(SeekFrom::Start(snapshot))
        .map_err(|e| write_error(&tmp_path, &c.log, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.file_mut());
    let late_bytes = late::carry_at_swap(&mut c.late, &mut w)?;
    let tail = Range { start: c.cut, end };
    fold::copy_ranges(&c.file, &[tail], &mut w)
        .and_then(|_| w.flush())
        .map_err(|e| write_error(&tmp_path, &c.log, e))?;
    drop(w);
    // Nothing appended: the snapshot's own fsync (step 1) already holds.
    if late_bytes + tail.len() > 0 {
        tmp.sync().map_err(|e| write_error(&tmp_path, &c.log, e))?;
    }
    Ok(Appended {
        tail,
        len: snapshot + late_bytes + tail.len(),
    })
}

fn ends_in_newline(f: &File, size: u64) -> std::io::Result<bool> {
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(f, &mut b, size - 1)?;
    Ok(b[0] == b'\n')
}

/// Step 5: the rotated name for the live inode, checked to be that inode.
pub fn link_rotated(c: &Cut) -> Result<PathBuf> {
    let rotated = rotation::link_rotated(&c.log)?;
    let m = fs::metadata(&rotated).ctx("stat", &rotated)?;
    if m.ino() != c.meta.ino() || m.dev() != c.meta.dev() {
        let _ = fs::remove_file(&rotated);
        return Err(Error::Sync(crate::error::SyncError::LogReplaced {
            path: c.log.clone(),
        }));
    }
    crate::failpoint::failpoint!(AfterRotateLink);
    Ok(rotated)
}

/// Step 7: put the new file at the log's name and check that what came out
/// is the inode that was compacted; the directory is fsynced after.
/// `swapped` runs right after the rename, before the directory fsync (the
/// carry window's first carry, `carry::first`).
pub fn exchange(
    c: &Cut,
    tmp: Rewrite,
    rotated: &Path,
    swapped: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let tmp = tmp.into_temp();
    let tmp_path = tmp.path().to_path_buf();
    let failed = |e: std::io::Error| {
        let _ = fs::remove_file(rotated);
        Error::Sync(crate::error::SyncError::RenameFailed {
            path: c.log.clone(),
            source: e,
        })
    };
    crate::failpoint::fail_io!(Rename).map_err(failed)?;
    let removed = match rewrite::exchange(&tmp_path, &c.log) {
        Ok(true) => {
            let out = fs::metadata(&tmp_path).ctx("stat", &tmp_path)?;
            if out.ino() != c.meta.ino() || out.dev() != c.meta.dev() {
                // Someone put another file at the log's name since step 3:
                // put it back and leave everything as it was.
                rewrite::exchange(&tmp_path, &c.log).ctx("undo the swap of", &c.log)?;
                let _ = fs::remove_file(rotated);
                return Err(Error::Sync(crate::error::SyncError::LogReplaced {
                    path: c.log.clone(),
                }));
            }
            crate::failpoint::failpoint!(AfterRename);
            // The temp name now holds the old inode, which the rotated name
            // keeps: removing it removes only that extra name. A failure is
            // harmless to the data (the next run removes the name) but is a
            // sign of a failing disk, and the log is already replaced.
            match crate::failpoint::fail_io!(UnlinkOldTemp) {
                Ok(()) => tmp.close(),
                Err(e) => {
                    // As a real failed unlink would: the name stays.
                    let _ = tmp.into_temp_path().keep();
                    Err(e)
                }
            }
        }
        Ok(false) => {
            tmp.persist(&c.log).map_err(|e| failed(e.error))?;
            crate::failpoint::failpoint!(AfterRename);
            Ok(())
        }
        Err(e) => return Err(failed(e)),
    };
    swapped()?;
    // The exchange is made durable before a failed unlink is told.
    let synced = crate::failpoint::fail_io!(DirFsyncAfterSwap)
        .and_then(|_| File::open(durable::parent_dir(&c.log)))
        .and_then(|d| d.sync_all());
    removed.map_err(|e| after_swap("remove the old log's temp name", c, rotated, e))?;
    synced.map_err(|e| after_swap("fsync of the log's directory", c, rotated, e))?;
    crate::failpoint::failpoint!(AfterDirFsync);
    Ok(())
}

fn after_swap(op: &'static str, c: &Cut, rotated: &Path, source: std::io::Error) -> Error {
    Error::Sync(crate::error::SyncError::AfterSwap {
        op,
        log: c.log.clone(),
        rotated: rotated.to_path_buf(),
        source,
    })
}

pub(crate) fn lock_writers(file: &File, log: &Path) -> Result<()> {
    #[allow(unused_mut)]
    let mut wait = WRITER_LOCK_WAIT;
    #[cfg(feature = "failpoints")]
    if let Some(ms) = std::env::var("LOGKEEPER_WRITER_LOCK_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        wait = std::time::Duration::from_millis(ms);
    }
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                crate::job::interrupt::check("while waiting for the writers' lock")?;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holders = file
                    .metadata()
                    .map(|m| crate::io::locks::flock_holders(&m))
                    .unwrap_or_default();
                let holder = match holders.as_slice() {
                    [] => "a writer".to_string(),
                    pids => pids
                        .iter()
                        .map(|&p| crate::io::locks::describe_pid(p))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                return Err(Error::Sync(crate::error::SyncError::WriterHung {
                    path: log.to_path_buf(),
                    waited: wait,
                    holder,
                }));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("take the writers' lock on", log, e));
            }
        }
    }
}

pub fn write_error(tmp: &Path, log: &Path, e: std::io::Error) -> Error {
    Error::Sync(crate::error::SyncError::WriteFailed {
        tmp: tmp.to_path_buf(),
        log: log.to_path_buf(),
        source: e,
    })
}
