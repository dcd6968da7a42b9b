//! G5 single flight: the `<log>.lock` file, busy exits, waiting, racing runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// Hold `<log>.lock` with flock(1) until the returned child's stdin closes.
fn hold_lock(lock: &std::path::Path) -> std::process::Child {
    let mut holder = Command::new("flock")
        .arg(lock)
        .args(["-c", "echo locked; read _"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) is needed for this test");
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    holder
}

#[test]
fn busy_lock_exits_75_without_waiting_and_records_busy() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store("m", &log);
    let before = std::fs::read(&log).unwrap();
    let mut holder = hold_lock(&env.path("events.jsonl.lock"));

    env.lk(["sync", "now", "--force"])
        .status(75)
        .stderr_has("busy");
    // It did not wait for the holder: the holder is still there.
    assert!(holder.try_wait().unwrap().is_none());
    assert_eq!(std::fs::read(&log).unwrap(), before);
    let st = env.lk(["status", "--json"]).output().json();
    assert_eq!(st["stores"][0]["last_run"]["outcome"], "busy");

    // A scheduled run that finds the lock held records a skip, not a failure.
    let d = env
        .lk(["sync", "now", "--trigger", "schedule", "--json"])
        .status(0)
        .json();
    assert_eq!(d["runs"][0]["outcome"], "skipped");

    drop(holder.stdin.take());
    holder.wait().unwrap();
    env.lk(["sync", "now", "--force"]).status(0);
}

#[test]
fn busy_message_names_the_holder_from_the_lock_file() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store("m", &log);
    let lockp = env.path("events.jsonl.lock");
    let mut holder = hold_lock(&lockp);
    // What a holding logkeeper run writes into the lock file.
    std::fs::write(
        &lockp,
        r#"{"pid":4242,"host":"box","started_at":"2026-11-23T10:00:00Z","trigger":"daemon","version":"0.1.0"}"#,
    )
    .unwrap();
    env.lk(["sync", "now"])
        .status(75)
        .stderr_has("pid 4242 on box (daemon run");
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[test]
fn wait_blocks_until_the_holder_releases() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store("m", &log);
    let mut holder = hold_lock(&env.path("events.jsonl.lock"));
    let mut waiter = env.lk(["sync", "now", "--force", "--wait", "-v"]).spawn();
    // The waiter announces that it waits on stderr before blocking.
    let mut err = BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("waiting for"), "{line}");
    assert!(waiter.try_wait().unwrap().is_none());
    holder.stdin.take().unwrap().write_all(b"\n").unwrap();
    holder.wait().unwrap();
    assert_eq!(waiter.wait().unwrap().code(), Some(0));
}

#[test]
fn racing_runs_never_overlap() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100_000, 5_000, 0, false);
    env.keyed_store("m", &log);
    // Two wait for the lock (so at least two runs do the work), two do not.
    let kids: Vec<_> = (0..4)
        .map(|i| {
            let run = env.lk(["sync", "now", "--force", "--json"]);
            if i % 2 == 0 { run.arg("--wait") } else { run }.spawn()
        })
        .collect();
    let mut ok = Vec::new();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 75, "unexpected exit {code}");
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if d["runs"][0]["outcome"] == "ok" {
            ok.push(d["runs"][0].clone());
        }
    }
    assert!(ok.len() >= 2, "both waiting runs must succeed");
    // Runs that held the lock must not overlap: each one's lock acquisition
    // (started_at + wait_ms + lock_ms) comes after the previous one's finished_at
    // (the record is written before the lock is released). 1 ms of slack
    // covers mixing wall and monotonic clocks; a broken lock would overlap
    // by a whole run (~100 ms here).
    let t = |r: &serde_json::Value, k: &str| {
        chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap()
    };
    let mut spans: Vec<_> = ok
        .iter()
        .map(|r| {
            let lock_ms =
                r["wait_ms"].as_f64().unwrap() + r["stats"]["timings"]["lock_ms"].as_f64().unwrap();
            let lock_us = (lock_ms * 1000.0) as i64;
            (
                t(r, "started_at") + chrono::Duration::microseconds(lock_us),
                t(r, "finished_at"),
            )
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[1].0 + chrono::Duration::milliseconds(1) >= w[0].1,
            "two runs held the lock at once: {w:?}"
        );
    }
    let history = logkeeper::testing::RunRecords::new(env.state().join("stores/m")).history();
    assert_eq!(history.len(), 4, "every run is recorded");
    assert_eq!(
        fold_file(&log).len() as u64,
        ok[0]["stats"]["keys_live"].as_u64().unwrap()
    );
}

