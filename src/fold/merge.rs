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
/// nowhere). The maps are read in order and each is freed once read, so
/// peak memory stays near the sum of the maps. A share's ranges lie
/// within the share, so the shares' sorted survivors concatenate sorted.
fn merge_maps(mut maps: Vec<KeyMap>, hi: u64, tombs: bool, plan: &mut Plan, keep: &mut Runs) {
    let mut live: Vec<Range> = Vec::new();
    let mut dead: Vec<Range> = Vec::new();
    for i in 0..maps.len() {
        let map = std::mem::take(&mut maps[i]);
        let later = &maps[i + 1..];
        let (at_live, at_dead) = (live.len(), dead.len());
        for (h, k, e) in map.iter() {
            if h > hi || later.iter().any(|l| l.contains(h, k)) {
                continue;
            }
            if !e.tomb() {
                live.push(e.range());
            } else if tombs {
                dead.push(e.range());
            }
        }
        live[at_live..].sort_unstable();
        dead[at_dead..].sort_unstable();
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
