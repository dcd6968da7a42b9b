//! SIGTERM and SIGINT during a run (issue 16 B.7): the run stops at its
//! next safe point, undoes (before the swap) or finishes (after it), writes
//! its record, empties and releases the lock, and exits non-zero, never
//! silently with 143.
#![cfg(feature = "failpoints")]

use std::io::Read;
use std::time::Duration;

use crate::common::*;

/// Where the run is paused when the signal comes, and whether the log is
/// replaced by the time it stops (the swap, once begun, finishes).
const STEPS: &[(&str, bool)] = &[
    ("before-recover", false),
    ("after-snapshot-fsync", false),
    ("before-swap-lock", false),
    ("after-late-prepare", true),
    ("before-record", true),
];

fn interrupted_at(point: &str, replaced: bool, sig: i32, name: &str) {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 20_000, 2_000, 2, true);
    env.keyed_store("m", &log);
    let before = std::fs::read(&log).unwrap();
    let flag = env.path("paused");
    let mut run = env.lk(["sync", "now", "--force"]).paused(point, &flag);
    signal(run.id(), sig);
    std::fs::remove_file(&flag).unwrap();
    let st = wait_exit(&mut run, Duration::from_secs(60));
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(st.code(), Some(1), "{point}: {st:?}\n{err}");
    assert!(
        err.contains(&format!("interrupted by {name}")),
        "{point}: {err}"
    );

    let rec = env.last_run("m").expect("the interrupted run has a record");
    assert_eq!(rec["pid"], run.id(), "{point}: {rec}");
    let lock = std::fs::read(env.path("events.jsonl.lock")).unwrap();
    assert!(lock.is_empty(), "{point}: a stale holder in the lock file");
    assert!(temps(&log).is_empty(), "{point}: {:?}", temps(&log));
    if replaced {
        assert_eq!(rec["outcome"], "ok", "{point}: {rec}");
        assert!(
            rec["reason"].as_str().unwrap().contains(name),
            "{point}: {rec}"
        );
        assert_eq!(fold_file(&log), reference_fold(&before), "{point}");
    } else {
        assert_eq!(rec["outcome"], "error", "{point}: {rec}");
        let msg = rec["error"].as_str().unwrap();
        assert!(
            msg.contains(&format!("interrupted by {name}")),
            "{point}: {msg}"
        );
        assert!(msg.contains("the log is unchanged"), "{point}: {msg}");
        assert_eq!(std::fs::read(&log).unwrap(), before, "{point}");
        assert!(rotated(&log).is_empty(), "{point}: {:?}", rotated(&log));
        let status = env.lk(["status"]).status(1).stdout();
        assert!(
            status.contains(&format!("interrupted by {name}")),
            "{point}: {status}"
        );
    }
    // The lock was released: the next run goes through, and every
    // malformed line is quarantined once.
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(fold_file(&log), reference_fold(&before), "{point}");
    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert_eq!(q.len(), 2, "{point}: {q:?}");
}

/// Issue 16 B.7: SIGTERM (what systemd sends when it stops a timer's job)
/// to a real run paused at each step. Before the fix the run died with
/// 143, no record, and the holder left in the lock file.
#[test]
fn sigterm_stops_a_run_at_a_safe_point_and_records_it() {
    for &(point, replaced) in STEPS {
        interrupted_at(point, replaced, libc::SIGTERM, "SIGTERM");
    }
}

/// Issue 16 B.7: the same for Ctrl-C.
#[test]
fn sigint_stops_a_run_at_a_safe_point_and_records_it() {
    interrupted_at("after-snapshot-fsync", false, libc::SIGINT, "SIGINT");
}
