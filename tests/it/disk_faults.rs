//! Failing disks: a write error anywhere in a run fails it with a clear
//! message, leaves the log byte-identical, removes the temp file, and
//! records the error.

use crate::common::*;

fn setup() -> (Env, std::path::PathBuf, Vec<u8>) {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 30_000, 3_000, 2, true);
    env.keyed_store("m", &log);
    let before = std::fs::read(&log).unwrap();
    (env, log, before)
}

fn assert_failed_cleanly(env: &Env, log: &std::path::Path, before: &[u8], msg: &str) {
    assert_eq!(std::fs::read(log).unwrap(), before, "the log changed");
    assert!(temps(log).is_empty(), "temp files left: {:?}", temps(log));
    assert!(
        rotated(log).is_empty(),
        "a rotated file was left: {:?}",
        rotated(log)
    );
    let st = env.lk(["status", "--json"]).status(1).json();
    assert_eq!(st["stores"][0]["last_run"]["outcome"], "error");
    let err = st["stores"][0]["last_run"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains(msg), "recorded error {err:?} lacks {msg:?}");
    // And the next run, with the disk healthy again, succeeds, quarantining
    // each malformed line exactly once.
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(fold_file(log), reference_fold(before));
    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert_eq!(q.len(), 2, "quarantine entries: {q:?}");
}

#[test]
fn file_size_limit_fails_the_run_with_efbig() {
    let (env, log, before) = setup();
    // The snapshot (~700 KB) exceeds a 64 KiB file-size limit (ulimit -f
    // counts 1024-byte blocks); SIGXFSZ is ignored, so write() gets EFBIG.
    let mut c = std::process::Command::new("bash");
    c.arg("-c")
        .arg(format!("ulimit -f 64; exec {BIN} sync now --force"))
        .env("LOGKEEPER_CONFIG", env.config())
        .env("LOGKEEPER_STATE_DIR", env.state());
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(stderr.contains("is unchanged"), "{stderr}");
    assert_failed_cleanly(&env, &log, &before, "File too large");
}

#[cfg(feature = "failpoints")]
mod injected {
    use super::*;

    fn inject(point: &str, msg: &str) {
        let (env, log, before) = setup();
        env.lk(["sync", "now", "--force"])
            .env("LOGKEEPER_FAILPOINT", point)
            .status(1)
            .stderr_has(msg);
        assert_failed_cleanly(&env, &log, &before, msg);
    }

    #[test]
    fn enospc_while_writing_the_snapshot() {
        inject("snapshot-write:ENOSPC", "No space left on device");
    }

    #[test]
    fn eio_at_snapshot_fsync() {
        inject("snapshot-fsync:EIO", "Input/output error");
    }

    #[test]
    fn eio_at_rename() {
        inject("rename:EIO", "Input/output error");
    }

    /// The late-write state the swap is about to make true, written after
    /// the old log is linked under its rotated name: failing it unlinks
    /// that name again and leaves the log as it was.
    #[test]
    fn eio_writing_the_late_write_state_before_the_swap() {
        inject(
            &format!("{}:EIO", logkeeper::testing::Failpoint::LatePrepare.name()),
            "Input/output error",
        );
    }

    #[test]
    fn enospc_while_writing_the_quarantine_file() {
        inject("quarantine-write:ENOSPC", "No space left on device");
    }

    #[test]
    fn free_space_check_refuses_a_run_that_cannot_fit() {
        inject("free-space:ENOSPC", "not enough free space");
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_hung_writer_holding_the_log_lock_fails_the_run_without_changes() {
    use std::io::{BufRead, BufReader};
    let (env, log, before) = setup();
    let mut hung = std::process::Command::new("flock")
        .arg(&log)
        .args(["-c", "echo locked; read _"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hung.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    env.lk(["sync", "now", "--force"])
        .env("LOGKEEPER_WRITER_LOCK_WAIT_MS", "300")
        .status(1)
        .stderr_has("has held the log's lock");
    drop(hung.stdin.take());
    hung.wait().unwrap();
    assert_failed_cleanly(&env, &log, &before, "has held the log's lock");
}

/// A state dir that cannot be created (here: a path under a regular file)
/// fails the run before the log is touched, and says which directory.
#[test]
fn an_unusable_state_dir_fails_the_run_before_the_log_is_touched() {
    let (env, log, before) = setup();
    let blocker = env.path("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let state = blocker.join("state");
    let d = env
        .lk(["sync", "now", "--force"])
        .arg("--state-dir")
        .arg(&state)
        .status(1);
    assert!(
        d.stderr().contains(&state.display().to_string()),
        "{}",
        d.stderr()
    );
    assert_eq!(std::fs::read(&log).unwrap(), before, "the log changed");
    assert!(rotated(&log).is_empty(), "rotated: {:?}", rotated(&log));
    assert!(temps(&log).is_empty());
}

/// Issue 16 B.11: an EIO after the exchange (unlinking the old log's temp
/// name, or the directory fsync) fails the run and says the log was
/// already replaced, not that it is unchanged; the new log is complete
/// (its fold is the old one's) and the next run finishes the clean-up.
/// Before the fix the unlink's error was dropped (exit 0) and the fsync's
/// said only "fsync directory …: Input/output error".
#[cfg(feature = "failpoints")]
#[test]
fn eio_after_the_swap_says_the_log_was_already_replaced() {
    for point in ["unlink-old-temp:EIO", "dir-fsync-after-swap:EIO"] {
        let (env, log, before) = setup();
        let err = env
            .lk(["sync", "now", "--force"])
            .env("LOGKEEPER_FAILPOINT", point)
            .status(1)
            .stderr_has("Input/output error")
            .stderr_has("already replaced")
            .stderr();
        assert!(!err.contains("is unchanged"), "{point}: {err}");
        assert_eq!(fold_file(&log), reference_fold(&before), "{point}");
        assert_eq!(rotated(&log).len(), 1, "{point}: the old log is kept");
        let st = env.lk(["status", "--json"]).status(1).json();
        let recorded = st["stores"][0]["last_run"]["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(recorded.contains("already replaced"), "{point}: {recorded}");
        let left = temps(&log);
        let rec = env
            .lk(["sync", "now", "--force", "--json"])
            .status(0)
            .json()["runs"][0]
            .clone();
        assert!(temps(&log).is_empty(), "{point}");
        let recovered = rec["stats"]["recovered"].as_array().unwrap().len();
        assert_eq!(recovered, left.len(), "{point}: {rec}");
        assert_eq!(fold_file(&log), reference_fold(&before), "{point}");
    }
}
