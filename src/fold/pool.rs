//! The scan's threads and their work: the stream cut at line starts into
//! many parts, each taken, in stream order, by whichever thread is free.
//!
//! Why: with one contiguous share per thread, a run waited for its slowest
//! thread, and on a machine doing anything else one thread often lost its
//! core for a while: the timeline of a run showed one scan thread ending
//! 20-50 ms after the other. With parts a fraction of a share, the threads
//! end within about one part of each other.
//!
//! Invariants:
//! - A thread takes parts in increasing order (one shared counter), so its
//!   key map holds, for each key, the last write among its parts; the merge
//!   keeps, for each key, the write with the greatest offset among the maps
//!   ([`super::merge`]).
//! - What is joined in stream order (keyless lines, malformed lines, glued
//!   events: [`Ordered`]) is kept per part and joined in part order.
//! - Only the first part has nothing before it: only there may a delete
//!   just remove its key.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::FoldSpec;
use super::scan::{ChunkScan, Opts, Ordered, Scan};

/// Parts per thread: enough that the threads end close together, few
/// enough that a part (about 12 MiB of the standard 397 MB log on two
/// threads) costs far more than taking it.
pub(crate) const PARTS_PER_THREAD: usize = 16;

/// What the threads of one pass found: one scan (counts and key map) per
/// thread, and each part's [`Ordered`] results, in stream order.
pub(crate) struct Scanned {
    pub(crate) scans: Vec<ChunkScan>,
    pub(crate) parts: Vec<Ordered>,
}

/// Scan `parts` (in stream order) on `threads` threads, each part by
/// `scan_part`, folding the keys whose hash is at least `lo`, each
/// thread's map holding at most `budget` bytes.
pub(crate) fn scan_parts<P: Sync>(
    spec: &FoldSpec,
    opts: Opts,
    parts: &[P],
    threads: usize,
    (lo, budget): (u64, usize),
    scan_part: impl Fn(&mut Scan, &P) -> io::Result<()> + Sync,
) -> io::Result<Scanned> {
    let next = AtomicUsize::new(0);
    let work = || -> io::Result<(ChunkScan, Vec<(usize, Ordered)>)> {
        let mut scan = Scan::new(spec, opts, false, lo, budget);
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = parts.get(i) else {
                return Ok((scan.finish(), done));
            };
            scan.set_first(i == 0);
            scan_part(&mut scan, part)?;
            done.push((i, scan.take_ordered()));
        }
    };
    let results: Vec<_> = if threads <= 1 {
        vec![work()]
    } else {
        std::thread::scope(|s| {
            let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
            let mut all = vec![work()];
            all.extend(
                others
                    .into_iter()
                    .map(|h| h.join().expect("fold thread panicked")),
            );
            all
        })
    };
    let mut scans = Vec::with_capacity(results.len());
    let mut done = Vec::with_capacity(parts.len());
    for r in results {
        let (scan, d) = r?;
        scans.push(scan);
        done.extend(d);
    }
    done.sort_unstable_by_key(|(i, _)| *i);
    debug_assert!(done.iter().enumerate().all(|(k, (i, _))| k == *i));
    Ok(Scanned {
        scans,
        parts: done.into_iter().map(|(_, o)| o).collect(),
    })
}
