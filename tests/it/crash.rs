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

/// The in-place rewrite's steps (`src/job/inplace.rs`): killed at each, the
/// log folds the same right after the crash (at most one malformed line:
/// the empty line before the appended fold) and after the next run.
const IN_PLACE_POINTS: &[&str] = &[
    "before-inplace-append",
    "after-inplace-append",
    "after-inplace-copy-down",
    "after-inplace-truncate",
];

fn killed_in_place_at(point: &str) {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 30_000, 3_000, 4, true);
    env.keyed_store("m", &log);
    let cfg = std::fs::read_to_string(env.config()).unwrap() + "strategy = \"in-place\"\n";
    env.write_config(&cfg);
    // The generated log ends in a dead writer's torn line: that first run
    // swaps (in place declines a torn tail), and the writer protocol ends
    // the torn line before its first append.
    env.lk(["sync", "now", "--force"]).status(0);
    let mut w = logkeeper::writer::LogWriter::open(&log).unwrap();
    for i in 0..500 {
        w.append(
            format!(
                r#"{{"change_type":"{}","item_type":"Task","item":{{"id":"task-{:08}"}},"n":{i}}}"#,
                if i % 5 == 0 { "DEL" } else { "SET" },
                i % 70
            )
            .as_bytes(),
        )
        .unwrap();
    }
    drop(w);
    let ino = std::fs::metadata(&log).unwrap().ino();
    let fold_before = fold_file(&log);
    let d = env
        .lk(["sync", "now", "--force"])
        .env("LOGKEEPER_FAILPOINT", point)
        .output();
    assert_eq!(
        d.out.status.signal(),
        Some(9),
        "{point}: not killed there\n{}",
        d.stderr()
    );
    assert_eq!(
        fold_file(&log),
        fold_before,
        "{point}: fold changed by the crash"
    );
    let j = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json();
    assert_eq!(
        j["runs"][0]["stats"]["strategy"]["strategy"], "in-place",
        "{point}"
    );
    assert_eq!(
        fold_file(&log),
        fold_before,
        "{point}: fold changed by recovery"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().ino(),
        ino,
        "{point}: the inode changed"
    );
    // Compacted: one line per live key, nothing else.
    let text = std::fs::read(&log).unwrap();
    assert_eq!(
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        fold_before.len(),
        "{point}: not compacted after recovery"
    );
    assert!(temps(&log).is_empty(), "{point}: temps left");
}

#[test]
fn in_place_killed_before_append() {
    killed_in_place_at(IN_PLACE_POINTS[0]);
}
#[test]
fn in_place_killed_after_append() {
    killed_in_place_at(IN_PLACE_POINTS[1]);
}
#[test]
fn in_place_killed_after_copy_down() {
    killed_in_place_at(IN_PLACE_POINTS[2]);
}
#[test]
fn in_place_killed_after_truncate() {
    killed_in_place_at(IN_PLACE_POINTS[3]);
}

/// The carry window's steps (`src/job/carry.rs`): a lock-less writer
/// appends to the old inode while the run carries; killed right after a
/// carry's journal, after its append or after its fsync, the next run
/// neither loses nor repeats a line.
fn killed_carrying_at(point: &str) {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 5_000, 500, 0, false);
    env.keyed_store("m", &log);
    let cfg = std::fs::read_to_string(env.config()).unwrap()
        + "strategy = \"swap\"\ncarry_window = \"5s\"\n";
    env.write_config(&cfg);
    // A lock-less writer with one fd for life: 400 numbered lines, one
    // every 5 ms, then it exits.
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3>>"$1"; i=0; while [ $i -lt 400 ]; do echo "{\"change_type\":\"SET\",\"item_type\":\"L\",\"item\":{\"id\":$i}}" >&3; i=$((i+1)); sleep 0.005; done"#)
        .arg("sh")
        .arg(&log)
        .spawn()
        .unwrap();
    wait_for("the writer", std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"L\""))
    });
    let d = env
        .lk(["sync", "now", "--force"])
        .env("LOGKEEPER_FAILPOINT", point)
        .output();
    assert_eq!(
        d.out.status.signal(),
        Some(9),
        "{point}: not killed there\n{}",
        d.stderr()
    );
    assert!(wait_exit(&mut writer, std::time::Duration::from_secs(30)).success());
    env.lk(["sync", "now", "--force"]).status(0);
    env.lk(["sync", "now", "--force"]).status(0);
    let text = std::fs::read(&log).unwrap();
    let mut ids = std::collections::HashMap::new();
    for l in text.split(|&b| b == b'\n') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(l)
            && v["item_type"] == "L"
        {
            *ids.entry(v["item"]["id"].as_u64().unwrap()).or_insert(0) += 1;
        }
    }
    for i in 0..400 {
        assert_eq!(ids.get(&i), Some(&1), "{point}: line {i} lost or repeated");
    }
}

#[test]
fn killed_after_carry_journal() {
    killed_carrying_at("after-carry-journal");
}
#[test]
fn killed_after_carry_append() {
    killed_carrying_at("after-carry-append");
}
#[test]
fn killed_after_carry_fsync() {
    killed_carrying_at("after-carry-fsync");
}