#[test]
fn lock_file_is_never_removed_and_holds_only_the_holder_fields() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 1_000, 100, 0, false);
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "--force"]).status(0);
    let lockp = env.path("events.jsonl.lock");
    assert!(lockp.exists());
    // Released runs leave it empty; the holder record is written while held.
    assert_eq!(std::fs::read(&lockp).unwrap(), b"");
    let h =
        logkeeper::testing::StoreLock::acquire("m", &log, "manual", logkeeper::testing::Wait::No)
            .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&lockp).unwrap()).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["host", "pid", "started_at", "trigger", "version"]);
    assert_eq!(v["pid"], std::process::id());
    env.lk(["sync", "now"]).status(75);
    drop(h);
    env.lk(["sync", "now", "--force"]).status(0);
}

#[test]
fn missing_log_directory_is_named_with_what_to_do() {
    let env = Env::new();
    env.write_config("[[store]]\nname = \"a\"\nlog = \"nowhere/events.jsonl\"\n");
    let d = env.lk(["sync", "now", "a"]).status(1);
    let err = d.stderr();
    assert!(
        err.contains(&format!(
            "the log's directory {} does not exist",
            env.path("nowhere").display()
        )) && err.contains("fix the store's path (`log =`"),
        "{err}"
    );
    env.lk(["status", "a"])
        .status(1)
        .stdout_has("does not exist");
}

/// Issue 16 B.5: a manual run that finds the store busy writes its record
/// (through a temp file in the state dir) under the records lock only,
/// while the holder's clean-up of crashed runs' temp files works under the
/// store lock. The busy run is paused with its record's temp file on disk
/// and the holder let into its clean-up: the temp file must survive, the
/// busy run exit 75, and the holder claim no leftover. Before the fix the
/// holder deleted it ("removed … left by an interrupted run") and the busy
/// run exited 1 ("the run record could not be written").
#[cfg(feature = "failpoints")]
#[test]
fn busy_run_exits_75_while_holder_recovers() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 200, 0, false);
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "--force"]).status(0);
    let (hold_flag, busy_flag) = (env.path("holder-paused"), env.path("busy-paused"));
    let mut holder = env
        .lk(["sync", "now", "--force"])
        .paused("before-recover", &hold_flag);
    let mut busy = env
        .lk(["sync", "now"])
        .paused("atomic-write-before-rename", &busy_flag);
    let state = env.state().join("stores/m");
    let temps = || files_with_prefix(&state, ".last-run.json.lk-tmp.");
    assert_eq!(temps().len(), 1, "the busy run's record is mid-write");
    std::fs::remove_file(&hold_flag).unwrap();
    // The holder goes on until it needs the records lock the busy run holds:
    // in its clean-up (fixed) or, before the fix, at its own record.
    wait_for(
        "the holder to wait for the records lock",
        Duration::from_secs(30),
        || blocked_on_a_lock(holder.id()),
    );
    assert_eq!(
        temps().len(),
        1,
        "the holder removed the busy run's temp file"
    );
    std::fs::remove_file(&busy_flag).unwrap();
    let busy_status = wait_exit(&mut busy, Duration::from_secs(30));
    let holder_status = wait_exit(&mut holder, Duration::from_secs(60));
    let mut err = String::new();
    busy.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(busy_status.code(), Some(75), "{err}");
    let mut herr = String::new();
    holder
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut herr)
        .unwrap();
    assert_eq!(holder_status.code(), Some(0), "{herr}");
    assert!(!herr.contains("left by an interrupted run"), "{herr}");
    let outcomes: Vec<Value> = env
        .history("m")
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes[1..], [json!("busy"), json!("ok")], "{outcomes:?}");
}
