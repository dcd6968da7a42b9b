//! The segmented planner over fake listings (no files): retention by each
//! limit, the busy set, the dirty ratio, the lag and the merge groups.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::pattern::Pattern;

const DAY: Duration = Duration::from_secs(86_400);

/// A listing of segments `(seq, size, age)`, the last one active.
fn listing(segs: &[(u64, u64, Duration)], now: SystemTime) -> Listing {
    Listing {
        segments: segs
            .iter()
            .map(|&(seq, size, age)| Segment {
                seq,
                name: format!("e-{seq}.jsonl"),
                path: PathBuf::from(format!("/s/e-{seq}.jsonl")),
                size,
                mtime: now - age,
                ino: seq + 1,
            })
            .collect(),
        ..Listing::default()
    }
}

fn policy() -> SegmentPolicy {
    SegmentPolicy {
        pattern: Pattern::parse(std::path::Path::new("/s/e-{seq}.jsonl")).unwrap(),
        keep_files: None,
        max_bytes: None,
        min_compaction_lag: Duration::ZERO,
        delete_retention: DAY,
        min_dirty_ratio: 0.5,
        file_delete_delay: Duration::from_secs(60),
        seq: None,
    }
}

/// Marks by seq: validated and clean sets.
#[derive(Default)]
struct Fake {
    validated: HashSet<u64>,
    clean: HashSet<u64>,
}

impl Marks for Fake {
    fn validated(&self, s: &Segment) -> bool {
        self.validated.contains(&s.seq)
    }
    fn clean(&self, s: &Segment) -> bool {
        self.clean.contains(&s.seq)
    }
}

