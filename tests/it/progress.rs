//! Progress on a terminal: `sync now` under a real pseudo-terminal
//! (util-linux `script`) draws a progress bar; without a terminal, with
//! `--json` or under `CI`, stderr carries no progress bytes.
//!
//! A run is made to last well over the bar's 0.5 s delay the way it happens
//! in production: a writer holds the log's lock, so the swap waits for it.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn setup(env: &Env) -> std::path::PathBuf {
    let log = env.path("events.jsonl");
    gen_log(&log, 20_000, 2_000, 0, false);
    env.keyed_store("a", &log);
    log
}

/// Start `cmd` while a writer holds the log's lock; release the lock once
/// `release(child, elapsed)` says so; return the exit status.
fn with_writer_holding_lock(
    log: &Path,
    mut cmd: Command,
    mut release: impl FnMut(Duration) -> bool,
) -> (Child, std::process::ExitStatus) {
    let writer = File::open(log).unwrap();
    writer.lock().unwrap();
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    wait_for("the release condition", Duration::from_secs(30), || {
        release(t0.elapsed())
    });
    writer.unlock().unwrap();
    let st = wait_exit(&mut child, Duration::from_secs(60));
    (child, st)
}

/// The last run was long enough for a bar to show: it waited over a second
/// for the writer.
fn assert_waited(env: &Env) {
    let rec = env.last_run("a").unwrap();
    let swap = rec["stats"]["timings"]["swap_ms"].as_f64().unwrap();
    assert!(swap > 1000.0, "the run did not wait for the writer: {rec}");
}

fn lk_cmd(env: &Env, args: &[&str]) -> Command {
    let mut c = env.cmd();
    c.args(args).env_remove("CI");
    c
}

#[test]
fn sync_on_a_terminal_draws_its_progress_then_clears_it() {
    need("script", "util-linux");
    let env = Env::new();
    let log = setup(&env);
    let typescript = env.path("typescript.out");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("'{BIN}' sync now a --force"), "/dev/null"])
        .env("LOGKEEPER_CONFIG", env.config())
        .env("LOGKEEPER_STATE_DIR", env.state())
        .env("TERM", "xterm")
        .env_remove("CI")
        .stdin(Stdio::null())
        .stdout(File::create(&typescript).unwrap())
        .stderr(Stdio::null());
    // Hold the writers' lock until the bar is on the terminal.
    let shown =
        |_: Duration| std::fs::read_to_string(&typescript).is_ok_and(|t| t.contains("a swap"));
    let (_, st) = with_writer_holding_lock(&log, cmd, shown);
    assert!(st.success(), "{st:?}");
    let out = std::fs::read_to_string(&typescript).unwrap();
    assert!(out.contains("a: ok in"), "{out}");
    // The phase, drawn and then cleared by the bar (the bytes and rate of
    // the scan and write phases are in the unit test of the line).
    assert!(out.contains("a swap (waiting for writers)"), "{out}");
    assert!(out.contains("\x1b[2K"), "{out:?}");
}

#[test]
fn no_progress_bytes_without_a_terminal_with_json_or_under_ci() {
    need("script", "util-linux");
    let env = Env::new();
    let log = setup(&env);
    let held = |e: Duration| e > Duration::from_millis(1500);

    // stderr is a pipe.
    let mut cmd = lk_cmd(&env, &["sync", "now", "a", "--force"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (child, st) = with_writer_holding_lock(&log, cmd, held);
    let out = child.wait_with_output().unwrap();
    assert!(st.success());
    assert_waited(&env);
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("a: ok in"));

    // On a terminal, but --json, then CI set: nothing but the output.
    for (extra, ci) in [(" --json", false), ("", true)] {
        let typescript = env.path("t.out");
        let mut cmd = Command::new("script");
        cmd.args([
            "-qec",
            &format!("'{BIN}' sync now a --force{extra}"),
            "/dev/null",
        ])
        .env("LOGKEEPER_CONFIG", env.config())
        .env("LOGKEEPER_STATE_DIR", env.state())
        .env("TERM", "xterm")
        .env_remove("CI")
        .stdin(Stdio::null())
        .stdout(File::create(&typescript).unwrap())
        .stderr(Stdio::null());
        if ci {
            cmd.env("CI", "true");
        }
        // A fresh log, so the run rewrites it and waits for the writer.
        gen_log(&log, 20_000, 2_000, 0, false);
        let (_, st) = with_writer_holding_lock(&log, cmd, held);
        assert!(st.success());
        assert_waited(&env);
        let out = std::fs::read_to_string(&typescript).unwrap();
        assert!(
            out.contains("\"outcome\": \"ok\"") || out.contains("a: ok in"),
            "{out}"
        );
        assert!(
            !out.contains("a swap (waiting for writers)") && !out.contains('\x1b'),
            "{out:?}"
        );
    }
}
