//! Compacting one log: fold the prefix into a snapshot, carry the tail, swap.
//!
//! The caller holds the store lock (G5). Steps and their crash behaviour (G2):
//! 1. cut the log at its last complete line and fold `[0, cut)`;
//! 2. write the snapshot to an exclusive temp file beside the log, with the
//!    log's mode, and fsync it (a crash leaves a temp file, removed next run);
//! 3. append malformed lines to the quarantine file and fsync it (a crash
//!    after this can duplicate quarantine entries, never lose a line);
//! 4. take the writers' `flock` on the live file, copy `[cut, EOF)` (the
//!    tail: torn last line and anything appended meanwhile) unchanged, fsync;
//! 5. hard-link the live file as the rotated file (a crash leaves a second
//!    name on the live inode, removed next run);
//! 6. rename the temp over the log, fsync the directory, release the
//!    writers' lock. Before the rename the old log is intact; after it the
//!    new one is complete: there is no instant with a partial log (G1, G2).

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::fold::{self, FoldSpec, Range};
use crate::io::durable;
use crate::job::record::Stats;
use crate::job::{quarantine, rotation};
use crate::ops::progress::{self, Phase};

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Threads used for the scan.
pub fn scan_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}

/// The file to operate on: the log itself, or the file a symlinked log points
/// to (the swap happens in the target's directory, so the link stays valid).
pub fn resolve_log(log: &Path) -> Result<PathBuf> {
    let meta = fs::symlink_metadata(log).ctx("stat log", log)?;
    let real = if meta.file_type().is_symlink() {
        fs::canonicalize(log).ctx("follow symlinked log", log)?
    } else {
        log.to_path_buf()
    };
    let meta = fs::metadata(&real).ctx("stat log", &real)?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: real,
            is_dir: meta.is_dir(),
        });
    }
    Ok(real)
}

/// Check that the log's filesystem has room for `need` more bytes.
fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
        Error::NulInPath {
            path: dir.to_path_buf(),
        }
    })?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io(
            "check free space on",
            dir,
            std::io::Error::last_os_error(),
        ));
    }
    #[allow(unused_mut)]
    let mut avail = st.f_bavail as u64 * st.f_frsize as u64;
    if crate::fail_io!("free-space").is_err() {
        avail = 0;
    }
    if avail < need {
        return Err(Error::NoSpace {
            dir: dir.to_path_buf(),
            need,
            avail,
        });
    }
    Ok(())
}

