//! The merge's unit tests.

use super::*;

/// Remove from `rs` the ranges that start at an offset in `lost`; both
/// are sorted, so one walk does it.
fn drop_lost(rs: &mut Vec<Range>, lost: &[u64]) {
    let mut i = 0;
    rs.retain(|r| {
        while i < lost.len() && lost[i] < r.start {
            i += 1;
        }
        lost.get(i) != Some(&r.start)
    });
}
use crate::fold::keymap::{Entry, hash_key};

fn map(entries: &[(&str, u64, bool)]) -> ChunkScan {
    let mut c = ChunkScan {
        hi: u64::MAX,
        ..ChunkScan::default()
    };
    for &(k, start, tomb) in entries {
        let r = Range {
            start,
            end: start + 5,
        };
        c.map
            .upsert(hash_key(k.as_bytes()), k.as_bytes(), Entry::new(r, tomb));
    }
    c
}

/// Maps whose parts interleave (a thread's map holds several parts):
/// of each key's entries, the one at the greatest offset wins, in any
/// map; a winning delete keeps nothing (or its tombstone).
#[test]
fn the_write_at_the_greatest_offset_wins_in_whichever_map() {
    let maps = || {
        vec![
            map(&[
                ("k1", 100, false),
                ("k2", 10, false),
                ("k3", 20, true),
                ("k5", 400, false),
            ]),
            map(&[
                ("k1", 50, false),
                ("k2", 900, false),
                ("k3", 5, false),
                ("k4", 300, false),
                ("k5", 700, false),
            ]),
            map(&[("k5", 600, false), ("k6", 30, true)]),
        ]
    };
    let starts = |rs: &[Range]| rs.iter().map(|r| r.start).collect::<Vec<_>>();
    for tombs in [false, true] {
        let opts = Opts {
            tombs,
            ..Opts::compaction(1, 1)
        };
        let (mut plan, mut keep) = (Plan::default(), Runs::default());
        assert_eq!(merge_keys(maps(), opts, &mut plan, &mut keep), u64::MAX);
        assert_eq!(starts(&keep.to_vec()), [100, 300, 700, 900]);
        assert_eq!(plan.keys_live, 4);
        let dead: &[u64] = if tombs { &[20, 30] } else { &[] };
        assert_eq!(starts(&plan.tombs), dead);
        // Counted only: the same live keys, no ranges.
        let counted = Opts {
            count_only: true,
            ..opts
        };
        let (mut plan, mut keep) = (Plan::default(), Runs::default());
        assert_eq!(merge_keys(maps(), counted, &mut plan, &mut keep), u64::MAX);
        assert_eq!((plan.keys_live, keep.len(), plan.tombs.len()), (4, 0, 0));
    }
}

/// The binned gather equals one sort of every run with the lost ones
/// dropped, however the offsets cluster and for any thread count.
#[test]
fn the_binned_gather_equals_one_sort() {
    let mut rng = crate::rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut rnd = move || rng.next_u64();
    for (runs_n, per_run, spread) in [(0, 0, 1), (1, 3, 10), (16, 500, 1 << 20), (8, 2000, 50_000)]
    {
        let mut starts: Vec<u64> = Vec::new();
        let mut runs = Vec::new();
        for _ in 0..runs_n {
            let mut r: Vec<Range> = (0..per_run)
                .map(|_| rnd() % spread * 10)
                .filter(|s| !starts.contains(s))
                .map(|s| Range {
                    start: s,
                    end: s + 3,
                })
                .collect();
            r.sort_unstable();
            r.dedup_by_key(|r| r.start);
            starts.extend(r.iter().map(|r| r.start));
            runs.push(r);
        }
        let lost: Vec<Vec<u64>> = runs
            .iter()
            .map(|r| r.iter().step_by(3).map(|r| r.start).collect())
            .collect();
        let mut want: Vec<Range> = runs.concat();
        want.sort_unstable();
        let mut all_lost = lost.concat();
        all_lost.sort_unstable();
        drop_lost(&mut want, &all_lost);
        for threads in 1..=4 {
            assert_eq!(
                gather(&runs, &lost, threads),
                want,
                "{runs_n} runs, {threads} threads"
            );
        }
    }
}
