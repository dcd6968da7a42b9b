//! Planning a run of a segmented store: which sealed segments retention
//! drops, which the health check reads, whether the dirty ratio asks for a
//! merge, which prefix is merged and how the merged bytes are grouped.
//!
//! Pure: the inputs are the listing (names, sizes, inodes, mtimes), what
//! the state remembers of each segment ([`Marks`]), the [`Busy`] set, the
//! policy and the time. The job (`job/segmented`) executes the choice.
//!
//! The order of a run, and why the plan is made twice: a first [`choose`]
//! with nothing busy decides whether there is anything to do at all (a run
//! with nothing to do takes no census and reads no segment); only then is
//! the census taken and [`choose`] asked again with the busy set, whose
//! drop and check sets are the ones executed. Whether to merge is the first
//! choice's (the dirty ratio of what retention leaves when nothing is
//! busy). The merge's inputs ([`merge_inputs`]) are chosen after the health
//! check, which validates every segment it reads.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use crate::config::SegmentPolicy;
use crate::config::pattern::{Listing, Segment};
use crate::plan::Busy;
use crate::plan::retention::{self, Limits, Pruned};

/// What the store's state remembers of a segment.
pub trait Marks {
    /// Every line of it was checked, at this inode and size.
    fn validated(&self, s: &Segment) -> bool;
    /// A compaction wrote it (or found nothing to drop), at this inode.
    fn clean(&self, s: &Segment) -> bool;
}

/// What a run of a segmented store does to its sealed segments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Choice {
    /// Drop: the oldest sealed segments retention deletes, in seq order.
    pub drop: Vec<Pruned>,
    /// Sealed segments (after the drop) whose lines are checked: not yet
    /// validated, not busy.
    pub check: Vec<std::path::PathBuf>,
    /// Merge: the dirty ratio passed `min_dirty_ratio` (or the run is
    /// forced), nothing waits for deletion, and a dirty segment is old
    /// enough. The inputs are chosen after the check ([`merge_inputs`]).
    pub merge: bool,
    /// Bytes of sealed segments not yet compacted, and their share of the
    /// sealed bytes, both without the dropped and pending ones.
    pub dirty_bytes: u64,
    pub dirty_ratio: f64,
}

impl Choice {
    /// Nothing to drop, check or merge: the run stops here.
    pub fn is_nothing(&self) -> bool {
        self.drop.is_empty() && self.check.is_empty() && !self.merge
    }
}

/// The facts a segmented plan is made from.
pub struct Facts<'a> {
    pub listing: &'a Listing,
    pub marks: &'a dyn Marks,
    pub busy: &'a Busy,
    pub policy: &'a SegmentPolicy,
    /// The store's `max_age`.
    pub max_age: Option<Duration>,
    /// The store has a key (only a keyed store is merged).
    pub keyed: bool,
    /// `sync now --force`: merge whatever the dirty ratio.
    pub force: bool,
    pub now: SystemTime,
}

/// Drop, check and merge, from names, sizes and the state alone.
pub fn choose(f: &Facts) -> Choice {
    let limits = Limits::of(f.policy, f.max_age);
    let drop = retention::plan(f.listing, &limits, f.now, f.busy);
    let kept = &f.listing.sealed()[drop.len()..];
    let check = kept
        .iter()
        .filter(|s| !f.busy.is_busy(&s.path) && !f.marks.validated(s))
        .map(|s| s.path.clone())
        .collect();
    let (dirty_bytes, dirty_ratio) = dirty_ratio(kept, f.marks, f.busy);
    let pending = f
        .listing
        .segments
        .iter()
        .any(|s| f.busy.is_pending(&s.path));
    // Not while merged inputs wait for deletion: one of them may hold an
    // older write of a key whose tombstone a new merge would drop.
    let merge = f.keyed
        && !pending
        && dirty_bytes > 0
        && (f.force || dirty_ratio >= f.policy.min_dirty_ratio)
        && kept
            .iter()
            .any(|s| old_enough(s, f.policy, f.now) && !f.marks.clean(s));
    Choice {
        drop,
        check,
        merge,
        dirty_bytes,
        dirty_ratio,
    }
}

/// Dirty bytes (sealed, not clean, not waiting for deletion) and their
/// share of the sealed bytes that are not waiting for deletion.
fn dirty_ratio(sealed: &[Segment], marks: &dyn Marks, busy: &Busy) -> (u64, f64) {
    let (mut dirty, mut total) = (0u64, 0u64);
    for s in sealed.iter().filter(|s| !busy.is_pending(&s.path)) {
        total += s.size;
        if !marks.clean(s) {
            dirty += s.size;
        }
    }
    (dirty, dirty as f64 / total.max(1) as f64)
}

fn old_enough(s: &Segment, policy: &SegmentPolicy, now: SystemTime) -> bool {
    now.duration_since(s.mtime).unwrap_or_default() >= policy.min_compaction_lag
}

/// The merge's inputs: the longest prefix of the sealed segments that are
/// validated, not busy and older than `min_compaction_lag`; none when every
/// one of them is already clean (a merge would change nothing). Starting at
/// the oldest retained segment is what makes dropping a tombstone safe.
pub fn merge_inputs(
    sealed: &[Segment],
    marks: &dyn Marks,
    busy: &Busy,
    policy: &SegmentPolicy,
    now: SystemTime,
) -> Option<Vec<Segment>> {
    let inputs: Vec<Segment> = sealed
        .iter()
        .take_while(|s| marks.validated(s) && !busy.is_busy(&s.path) && old_enough(s, policy, now))
        .cloned()
        .collect();
    inputs.iter().any(|s| !marks.clean(s)).then_some(inputs)
}

/// The range the events of `segments[i]` must lie in ends at the next name
/// that is not a merged input waiting for deletion.
pub fn next_seq(segments: &[Segment], i: usize, busy: &Busy) -> Option<u64> {
    segments[i + 1..]
        .iter()
        .find(|n| !busy.is_pending(&n.path))
        .map(|n| n.seq)
}

/// Merge groups: consecutive inputs whose surviving bytes (`kept[i]`) add
/// up to no more than the largest input (`sizes`), so no merged segment is
/// larger than a segment the app wrote. Every input is in one group, in
/// order.
pub fn groups(sizes: &[u64], kept: &[u64]) -> Vec<Range<usize>> {
    let target = sizes.iter().copied().max().unwrap_or(0).max(1);
    let mut groups: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    let mut acc = 0u64;
    for (i, &k) in kept.iter().enumerate() {
        if i > start && acc + k > target {
            groups.push(start..i);
            start = i;
            acc = 0;
        }
        acc += k;
    }
    if start < kept.len() {
        groups.push(start..kept.len());
    }
    groups
}

#[cfg(test)]
mod tests;
