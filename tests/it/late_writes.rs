//! Late writes and the swap's safety checks: one test per finding of issue
//! 8 (the comment on each says which). Writers here are real file
//! descriptors held by this test process (another process than the run, so
//! the run's census sees them).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn set(t: &str, id: u32, v: &str) -> String {
    format!(r#"{{"change_type":"SET","item_type":"{t}","item":{{"id":{id}}},"v":"{v}"}}"#)
}

fn value_of(log: &Path, t: &str, id: u32) -> Option<String> {
    fold_file(log).iter().find_map(|l| {
        let v: Value = serde_json::from_slice(l).unwrap();
        (v["item_type"] == t && v["item"]["id"] == id).then(|| v["v"].as_str().unwrap().to_string())
    })
}

fn held(log: &Path) -> File {
    OpenOptions::new().append(true).open(log).unwrap()
}

fn keyed(env: &Env, log: &Path, keep: u32) {
    env.keyed_store_with("m", log, &["--keep-rotated", &keep.to_string()]);
}

fn sync(env: &Env) -> Value {
    env.lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json()["runs"][0]
        .clone()
}

/// Finding 1: a late line (old value, written to the old inode by a writer
/// that had not reopened yet) must not win over the newer value written to
/// the new live log after the swap.
#[test]
fn a_late_line_never_wins_over_a_newer_line_written_after_the_swap() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 1);
    let mut a = held(&log);
    writeln!(a, "{}", set("K", 1, "v1")).unwrap();
    sync(&env);
    // A, not having noticed the swap, writes v2 to the old inode; then it
    // reopens and writes v3 to the new log.
    writeln!(a, "{}", set("K", 1, "v2")).unwrap();
    let mut a = held(&log);
    writeln!(a, "{}", set("K", 1, "v3")).unwrap();
    let r = sync(&env);
    assert_eq!(r["stats"]["late_lines_carried"], 1, "{r}");
    assert_eq!(value_of(&log, "K", 1).as_deref(), Some("v3"));
    // And one more run keeps it so (the late line is not carried again).
    sync(&env);
    assert_eq!(value_of(&log, "K", 1).as_deref(), Some("v3"));
}

/// Finding 2: a rotated file that a writer still holds open (class B: one
/// fd for life) is never pruned, so its later lines still reach the log.
#[test]
fn a_rotated_file_a_writer_holds_open_is_not_pruned() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 0);
    let mut b = held(&log);
    writeln!(b, "{}", set("B", 1, "before")).unwrap();
    sync(&env);
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
    for i in 0..3 {
        // Other runs rotate newer files; B's file must stay.
        w.append(set("D", i, "x").as_bytes()).unwrap();
        writeln!(b, "{}", set("B", 1, &format!("after{i}"))).unwrap();
        sync(&env);
    }
    writeln!(b, "{}", set("B", 2, "last")).unwrap();
    let r = sync(&env);
    assert_eq!(value_of(&log, "B", 1).as_deref(), Some("after2"));
    assert_eq!(value_of(&log, "B", 2).as_deref(), Some("last"));
    assert_eq!(
        r["stats"]["writers"]["openers"][0]["pid"],
        std::process::id(),
        "the census missed the writer: {r}"
    );
    env.lk(["status"])
        .status(0)
        .stdout_has("still writes to the rotated file");
    // Once it lets go and everything is carried, retention applies again.
    drop(b);
    sync(&env);
    let r = sync(&env);
    assert_eq!(rotated(&log).len(), 1, "{r}");
}

