//! Combining the threads' scans of one pass into the [`Plan`].
//!
//! Invariants:
//! - The survivors so far (`keep`, every pass's, kept compact in [`Runs`]
//!   until the fold ends) are sorted and coalesced after every pass.
//! - A key is merged in exactly one pass: the one whose hash range holds
//!   its hash.

use super::pool::Scanned;
use super::runs::Runs;
use super::scan::{ChunkScan, Opts};
use super::{FoldSpec, Plan, Range};
use crate::fold::keymap::{Entry, KeyMap};

/// Add the first pass's scans to `plan` and `keep`: the counts, malformed
/// lines and glued events, keyless lines (each part's, in stream order),
/// and the keys of the pass ([`merge_keys`]). Returns the highest hash the
/// pass folded.
pub(crate) fn merge(
    spec: &FoldSpec,
    scanned: Scanned,
    opts: Opts,
    plan: &mut Plan,
    keep: &mut Runs,
) -> u64 {
    for c in &scanned.scans {
        plan.lines_in += c.lines;
        plan.keyed_lines += c.keyed;
        plan.deletes_dropped += c.deletes;
        plan.salvaged += c.salvaged;
        plan.unglued += c.unglued;
        plan.bad_lines += c.bad_lines;
        if let Some(d) = &c.digest {
            plan.digest
                .get_or_insert_with(|| super::digest::LineDigest::new(0))
                .absorb_digest(d);
        }
    }
    for part in scanned.parts {
        plan.newlines.extend(part.newlines);
        plan.bad.extend(part.bad);
        plan.keyless_kept += part.keyless.pushed();
        part.keyless.iter().for_each(|r| keep.push(r));
    }
    if spec.is_keyed() {
        merge_keys(scanned.scans, opts, plan, keep)
    } else {
        all_but_bad(&plan.bad, plan.cut, keep);
        scanned.scans.iter().map(|c| c.hi).min().unwrap_or(u64::MAX)
    }
}

/// Add a pass's keys to `plan` and `keep`. Returns the highest hash it
/// folded.
pub(crate) fn merge_keys(
    chunks: Vec<ChunkScan>,
    opts: Opts,
    plan: &mut Plan,
    keep: &mut Runs,
) -> u64 {
    let hi = chunks.iter().map(|c| c.hi).min().unwrap_or(u64::MAX);
    let most = chunks.iter().map(|c| c.map.len() as u64).max().unwrap_or(0);
    plan.map_keys = plan.map_keys.max(most);
    let maps: Vec<KeyMap> = chunks.into_iter().map(|c| c.map).collect();
    if opts.count_only {
        plan.keys_live += count_live(&maps, hi);
    } else {
        merge_maps(maps, hi, opts.tombs, plan, keep);
    }
    hi
}

/// A key's last write is the one with the greatest offset among the maps
/// (each map holds the last write among the parts it scanned). An entry
/// (with a hash of at most `hi`: every map holds all of its keys up to
/// there) survives unless another map has the key at a greater offset, and
/// goes to `keep` (or, if it deletes, to `tombs` when `tombs` is asked
/// for, else nowhere).
fn merge_maps(maps: Vec<KeyMap>, hi: u64, tombs: bool, plan: &mut Plan, keep: &mut Runs) {
    let (live, dead) = survivors(&maps, hi, tombs);
    drop(maps);
    plan.keys_live += live.len() as u64;
    *keep = keep.union(&live);
    drop(live);
    // Tombstones stay one range per line: they are counted and aged apiece.
    let mut all = std::mem::take(&mut plan.tombs);
    all.extend(dead);
    all.sort_unstable();
    plan.tombs = all;
}

/// Below this many slots in all, the merge is not worth a thread.
const PARALLEL_SLOTS: usize = 1 << 16;

/// What one part of one map's slots decided: its candidates (live, dead),
/// and the start offsets of the later maps' entries that lost to one of
/// its entries (a line's offset names its entry: no two lines, so no two
/// entries, start at the same offset), each sorted.
type Decided = (Vec<Range>, Vec<Range>, Vec<u64>);

/// The survivors (live, dead), each sorted. Every key of a map is looked
/// up in the later maps, and of each pair the entry with the smaller
/// offset loses; whatever never lost survives. The maps' slots are cut
/// into parts that one thread per map takes in turn: each lookup is a
/// random read in a table of several MiB (and the key's bytes), which
/// alone took one core ~10 ms on the standard workload.
fn survivors(maps: &[KeyMap], hi: u64, tombs: bool) -> (Vec<Range>, Vec<Range>) {
    let (done, threads) = per_part(maps, |m, parts| part(maps, m, parts, hi, tombs));
    let (mut live, mut dead, mut lost) = (Vec::new(), Vec::new(), Vec::new());
    for (l, d, x) in done {
        live.push(l);
        dead.push(d);
        lost.push(x);
    }
    (gather(&live, &lost, threads), gather(&dead, &lost, threads))
}

