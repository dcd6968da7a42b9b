//! The log planner with fake sizes, baselines and listings.

use std::path::{Path, PathBuf};

use super::*;

fn policy(min_growth: f64, rotate_bytes: Option<u64>) -> LogPolicy {
    LogPolicy {
        log: PathBuf::from("/l/app.jsonl"),
        keep_rotated: 3,
        min_growth,
        rotate_bytes,
    }
}

#[test]
fn min_growth_skips_until_the_log_grew_by_the_fraction() {
    let p = policy(0.5, None);
    let Some(Choice::Skip(why)) = skip(&p, false, 140, Some(100), false) else {
        panic!("40% < 50% skips");
    };
    assert!(
        why.contains("grew 40%") && why.contains("min_growth 50%") && why.contains("--force"),
        "{why}"
    );
    assert_eq!(skip(&p, false, 150, Some(100), false), None, "at 50%");
    assert!(skip(&p, false, 90, Some(100), false).is_some(), "shrunk");
}

#[test]
fn min_growth_never_skips_forced_unset_without_baseline_or_with_late_writes() {
    let p = policy(0.5, None);
    assert_eq!(skip(&p, true, 100, Some(100), false), None, "forced");
    assert_eq!(skip(&policy(0.0, None), false, 100, Some(100), false), None);
    assert_eq!(skip(&p, false, 100, None, false), None, "first run");
    assert_eq!(
        skip(&p, false, 100, Some(100), true),
        None,
        "late writes wait"
    );
}

#[test]
fn an_empty_baseline_counts_growth_from_one_byte() {
    assert_eq!(growth(0, 0), 0.0);
    assert_eq!(growth(10, 0), 10.0);
    assert_eq!(growth(50, 100), 0.0);
}

fn folded(keyed: bool, identity: bool, late_bytes: u64, size: u64) -> Folded {
    Folded {
        keyed,
        identity,
        late_bytes,
        size,
    }
}

#[test]
fn a_fold_that_changes_nothing_keeps_the_log_unless_late_writes_are_in_it() {
    let p = policy(0.0, None);
    assert_eq!(choose(&p, &folded(true, true, 0, 100)), Choice::Keep);
    assert_eq!(choose(&p, &folded(true, true, 5, 100)), Choice::Rewrite);
    assert_eq!(choose(&p, &folded(true, false, 0, 100)), Choice::Rewrite);
}

#[test]
fn rotate_bytes_archives_an_append_only_log_past_the_limit_only() {
    let p = policy(0.0, Some(100));
    assert_eq!(choose(&p, &folded(false, true, 0, 101)), Choice::Archive);
    assert_eq!(choose(&p, &folded(false, true, 0, 100)), Choice::Keep, "at");
    // A keyed log is folded, never archived.
    assert_eq!(choose(&p, &folded(true, false, 0, 500)), Choice::Rewrite);
    // Late writes in the fold would land in the new log: rewrite this
    // run, archive the next.
    assert_eq!(choose(&p, &folded(false, true, 7, 500)), Choice::Rewrite);
}

fn rotated(n: i64, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, PathBuf)> {
    (0..n)
        .map(|i| {
            (
                now - chrono::Duration::days(i),
                PathBuf::from(format!("/l/app.jsonl.{i}")),
            )
        })
        .collect()
}

fn names(p: &[PathBuf]) -> Vec<&str> {
    p.iter()
        .map(|p| p.extension().unwrap().to_str().unwrap())
        .collect()
}

#[test]
fn keep_rotated_prunes_the_oldest_and_spares_busy_files() {
    let now = Utc::now();
    let r = rotated(5, now);
    let out = prune(&r, 3, None, now, &Busy::none());
    assert_eq!(names(&out.remove), ["3", "4"]);
    assert!(out.kept.is_empty());
    let mut busy = Busy::none();
    busy.open(Path::new("/l/app.jsonl.3"))
        .protect(Path::new("/l/app.jsonl.4"));
    let out = prune(&r, 3, None, now, &busy);
    assert!(out.remove.is_empty());
    assert_eq!(names(&out.kept), ["3", "4"]);
    assert_eq!(
        names(&prune(&r, 0, None, now, &Busy::none()).remove).len(),
        5
    );
}

#[test]
fn max_age_prunes_within_keep_rotated_and_a_future_stamp_is_never_too_old() {
    let now = Utc::now();
    let r = rotated(3, now);
    let day = std::time::Duration::from_secs(86_400);
    let out = prune(&r, 10, Some(day + day / 2), now, &Busy::none());
    assert_eq!(names(&out.remove), ["2"]);
    // A clock stepped back: a file stamped in the future is not too old.
    let future = vec![(
        now + chrono::Duration::days(3),
        PathBuf::from("/l/app.jsonl.f"),
    )];
    assert!(
        prune(&future, 0, Some(day), now, &Busy::none())
            .remove
            .len()
            == 1
    );
    assert!(
        prune(&future, 1, Some(day), now, &Busy::none())
            .remove
            .is_empty()
    );
}
