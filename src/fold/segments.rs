//! Folding a sequence of byte ranges that lie in more than one file.
//!
//! Late writes (lines a lock-less writer appended to a rotated file after a
//! swap) belong at the swap point of the live log, not at its end: the live
//! log's lines before the swap point are older, the lines after it may be
//! newer. So a compaction folds the *logical* stream
//! `live[0, P) ++ rotated₁[c₁, e₁) ++ … ++ live[P, cut)`.
//!
//! The segments are laid end to end in a virtual offset space: segment `k`
//! occupies `[base_k, base_k + len_k)`. Each segment is scanned (the first,
//! large one in parallel chunks) and its ranges shifted into that space, so
//! the ordinary merge decides each key's last write across files. Copying
//! maps the virtual ranges back to `(file, offset)`.
//!
//! Invariants:
//! - Every segment starts at a line start and ends just after a `\n`, so no
//!   line spans two segments.
//! - With a single segment `[0, cut)` of one file, virtual offsets are file
//!   offsets: the result is exactly [`fold`](super::fold)'s.

use std::fs::File;
use std::io;
use std::path::Path;

use super::scan::{ChunkScan, Entry, merge, scan_chunk};
use super::{Bad, FoldSpec, Plan, Range, next_line_start};
use crate::io::ranges::{BUF, READ_GAP, copy_share};

/// One piece of the logical stream: `[start, end)` of `file`.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub start: u64,
    pub end: u64,
}

impl Segment<'_> {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Where each segment starts in the virtual offset space.
fn bases(segs: &[Segment]) -> Vec<u64> {
    let mut at = 0;
    segs.iter()
        .map(|s| {
            let b = at;
            at += s.len();
            b
        })
        .collect()
}

/// Fold the logical stream `segs` (in order). The plan's ranges are virtual
/// offsets; map them back with [`locate`] / [`write_segments`].
pub fn fold_segments(
    spec: &FoldSpec,
    segs: &[Segment],
    threads: usize,
    min_chunk: u64,
) -> io::Result<Plan> {
    let bases = bases(segs);
    let total: u64 = segs.iter().map(Segment::len).sum();
    let mut jobs: Vec<(usize, u64, u64)> = Vec::new(); // (segment, start, end)
    for (k, s) in segs.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        let n = threads
            .clamp(1, 16)
            .min((s.len() / min_chunk).max(1) as usize);
        let mut bounds = vec![s.start];
        for i in 1..n {
            let b = next_line_start(s.file, s.start + s.len() * i as u64 / n as u64, s.end)?;
            if b > *bounds.last().unwrap() && b < s.end {
                bounds.push(b);
            }
        }
        bounds.push(s.end);
        jobs.extend(bounds.windows(2).map(|w| (k, w[0], w[1])));
    }
    let scan = |i: usize, (k, a, b): (usize, u64, u64)| -> io::Result<ChunkScan> {
        let mut c = scan_chunk(spec, segs[k].file, a, b, i == 0)?;
        shift(&mut c, bases[k] as i128 - segs[k].start as i128);
        Ok(c)
    };
    let chunks: Vec<ChunkScan> = if jobs.len() <= 1 {
        jobs.iter()
            .enumerate()
            .map(|(i, &j)| scan(i, j))
            .collect::<io::Result<_>>()?
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .iter()
                .enumerate()
                .map(|(i, &j)| s.spawn(move || scan(i, j)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scan thread panicked"))
                .collect::<io::Result<Vec<_>>>()
        })?
    };
    Ok(merge(spec, chunks, total))
}

fn shift(c: &mut ChunkScan, by: i128) {
    if by == 0 {
        return;
    }
    let mv = |r: Range| Range {
        start: (r.start as i128 + by) as u64,
        end: (r.end as i128 + by) as u64,
    };
    for e in c.map.values_mut() {
        *e = Entry::new(mv(e.range()), e.tomb());
    }
    for r in c.keyless.iter_mut() {
        *r = mv(*r);
    }
    for b in c.bad.iter_mut() {
        b.range = mv(b.range);
    }
    for x in c.newlines.iter_mut() {
        *x = (*x as i128 + by) as u64;
    }
}

