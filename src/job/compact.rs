//! Compacting one log: cut and fold (`cut.rs`), then the swap's steps
//! (`swap.rs`, where each step's crash reasoning is stated), in order.
//!
//! The caller holds the store lock (G5). Late writes recorded in the
//! store's [`LateWrites`] are folded in at the swap point and the state that
//! the swap makes true is prepared durably before the rename (see
//! `late.rs`); the caller commits it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{LogPolicy, StoreConfig};
use crate::error::{Error, IoContext, Result};
pub use crate::fold::scan_threads;
use crate::fold::{FoldSpec, Range};
use crate::io::durable;
use crate::io::progress::{self, Phase};
use crate::io::rewrite::Rewrite;
use crate::job::carry;
use crate::job::census::Census;
use crate::job::cut::Cut;
pub use crate::job::cut::resolve_log;
use crate::job::late::{self, Generation, LateWrites, Watch};
use crate::job::record::{RunRecords, Stats};
use crate::job::{interrupt, swap, verify};
use crate::plan::{self, log::Choice};

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Check that the log's filesystem has room for `need` more bytes. Returns
/// false (and checks nothing) where the filesystem reports no size at all
/// (0 total blocks: many FUSE filesystems).
fn check_free_space(dir: &Path, need: u64) -> Result<bool> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
        Error::Sync(crate::error::SyncError::NulInPath {
            path: dir.to_path_buf(),
        })
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
    if crate::failpoint::fail_io!(StatvfsNoTotal).is_err() {
        // What many FUSE filesystems report.
        (st.f_blocks, st.f_bavail) = (0, 0);
    }
    if st.f_blocks == 0 {
        tracing::warn!(
            "{} reports 0 total blocks (a FUSE filesystem?): the free-space check was skipped",
            dir.display()
        );
        return Ok(false);
    }
    #[allow(unused_mut)]
    let mut avail = st.f_bavail as u64 * st.f_frsize as u64;
    if crate::failpoint::fail_io!(FreeSpace).is_err() {
        avail = 0;
    }
    if avail < need {
        return Err(Error::Sync(crate::error::SyncError::NoSpace {
            dir: dir.to_path_buf(),
            need,
            avail,
        }));
    }
    Ok(true)
}

/// What a compaction did, and the late-write state it made true.
pub struct Compacted {
    pub stats: Stats,
    /// The state to commit (unchanged when the log was left as it was).
    pub state: LateWrites,
    /// The carry window after a swap, if one ran.
    pub window: Option<carry::Window>,
}

/// The carry window a swap is followed by: the census of the log taken
/// before the swap, and how long the window may stay open.
pub struct CarryWindow<'a> {
    pub before: &'a Census,
    pub window: std::time::Duration,
}

/// Compact the store's log, folding in the late writes of `state`. The
/// caller must hold the store lock, and commit the returned state. Cut and
/// fold, then execute the plan's choice (`plan::log::choose`) in one match.
pub fn compact(
    store: &StoreConfig,
    policy: &LogPolicy,
    state_dir: &Path,
    state: &LateWrites,
    carry: Option<CarryWindow>,
) -> Result<Compacted> {
    let t_scan = Instant::now();
    progress::begin(
        Phase::Scan,
        fs::metadata(&policy.log).map_or(0, |m| m.len()),
    );
    let keys = RunRecords::new(state_dir.to_path_buf())
        .baseline()
        .and_then(|b| b.map_keys)
        .unwrap_or(0);
    let mut c = Cut::take_presized(store, Some(state), keys)?;
    interrupt::check("after reading the log")?;
    let spec = FoldSpec::for_store(store)?;
    let mut stats = fold_stats(&c, &spec)?;
    stats.timings.scan_ms = ms(t_scan);
    let folded = plan::log::Folded {
        keyed: spec.is_keyed(),
        identity: c.plan.is_identity(),
        late_bytes: c.late_bytes(),
        size: c.size,
    };
    let archive = match plan::log::choose(policy, &folded) {
        // The fold changes nothing: leave the log (and its inode) alone.
        Choice::Keep | Choice::Skip(_) => {
            return Ok(Compacted {
                stats,
                state: state.clone(),
                window: None,
            });
        }
        Choice::Rewrite => false,
        // A rotated file of an append-only store is its archive, read
        // before the live log: everything the old inode holds (tail and
        // late writes included) stays there, and the new log starts empty.
        Choice::Archive => {
            c.plan.newlines.clear();
            c.plan.keep.clear();
            stats.lines_out = 0;
            true
        }
    };
    let (tmp, snapshot) = write_new(&c, &spec, state_dir, &mut stats)?;
    let t_swap = Instant::now();
    let (appended, rotated, mut next, live, gate) = swap_in(
        &mut c,
        tmp,
        snapshot,
        state_dir,
        state,
        archive,
        carry.is_some().then_some(spec.is_keyed()),
    )?;
    stats.timings.swap_ms = ms(t_swap);
    // The carry window (a swap that rotated a watched file only): what
    // lock-less writers append to the old inode reaches the live log now.
    let window = match (carry, live) {
        (Some(cw), Some(live)) => Some(carry::run(
            &c.log, &live, gate, &rotated, &c.file, state_dir, &mut next, cw.window, cw.before,
        )?),
        _ => None,
    };
    swapped_stats(&mut stats, &c, &appended, rotated)?;
    Ok(Compacted {
        stats,
        state: next,
        window,
    })
}

