//! `on_failure` / `on_success` hooks: real shell commands after real runs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;

fn hook_env(path: &std::path::Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the hook did not write {}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn failing_run_calls_on_failure_with_the_documented_environment() {
    let env = Env::new();
    let seen = env.path("seen.env");
    env.write_config(&format!(
        "on_failure = \"env | grep ^LOGKEEPER_ > '{}'\"\n\n[[store]]\nname = \"bad\"\nlog = \"missing/events.jsonl\"\n",
        seen.display()
    ));
    env.lk(["sync", "now", "bad"]).status(1);
    let e = hook_env(&seen);
    let rec = env.last_run("bad").unwrap();
    assert_eq!(e["LOGKEEPER_HOOK"], "on_failure");
    assert_eq!(e["LOGKEEPER_STORE"], "bad");
    assert_eq!(e["LOGKEEPER_OUTCOME"], "error");
    assert_eq!(e["LOGKEEPER_EXIT_CODE"], "1");
    assert_eq!(e["LOGKEEPER_TRIGGER"], "manual");
    assert_eq!(e["LOGKEEPER_ERROR"], rec["error"].as_str().unwrap());
    assert!(e["LOGKEEPER_ERROR"].contains("does not exist"), "{e:?}");
    assert_eq!(e["LOGKEEPER_RUN_ID"], rec["run_id"].as_str().unwrap());
    assert_eq!(
        e["LOGKEEPER_LOG"],
        env.path("missing/events.jsonl").to_str().unwrap()
    );
    // The record the hook points at is this run's, rewritten with the hook.
    let at_path: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&e["LOGKEEPER_RECORD"]).unwrap()).unwrap();
    assert_eq!(at_path["run_id"], rec["run_id"]);
    assert_eq!(rec["hook"]["exit_code"], 0);
    assert_eq!(
        env.history("bad").last().unwrap()["hook"]["hook"],
        "on_failure"
    );
}

#[test]
fn a_hung_hook_is_killed_at_its_timeout_and_the_run_stays_ok() {
    let env = Env::new();
    gen_log(&env.path("a.jsonl"), 200, 20, 0, false);
    env.write_config(
        "on_success = \"sleep 60\"\nhook_timeout = \"1s\"\n\n[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\n",
    );
    let t0 = Instant::now();
    env.lk(["sync", "now", "a"])
        .status(0)
        .stderr_has("on_success ran past its timeout");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let rec = env.last_run("a").unwrap();
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["hook"]["timed_out"], true);
    assert_eq!(rec["hook"]["signal"], libc::SIGKILL);
    // status reports it as a note, the store stays healthy.
    env.lk(["status", "a"])
        .status(0)
        .stdout_has("hook on_success ran past its timeout");
}

#[test]
fn a_failing_hook_does_not_change_the_outcome() {
    let env = Env::new();
    gen_log(&env.path("a.jsonl"), 200, 20, 0, false);
    gen_log(&env.path("b.jsonl"), 200, 20, 0, false);
    env.write_config(
        "on_success = \"echo from-the-hook; exit 7\"\n\n[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\n\n[[store]]\nname = \"b\"\nlog = \"b.jsonl\"\non_success = \"\"\n",
    );
    let d = env.lk(["sync", "now", "--all", "--json"]).status(0);
    // The hook's stdout goes to stderr: stdout stays one JSON document.
    assert_eq!(d.json()["exit_code"], 0);
    assert!(d.stderr().contains("from-the-hook"), "{}", d.stderr());
    let a = env.last_run("a").unwrap();
    assert_eq!(
        (a["outcome"].as_str(), a["hook"]["exit_code"].as_i64()),
        (Some("ok"), Some(7))
    );
    // A store's empty hook turns the global one off.
    assert!(env.last_run("b").unwrap().get("hook").is_none());
    env.lk(["status", "a"]).status(0);
}

/// A run that finds the store busy while the holder's hook runs records
/// itself; the holder's rewrite (with the hook's result) must not put back
/// its older record and counters over it.
#[test]
fn a_busy_run_recorded_during_a_hook_is_not_overwritten_and_counters_never_go_back() {
    let env = Env::new();
    gen_log(&env.path("a.jsonl"), 200, 20, 0, false);
    let started = env.path("hook-started");
    let release = env.path("hook-release");
    env.write_config(&format!(
        "on_success = \"touch '{}'; while [ ! -e '{}' ]; do sleep 0.02; done\"\n\n[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\n",
        started.display(),
        release.display()
    ));
    let mut first = env.lk(["sync", "now", "a", "--force"]).spawn();
    wait_for("the hook to start", Duration::from_secs(20), || {
        started.exists()
    });
    let holder_run = env.last_run("a").unwrap()["run_id"].clone();
    env.lk(["sync", "now", "a"]).status(75);
    let busy = env.last_run("a").unwrap();
    assert_eq!(busy["outcome"], "busy");
    assert_eq!(busy["totals"]["runs_busy"], 1, "{busy}");
    std::fs::write(&release, b"").unwrap();
    assert!(wait_exit(&mut first, Duration::from_secs(20)).success());

    let last = env.last_run("a").unwrap();
    assert_eq!(
        last["run_id"], busy["run_id"],
        "the busy record was overwritten"
    );
    assert_eq!(last["totals"]["runs_busy"], 1, "{last}");
    assert_eq!(last["totals"]["runs_ok"], 1, "{last}");
    // Both runs are in the history, the holder's with its hook.
    let history = env.history("a");
    assert_eq!(history.len(), 2);
    let holder = history.iter().find(|r| r["run_id"] == holder_run).unwrap();
    assert_eq!(holder["hook"]["exit_code"], 0, "{holder}");
}
