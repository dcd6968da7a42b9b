//! The fold engine: one logical stream made of spans of files, split over
//! threads, folded into one [`Plan`].
//!
//! Every fold runs here: a single log's compaction (one span, or more when
//! late writes are folded at the swap point), a segmented store's merge and
//! `replay` (one span per segment), and the verification before a swap (the
//! new file). A span is `[start, end)` of one file; late writes, for
//! example, make the stream `live[0, P) ++ rotated₁[c₁, e₁) ++ … ++
//! live[P, cut)`, because they belong at the swap point, not at the end.
//!
//! The spans are laid end to end in a virtual offset space: span `k`
//! occupies `[base_k, base_k + len_k)`. The space is cut at line starts
//! into parts ([`split`]), many per thread; each thread takes the next
//! part in stream order and scans its pieces into its one key map,
//! recording virtual offsets ([`super::pool`]); the merge
//! ([`super::merge`]) then decides each key's last write: the one at the
//! greatest offset in any map. Copying maps
//! the virtual ranges back to `(file, offset)` ([`locate`]).
//!
//! Invariants:
//! - Every span starts at a line start and ends just after a `\n`, so no
//!   line spans two spans.
//! - With a single span `[0, cut)` of one file, virtual offsets are file
//!   offsets.

use std::fs::File;
use std::io;
use std::path::Path;

use super::scan::Opts;
use super::{Bad, FoldSpec, Plan, Range, next_line_start};
use crate::io::ranges::{BUF, READ_GAP, copy_share};

/// One piece of the logical stream: `[start, end)` of an open `file`.
#[derive(Clone, Copy, Debug)]
pub struct FileSpan<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub start: u64,
    pub end: u64,
}

impl FileSpan<'_> {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Where a fold reads from: spans of files, each `[start, end)`.
pub(crate) trait Source: Sync {
    /// `(start, end)` of every span, in stream order.
    fn bounds(&self) -> Vec<(u64, u64)>;
    /// Run `f` on span `k`'s file.
    fn with_file<R>(&self, k: usize, f: impl FnOnce(&File) -> io::Result<R>) -> io::Result<R>;
}

impl Source for [FileSpan<'_>] {
    fn bounds(&self) -> Vec<(u64, u64)> {
        self.iter().map(|s| (s.start, s.end)).collect()
    }
    fn with_file<R>(&self, k: usize, f: impl FnOnce(&File) -> io::Result<R>) -> io::Result<R> {
        f(self[k].file)
    }
}

/// Spans of files that are opened only while they are read (a segmented
/// store may hold more files than a process may keep open): `open(k)`
/// opens span `k`'s file, and may check it is still the file it was.
pub(crate) struct Reopened<F> {
    pub(crate) spans: Vec<(u64, u64)>,
    pub(crate) open: F,
}

impl<F: Fn(usize) -> io::Result<File> + Sync> Source for Reopened<F> {
    fn bounds(&self) -> Vec<(u64, u64)> {
        self.spans.clone()
    }
    fn with_file<R>(&self, k: usize, f: impl FnOnce(&File) -> io::Result<R>) -> io::Result<R> {
        f(&(self.open)(k)?)
    }
}

/// Where each span starts in the virtual offset space, and the total.
fn bases(bounds: &[(u64, u64)]) -> (Vec<u64>, u64) {
    let mut at = 0;
    let b = bounds
        .iter()
        .map(|(s, e)| {
            let b = at;
            at += e - s;
            b
        })
        .collect();
    (b, at)
}

/// Part of one thread's share: `[start, end)` of span `span`, whose first
/// byte is at virtual offset `base`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    pub(crate) span: usize,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) base: u64,
}

/// The one way work is split across threads: the stream cut at line
/// starts into at most `threads` contiguous shares of at least `min_chunk`
/// bytes, each a list of pieces in stream order.
pub(crate) fn split<S: Source + ?Sized>(
    src: &S,
    threads: usize,
    min_chunk: u64,
) -> io::Result<Vec<Vec<Piece>>> {
    let bounds = src.bounds();
    let (bases, total) = bases(&bounds);
    let n = threads
        .clamp(1, 256)
        .min((total / min_chunk.max(1)).max(1) as usize);
    let mut cuts = vec![0u64];
    for i in 1..n {
        let t = total * i as u64 / n as u64;
        let k = bases.partition_point(|&b| b <= t) - 1;
        let (s, e) = bounds[k];
        let at = src.with_file(k, |f| next_line_start(f, s + (t - bases[k]), e))?;
        let v = bases[k] + (at - s);
        if v > *cuts.last().unwrap() && v < total {
            cuts.push(v);
        }
    }
    cuts.push(total);
    Ok(cuts
        .windows(2)
        .map(|w| {
            (0..bounds.len())
                .filter_map(|k| {
                    let (s, e) = bounds[k];
                    let lo = w[0].max(bases[k]);
                    let hi = w[1].min(bases[k] + (e - s));
                    (lo < hi).then(|| Piece {
                        span: k,
                        start: s + (lo - bases[k]),
                        end: s + (hi - bases[k]),
                        base: lo,
                    })
                })
                .collect()
        })
        .collect())
}

