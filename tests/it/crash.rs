//! G2 crash safety: a run killed (SIGKILL, no cleanup) at each named step
//! leaves the log folding to the same state, and the next run recovers by
//! itself. Needs the `failpoints` feature (`cargo test --all-features`).
#![cfg(feature = "failpoints")]

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;

use crate::common::*;
use logkeeper::testing::FailpointPipeline as Pipeline;

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
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
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
    let left = temps_under(&[env.dir.path(), &env.state()]);
    assert!(left.is_empty(), "{point}: temp files left: {left:?}");
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
    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    let copies = q.iter().filter(|e| e.bytes() == b"{not json").count();
    assert_eq!(
        copies, 1,
        "{point}: malformed line quarantined {copies} times"
    );
    env.lk(["status"]).status(0);
}

/// Every crash point of a single-log swap run (its own and those it shares
/// with a segmented run), from `Failpoint::ALL`: a point added to the code
/// is crash-tested without a new test.
#[test]
fn killed_at_every_swap_point_the_log_folds_the_same_and_recovers() {
    for point in crash_points(Pipeline::Log) {
        killed_at(point.name());
    }
}

/// The in-place rewrite's steps (`src/job/inplace.rs`): killed at each, the
/// log folds the same right after the crash (at most one malformed line:
/// the empty line before the appended fold) and after the next run.
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
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
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
    let left = temps_under(&[env.dir.path(), &env.state()]);
    assert!(left.is_empty(), "{point}: temp files left: {left:?}");
}

#[test]
fn killed_at_every_in_place_point_the_inode_stays_and_recovers() {
    for point in crash_points(Pipeline::InPlace) {
        killed_in_place_at(point.name());
    }
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
    let left = temps_under(&[env.dir.path(), &env.state()]);
    assert!(left.is_empty(), "{point}: temp files left: {left:?}");
}

#[test]
fn killed_at_every_carry_point_no_late_line_is_lost_or_repeated() {
    for point in crash_points(Pipeline::Carry) {
        killed_carrying_at(point.name());
    }
}