/// Finding 3: a writer that writes `{json}` and `\n` in two calls (class C)
/// is caught between them by the swap: the new log gets the tail only up to
/// its last `\n`, the writer's `\n` completes the line in the old inode, and
/// both that event and the next one survive (nothing quarantined).
#[test]
fn a_line_written_in_two_calls_across_the_swap_is_kept_whole() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 1);
    let mut c = held(&log);
    write!(c, "{}", set("C", 1, "first")).unwrap();
    let first = sync(&env);
    c.write_all(b"\n").unwrap();
    drop(c);
    let mut c = held(&log);
    writeln!(c, "{}", set("C", 2, "second")).unwrap();
    drop(c);
    let r = sync(&env);
    assert_eq!(value_of(&log, "C", 1).as_deref(), Some("first"), "{r}");
    assert_eq!(value_of(&log, "C", 2).as_deref(), Some("second"));
    assert_eq!(r["stats"]["quarantined"], 0, "{r}");
    assert!(!env.path("events.jsonl.quarantine").exists());
    // The first run saw the writer holding the log between its two writes
    // (this process; a child another test forks meanwhile may inherit the
    // fd until it execs, so only our pid is counted).
    let me = u64::from(std::process::id());
    assert_eq!(
        first["stats"]["writers"]["openers"]
            .as_array()
            .map(|o| o.iter().filter(|o| o["pid"] == me).count()),
        Some(1),
        "{first}"
    );
}

/// Finding 4 and 8: a run killed after the rename but before it recorded
/// anything: the late writes that then reach the rotated file are still
/// carried, exactly once (the late-write state was prepared before the
/// rename and is picked by the live inode).
#[cfg(feature = "failpoints")]
#[test]
fn a_run_killed_right_after_its_swap_still_carries_late_writes_once() {
    use std::os::unix::process::ExitStatusExt;
    for point in [
        "after-rename",
        "after-dir-fsync",
        "before-record",
        "after-late-prepare",
    ] {
        let env = Env::new();
        let log = env.path("events.jsonl");
        gen_log(&log, 500, 50, 0, false);
        keyed(&env, &log, 1);
        let mut a = held(&log);
        writeln!(a, "{}", set("A", 1, "v1")).unwrap();
        sync(&env);
        writeln!(a, "{}", set("A", 1, "late1")).unwrap();
        let d = env
            .lk(["sync", "now", "--force"])
            .env("LOGKEEPER_FAILPOINT", point)
            .output();
        assert_eq!(d.out.status.signal(), Some(9), "{point}: not killed");
        writeln!(a, "{}", set("A", 2, "late2")).unwrap();
        drop(a);
        sync(&env);
        sync(&env);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(value_of(&log, "A", 1).as_deref(), Some("late1"), "{point}");
        assert_eq!(value_of(&log, "A", 2).as_deref(), Some("late2"), "{point}");
        assert_eq!(text.matches("late1").count(), 1, "{point}: {text}");
    }
}

/// Finding 5: after the clock stepped back (a rotated file stamped in the
/// future), the file this run rotates is still the newest, and pruning
/// never takes it.
#[test]
fn a_clock_step_back_never_prunes_the_file_just_rotated() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 1);
    let future = env.path("events.jsonl.20991231T000000.000Z");
    std::fs::write(&future, b"{}\n").unwrap();
    let r = sync(&env);
    let mine = r["stats"]["rotated"].as_str().unwrap().to_string();
    assert!(
        Path::new(&mine).exists(),
        "this run's rotated file was pruned: {r}"
    );
    assert!(
        !future.exists(),
        "the older file (stamped in the future) was kept: {r}"
    );
}

/// A `sync now --force` that stops at the named point until the returned
/// flag file is removed (feature `failpoints`), so a test can act between
/// two steps of a run.
#[cfg(feature = "failpoints")]
fn paused_run(env: &Env, point: &str) -> (std::process::Child, std::path::PathBuf) {
    let flag = env.path("paused");
    let run = env
        .lk(["sync", "now", "--force"])
        .env("LOGKEEPER_PAUSE", point)
        .env("LOGKEEPER_PAUSE_FILE", &flag)
        .spawn();
    wait_for("the run to pause", Duration::from_secs(20), || {
        flag.exists()
    });
    (run, flag)
}