/// Run `f` on each share of [`split`], one thread each (inline when there
/// is one), and return the results in stream order.
pub(crate) fn for_shares<T: Send>(
    shares: &[Vec<Piece>],
    f: impl Fn(usize, &[Piece]) -> io::Result<T> + Sync,
) -> io::Result<Vec<T>> {
    if shares.len() <= 1 {
        return shares.iter().enumerate().map(|(i, s)| f(i, s)).collect();
    }
    std::thread::scope(|sc| {
        let f = &f;
        let handles: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| sc.spawn(move || f(i, s)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fold thread panicked"))
            .collect()
    })
}

/// Fold the logical stream `src` (in order). The plan's ranges are virtual
/// offsets; map them back with [`locate`] / [`write_spans`] / [`copy_spans`].
///
/// Memory stays flat: the first pass records everything and folds the
/// keys whose hash is below some `hi`, chosen as the threads' maps reach
/// [`Opts::budget`]; each further pass reads the stream again and folds
/// the next range of hashes, until every hash is covered. A key lives in
/// exactly one pass, and its bytes are compared exactly within it.
pub(crate) fn fold_source<S: Source + ?Sized>(
    spec: &FoldSpec,
    src: &S,
    opts: Opts,
) -> io::Result<Plan> {
    use super::pool::{PARTS_PER_THREAD, scan_parts};
    // As many threads as shares of at least `min_chunk`, each taking parts
    // a fraction of a share (`fold::pool`).
    let threads = split(src, opts.threads, opts.min_chunk)?.len();
    let parts = match threads {
        0 | 1 => split(src, 1, opts.min_chunk)?,
        n => split(
            src,
            n * PARTS_PER_THREAD,
            (opts.min_chunk / PARTS_PER_THREAD as u64).max(1),
        )?,
    };
    let threads = threads.min(parts.len()).max(1);
    let budget = (opts.budget / threads).max(64 << 10);
    let mut plan = Plan {
        cut: bases(&src.bounds()).1,
        ..Plan::default()
    };
    let mut keep = super::runs::Runs::default();
    let mut lo = 0u64;
    loop {
        let scanned = scan_parts(spec, opts, &parts, threads, (lo, budget), |scan, part| {
            part.iter()
                .try_for_each(|p| src.with_file(p.span, |f| scan.piece(f, p.start, p.end, p.base)))
        })?;
        plan.passes += 1;
        let hi = if lo == 0 {
            super::merge::merge(spec, scanned, opts, &mut plan, &mut keep)
        } else {
            super::merge::merge_keys(scanned.scans, opts, &mut plan, &mut keep)
        };
        if hi == u64::MAX {
            break;
        }
        lo = hi + 1;
    }
    plan.keep = keep.to_vec();
    drop(keep);
    super::merge::keep_needed_newlines(&mut plan);
    Ok(plan)
}

/// Fold the logical stream `segs` as a compaction does (deletes dropped,
/// torn and glued lines salvaged).
pub fn fold_spans(
    spec: &FoldSpec,
    segs: &[FileSpan],
    threads: usize,
    min_chunk: u64,
) -> io::Result<Plan> {
    fold_source(spec, segs, Opts::compaction(threads, min_chunk))
}

/// Split virtual ranges (sorted) into per-span file ranges, in order:
/// `(span index, file range)`. A range that crosses a span boundary
/// (adjacent kept lines coalesced) is split there.
pub fn locate(segs: &[FileSpan], ranges: &[Range]) -> Vec<(usize, Range)> {
    locate_in(&segs.bounds(), ranges)
}

pub(crate) fn locate_in(bounds: &[(u64, u64)], ranges: &[Range]) -> Vec<(usize, Range)> {
    let (bases, _) = bases(bounds);
    let len = |k: usize| bounds[k].1 - bounds[k].0;
    let mut out: Vec<(usize, Range)> = Vec::with_capacity(ranges.len());
    let mut k = 0;
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            while k + 1 < bounds.len() && at >= bases[k] + len(k) {
                k += 1;
            }
            let upto = r.end.min(bases[k] + len(k));
            let fr = Range {
                start: bounds[k].0 + (at - bases[k]),
                end: bounds[k].0 + (upto - bases[k]),
            };
            match out.last_mut() {
                Some((lk, last)) if *lk == k && last.end == fr.start => last.end = fr.end,
                _ => out.push((k, fr)),
            }
            at = upto;
        }
    }
    out
}

