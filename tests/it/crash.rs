//! G2 crash safety: a run killed (SIGKILL, no cleanup) at each named step
//! leaves the log folding to the same state, and the next run recovers by
//! itself. Needs the `failpoints` feature (`cargo test --all-features`).
#![cfg(feature = "failpoints")]

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;

use crate::common::*;

const POINTS: &[&str] = &[
    "before-quarantine-write",
    "mid-quarantine-write",
    "after-snapshot-write",
    "after-snapshot-fsync",
    "before-swap-lock",
    "after-rotate-link",
    "after-late-prepare",
    "after-rename",
    "after-dir-fsync",
    "mid-prune",
    "before-record",
];

fn killed_at(point: &str) {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 30_000, 3_000, 4, true);
    env.keyed_store("m", &log);
    // keep_rotated = 1 with one rotated file already there, so the crashed
    // run has something to prune.
    let cfg = std::fs::read_to_string(env.config()).unwrap() + "keep_rotated = 1\n";
    env.write_config(&cfg);
    env.lk(["sync", "now", "--force"]).status(0);
    let mut w = logkeeper::writer::LogWriter::open(&log).unwrap();
    for i in 0..50 {
        w.append(format!(r#"{{"change_type":"SET","item_type":"Task","item":{{"id":"task-{:08}"}},"n":{i}}}"#, i % 7).as_bytes())
            .unwrap();
    }
    // A non-cooperating writer's damage, planted raw.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"{not json\n")
        .unwrap();
    let before = std::fs::read(&log).unwrap();
    let fold_before = reference_fold(&before);

    let d = env
        .lk(["sync", "now", "--force"])
        .env("LOGKEEPER_FAILPOINT", point)
        .output();
    assert_eq!(
        d.out.status.signal(),
        Some(9),
        "{point}: the run was not killed there\n{}",
        d.stderr()
    );

    // Right after the crash: the log is whole and folds the same.
    assert_eq!(
        fold_file(&log),
        fold_before,
        "{point}: fold changed by the crash"
    );

    // The next run recovers by itself.
    let j = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json();
    assert_eq!(j["runs"][0]["outcome"], "ok", "{point}");
    assert_eq!(
        fold_file(&log),
        fold_before,
        "{point}: fold changed by recovery"
    );
    assert!(
        temps(&log).is_empty(),
        "{point}: temp files left: {:?}",
        temps(&log)
    );
    let live = std::fs::metadata(&log).unwrap().ino();
    for r in rotated(&log) {
        assert_ne!(
            std::fs::metadata(&r).unwrap().ino(),
            live,
            "{point}: rotated name on the live log"
        );
    }
    assert_eq!(
        rotated(&log).len(),
        1,
        "{point}: keep_rotated not enforced after recovery"
    );
    // The malformed line was quarantined, not dropped.
    let q = logkeeper::job::quarantine::read(&env.path("events.jsonl.quarantine")).unwrap();
    let copies = q.iter().filter(|e| e.bytes() == b"{not json").count();
    assert_eq!(
        copies, 1,
        "{point}: malformed line quarantined {copies} times"
    );
    env.lk(["status"]).status(0);
}

#[test]
fn killed_before_quarantine_write() {
    killed_at(POINTS[0]);
}
#[test]
fn killed_mid_quarantine_write() {
    killed_at(POINTS[1]);
}
#[test]
fn killed_after_snapshot_write() {
    killed_at(POINTS[2]);
}
#[test]
fn killed_after_snapshot_fsync() {
    killed_at(POINTS[3]);
}
#[test]
fn killed_after_rotate_link() {
    killed_at(POINTS[4]);
}
#[test]
fn killed_after_rename_before_dir_fsync() {
    killed_at(POINTS[5]);
}
#[test]
fn killed_after_dir_fsync() {
    killed_at(POINTS[6]);
}
#[test]
fn killed_mid_prune() {
    killed_at(POINTS[7]);
}
#[test]
fn killed_after_swap_before_record() {
    killed_at(POINTS[8]);
}
