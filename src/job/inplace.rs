//! Compaction in place (strategy `in-place`, issue 14): the log's own inode
//! is rewritten under the writers' `flock`, so a writer that keeps one fd
//! for life and locks around each append (class B) goes on writing into the
//! file at the live path. Keyed stores only.
//!
//! With the writers' lock held for the whole rewrite (cooperating writers
//! wait; `L` is the log, `F` its fold, `T` the last line of every key the
//! fold deletes, its *tombstones*), in this crash order:
//!
//! 1. malformed lines go to the quarantine file, fsynced (as for a swap);
//! 2. `\n F T` is appended to the log in **one** `write` on an `O_APPEND`
//!    fd, then fdatasync. The file is `L \n F T`: every line of `F T` is
//!    already its key's last value, so the fold is `fold(L)` at every
//!    instant, with one empty line (malformed: quarantined by the next run
//!    if a crash stops here). The leading `\n` ends a lock-less writer's
//!    half-written line rather than gluing to it;
//! 3. the log's size is checked: if it grew, a lock-less writer is there,
//!    and the run stops here (its lines are after `F T`, so the fold is
//!    still right; nothing is shrunk; `strategy.json` remembers it);
//! 4. `F` is written over `[0, |F|)`, then fdatasync. Any mixture of old
//!    and new bytes below `|L|` folds right, because the complete `F T` after
//!    it restores every key's last value and re-deletes every deleted key
//!    (a kill leaves one torn line at the boundary; a power cut can leave a
//!    few page-sized pieces of old and new, each one malformed line);
//! 5. the size is checked again, then the log is truncated to `|F|` and
//!    fsynced. The file is `F`.
//!
//! A reader that opens the log at any step folds it to `fold(L)`; one that
//! takes `LOCK_SH` sees `L` or `F`. A reader that reads the file in pieces
//! *across* step 5 can see a prefix of one and the rest of the other: such a
//! reader must take `LOCK_SH` (docs/writers.md). A lock-less writer that
//! appends between the last size check and the truncate (microseconds) would
//! lose its line: that is why `auto` never picks this strategy when it has
//! seen a lock-less writer (`strategy.rs`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::fold::scan_threads;
use crate::fold::{self, FoldSpec};
use crate::job::compact::{Compacted, resolve_log};
use crate::job::cut::Cut;
use crate::job::late::{Generation, LateWrites};
use crate::job::record::Stats;
use crate::job::swap;

/// The largest `F T` rewritten in place: it is written in one `write` from
/// memory. A larger fold is swapped (the run says so).
pub const MAX_BYTES: u64 = 48 << 20;

/// What an in-place attempt did.
pub enum Attempt {
    Done(Box<Compacted>),
    /// Not attempted (nothing changed): why, and the swap runs instead.
    Declined(String),
}

/// Compact `store`'s log in place. The caller holds the store lock.
pub fn compact(store: &StoreConfig, state: &LateWrites) -> Result<Attempt> {
    let log = resolve_log(store.path())?;
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log)
        .ctx("open log", &log)?;
    swap::lock_writers(&rw, &log)?;
    let r = locked(store, state, &log, &rw);
    let _ = rw.unlock();
    r
}

/// The rewrite, with the writers' lock held: steps 1 to 5 of the module
/// doc, in that order.
fn locked(store: &StoreConfig, state: &LateWrites, log: &Path, rw: &File) -> Result<Attempt> {
    let t0 = std::time::Instant::now();
    let spec = FoldSpec::for_store(store)?;
    let c = Cut::take(store, Some(state))?;
    let me = rw.metadata().ctx("stat log", log)?;
    if let Some(why) = decline(&c, &me, log)? {
        return Ok(Attempt::Declined(why));
    }
    let mut stats = stats_of(&c);
    if c.plan.is_identity() {
        return Ok(same(state, stats));
    }
    let snapshot = c.plan.kept_bytes() + c.plan.newlines.len() as u64;
    if snapshot > MAX_BYTES {
        return Ok(Attempt::Declined(format!(
            "the fold is {snapshot} bytes, more than the {MAX_BYTES} an in-place rewrite writes at once"
        )));
    }
    let f = fold_bytes(&c, log)?;
    let t = tombstones(&spec, &c, log)?;
    // Step 1.
    stats.quarantine_file = swap::quarantine_bad(&c)?;
    // Step 2.
    let end = append_fold(log, c.size, &f, &t)?;
    // Step 3.
    if grew(rw, log, end)? {
        return Ok(same(state, stopped(rw, log, stats, t0)?));
    }
    // Step 4.
    copy_down(rw, log, &f)?;
    // Step 5.
    if grew(rw, log, end)? {
        return Ok(same(state, stopped(rw, log, stats, t0)?));
    }
    truncate(rw, log, f.len() as u64)?;
    stats.bytes_after = f.len() as u64;
    stats.rewritten = true;
    stats.timings.write_ms = ms(t0);
    let mut next = state.clone();
    next.live = Some(Generation {
        dev: me.dev(),
        ino: me.ino(),
        swap_point: f.len() as u64,
    });
    Ok(Attempt::Done(Box::new(Compacted {
        stats,
        state: next,
        window: None,
    })))
}

/// Why the log is not rewritten in place (before anything is written):
/// `None` if it can be. An error if the log at the path is no longer the
/// inode locked.
fn decline(c: &Cut, me: &std::fs::Metadata, log: &Path) -> Result<Option<String>> {
    if (me.dev(), me.ino()) != (c.meta.dev(), c.meta.ino()) {
        return Err(Error::Sync(crate::error::SyncError::LogReplaced {
            path: log.to_path_buf(),
        }));
    }
    if c.late_bytes() > 0 {
        return Ok(Some(
            "late writes of an earlier swap are folded at their swap point first".into(),
        ));
    }
    if c.cut != c.size {
        return Ok(Some(
            "the log ends in a torn line (a writer died mid-line)".into(),
        ));
    }
    Ok(None)
}