/// The figures of a swap that happened: late lines carried, the tail,
/// the new and rotated files.
fn swapped_stats(
    stats: &mut Stats,
    c: &Cut,
    appended: &swap::Appended,
    rotated: PathBuf,
) -> Result<()> {
    let late_bad = stats.late_lines_quarantined;
    stats.late_lines_carried = late::count_lines(&c.late)?.saturating_sub(late_bad);
    stats.late_lines_from = c
        .late
        .iter()
        .rev()
        .find(|o| o.end > o.watch.carried)
        .map(|o| o.watch.rotated.clone());
    stats.tail_bytes = appended.tail.len();
    stats.bytes_after = appended.len;
    stats.rewritten = true;
    stats.rotated = Some(rotated);
    stats.rotated_bytes = appended.tail.end;
    Ok(())
}

/// The figures of the fold, before anything is written; malformed late
/// lines (quarantined from their rotated file) in `late_lines_quarantined`.
fn fold_stats(c: &Cut, spec: &FoldSpec) -> Result<Stats> {
    let mut late_bad = 0;
    for (seg, b) in crate::fold::spans::locate_bad(&c.spans(), &c.plan.bad) {
        if seg.path != c.log {
            late_bad += crate::fold::count_lines_in(seg.file, b.range)
                .ctx("read late writes in", seg.path)?;
        }
    }
    Ok(Stats {
        bytes_before: c.size,
        bytes_after: c.size,
        lines_in: c.plan.lines_in,
        lines_out: c.plan.lines_out(spec.is_keyed()),
        keys_live: c.plan.keys_live,
        deletes_dropped: c.plan.deletes_dropped,
        keyless_kept: c.plan.keyless_kept,
        quarantined: c.plan.bad_lines,
        salvaged: c.plan.salvaged,
        unglued: c.plan.unglued,
        tail_bytes: c.size.saturating_sub(c.cut),
        late_lines_quarantined: late_bad,
        map_keys: c.plan.map_keys,
        ..Stats::default()
    })
}

/// Swap steps 1-2: check the free space, write the snapshot of the kept
/// ranges to a temp file beside the log, verify it, quarantine the
/// malformed lines. Returns the temp file and the snapshot's length.
fn write_new(
    c: &Cut,
    spec: &FoldSpec,
    state_dir: &Path,
    stats: &mut Stats,
) -> Result<(Rewrite, u64)> {
    let t_write = Instant::now();
    let keep = &c.plan.keep;
    let dir = durable::parent_dir(&c.log).to_path_buf();
    let snapshot_bytes: u64 =
        keep.iter().map(Range::len).sum::<u64>() + c.plan.newlines.len() as u64;
    stats.free_space_unchecked =
        !check_free_space(&dir, snapshot_bytes + (c.size - c.cut) + (1 << 20))?;

    progress::begin(Phase::Write, snapshot_bytes);
    let tmp = swap::prepare(c)?;
    let snapshot = swap::write_snapshot(c, keep, &tmp, scan_threads())?;
    let segs = c.spans();
    let plan = verify::Planned {
        keys: c.plan.keys_live,
        spec,
        segs: &segs,
        keep,
        newlines: &c.plan.newlines,
    };
    // The fsync waits on the disk, the verification reads the page cache:
    // they run at once, and the swap goes on only when both passed. The
    // verification reads what a read after the fsync would (the fsync
    // writes the cached pages out; it does not change them).
    let (synced, verified) = std::thread::scope(|s| {
        let synced = s.spawn(|| swap::sync_snapshot(c, &tmp));
        let verified = verify::snapshot(&plan, tmp.temp(), snapshot, &c.log, state_dir);
        (synced.join().expect("fsync thread panicked"), verified)
    });
    synced?;
    let verified = verified?;
    stats.timings.verify_ms = verified.ms;
    stats.verify = Some(verified);
    interrupt::check("after writing the new file")?;
    stats.quarantine_file = swap::quarantine_bad(c).map_err(|e| {
        Error::Sync(crate::error::SyncError::QuarantineFailed {
            log: c.log.clone(),
            source: Box::new(e),
        })
    })?;
    stats.timings.write_ms = ms(t_write);
    Ok((tmp, snapshot))
}

