//! The daemon's growth trigger, under the real daemon, with real writer
//! processes and real inotify: one run per crossing, none below
//! `min_size`, a baseline that survives a restart.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const T: Duration = Duration::from_secs(60);
const MIN_SIZE: u64 = 64 * 1024;

/// A separate writer process (open, write, close per line, no lock: the
/// plainest pattern) that appends `n` lines numbered from `from`.
fn write_lines(log: &Path, from: usize, n: usize) {
    let script = r#"
import sys
log, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(start, start + n):
    with open(log, "a") as f:
        f.write('{"seq":%d,"event":"tick","pad":"%s"}\n' % (i, "x" * 60))
"#;
    let st = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(log)
        .args([from.to_string(), n.to_string()])
        .status()
        .expect("run the python writer");
    assert!(st.success());
}

fn size(log: &Path) -> u64 {
    std::fs::metadata(log).unwrap().len()
}

/// The daemon file's entry for store `g`.
fn daemon_store(env: &Env) -> Option<Value> {
    let f = files_with_prefix(&env.state(), "daemon-")
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))?;
    let v: Value = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
    v["stores"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "g")
        .cloned()
}

/// Wait until the daemon has checked the log at its current size and is
/// not running a job: every decision about that size has been made.
fn wait_checked(env: &Env, log: &Path) {
    wait_for("the daemon to check the log's size", T, || {
        daemon_store(env)
            .is_some_and(|s| s["growth_checked_bytes"] == size(log) && s["running"] == false)
    });
}

fn growth_runs(env: &Env) -> Vec<Value> {
    env.history("g")
        .into_iter()
        .filter(|r| r["trigger"] == "growth")
        .collect()
}

#[test]
fn the_daemon_compacts_once_per_growth_crossing_and_never_below_min_size() {
    need("python3", "python3");
    let env = Env::new();
    let log = env.path("journal.jsonl");
    std::fs::write(&log, b"").unwrap();
    let metrics = env.path("metrics.prom");
    env.write_config(&format!(
        "metrics_file = {metrics:?}\n\n[[store]]\nname = \"g\"\nlog = {log:?}\ngrowth = 0.5\nmin_size = {MIN_SIZE}\nmin_interval = \"1s\"\n"
    ));
    let mut daemon = env.daemon(&[]);
    daemon.wait_line("started", T);

    // Below min_size: seen, not run.
    write_lines(&log, 0, 300);
    assert!(size(&log) < MIN_SIZE);
    wait_checked(&env, &log);
    assert!(env.history("g").is_empty(), "{:?}", env.history("g"));

    // Past min_size, never compacted: exactly one run.
    write_lines(&log, 300, 450);
    assert!(size(&log) >= MIN_SIZE);
    wait_for("the first growth run", T, || growth_runs(&env).len() == 1);
    wait_checked(&env, &log);
    let runs = growth_runs(&env);
    assert_eq!(env.history("g").len(), 1);
    assert_eq!(runs[0]["outcome"], "ok", "{}", runs[0]);
    let baseline = runs[0]["stats"]["bytes_after"].as_u64().unwrap();
    assert_eq!(baseline, size(&log));

    // Grown, but less than 50%: no run.
    write_lines(&log, 750, 200);
    assert!((size(&log) as f64) < baseline as f64 * 1.5);
    wait_checked(&env, &log);
    assert_eq!(env.history("g").len(), 1);

    // status and metrics: the last run's trigger, the growth against its
    // threshold.
    let st = env.lk(["status", "g", "--json"]).output().json();
    let st = &st["stores"][0];
    assert_eq!(st["last_run"]["trigger"], "growth", "{st}");
    assert_eq!(st["growth"]["threshold"], 0.5);
    assert_eq!(st["growth"]["baseline_bytes"], baseline);
    assert_eq!(st["growth"]["due"], false);
    let grown = st["growth"]["grown"].as_f64().unwrap();
    assert!(grown > 0.1 && grown < 0.5, "{grown}");
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("logkeeper_last_run_trigger{store=\"g\",trigger=\"growth\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("logkeeper_growth_threshold_ratio{store=\"g\"} 0.5"),
        "{prom}"
    );

    // A restart keeps the baseline: the log is past min_size, and a reset
    // baseline ("never compacted") would run at once.
    assert_eq!(daemon.stop(T).code(), Some(0));
    let daemon = env.daemon(&[]);
    daemon.wait_line("started", T);
    wait_checked(&env, &log);
    assert_eq!(
        env.history("g").len(),
        1,
        "a restart must not trigger a run"
    );

    // Past 50% of the baseline: exactly one more run.
    write_lines(&log, 950, 250);
    assert!(size(&log) as f64 >= baseline as f64 * 1.5);
    wait_for("the second growth run", T, || growth_runs(&env).len() == 2);
    wait_checked(&env, &log);
    assert_eq!(env.history("g").len(), 2);
    daemon.wait_line("growth run: the log is", T);
}