/// The run's stats before anything is written (the log unchanged).
fn stats_of(c: &Cut) -> Stats {
    Stats {
        bytes_before: c.size,
        bytes_after: c.size,
        lines_in: c.plan.lines_in,
        lines_out: c.plan.lines_out(true),
        keys_live: c.plan.keys_live,
        deletes_dropped: c.plan.deletes_dropped,
        keyless_kept: c.plan.keyless_kept,
        quarantined: c.plan.bad_lines,
        salvaged: c.plan.salvaged,
        unglued: c.plan.unglued,
        ..Stats::default()
    }
}

/// Done without a rewrite: the log's inode and the late-write state are
/// as they were.
fn same(state: &LateWrites, stats: Stats) -> Attempt {
    Attempt::Done(Box::new(Compacted {
        stats,
        state: state.clone(),
        window: None,
    }))
}

/// Step 2: append `\n F T` to the log (`size` bytes long) in one `write`,
/// then fdatasync. From here the fold is `fold(L)` at every instant.
/// Returns the log's size after the append.
fn append_fold(log: &Path, size: u64, f: &[u8], t: &[u8]) -> Result<u64> {
    let mut region = Vec::with_capacity(1 + f.len() + t.len());
    region.push(b'\n');
    region.extend_from_slice(f);
    region.extend_from_slice(t);
    let end = size + region.len() as u64;

    crate::failpoint::failpoint!(BeforeInplaceAppend);
    let app = OpenOptions::new()
        .append(true)
        .open(log)
        .ctx("open log", log)?;
    // One write: atomic with respect to other writers' writes.
    let n = crate::failpoint::fail_io!(InplaceAppend)
        .and_then(|_| (&app).write(&region))
        .map_err(|e| swap::write_error(log, log, e))?;
    if n != region.len() {
        return Err(Error::io(
            "append the fold to (short write; the log folds as before, the next run tidies it)",
            log,
            std::io::Error::from(std::io::ErrorKind::WriteZero),
        ));
    }
    app.sync_data().ctx("fsync log", log)?;
    crate::failpoint::failpoint!(AfterInplaceAppend);
    Ok(end)
}

/// Steps 3 and 5: the log is no longer `end` bytes long, so a lock-less
/// writer appended after `F T` (the fold is still right) and the run stops
/// without shrinking it.
fn grew(rw: &File, log: &Path, end: u64) -> Result<bool> {
    Ok(rw.metadata().ctx("stat log", log)?.len() != end)
}

/// The stats of a run stopped because the log grew: nothing is shrunk.
fn stopped(rw: &File, log: &Path, mut stats: Stats, t0: std::time::Instant) -> Result<Stats> {
    stats.bytes_after = rw.metadata().ctx("stat log", log)?.len();
    stats.timings.write_ms = ms(t0);
    Ok(stats)
}

/// Step 4: `F` over `[0, |F|)`, then fdatasync. Any mixture of old and new
/// bytes below `|L|` folds right: the complete `F T` after it restores
/// every key's last value.
fn copy_down(rw: &File, log: &Path, f: &[u8]) -> Result<()> {
    rw.write_all_at(f, 0)
        .and_then(|_| rw.sync_data())
        .map_err(|e| swap::write_error(log, log, e))?;
    crate::failpoint::failpoint!(AfterInplaceCopyDown);
    Ok(())
}

/// Step 5, after the size check: the log is truncated to `|F|` and
/// fsynced. The file is `F`.
fn truncate(rw: &File, log: &Path, len: u64) -> Result<()> {
    rw.set_len(len)
        .and_then(|_| rw.sync_all())
        .ctx("truncate log", log)?;
    crate::failpoint::failpoint!(AfterInplaceTruncate);
    Ok(())
}

fn ms(since: std::time::Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// `F`: the fold's survivors, as a swap would write them.
fn fold_bytes(c: &Cut, log: &Path) -> Result<Vec<u8>> {
    let dir = crate::io::durable::parent_dir(log);
    let mut tmp = tempfile::tempfile_in(dir).ctx("create a temp file in", dir)?;
    fold::spans::write_spans(
        &c.spans(),
        &c.plan.keep,
        &c.plan.newlines,
        &tmp,
        scan_threads(),
    )
    .map_err(|e| swap::write_error(dir, log, e))?;
    let mut f = Vec::new();
    tmp.rewind()
        .and_then(|_| tmp.read_to_end(&mut f))
        .ctx("read back the fold of", log)?;
    Ok(f)
}

/// `T`: the last line of each key whose last line deletes it, in order
/// (the fold engine's tombstones).
fn tombstones(spec: &FoldSpec, c: &Cut, log: &Path) -> Result<Vec<u8>> {
    let span = [fold::spans::FileSpan {
        file: &c.file,
        path: log,
        start: 0,
        end: c.cut,
    }];
    let opts = fold::Opts {
        tombs: true,
        salvage: false,
        ..fold::Opts::compaction(scan_threads(), 8 << 20)
    };
    let plan = fold::spans::fold_source(spec, &span[..], opts).ctx("read log", log)?;
    let mut out = Vec::new();
    fold::copy_ranges(&c.file, &plan.tombs, &mut out).ctx("read log", log)?;
    Ok(out)
}