/// What a swap leaves: the bytes appended, the rotated name, the state to
/// commit, and for a carry window the new file's append handle and its
/// open gate.
type Swapped = (
    swap::Appended,
    PathBuf,
    LateWrites,
    Option<fs::File>,
    carry::Gate,
);

/// Swap steps 3-7 under the writers' lock: the late writes and the tail
/// (not for an archive), the rotated name, the prepared late-write state,
/// the exchange. `carry`: a carry window follows (not after an archive),
/// with its first carry at the exchange when `Some(true)` (a keyed store).
fn swap_in(
    c: &mut Cut,
    mut tmp: Rewrite,
    snapshot: u64,
    state_dir: &Path,
    state: &LateWrites,
    archive: bool,
    carry: Option<bool>,
) -> Result<Swapped> {
    progress::begin(Phase::Swap, 0);
    crate::failpoint::failpoint!(BeforeSwapLock);
    // The last safe point: from the writers' lock on, the swap finishes.
    interrupt::check("before the swap")?;
    swap::lock_and_verify(c)?;
    let swapped = (|| {
        let appended = if archive {
            swap::Appended {
                tail: Range {
                    start: c.cut,
                    end: c.cut,
                },
                len: snapshot,
            }
        } else {
            swap::append_late_and_tail(c, &mut tmp, snapshot)?
        };
        let rotated = swap::link_rotated(c)?;
        let new = tmp.file().metadata().ctx("stat", tmp.path())?;
        let next = next_state(c, &rotated, !archive, appended.tail.end, &new, appended.len);
        if let Err(e) = late::prepare(state_dir, state, &next) {
            let _ = fs::remove_file(&rotated);
            return Err(e);
        }
        crate::failpoint::failpoint!(AfterLatePrepare);
        let mut next = next;
        let carry = carry.filter(|_| !archive);
        // The new file as the carry window appends to it, opened before
        // the gate is armed on it (the run must not open the live path
        // while its gate holds opens of it).
        let (live, gate) = if carry.is_some() {
            let live = carry::append_handle(tmp.file(), tmp.path())?;
            let gate = carry::Gate::arm(&live);
            (Some(live), gate)
        } else {
            (None, carry::Gate::off())
        };
        swap::exchange(c, tmp, &rotated, || {
            // Not fatal: the window's first poll carries them (and fails
            // the run, after the directory fsync, if it cannot).
            if carry == Some(true)
                && let Some(live) = &live
                && let Err(e) = carry::first(&c.log, live, &rotated, &c.file, &mut next)
            {
                tracing::warn!("{e}");
            }
            Ok(())
        })?;
        Ok((appended, rotated, next, live, gate))
    })();
    let _ = c.file.unlock();
    swapped
}

/// The late-write state once the swap is done: every watched file carried
/// as far as this run read it, plus the file rotated now (unless it is an
/// archive, which keeps its late writes), watched from where its tail copy
/// ended; late writes now fold in at the new file's end.
fn next_state(
    c: &Cut,
    rotated: &Path,
    watch_rotated: bool,
    copied_to: u64,
    new: &fs::Metadata,
    new_len: u64,
) -> LateWrites {
    let mut watches: Vec<Watch> = c
        .late
        .iter()
        .map(|o| Watch {
            carried: o.end,
            print: if o.end == o.watch.carried {
                o.watch.print
            } else {
                late::stamp(&o.file, o.end)
            },
            ..o.watch.clone()
        })
        .collect();
    if watch_rotated {
        watches.push(Watch {
            rotated: rotated.to_path_buf(),
            carried: copied_to,
            dev: c.meta.dev(),
            ino: c.meta.ino(),
            print: late::stamp(&c.file, copied_to),
        });
    }
    LateWrites {
        live: Some(Generation {
            dev: new.dev(),
            ino: new.ino(),
            swap_point: new_len,
        }),
        watches,
    }
}