/// Compact the store's log. The caller must hold the store lock.
pub fn compact(store: &StoreConfig) -> Result<Stats> {
    let t_scan = Instant::now();
    let log = resolve_log(&store.log)?;
    let file = File::open(&log).ctx("open log", &log)?;
    let meta = file.metadata().ctx("stat log", &log)?;
    let size = meta.len();
    let cut = fold::find_cut(&file, size).ctx("read log", &log)?;
    let spec = FoldSpec::for_store(store)?;
    progress::begin(Phase::Scan, cut);
    let plan = fold::fold(&spec, &file, cut, scan_threads()).ctx("read log", &log)?;
    let mut stats = Stats {
        bytes_before: size,
        bytes_after: size,
        lines_in: plan.lines_in,
        lines_out: plan.lines_out(spec.is_keyed()),
        keys_live: plan.keys_live,
        deletes_dropped: plan.deletes_dropped,
        keyless_kept: plan.keyless_kept,
        quarantined: plan.bad.len() as u64,
        salvaged: plan.salvaged,
        tail_bytes: size - cut,
        ..Stats::default()
    };
    stats.timings.scan_ms = ms(t_scan);

    let rotate = !spec.is_keyed() && store.rotate_bytes.is_some_and(|limit| size > limit);
    if plan.is_identity() && !rotate {
        // The fold changes nothing: leave the log (and its inode) alone.
        return Ok(stats);
    }
    let keep: &[Range] = if rotate { &[] } else { &plan.keep };
    if rotate {
        stats.lines_out = 0;
    }
    let t_write = Instant::now();
    let dir = durable::parent_dir(&log).to_path_buf();
    let snapshot_bytes: u64 = keep.iter().map(Range::len).sum();
    check_free_space(&dir, snapshot_bytes + (size - cut) + (1 << 20))?;

    progress::begin(Phase::Write, snapshot_bytes);
    let mut tmp = durable::temp_beside(&log)?;
    let tmp_path = tmp.path().to_path_buf();
    durable::copy_mode_and_owner(tmp.as_file(), &tmp_path, &meta)?;
    fold::write_ranges_at(&file, keep, tmp.as_file(), scan_threads())
        .and_then(|_| crate::fail_io!("snapshot-write"))
        .map_err(|e| write_error(&tmp_path, &log, e))?;
    crate::failpoint!("after-snapshot-write");
    crate::fail_io!("snapshot-fsync")
        .and_then(|_| tmp.as_file().sync_data())
        .map_err(|e| write_error(&tmp_path, &log, e))?;
    crate::failpoint!("after-snapshot-fsync");
    // Quarantine before the swap (a crash between the two duplicates an
    // entry; the other order could lose a line), after the snapshot is safe.
    if !plan.bad.is_empty() {
        stats.quarantine_file = Some(quarantine::append(
            &log,
            &log,
            &file,
            &plan.bad,
            meta.mode(),
        )?);
    }
    stats.timings.write_ms = ms(t_write);

    // The swap, under the writers' lock.
    let t_swap = Instant::now();
    progress::begin(Phase::Swap, 0);
    lock_writers(&file, &log)?;
    let now_meta = fs::metadata(&log).ctx("stat log", &log)?;
    if now_meta.ino() != meta.ino() || now_meta.dev() != meta.dev() {
        return Err(Error::LogReplaced { path: log });
    }
    let end = file.metadata().ctx("stat log", &log)?.len();
    let tail = Range { start: cut, end };
    {
        // The snapshot was written with positioned writes: append after it.
        tmp.as_file_mut()
            .seek(SeekFrom::Start(snapshot_bytes))
            .map_err(|e| write_error(&tmp_path, &log, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fold::copy_ranges(&file, &[tail], &mut w)
            .and_then(|_| w.flush())
            .map_err(|e| write_error(&tmp_path, &log, e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| write_error(&tmp_path, &log, e))?;
    let rotated = rotation::link_rotated(&log)?;
    crate::failpoint!("after-rotate-link");
    // On failure the temp file is dropped (and so removed) with the error.
    let renamed = crate::fail_io!("rename").and_then(|_| tmp.persist(&log).map_err(|e| e.error));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&rotated);
        return Err(Error::RenameFailed {
            path: log.clone(),
            source: e,
        });
    }
    crate::failpoint!("after-rename");
    durable::fsync_dir(&dir)?;
    crate::failpoint!("after-dir-fsync");
    let _ = file.unlock();
    stats.timings.swap_ms = ms(t_swap);

    stats.tail_bytes = tail.len();
    stats.bytes_after = snapshot_bytes + tail.len();
    stats.rewritten = true;
    stats.rotated = Some(rotated);
    stats.rotated_bytes = end;
    Ok(stats)
}

/// How long the swap waits for writers to release the log's lock. Writers
/// hold it for one append; a holder past this is hung, and the run gives up
/// (changing nothing) rather than hang with it.
pub const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn lock_writers(file: &File, log: &Path) -> Result<()> {
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
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::WriterHung {
                    path: log.to_path_buf(),
                    waited: wait,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("take the writers' lock on", log, e));
            }
        }
    }
}

fn write_error(tmp: &Path, log: &Path, e: std::io::Error) -> Error {
    Error::WriteFailed {
        tmp: tmp.to_path_buf(),
        log: log.to_path_buf(),
        source: e,
    }
}