/// `f(m, (p, parts))` for every part `p` of every map `m`'s slots, taken
/// in turn by one thread per map (one thread for small maps). Returns the
/// results in no particular order, and the thread count.
fn per_part<T: Send>(
    maps: &[KeyMap],
    f: impl Fn(usize, (usize, usize)) -> T + Sync,
) -> (Vec<T>, usize) {
    let slots: usize = maps.iter().map(KeyMap::slots).sum();
    let threads = if slots < PARALLEL_SLOTS {
        1
    } else {
        maps.len()
    };
    let parts = threads * 4;
    let items: Vec<(usize, usize)> = (0..maps.len())
        .flat_map(|m| (0..parts).map(move |p| (m, p)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(m, p)) = items.get(i) else {
                return done;
            };
            done.push(f(m, (p, parts)));
        }
    };
    (on_threads(threads, work), threads)
}

/// How many keys of the maps (with a hash of at most `hi`) end live:
/// [`survivors`]' live count without their ranges ([`Opts::count_only`]).
/// An entry is its key's last write if no other map has the key at a
/// greater offset (no two entries share an offset), so each map looks in
/// all the others, not only the later ones: nothing to gather.
fn count_live(maps: &[KeyMap], hi: u64) -> u64 {
    let count = |m: usize, (p, parts)| {
        let others = || maps.iter().enumerate().filter(move |&(j, _)| j != m);
        let last =
            |h, k, at| others().all(|(_, o)| o.get(h, k).is_none_or(|e| e.range().start < at));
        maps[m]
            .iter_part(p, parts)
            .filter(|&(h, k, e)| h <= hi && !e.tomb() && last(h, k, e.range().start))
            .count() as u64
    };
    per_part(maps, count).0.into_iter().sum()
}

/// `work` on `threads` threads (this one among them), its results joined.
fn on_threads<T: Send>(threads: usize, work: impl Fn() -> Vec<T> + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(&work)).collect();
        let mut all = work();
        for h in others {
            all.extend(h.join().expect("merge thread panicked"));
        }
        all
    })
}

/// The ranges of the sorted `runs` that do not start at an offset in the
/// sorted `lost` runs, as one sorted list. Why not one sort: it was 5-6
/// ms of one core after the lookups on the standard workload. The offsets
/// are cut into bins at bounds sampled from the runs; each bin's slices
/// of every run are gathered into the bin's place in the output, sorted
/// and filtered there by whichever thread is free, and the bins' kept
/// ranges moved together. The output is the one copy beside the runs
/// (a copy per bin besides took a 10M-key fold from 57 to 98 MiB).
fn gather(runs: &[Vec<Range>], lost: &[Vec<u64>], threads: usize) -> Vec<Range> {
    let bounds = bin_bounds(runs, threads * 4);
    let slice = |r: &'_ [Range], j: usize| in_bin(r, bounds[j], bounds[j + 1]).len();
    let n = bounds.len() - 1;
    let sizes: Vec<usize> = (0..n)
        .map(|j| runs.iter().map(|r| slice(r, j)).sum())
        .collect();
    let mut out = vec![Range { start: 0, end: 0 }; sizes.iter().sum()];
    let mut chunks = Vec::with_capacity(n);
    let mut rest = out.as_mut_slice();
    for (j, &len) in sizes.iter().enumerate() {
        let (chunk, tail) = rest.split_at_mut(len);
        chunks.push((j, chunk));
        rest = tail;
    }
    let queue = std::sync::Mutex::new(chunks.into_iter());
    let mut kept = on_threads(threads, || {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().expect("merge queue").next();
            let Some((j, chunk)) = next else {
                return done;
            };
            let mut at = 0;
            for r in runs {
                let s = in_bin(r, bounds[j], bounds[j + 1]);
                chunk[at..at + s.len()].copy_from_slice(s);
                at += s.len();
            }
            let (lo, hi) = (bounds[j], bounds[j + 1]);
            done.push((j, keep_not_lost(chunk, lost, lo, hi)));
        }
    });
    kept.sort_unstable_by_key(|&(j, _)| j);
    let (mut from, mut to) = (0, 0);
    for ((_, k), len) in kept.into_iter().zip(sizes) {
        out.copy_within(from..from + k, to);
        (from, to) = (from + len, to + k);
    }
    out.truncate(to);
    out
}

/// The ranges of the sorted `r` that start in `[lo, hi)`.
fn in_bin(r: &[Range], lo: u64, hi: u64) -> &[Range] {
    &r[r.partition_point(|x| x.start < lo)..r.partition_point(|x| x.start < hi)]
}

