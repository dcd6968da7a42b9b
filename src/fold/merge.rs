//! Combining the threads' scans into one [`Plan`].

use super::scan::ChunkScan;
use super::{FoldSpec, Plan, Range};
use crate::io::ranges::coalesce;

/// Combine the shares' scans (in stream order). A key's last write is in
/// the last share that has it; an entry of share `i` survives unless a
/// later share has the key, and then goes to `keep` (or, if it deletes, to
/// `tombs` when `tombs` is asked for, else nowhere). The share maps are
/// read in order and each is freed once read, and no map grows during the
/// merge, so peak memory stays near the sum of the share maps.
pub(crate) fn merge(spec: &FoldSpec, chunks: Vec<ChunkScan>, cut: u64, tombs: bool) -> Plan {
    let mut plan = Plan {
        cut,
        ..Plan::default()
    };
    let mut maps = Vec::with_capacity(chunks.len());
    let mut keyless = Vec::new();
    for c in chunks {
        plan.lines_in += c.lines;
        plan.keyed_lines += c.keyed;
        plan.deletes_dropped += c.deletes;
        plan.salvaged += c.salvaged;
        plan.unglued += c.unglued;
        plan.newlines.extend(c.newlines);
        plan.bad.extend(c.bad);
        plan.bad_lines += c.bad_lines;
        keyless.extend(c.keyless);
        maps.push(c.map);
    }
    if spec.is_keyed() {
        let mut keep: Vec<Range> = Vec::new();
        for i in 0..maps.len() {
            let map = std::mem::take(&mut maps[i]);
            let later = &maps[i + 1..];
            for (h, k, e) in map.iter() {
                if later.iter().any(|l| l.contains(h, k)) {
                    continue;
                }
                if !e.tomb() {
                    keep.push(e.range());
                } else if tombs {
                    plan.tombs.push(e.range());
                }
            }
        }
        plan.keys_live = keep.len() as u64;
        plan.keyless_kept = keyless.len() as u64;
        keep.extend(keyless);
        keep.sort_unstable();
        plan.keep = coalesce(keep);
        plan.tombs.sort_unstable();
    } else {
        plan.keep = all_but_bad(&plan.bad, cut);
    }
    // A `\n` is needed only after a glued event that survived.
    plan.newlines.sort_unstable();
    let keep = &plan.keep;
    plan.newlines.retain(|&x| {
        let i = keep.partition_point(|r| r.end < x);
        keep.get(i).is_some_and(|r| r.start < x)
    });
    plan
}

/// Append-only: everything but the malformed lines.
fn all_but_bad(bad: &[super::Bad], cut: u64) -> Vec<Range> {
    let mut keep = Vec::new();
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
        keep.push(Range { start: at, end: cut });
    }
    keep
}
