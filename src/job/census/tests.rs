use super::*;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// Only a process that just started is read again when unreadable: a
/// child spawned now is, init (started with the machine) is not.
#[cfg(target_os = "linux")]
#[test]
fn only_a_process_that_just_started_is_read_again() {
    let mut child = Command::new("sleep")
        .arg("5")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let fresh = linux::just_started(child.id());
    child.kill().ok();
    child.wait().ok();
    assert!(fresh, "a child spawned now did not count as just started");
    assert!(!linux::just_started(1), "init counted as just started");
}

/// A child shell holds `file` open for appending on fd 3 until its stdin
/// closes; the census finds it, with its flags, and not a reader.
#[test]
fn finds_a_child_appending_and_ignores_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    std::fs::write(&log, b"{}\n").unwrap();
    // A shell that opens `log` with the given redirection, says ready,
    // and holds it until its stdin closes.
    let hold = |redirect: &str| {
        let mut c = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {redirect}\"$1\"; echo ready; read _"))
            .arg("sh")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(c.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready");
        c
    };
    let writer = hold("3>>");
    let reader = hold("4<");
    let census = take(&[&log]);
    let mine: Vec<_> = census.of(&log).collect();
    assert!(census.supported);
    assert_eq!(mine.len(), 1, "{census:?}");
    assert_eq!(mine[0].pid, writer.id());
    assert_eq!(mine[0].fd, 3);
    assert!(mine[0].append);
    assert_eq!(mine[0].flags, "O_WRONLY|O_APPEND");
    assert_eq!(mine[0].program, "sh");

    // The same inode under a new name (a swap renamed the log away): the
    // writer is still found on it.
    let rotated = dir.path().join("events.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    let census = take(&[&rotated]);
    assert_eq!(census.of(&rotated).count(), 1, "{census:?}");

    for mut c in [writer, reader] {
        c.stdin.take().unwrap().write_all(b"\n").unwrap();
        c.wait().unwrap();
    }
    assert!(take(&[&rotated]).is_empty());
}

/// Issue 16 B.6: a bash loop doing `echo … >> log` with its stdout on a
/// file opened without `O_APPEND` moves fd 1 between the two many times
/// a second. A census that stats `/proc/PID/fd/1` (the log) and then
/// reads the flags of what fd 1 is *now* (the stdout) reports a false
/// positional writer. Thousands of censuses against the loop must never
/// see the log open without `O_APPEND`. (It hit within a few thousand
/// before the fix; the count is fixed, not a time budget.)
#[test]
fn census_never_mistakes_a_reused_fd_for_a_positional_writer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let out = dir.path().join("stdout");
    // The loop stops when `stop` exists: testing the log itself would
    // race, as `>>` recreates a log removed between the test and it.
    let stop = dir.path().join("stop");
    std::fs::write(&log, b"").unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(r#"while [ ! -e "$2" ]; do echo '{}' >> "$1"; done"#)
        .arg("bash")
        .arg(&log)
        .arg(&stop)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let mut seen = 0;
    let m = std::fs::metadata(&log).unwrap();
    let targets = HashMap::from([((m.dev(), m.ino()), log.clone())]);
    for _ in 0..20_000 {
        // The census's walk of one process: the walk of all of /proc
        // would make the same check a hundred times slower.
        let mut census = Census::default();
        linux::openers_of(child.id(), &targets, &[], &mut census);
        for o in census.of(&log) {
            seen += 1;
            assert!(o.append, "a false positional writer: {o:?}");
        }
    }
    std::fs::write(&stop, b"").unwrap();
    child.wait().unwrap();
    assert!(seen > 0, "the census never saw the loop's writes");
}