fn busy(l: &Listing, open: &[u64], pending: &[u64]) -> Busy {
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

struct Case {
    listing: Listing,
    marks: Fake,
    busy: Busy,
    policy: SegmentPolicy,
    max_age: Option<Duration>,
    keyed: bool,
    force: bool,
    now: SystemTime,
}

impl Case {
    fn new(segs: &[(u64, u64, Duration)]) -> Case {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        Case {
            listing: listing(segs, now),
            marks: Fake::default(),
            busy: Busy::none(),
            policy: policy(),
            max_age: None,
            keyed: true,
            force: false,
            now,
        }
    }

    fn choose(&self) -> Choice {
        choose(&Facts {
            listing: &self.listing,
            marks: &self.marks,
            busy: &self.busy,
            policy: &self.policy,
            max_age: self.max_age,
            keyed: self.keyed,
            force: self.force,
            now: self.now,
        })
    }
}

fn seqs(p: &[Pruned]) -> Vec<u64> {
    p.iter().map(|p| p.seq).collect()
}

fn checked(c: &Choice) -> Vec<String> {
    c.check
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_store_whose_every_segment_is_validated_and_clean_has_nothing_to_do() {
    let mut c = Case::new(&[(0, 10, DAY), (10, 10, DAY), (20, 5, DAY)]);
    c.marks.validated.extend([0, 10]);
    c.marks.clean.extend([0, 10]);
    let choice = c.choose();
    assert!(choice.is_nothing(), "{choice:?}");
    assert_eq!((choice.dirty_bytes, choice.dirty_ratio), (0, 0.0));
}

#[test]
fn unvalidated_sealed_segments_are_checked_but_never_the_active_one() {
    let mut c = Case::new(&[(0, 10, DAY), (10, 10, DAY), (20, 5, DAY)]);
    c.keyed = false;
    c.marks.validated.insert(0);
    let choice = c.choose();
    assert_eq!(checked(&choice), ["e-10.jsonl"]);
    assert!(!choice.merge, "an append-only store is never merged");
}

#[test]
fn keep_files_drops_the_oldest_and_the_check_skips_what_is_dropped() {
    let mut c = Case::new(&[(0, 10, DAY), (10, 10, DAY), (20, 10, DAY), (30, 1, DAY)]);
    c.policy.keep_files = Some(1);
    c.keyed = false;
    let choice = c.choose();
    assert_eq!(seqs(&choice.drop), [0, 10]);
    assert_eq!(choice.drop[1].next_seq, 20);
    assert_eq!(choice.drop[0].reason, "keep_files");
    assert_eq!(checked(&choice), ["e-20.jsonl"]);
}

#[test]
fn max_age_drops_only_an_old_prefix() {
    // 10 is old but 0 before it is young: no gap is ever made.
    let mut c = Case::new(&[(0, 1, DAY), (10, 1, 9 * DAY), (20, 1, DAY)]);
    c.max_age = Some(7 * DAY);
    assert!(c.choose().drop.is_empty());
    let mut c = Case::new(&[
        (0, 1, 9 * DAY),
        (10, 1, 8 * DAY),
        (20, 1, DAY),
        (30, 1, DAY),
    ]);
    c.max_age = Some(7 * DAY);
    let choice = c.choose();
    assert_eq!(seqs(&choice.drop), [0, 10]);
    assert!(choice.drop.iter().all(|p| p.reason == "max_age"));
}

#[test]
fn max_bytes_counts_the_active_segment_and_never_drops_it() {
    let mut c = Case::new(&[(0, 10, DAY), (10, 10, DAY), (20, 100, DAY)]);
    c.policy.max_bytes = Some(50);
    let choice = c.choose();
    assert_eq!(seqs(&choice.drop), [0, 10], "the active 100 bytes stay");
    assert!(choice.drop.iter().all(|p| p.reason == "max_bytes"));
}

#[test]
fn a_segment_open_for_writing_ends_the_drop_and_is_not_checked() {
    let mut c = Case::new(&[(0, 1, DAY), (10, 1, DAY), (20, 1, DAY), (30, 1, DAY)]);
    c.policy.keep_files = Some(0);
    c.busy = busy(&c.listing, &[10], &[]);
    let choice = c.choose();
    assert_eq!(seqs(&choice.drop), [0]);
    assert_eq!(checked(&choice), ["e-20.jsonl"]);
}

#[test]
fn the_dirty_ratio_decides_the_merge_and_force_overrides_it() {
    // 10 dirty bytes of 40 sealed: 0.25, below the default 0.5.
    let mut c = Case::new(&[(0, 30, DAY), (30, 10, DAY), (40, 1, DAY)]);
    c.marks.validated.extend([0, 30]);
    c.marks.clean.insert(0);
    let choice = c.choose();
    assert_eq!((choice.dirty_bytes, choice.dirty_ratio), (10, 0.25));
    assert!(!choice.merge && choice.is_nothing());
    c.policy.min_dirty_ratio = 0.25;
    assert!(c.choose().merge, "at the ratio, not only above it");
    c.policy.min_dirty_ratio = 0.5;
    c.force = true;
    assert!(c.choose().merge);
    c.keyed = false;
    assert!(!c.choose().merge, "force never merges an append-only store");
}

#[test]
fn no_merge_while_merged_inputs_wait_for_deletion() {
    let mut c = Case::new(&[(0, 10, DAY), (10, 10, DAY), (20, 1, DAY)]);
    c.marks.validated.extend([0, 10]);
    c.busy = busy(&c.listing, &[], &[10]);
    let choice = c.choose();
    assert!(!choice.merge, "{choice:?}");
    // The pending input counts neither as dirty nor as sealed bytes.
    assert_eq!((choice.dirty_bytes, choice.dirty_ratio), (10, 1.0));
    assert!(choice.check.is_empty());
}

#[test]
fn min_compaction_lag_waits_for_a_dirty_segment_old_enough() {
    let mut c = Case::new(&[(0, 10, Duration::from_secs(60)), (10, 1, DAY)]);
    c.marks.validated.insert(0);
    c.policy.min_compaction_lag = Duration::from_secs(3600);
    assert!(!c.choose().merge);
    c.policy.min_compaction_lag = Duration::from_secs(60);
    assert!(c.choose().merge);
}

#[test]
fn merge_inputs_are_the_validated_idle_old_prefix_and_none_if_all_clean() {
    let c = {
        let mut c = Case::new(&[(0, 5, DAY), (10, 5, DAY), (20, 5, DAY), (30, 5, DAY)]);
        c.marks.validated.extend([0, 10, 20]);
        c
    };
    let sealed = c.listing.sealed();
    let inputs = |marks: &Fake, busy: &Busy| {
        merge_inputs(sealed, marks, busy, &c.policy, c.now)
            .map(|v| v.iter().map(|s| s.seq).collect::<Vec<_>>())
    };
    assert_eq!(inputs(&c.marks, &Busy::none()), Some(vec![0, 10, 20]));
    // A busy segment ends the prefix.
    assert_eq!(
        inputs(&c.marks, &busy(&c.listing, &[10], &[])),
        Some(vec![0])
    );
    // So does one not validated.
    let mut m = Fake::default();
    m.validated.extend([0, 20]);
    assert_eq!(inputs(&m, &Busy::none()), Some(vec![0]));
    // All clean: nothing to merge.
    let mut m = Fake::default();
    m.validated.extend([0, 10, 20]);
    m.clean.extend([0, 10, 20]);
    assert_eq!(inputs(&m, &Busy::none()), None);
}

#[test]
fn merge_groups_stay_within_the_largest_input_and_cover_every_input_in_order() {
    assert_eq!(groups(&[10, 10, 10], &[4, 4, 4]), [0..2, 2..3]);
    assert_eq!(groups(&[10, 10, 10], &[10, 0, 10]), [0..2, 2..3]);
    assert_eq!(groups(&[10], &[0]), vec![0..1usize]);
    // An input that keeps more than the target is a group of its own.
    assert_eq!(groups(&[5, 20, 5], &[5, 20, 5]), [0..1, 1..2, 2..3]);
    assert!(groups(&[], &[]).is_empty());
}

#[test]
fn the_range_of_a_segment_ends_at_the_next_name_not_pending_deletion() {
    let c = Case::new(&[(0, 1, DAY), (10, 1, DAY), (20, 1, DAY)]);
    let b = busy(&c.listing, &[], &[10]);
    assert_eq!(next_seq(&c.listing.segments, 0, &b), Some(20));
    assert_eq!(next_seq(&c.listing.segments, 0, &Busy::none()), Some(10));
    assert_eq!(next_seq(&c.listing.segments, 2, &b), None);
}
