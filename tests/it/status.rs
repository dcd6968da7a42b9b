//! G6 visible: status exit codes and reasons for failed, overdue and
//! never-run stores.

use crate::common::*;
use chrono::{Duration, Utc};
use logkeeper::testing::RunRecords;
use logkeeper::{Outcome, RunRecord, Stats};

#[test]
fn never_run_store_exits_3() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    env.keyed_store("m", &log);
    env.lk(["status"])
        .status(3)
        .stdout_has("NEVER RUN")
        .stdout_has("no successful run yet")
        .stdout_has("run `logkeeper sync now m`");
    env.lk(["sync", "now"]).status(0);
    env.lk(["status"]).status(0).stdout_has("ok");
}

#[test]
fn log_that_is_a_directory_fails_until_fixed() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::create_dir(&log).unwrap();
    env.keyed_store("m", &log);
    env.lk(["sync", "now"])
        .status(1)
        .stderr_has("is a directory, not a log file");
    let d = env.lk(["status"]).status(1);
    let d = d.stdout_has("FAILED").stdout_has("is a directory");
    let _ = d;
    let j = env.lk(["status", "--json"]).status(1).json();
    assert_eq!(j["stores"][0]["health"], "failed");
    assert_eq!(j["stores"][0]["last_run"]["outcome"], "error");
    assert_eq!(j["exit_code"], 1);

    std::fs::remove_dir(&log).unwrap();
    gen_log(&log, 1_000, 100, 0, false);
    env.lk(["sync", "now"]).status(0);
    env.lk(["status"]).status(0);
}

fn record(store: &str, log: &std::path::Path, ago: Duration, outcome: Outcome) -> RunRecord {
    let at = Utc::now() - ago;
    RunRecord {
        store: store.into(),
        log: log.into(),
        outcome,
        trigger: "schedule".into(),
        started_at: at,
        finished_at: at,
        duration_ms: 1.0,
        wait_ms: 0.0,
        reason: None,
        error: None,
        stats: Stats::default(),
        pid: 1,
        host: "h".into(),
        version: "0".into(),
        run_id: "r".into(),
        totals: None,
        hook: None,
    }
}

#[test]
fn store_whose_last_success_missed_its_schedule_is_overdue() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    env.lk(["store", "add", "hourly", "--log"])
        .arg(&log)
        .args(["--schedule", "0 * * * *"])
        .status(0);
    let state = RunRecords::new(env.state().join("stores/hourly"));
    // Succeeded three hours ago: an hourly schedule has missed runs since.
    state
        .record(
            &record("hourly", &log, Duration::hours(3), Outcome::Ok),
            true,
            false,
        )
        .unwrap();
    let j = env.lk(["status", "--json"]).status(3).json();
    assert_eq!(j["stores"][0]["health"], "overdue");
    assert!(
        j["stores"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("overdue")
    );
    assert!(j["stores"][0]["next_run"].is_string());
    // A success just now makes it healthy.
    state
        .record(
            &record("hourly", &log, Duration::zero(), Outcome::Ok),
            true,
            false,
        )
        .unwrap();
    env.lk(["status"]).status(0);
}

#[test]
fn failure_wins_over_overdue_and_names_the_error() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    env.keyed_store("a", &log);
    let state = RunRecords::new(env.state().join("stores/a"));
    let mut r = record("a", &log, Duration::zero(), Outcome::Error);
    r.error = Some("write /x: No space left on device".into());
    state.record(&r, false, false).unwrap();
    env.lk(["status", "a"])
        .status(1)
        .stdout_has("No space left on device");
}

#[test]
fn status_of_an_unknown_store_is_a_usage_error() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store("a", &log);
    env.lk(["status", "nope"])
        .status(2)
        .stderr_has("no store named \"nope\"");
    env.lk(["sync", "now", "nope"]).status(2);
}

#[test]
fn status_shows_a_run_in_progress_and_its_holder() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    env.keyed_store("a", &log);
    let held =
        logkeeper::testing::StoreLock::acquire("a", &log, "manual", logkeeper::testing::Wait::No)
            .unwrap();
    let j = env.lk(["status", "--json"]).output().json();
    assert_eq!(j["stores"][0]["running"]["pid"], std::process::id());
    env.lk(["status"]).output().stdout_has("running now: pid");
    drop(held);
    let j = env.lk(["status", "--json"]).output().json();
    assert!(j["stores"][0]["running"].is_null());
}

/// A failed run's error is one fact: `status` says it once (the reason
/// line), not once as the last run's summary and again as the reason.
#[test]
fn status_prints_a_failed_runs_error_once() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::create_dir(&log).unwrap();
    env.keyed_store("m", &log);
    env.lk(["sync", "now"]).status(1);
    let out = env.lk(["status"]).status(1).stdout();
    let times = out.matches("is a directory, not a log file").count();
    assert_eq!(times, 1, "the error is printed {times} times:\n{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(
        out.contains("failed:"),
        "the reason line says it failed:\n{out}"
    );
}