/// Finding 6: a copytruncate (another tool copies the log and truncates it
/// in place) between the cut and the swap is detected: the run fails, and
/// every line written since stays in the log.
#[cfg(feature = "failpoints")]
#[test]
fn copytruncate_during_a_run_fails_it_and_loses_nothing() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 200, 0, false);
    keyed(&env, &log, 1);
    let (mut run, flag) = paused_run(&env, "before-swap-lock");
    std::fs::copy(&log, env.path("events.jsonl.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
    w.append(set("N", 1, "after-truncate").as_bytes()).unwrap();
    std::fs::remove_file(&flag).unwrap();
    let st = wait_exit(&mut run, Duration::from_secs(30));
    assert_eq!(st.code(), Some(1));
    let rec = env.last_run("m").unwrap();
    assert!(
        rec["error"].as_str().unwrap().contains("truncated"),
        "{rec}"
    );
    assert_eq!(value_of(&log, "N", 1).as_deref(), Some("after-truncate"));
    // The next run works normally.
    sync(&env);
    assert_eq!(value_of(&log, "N", 1).as_deref(), Some("after-truncate"));
}

/// Finding 7: a `mv new events.jsonl` by someone else right before the
/// rename: the swap notices that the file it took out is not the one it
/// compacted, undoes itself, and the user's file stays the log.
#[cfg(feature = "failpoints")]
#[test]
fn a_file_moved_over_the_log_before_the_rename_stays_the_log() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 200, 0, false);
    keyed(&env, &log, 1);
    let (mut run, flag) = paused_run(&env, "after-late-prepare");
    let users = env.path("new.jsonl");
    std::fs::write(&users, format!("{}\n", set("U", 1, "users"))).unwrap();
    let ino = std::fs::metadata(&users).unwrap().ino();
    std::fs::rename(&users, &log).unwrap();
    std::fs::remove_file(&flag).unwrap();
    let st = wait_exit(&mut run, Duration::from_secs(30));
    assert_eq!(st.code(), Some(1));
    assert_eq!(std::fs::metadata(&log).unwrap().ino(), ino);
    assert_eq!(value_of(&log, "U", 1).as_deref(), Some("users"));
    assert!(temps(&log).is_empty(), "{:?}", temps(&log));
}

/// A per-line writer (class C: open, write the JSON, write the `\n`,
/// close; no lock), a separate process. It opens the log now and marks
/// `<flags>.opened`; writes `line` in two calls once `<flags>.go` exists;
/// closes once `<flags>.release` exists (each polled, 5 ms apart).
#[cfg(feature = "failpoints")]
fn per_line_writer(log: &Path, flags: &Path, line: &str) -> std::process::Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(
            r#"exec 3>>"$1"; : > "$2.opened"
            while [ ! -e "$2.go" ]; do sleep 0.005; done
            printf '%s' "$3" >&3; printf '\n' >&3
            while [ ! -e "$2.release" ]; do sleep 0.005; done
            exec 3>&-"#,
        )
        .arg("sh")
        .arg(log)
        .arg(flags)
        .arg(line)
        .spawn()
        .unwrap()
}

/// The carry window after a swap: the census taken after the exchange
/// (not only the one before the swap) says who may still append to the
/// old inode. A per-line writer that opened the log between the census
/// before the swap and the exchange, and writes its line only after the
/// swap, is followed: its line reaches the live path during this run (not
/// at the next one), and the record names it among the writers followed.
#[cfg(feature = "failpoints")]
#[test]
fn a_per_line_writer_that_opened_just_before_the_swap_is_followed_by_the_window() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 200, 0, false);
    keyed(&env, &log, 1);
    let (mut run, flag) = paused_run(&env, "after-late-prepare");
    let flags = env.path("c");
    let mut writer = per_line_writer(&log, &flags, &set("C", 1, "after-swap"));
    let opened = flags.with_extension("opened");
    wait_for(
        "the writer to open the log",
        Duration::from_secs(10),
        || opened.exists(),
    );
    let old = std::fs::metadata(&log).unwrap().ino();
    std::fs::remove_file(&flag).unwrap();
    wait_for("the swap", Duration::from_secs(30), || {
        std::fs::metadata(&log).is_ok_and(|m| m.ino() != old)
    });
    std::fs::write(flags.with_extension("go"), b"").unwrap();
    wait_for(
        "the writer's line at the live path",
        Duration::from_secs(10),
        || value_of(&log, "C", 1).as_deref() == Some("after-swap"),
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before the writer left the old inode"
    );
    std::fs::write(flags.with_extension("release"), b"").unwrap();
    assert!(wait_exit(&mut writer, Duration::from_secs(10)).success());
    assert_eq!(wait_exit(&mut run, Duration::from_secs(30)).code(), Some(0));
    let rec = env.last_run("m").unwrap();
    let w = &rec["stats"]["strategy"]["window"];
    assert!(w["lines"].as_u64().unwrap() >= 1, "{w}");
    let followed: Vec<u64> = w["followed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["pid"].as_u64().unwrap())
        .collect();
    assert!(followed.contains(&u64::from(writer.id())), "{w}");
    assert_eq!(w["stayed"].as_array().map_or(0, Vec::len), 0, "{w}");
}