/// `n` bins' bounds (`n + 1` offsets, from 0 to `u64::MAX`), at quantiles
/// of a sample of the runs' starts.
fn bin_bounds(runs: &[Vec<Range>], n: usize) -> Vec<u64> {
    let mut sample: Vec<u64> = runs
        .iter()
        .flat_map(|r| r.iter().step_by(64).map(|x| x.start))
        .collect();
    sample.sort_unstable();
    let mut bounds = vec![0];
    bounds.extend((1..n).map(|j| sample.get(j * sample.len() / n).map_or(u64::MAX, |&b| b)));
    bounds.push(u64::MAX);
    bounds
}

/// Sort `chunk` (the ranges starting in `[lo, hi)`) and move those not
/// starting at a `lost` offset to its front, in order; returns how many.
/// Both `chunk` and the lost offsets gathered here are a few sorted runs
/// end to end (one slice per part), which the stable sort finds and
/// merges: a pattern-blind sort was half of the gather's time.
fn keep_not_lost(chunk: &mut [Range], lost: &[Vec<u64>], lo: u64, hi: u64) -> usize {
    chunk.sort();
    let mut l = Vec::new();
    for r in lost {
        l.extend_from_slice(&r[r.partition_point(|&x| x < lo)..r.partition_point(|&x| x < hi)]);
    }
    l.sort();
    let (mut i, mut k) = (0, 0);
    for at in 0..chunk.len() {
        let r = chunk[at];
        while i < l.len() && l[i] < r.start {
            i += 1;
        }
        if l.get(i) != Some(&r.start) {
            chunk[k] = r;
            k += 1;
        }
    }
    k
}

/// How far ahead of its lookup an entry's slot in the later maps is asked
/// for ([`KeyMap::prefetch`]), and half as far its key's bytes.
const AHEAD: usize = 16;

/// What part `p` of `parts` of map `m`'s slots decides ([`Decided`]).
fn part(maps: &[KeyMap], m: usize, (p, parts): (usize, usize), hi: u64, tombs: bool) -> Decided {
    let (mut live, mut dead, mut lost) = (Vec::new(), Vec::new(), Vec::new());
    let mut keep = |e: Entry| {
        if !e.tomb() {
            live.push(e.range());
        } else if tombs {
            dead.push(e.range());
        }
    };
    if m + 1 == maps.len() {
        // The last map: nothing to look its keys up in, so they are not read.
        maps[m]
            .entries_part(p, parts)
            .filter(|&(h, _)| h <= hi)
            .for_each(|(_, e)| keep(e));
    } else {
        look_up_later(maps, m, (p, parts), hi, keep, &mut lost);
    }
    live.sort_unstable();
    dead.sort_unstable();
    lost.sort_unstable();
    (live, dead, lost)
}

/// Look each entry of part `p` of map `m` (with a hash of at most `hi`)
/// up in the later maps: `keep` it if none has its key at a greater
/// offset, and push to `lost` the start of each later entry it beats.
/// The later maps' slots are asked for [`AHEAD`] entries ahead, and the
/// keys' bytes (this map's and theirs) half as far: both lie at random in
/// the arenas, and a plain read of this map's stalled the loop.
fn look_up_later(
    maps: &[KeyMap],
    m: usize,
    (p, parts): (usize, usize),
    hi: u64,
    mut keep: impl FnMut(Entry),
    lost: &mut Vec<u64>,
) {
    let (this, later) = (&maps[m], &maps[m + 1..]);
    let mut ahead = this.hashes_part(p, parts);
    let mut mid = this.hashes_part(p, parts);
    let prefetch = |h| later.iter().for_each(|l| l.prefetch(h));
    let prefetch_key = |h| {
        this.prefetch_key(h);
        later.iter().for_each(|l| l.prefetch_key(h));
    };
    ahead.by_ref().take(AHEAD).for_each(prefetch);
    mid.by_ref().take(AHEAD / 2).for_each(prefetch_key);
    for (h, k, e) in this.iter_part(p, parts) {
        ahead.next().map(prefetch);
        mid.next().map(prefetch_key);
        if h > hi {
            continue;
        }
        let start = e.range().start;
        let mut won = true;
        for l in later {
            match l.get(h, k) {
                Some(o) if o.range().start > start => won = false,
                Some(o) => lost.push(o.range().start),
                None => {}
            }
        }
        if won {
            keep(e);
        }
    }
}

/// A `\n` is needed only after a glued event that survived.
pub(crate) fn keep_needed_newlines(plan: &mut Plan) {
    plan.newlines.sort_unstable();
    let keep = &plan.keep;
    plan.newlines.retain(|&x| {
        let i = keep.partition_point(|r| r.end < x);
        keep.get(i).is_some_and(|r| r.start < x)
    });
}

/// Append-only: everything but the malformed lines.
fn all_but_bad(bad: &[super::Bad], cut: u64, keep: &mut Runs) {
    let mut at = 0;
    for b in bad {
        if b.range.start > at {
            keep.push(Range {
                start: at,
                end: b.range.start,
            });
        }
        at = b.range.end;
    }
    if cut > at {
        keep.push(Range {
            start: at,
            end: cut,
        });
    }
}

#[cfg(test)]
mod tests;
