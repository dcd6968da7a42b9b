//! The snapshot's write on several threads: the kept ranges cut into
//! parts of about equal output bytes, which the threads take in turn, each
//! copying its part to the part's own output offset ([`super::copy_share`]).
//!
//! Invariants: the parts cover the ranges in order, none empty, and each
//! starts at the output offset where the previous one ends, so the file is
//! the ranges' bytes in order whichever thread wrote which part.

use std::fs::File;
use std::io;

use super::{BUF, READ_GAP, Range, copy_share};

/// Write the bytes of `ranges` (sorted, non-overlapping) of `src` to `dst`
/// from offset 0, in order, with up to `threads` threads, each taking parts
/// of the ranges in turn and copying each to its own offset with positioned
/// writes. Only the survivors (and gaps under [`READ_GAP`]) are read.
/// Writeback of the output is started in steps; the caller still fsyncs
/// `dst`. Returns the bytes written. `dst`'s file position is not used or
/// moved.
pub fn write_ranges_at(
    src: &File,
    ranges: &[Range],
    dst: &File,
    threads: usize,
) -> io::Result<u64> {
    write_ranges_at_with(src, ranges, dst, threads, (BUF, READ_GAP), MIN_SHARE)
}

/// Below this many output bytes per thread a second thread costs more
/// than it saves.
const MIN_SHARE: u64 = 4 << 20;

/// Parts per thread of [`write_ranges_at`]. Why parts, not one share per
/// thread: equal output bytes are not equal work. A log's survivors lie
/// sparse early in it (few lines there are any key's last write) and dense
/// late, and a sparse stretch touches a source page per line: with one
/// share per thread, the thread copying the first half took twice as long
/// as the other (23 against 12 ms on the standard workload).
const WRITE_PARTS_PER_THREAD: usize = 8;

pub(super) fn write_ranges_at_with(
    src: &File,
    ranges: &[Range],
    dst: &File,
    threads: usize,
    (buf_size, gap): (usize, u64),
    min_share: u64,
) -> io::Result<u64> {
    let total: u64 = ranges.iter().map(Range::len).sum();
    let threads = threads
        .clamp(1, 16)
        .min((total / min_share.max(1)).max(1) as usize);
    if threads == 1 {
        return copy_share(src, ranges, dst, 0, (buf_size, gap), &mut Vec::new());
    }
    let parts = split_by_output(ranges, total, threads * WRITE_PARTS_PER_THREAD);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> io::Result<u64> {
        let (mut written, mut staging) = (0, Vec::new());
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(part, at)) = parts.get(i) else {
                return Ok(written);
            };
            written += copy_share(src, part, dst, at, (buf_size, gap), &mut staging)?;
        }
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut written = work()?;
        for h in others {
            written += h.join().expect("copy thread panicked")?;
        }
        Ok(written)
    })
}

/// `ranges` cut into `n` parts of about equal output bytes (never an empty
/// one), each with the output offset where it starts.
pub(super) fn split_by_output(ranges: &[Range], total: u64, n: usize) -> Vec<(&[Range], u64)> {
    let mut parts = Vec::with_capacity(n);
    let (mut from, mut acc, mut out_at) = (0usize, 0u64, 0u64);
    for (i, r) in ranges.iter().enumerate() {
        acc += r.len();
        if acc * n as u64 >= total * (parts.len() as u64 + 1) && parts.len() + 1 < n {
            parts.push((&ranges[from..=i], out_at));
            from = i + 1;
            out_at = acc;
        }
    }
    if from < ranges.len() {
        parts.push((&ranges[from..], out_at));
    }
    parts
}