/// The carry window closes as soon as a complete census after the exchange
/// finds nobody holding the old inode, but not before what is there is
/// carried (by the first carry at the exchange, or the window's polls): a
/// per-line writer that opened the log just before the swap, wrote its
/// line and closed it (all before the window began) has its line at the
/// live path when the run ends.
#[cfg(feature = "failpoints")]
#[test]
fn a_line_written_and_closed_just_before_the_swap_is_carried_by_the_window() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 200, 0, false);
    keyed(&env, &log, 1);
    let (mut run, flag) = paused_run(&env, "after-late-prepare");
    let flags = env.path("c");
    for f in ["go", "release"] {
        std::fs::write(flags.with_extension(f), b"").unwrap();
    }
    let mut writer = per_line_writer(&log, &flags, &set("C", 2, "before-swap"));
    assert!(wait_exit(&mut writer, Duration::from_secs(10)).success());
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(wait_exit(&mut run, Duration::from_secs(30)).code(), Some(0));
    assert_eq!(value_of(&log, "C", 2).as_deref(), Some("before-swap"));
    let rec = env.last_run("m").unwrap();
    let w = &rec["stats"]["strategy"]["window"];
    assert_eq!(w["stayed"].as_array().map_or(0, Vec::len), 0, "{w}");
}

/// Finding 9: a quarantine file that ends in a partial entry (a run killed
/// mid-write) does not swallow the next entry.
#[test]
fn a_partial_quarantine_entry_does_not_swallow_the_next_one() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 1);
    let q = env.path("events.jsonl.quarantine");
    std::fs::write(&q, b"{\"source\":\"/x\",\"offs").unwrap();
    held(&log).write_all(b"{broken\n").unwrap();
    sync(&env);
    let entries = logkeeper::testing::read_quarantine(&q).unwrap();
    assert!(
        entries.iter().any(|e| e.bytes() == b"{broken"),
        "{entries:?}"
    );
}

/// Finding 10: temp files of the state records left by a killed run are
/// removed by the next run; a filesystem that reports 0 total blocks does
/// not block compaction, and the record says the check was skipped.
#[cfg(feature = "failpoints")]
#[test]
fn state_temps_are_cleaned_and_a_sizeless_filesystem_still_compacts() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 1);
    sync(&env);
    let dir = env.state().join("stores").join("m");
    let stale = dir.join(".last-run.json.lk-tmp.AbCd12");
    std::fs::write(&stale, b"{").unwrap();
    // Something to fold, so the run rewrites the log.
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
    w.append(set("K", 1, "a").as_bytes()).unwrap();
    w.append(set("K", 1, "b").as_bytes()).unwrap();
    let d = env
        .lk(["sync", "now", "--force", "--json"])
        .env("LOGKEEPER_FAILPOINT", "statvfs-no-total:EIO")
        .status(0)
        .json();
    assert!(!stale.exists());
    let s = &d["runs"][0]["stats"];
    assert_eq!(s["free_space_unchecked"], true, "{s}");
    assert!(
        s["recovered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == stale.to_str()),
        "{s}"
    );
}

/// The pattern a swap cannot serve (a writer without `O_APPEND`, writing at
/// its own offset) is refused before the log is touched, naming the
/// process; `allow_positional_writers` lets it through.
#[test]
fn a_writer_without_o_append_is_refused_by_pid_before_anything_changes() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 1);
    let before = std::fs::read(&log).unwrap();
    let ino = std::fs::metadata(&log).unwrap().ino();
    let _w = OpenOptions::new().write(true).open(&log).unwrap();
    let d = env.lk(["sync", "now", "--force"]).status(1);
    assert!(
        d.stderr().contains(&format!("pid {}", std::process::id()))
            || d.stdout().contains(&format!("pid {}", std::process::id())),
        "{}{}",
        d.stdout(),
        d.stderr()
    );
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert_eq!(std::fs::metadata(&log).unwrap().ino(), ino);
    env.lk(["status"]).status(1).stdout_has("without O_APPEND");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{cfg}allow_positional_writers = true\n"));
    env.lk(["sync", "now", "--force"]).status(0);
}