/// Split virtual ranges (sorted) into per-segment file ranges, in order:
/// `(segment index, file range)`. A range that crosses a segment boundary
/// (adjacent kept lines coalesced) is split there.
pub fn locate(segs: &[Segment], ranges: &[Range]) -> Vec<(usize, Range)> {
    let bases = bases(segs);
    let mut out: Vec<(usize, Range)> = Vec::with_capacity(ranges.len());
    let mut k = 0;
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            while k + 1 < segs.len() && at >= bases[k] + segs[k].len() {
                k += 1;
            }
            let seg_end = bases[k] + segs[k].len();
            let upto = r.end.min(seg_end);
            let fr = Range {
                start: segs[k].start + (at - bases[k]),
                end: segs[k].start + (upto - bases[k]),
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

/// A malformed line's (or run's) real place: the segment's file path and
/// file range. A run that crosses a segment boundary is split there.
pub fn locate_bad<'a>(segs: &[Segment<'a>], bad: &[Bad]) -> Vec<(Segment<'a>, Bad)> {
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

/// Write the kept virtual `ranges` of `segs` to `dst` from offset 0, in
/// order (positioned writes, one thread per run of ranges in one file), with
/// a `\n` after each of `newlines` (see [`Plan::newlines`]). Returns the
/// bytes written.
pub fn write_segments(
    segs: &[Segment],
    ranges: &[Range],
    newlines: &[u64],
    dst: &File,
    threads: usize,
) -> io::Result<u64> {
    if segs.len() == 1 && segs[0].start == 0 && newlines.is_empty() {
        return super::write_ranges_at(segs[0].file, ranges, dst, threads);
    }
    // Pieces in output order: (segment, file range, `\n` after it).
    let mut pieces: Vec<(usize, Range, bool)> = Vec::new();
    for (piece, nl) in super::split_at_newlines(ranges, newlines) {
        let located = locate(segs, std::slice::from_ref(&piece));
        let last = located.len().saturating_sub(1);
        pieces.extend(
            located
                .into_iter()
                .enumerate()
                .map(|(i, (k, r))| (k, r, nl && i == last)),
        );
    }
    let mut out_at = 0;
    let mut i = 0;
    while i < pieces.len() {
        let k = pieces[i].0;
        let mut group = Vec::new();
        while i < pieces.len() && pieces[i].0 == k {
            group.push(pieces[i].1);
            let nl = pieces[i].2;
            i += 1;
            if nl {
                break;
            }
        }
        out_at += copy_share(segs[k].file, &group, dst, out_at, BUF, READ_GAP)?;
        if pieces[i - 1].2 {
            std::os::unix::fs::FileExt::write_all_at(dst, b"\n", out_at)?;
            out_at += 1;
        }
    }
    Ok(out_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn file(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(bytes).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    fn read_all(f: &File, n: u64) -> Vec<u8> {
        let mut v = vec![0; n as usize];
        f.read_exact_at(&mut v, 0).unwrap();
        v
    }

    /// A late write of key 1 sits between the live log's old and new lines:
    /// the newer line after the swap point wins, the late line beats the
    /// one before it.
    #[test]
    fn late_segment_folds_at_the_swap_point() {
        let spec = FoldSpec::new(&["/k".into()], None, &[]).unwrap();
        let live = b"{\"k\":1,\"v\":\"old\"}\n{\"k\":2,\"v\":\"old\"}\n{\"k\":1,\"v\":\"new\"}\n";
        let p = 36; // after the first two lines
        assert_eq!(live[p - 1], b'\n');
        let late = b"{\"k\":1,\"v\":\"late\"}\n{\"k\":2,\"v\":\"late\"}\n";
        let (lt, lf) = file(live);
        let (rt, rf) = file(late);
        let segs = [
            Segment {
                file: &lf,
                path: lt.path(),
                start: 0,
                end: p as u64,
            },
            Segment {
                file: &rf,
                path: rt.path(),
                start: 0,
                end: late.len() as u64,
            },
            Segment {
                file: &lf,
                path: lt.path(),
                start: p as u64,
                end: live.len() as u64,
            },
        ];
        let plan = fold_segments(&spec, &segs, 4, 1).unwrap();
        let out = tempfile::tempfile().unwrap();
        let n = write_segments(&segs, &plan.keep, &plan.newlines, &out, 2).unwrap();
        assert_eq!(
            String::from_utf8(read_all(&out, n)).unwrap(),
            "{\"k\":2,\"v\":\"late\"}\n{\"k\":1,\"v\":\"new\"}\n"
        );
    }

    /// A kept range that runs across a segment boundary (two adjacent kept
    /// lines coalesced) maps back to one range in each file.
    #[test]
    fn locate_splits_a_range_at_a_segment_boundary() {
        let (at, af) = file(b"aaaa\nbbbb\n");
        let (bt, bf) = file(b"cc\n");
        let segs = [
            Segment {
                file: &af,
                path: at.path(),
                start: 5,
                end: 10,
            },
            Segment {
                file: &bf,
                path: bt.path(),
                start: 0,
                end: 3,
            },
            Segment {
                file: &af,
                path: at.path(),
                start: 0,
                end: 5,
            },
        ];
        let got = locate(
            &segs,
            &[Range { start: 2, end: 9 }, Range { start: 10, end: 13 }],
        );
        let got: Vec<(usize, u64, u64)> = got.iter().map(|(k, r)| (*k, r.start, r.end)).collect();
        assert_eq!(got, vec![(0, 7, 10), (1, 0, 3), (2, 0, 1), (2, 2, 5)]);
    }
}
