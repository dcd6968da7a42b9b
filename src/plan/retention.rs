//! Retention: delete the oldest sealed segments until `keep_files`,
//! `max_age` and `max_bytes` all hold.
//!
//! Invariants:
//! - Only a prefix of the sealed segments (in seq order) is ever deleted,
//!   and it is deleted oldest first with the directory fsynced after each
//!   unlink, so at every instant (and after a crash or power loss) the
//!   retained segments are a suffix: the smallest seq in a name is the
//!   oldest retained event, and no seq range in between is missing.
//! - The active segment (the newest by seq) is never deleted, and neither is
//!   a sealed segment that the writer census shows open for writing; the
//!   prefix stops before it, even if older-than-limit files follow.
//! - The prunes are written to the store's state (the journal) before the
//!   first unlink; a run killed before its record is written has them named
//!   by the next run's record.
//!
//! `max_age` is judged by a segment's mtime: the time its last (newest)
//! event was written.

use std::time::{Duration, SystemTime};

use crate::config::SegmentPolicy;
use crate::config::pattern::Listing;
pub use crate::job::record::report::Pruned;
use crate::plan::Busy;

/// The limits, as configured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub keep_files: Option<usize>,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

impl Limits {
    /// The limits of a segmented store (`max_age` is the store's own).
    pub fn of(policy: &SegmentPolicy, max_age: Option<Duration>) -> Limits {
        Limits {
            keep_files: policy.keep_files,
            max_age,
            max_bytes: policy.max_bytes,
        }
    }
}

/// Which oldest sealed segments the limits delete, with the reason of each,
/// in seq order. A segment [`Busy::is_open`] may not be touched (open for
/// writing): the prefix ends before it. One [`Busy::is_pending`] is a
/// compaction input whose events are already in a merged segment (deleted
/// after `file_delete_delay`): it counts towards neither `keep_files` nor
/// `max_bytes`, so a compaction never makes retention delete more.
pub fn plan(listing: &Listing, limits: &Limits, now: SystemTime, busy: &Busy) -> Vec<Pruned> {
    let merged = |s: &crate::config::pattern::Segment| busy.is_pending(&s.path);
    let sealed = listing.sealed();
    let mut total: u64 = listing
        .segments
        .iter()
        .filter(|s| !merged(s))
        .map(|s| s.size)
        .sum();
    // Sealed files still retained from each index on, merged inputs aside.
    let mut left = sealed.iter().filter(|s| !merged(s)).count();
    let mut out = Vec::new();
    for (i, seg) in sealed.iter().enumerate() {
        let reason = if limits.keep_files.is_some_and(|k| left > k) {
            "keep_files"
        } else if limits
            .max_age
            .is_some_and(|a| now.duration_since(seg.mtime).unwrap_or_default() > a)
        {
            "max_age"
        } else if limits.max_bytes.is_some_and(|m| total > m) {
            "max_bytes"
        } else {
            break;
        };
        if busy.is_open(&seg.path) {
            break;
        }
        if !merged(seg) {
            total -= seg.size;
            left -= 1;
        }
        out.push(Pruned {
            file: seg.path.clone(),
            seq: seg.seq,
            next_seq: listing.segments[i + 1].seq,
            bytes: seg.size,
            reason: reason.into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pattern::{Pattern, list};

    fn busy(open: &[u64], pending: &[u64], l: &Listing) -> Busy {
        let mut b = Busy::none();
        for s in &l.segments {
            if open.contains(&s.seq) {
                b.open(&s.path);
            }
            if pending.contains(&s.seq) {
                b.pending(&s.path);
            }
        }
        b
    }

    fn setup(n: u64, size: usize) -> (tempfile::TempDir, Listing) {
        let d = tempfile::tempdir().unwrap();
        let p = Pattern::parse(&d.path().join("e-{seq}.jsonl")).unwrap();
        for i in 0..n {
            std::fs::write(d.path().join(p.name_for(i * 10)), vec![b'x'; size]).unwrap();
        }
        let l = list(&p, "s").unwrap();
        (d, l)
    }

    #[test]
    fn keep_files_prunes_a_prefix_and_spares_the_active() {
        let (_d, l) = setup(5, 10);
        let lim = Limits {
            keep_files: Some(0),
            ..Default::default()
        };
        let p = plan(&l, &lim, SystemTime::now(), &Busy::none());
        assert_eq!(p.iter().map(|p| p.seq).collect::<Vec<_>>(), [0, 10, 20, 30]);
        assert_eq!(p[3].next_seq, 40);
        let lim = Limits {
            max_bytes: Some(25),
            ..Default::default()
        };
        let p = plan(&l, &lim, SystemTime::now(), &Busy::none());
        assert_eq!(p.len(), 3);
        // A file open for writing ends the prefix: no gap.
        let p = plan(&l, &lim, SystemTime::now(), &busy(&[10], &[], &l));
        assert_eq!(p.len(), 1);
        // Merged inputs waiting for deletion do not count towards the limits.
        // (sealed 0, 10, 20, 30; 10 and 20 merged: two count, one goes).
        let lim = Limits {
            keep_files: Some(1),
            ..Default::default()
        };
        let p = plan(&l, &lim, SystemTime::now(), &busy(&[], &[10, 20], &l));
        assert_eq!(p.iter().map(|p| p.seq).collect::<Vec<_>>(), [0]);
    }
}