#[test]
fn growth_settings_are_checked_and_go_with_a_schedule() {
    let env = Env::new();
    let log = env.path("journal.jsonl");
    std::fs::write(&log, b"{\"a\":1}\n").unwrap();
    for (bad, field) in [
        (
            "min_size = \"1MiB\"",
            "`min_size`: is set but `growth` is not",
        ),
        ("growth = 0", "`growth`: 0 must be a fraction > 0"),
        (
            "growth = 0.5\nmin_interval = \"5 parsecs\"",
            "`min_interval`",
        ),
    ] {
        env.write_config(&format!("[[store]]\nname = \"g\"\nlog = {log:?}\n{bad}\n"));
        env.lk(["status"]).status(2).stderr_has(field);
    }
    env.write_config(&format!(
        "[[store]]\nname = \"g\"\nlog = {log:?}\nschedule = \"0 3 * * *\"\ngrowth = 0.5\nmin_size = \"64MiB\"\nmin_interval = \"5m\"\n"
    ));
    let st = env.lk(["status", "--json"]).output().json();
    let g = &st["stores"][0];
    assert_eq!(g["schedule"], "0 3 * * *");
    assert_eq!(g["growth"]["min_size"], 64 << 20);
    assert_eq!(g["growth"]["due"], false);
}

#[test]
fn store_add_takes_growth_min_size_min_interval_and_time() {
    let env = Env::new();
    let log = env.path("journal.jsonl");
    env.lk(["store", "add", "g", "--log"])
        .arg(&log)
        .args([
            "--growth",
            "0.5",
            "--min-size",
            "1MiB",
            "--min-interval",
            "5m",
        ])
        .args(["--time", "/created_at"])
        .status(0);
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    for line in [
        "growth = 0.5",
        "min_size = \"1MiB\"",
        "min_interval = \"5m\"",
        "time = \"/created_at\"",
    ] {
        assert!(cfg.contains(line), "{line} missing from:\n{cfg}");
    }
    let st = env.lk(["status", "--json"]).output().json();
    assert_eq!(st["stores"][0]["growth"]["min_size"], 1 << 20);
    env.lk([
        "store",
        "add",
        "h",
        "--log",
        "x.jsonl",
        "--min-size",
        "1MiB",
    ])
    .status(2);
}

#[test]
fn a_due_store_waits_out_min_interval_since_its_last_run() {
    need("python3", "python3");
    let env = Env::new();
    let log = env.path("journal.jsonl");
    std::fs::write(&log, b"").unwrap();
    env.write_config(&format!(
        "[[store]]\nname = \"g\"\nlog = {log:?}\ngrowth = 0.5\nmin_size = 1024\nmin_interval = \"1h\"\n"
    ));
    write_lines(&log, 0, 20);
    env.lk(["sync", "now", "g"]).status(0);
    write_lines(&log, 20, 200);
    let daemon = env.daemon(&[]);
    daemon.wait_line("started", T);
    wait_for("the daemon to hold the due growth run", T, || {
        daemon_store(&env).is_some_and(|s| s["growth_wait_until"].is_string())
    });
    assert_eq!(env.history("g").len(), 1, "only the manual run");
    let st = env.lk(["status", "g", "--json"]).output().json();
    let st = &st["stores"][0];
    assert_eq!(st["growth"]["due"], true);
    assert!(
        st["notes"]
            .to_string()
            .contains("the daemon holds it until"),
        "{}",
        st["notes"]
    );
}