/// A torn line a writer left in a rotated file before it exited is never
/// finished: it is quarantined (not lost), and the file can then be pruned.
#[test]
fn a_dead_writers_torn_line_in_a_rotated_file_is_quarantined_then_pruned() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    keyed(&env, &log, 0);
    let mut a = held(&log);
    let first = sync(&env)["stats"]["rotated"].as_str().unwrap().to_string();
    writeln!(a, "{}", set("A", 1, "late")).unwrap();
    write!(a, "{{\"torn").unwrap();
    drop(a);
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
    w.append(set("D", 1, "x").as_bytes()).unwrap();
    sync(&env);
    w.append(set("D", 2, "x").as_bytes()).unwrap();
    let r = sync(&env);
    assert_eq!(value_of(&log, "A", 1).as_deref(), Some("late"));
    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert!(q.iter().any(|e| e.bytes() == b"{\"torn"), "{q:?}");
    assert!(!Path::new(&first).exists(), "{r}");
}

/// Finding 3, second half: two complete events glued together (a writer's
/// `\n` was lost) are both kept, each as its own line; nothing is
/// quarantined. `replay` shows the same.
#[test]
fn two_glued_complete_events_are_both_kept_as_lines() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::write(
        &log,
        format!(
            "{}\n{}{}\n{}\n",
            set("G", 1, "old"),
            set("G", 1, "glued"),
            set("G", 2, "glued"),
            set("G", 3, "after")
        ),
    )
    .unwrap();
    keyed(&env, &log, 1);
    let replay = env.lk(["replay", "m"]).status(0).stdout();
    let r = sync(&env);
    assert_eq!(r["stats"]["unglued"], 1, "{r}");
    assert_eq!(r["stats"]["quarantined"], 0, "{r}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        format!(
            "{}\n{}\n{}\n",
            set("G", 1, "glued"),
            set("G", 2, "glued"),
            set("G", 3, "after")
        )
    );
    assert_eq!(replay, text);
    assert!(!env.path("events.jsonl.quarantine").exists());
}

/// Issue 16 A.3: logrotate's copytruncate empties a rotated file that a
/// lock-less writer still appends to; the lines written after the truncate
/// cannot be carried. The run must fail loudly (and `status` say so),
/// never prune or unwatch the file silently; the run after it goes on.
#[test]
fn rotated_file_that_shrank_fails_loudly() {
    for keep in [0, 3] {
        let env = Env::new();
        let log = env.path("events.jsonl");
        gen_log(&log, 500, 50, 0, false);
        keyed(&env, &log, keep);
        let mut a = held(&log);
        writeln!(a, "{}", set("A", 1, "before")).unwrap();
        let r = sync(&env);
        let rotated = r["stats"]["rotated"].as_str().unwrap().to_string();
        writeln!(a, "{}", set("A", 1, "late")).unwrap();
        // copytruncate: the rotated file is emptied under the writer.
        OpenOptions::new()
            .write(true)
            .open(&rotated)
            .unwrap()
            .set_len(0)
            .unwrap();
        writeln!(a, "{}", set("A", 1, "after-truncate")).unwrap();
        let failed = env
            .lk(["sync", "now", "--force", "--json"])
            .status(1)
            .json();
        let err = failed["runs"][0]["error"].as_str().unwrap().to_string();
        assert!(
            err.contains("shrank") && err.contains(&rotated),
            "keep {keep}: {err}"
        );
        assert!(
            Path::new(&rotated).exists(),
            "keep {keep}: the file was pruned"
        );
        env.lk(["status", "m"]).status(1).stdout_has("shrank");
        // Reported once: the next run proceeds.
        env.lk(["sync", "now", "--force"]).status(0);
    }
}