/// A malformed line's (or run's) real place: the span's file path and
/// file range. A run that crosses a span boundary is split there.
pub fn locate_bad<'a>(segs: &[FileSpan<'a>], bad: &[Bad]) -> Vec<(FileSpan<'a>, Bad)> {
    bad.iter()
        .flat_map(|b| {
            locate(segs, std::slice::from_ref(&b.range))
                .into_iter()
                .map(|(k, r)| {
                    (
                        segs[k],
                        Bad {
                            range: r,
                            reason: b.reason.clone(),
                        },
                    )
                })
        })
        .collect()
}

/// Pieces in output order: (span, file range, `\n` after it), made as
/// they are consumed: a plan over millions of live keys has as many, and
/// a list of them (32 bytes each) held the write's memory in proportion.
fn output_pieces<'a>(
    bounds: &'a [(u64, u64)],
    ranges: &'a [Range],
    newlines: &'a [u64],
) -> impl Iterator<Item = (usize, Range, bool)> + 'a {
    super::split_at_newlines(ranges, newlines).flat_map(move |(piece, nl)| {
        let located = locate_in(bounds, std::slice::from_ref(&piece));
        let last = located.len().saturating_sub(1);
        located
            .into_iter()
            .enumerate()
            .map(move |(i, (k, r))| (k, r, nl && i == last))
    })
}

/// At most this many ranges are copied in one call: what a copy holds
/// beside the plan stays bounded, however many pieces lie between two
/// inserted `\n`s in one file.
const GROUP_MAX: usize = 1 << 14;

/// Copy the kept virtual `ranges` of `src` to `dst` in order, with a `\n`
/// after each of `newlines`, one file open at a time. Returns the bytes
/// written.
pub(crate) fn copy_spans<S: Source + ?Sized>(
    src: &S,
    ranges: &[Range],
    newlines: &[u64],
    dst: &mut impl io::Write,
) -> io::Result<u64> {
    let bounds = src.bounds();
    let mut pieces = output_pieces(&bounds, ranges, newlines).peekable();
    let mut total = 0;
    while let Some(&(k, _, _)) = pieces.peek() {
        total += src.with_file(k, |f| {
            // Ranges up to each inserted `\n` go in one call: its window
            // serves neighbouring ranges (a call per range read a fresh
            // 1 MiB for each line).
            let (mut n, mut batch) = (0, Vec::new());
            while let Some((_, r, nl)) = pieces.next_if(|p| p.0 == k) {
                batch.push(r);
                if nl || batch.len() == GROUP_MAX {
                    n += super::copy_ranges(f, &batch, dst)?;
                    batch.clear();
                }
                if nl {
                    dst.write_all(b"\n")?;
                    n += 1;
                }
            }
            Ok(n + super::copy_ranges(f, &batch, dst)?)
        })?;
    }
    Ok(total)
}

/// Write the kept virtual `ranges` of `segs` to `dst` from offset 0, in
/// order (positioned writes, one thread per run of ranges in one file), with
/// a `\n` after each of `newlines` (see [`Plan::newlines`]). Returns the
/// bytes written.
pub fn write_spans(
    segs: &[FileSpan],
    ranges: &[Range],
    newlines: &[u64],
    dst: &File,
    threads: usize,
) -> io::Result<u64> {
    if segs.len() == 1 && segs[0].start == 0 && newlines.is_empty() {
        return super::write_ranges_at(segs[0].file, ranges, dst, threads);
    }
    let bounds = segs.bounds();
    let mut pieces = output_pieces(&bounds, ranges, newlines).peekable();
    let (mut out_at, mut staging, mut group) = (0, Vec::new(), Vec::new());
    while let Some(&(k, _, _)) = pieces.peek() {
        group.clear();
        let mut nl = false;
        while group.len() < GROUP_MAX
            && let Some((_, r, n)) = pieces.next_if(|p| p.0 == k)
        {
            group.push(r);
            nl = n;
            if nl {
                break;
            }
        }
        let at = (BUF, READ_GAP);
        out_at += copy_share(segs[k].file, &group, dst, out_at, at, &mut staging)?;
        if nl {
            std::os::unix::fs::FileExt::write_all_at(dst, b"\n", out_at)?;
            out_at += 1;
        }
    }
    Ok(out_at)
}

#[cfg(test)]
mod tests;
