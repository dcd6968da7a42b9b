//! Combining the threads' scans of one pass into the [`Plan`].
//!
//! Invariants:
//! - The survivors so far (`keep`, every pass's, kept compact in [`Runs`]
//!   until the fold ends) are sorted and coalesced after every pass.
//! - A key is merged in exactly one pass: the one whose hash range holds
//!   its hash.

use super::runs::Runs;
use super::scan::ChunkScan;
use super::{FoldSpec, Plan, Range};
use crate::fold::keymap::KeyMap;

/// Add the first pass's scans (in stream order) to `plan` and `keep`: the
/// counts, malformed lines and glued events, keyless lines, and the keys
/// of the pass ([`merge_keys`]). Returns the highest hash the pass folded.
pub(crate) fn merge(
    spec: &FoldSpec,
    chunks: Vec<ChunkScan>,
    tombs: bool,
    plan: &mut Plan,
    keep: &mut Runs,
) -> u64 {
    let mut maps = Vec::with_capacity(chunks.len());
    let mut hi = u64::MAX;
    for c in chunks {
        plan.lines_in += c.lines;
        plan.keyed_lines += c.keyed;
        plan.deletes_dropped += c.deletes;
        plan.salvaged += c.salvaged;
        plan.unglued += c.unglued;
        plan.newlines.extend(c.newlines);
        plan.bad.extend(c.bad);
        plan.bad_lines += c.bad_lines;
        // Keyless lines are in stream order already.
        plan.keyless_kept += c.keyless.pushed();
        c.keyless.iter().for_each(|r| keep.push(r));
        hi = hi.min(c.hi);
        if let Some(d) = c.digest {
            plan.digest
                .get_or_insert_with(|| super::digest::LineDigest::new(0))
                .absorb_digest(&d);
        }
        maps.push(c.map);
    }
    if spec.is_keyed() {
        merge_maps(maps, hi, tombs, plan, keep);
    } else {
        all_but_bad(&plan.bad, plan.cut, keep);
    }
    hi
}

/// Add a later pass's keys to `plan` and `keep`. Returns the highest hash
/// it folded.
pub(crate) fn merge_keys(
    chunks: Vec<ChunkScan>,
    tombs: bool,
    plan: &mut Plan,
    keep: &mut Runs,
) -> u64 {
    let hi = chunks.iter().map(|c| c.hi).min().unwrap_or(u64::MAX);
    let maps = chunks.into_iter().map(|c| c.map).collect();
    merge_maps(maps, hi, tombs, plan, keep);
    hi
}

/// A key's last write is in the last share that has it; an entry of share
/// `i` (with a hash of at most `hi`: every share holds all of its keys up
/// to there) survives unless a later share has the key, and then goes to
/// `keep` (or, if it deletes, to `tombs` when `tombs` is asked for, else
/// nowhere). A share's ranges lie within the share, so the shares' sorted
/// survivors concatenate sorted.
fn merge_maps(maps: Vec<KeyMap>, hi: u64, tombs: bool, plan: &mut Plan, keep: &mut Runs) {
    let found = survivors(&maps, hi, tombs);
    drop(maps);
    let (mut live, mut dead) = (Vec::new(), Vec::new());
    for (l, d) in found {
        live.extend(l);
        dead.extend(d);
    }
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

/// Each map's survivors (live, dead), sorted. The maps' slots are cut
/// into parts that one thread per share takes in turn: the merge reads
/// every map's entries and looks each up in the later maps (a random read
/// of a table of several MiB per key), which alone took one core ~10 ms on
/// the standard workload.
fn survivors(maps: &[KeyMap], hi: u64, tombs: bool) -> Vec<(Vec<Range>, Vec<Range>)> {
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
            done.push((i, part(maps, m, p, parts, hi, tombs)));
        }
    };
    let mut done: Vec<_> = std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in others {
            all.extend(h.join().expect("merge thread panicked"));
        }
        all
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    let mut out: Vec<(Vec<Range>, Vec<Range>)> = vec![Default::default(); maps.len()];
    for (i, (l, d)) in done {
        let o = &mut out[items[i].0];
        o.0.extend(l);
        o.1.extend(d);
    }
    for (l, d) in &mut out {
        // Each part's ranges are sorted: the stable sort merges the runs.
        l.sort();
        d.sort();
    }
    out
}

/// How far ahead of its lookup an entry's slot in the later maps is asked
/// for ([`KeyMap::prefetch`]), and half as far its key's bytes.
const AHEAD: usize = 16;

/// The survivors of part `p` of map `m`, each list sorted.
fn part(
    maps: &[KeyMap],
    m: usize,
    p: usize,
    parts: usize,
    hi: u64,
    tombs: bool,
) -> (Vec<Range>, Vec<Range>) {
    let later = &maps[m + 1..];
    let (mut live, mut dead) = (Vec::new(), Vec::new());
    let mut ahead = maps[m].iter_part(p, parts).map(|(h, _, _)| h);
    let mut mid = maps[m].iter_part(p, parts).map(|(h, _, _)| h);
    if !later.is_empty() {
        ahead
            .by_ref()
            .take(AHEAD)
            .for_each(|h| later.iter().for_each(|l| l.prefetch(h)));
        mid.by_ref()
            .take(AHEAD / 2)
            .for_each(|h| later.iter().for_each(|l| l.prefetch_key(h)));
    }
    for (h, k, e) in maps[m].iter_part(p, parts) {
        if !later.is_empty() {
            if let Some(a) = ahead.next() {
                later.iter().for_each(|l| l.prefetch(a));
            }
            if let Some(a) = mid.next() {
                later.iter().for_each(|l| l.prefetch_key(a));
            }
        }
        if h > hi || later.iter().any(|l| l.contains(h, k)) {
            continue;
        }
        if !e.tomb() {
            live.push(e.range());
        } else if tombs {
            dead.push(e.range());
        }
    }
    live.sort_unstable();
    dead.sort_unstable();
    (live, dead)
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
