//! `logkeeper daemon` as a real process: catch-up, SIGTERM during a
//! compaction, a manual run racing the daemon, single instance, reload,
//! backoff, and what `status` says about it.

use std::time::{Duration, Instant};

use crate::common::*;

const T: Duration = Duration::from_secs(60);

/// A keyed store "m" on `events.jsonl` with `schedule`, and the log.
fn store_with_schedule(env: &Env, events: usize, schedule: &str) -> std::path::PathBuf {
    let log = env.path("events.jsonl");
    gen_log(&log, events, events / 10, 3, true);
    env.keyed_store("m", &log);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{text}schedule = \"{schedule}\"\n"));
    log
}

#[test]
fn catch_up_runs_a_never_run_store_at_once_and_status_shows_the_daemon() {
    let env = Env::new();
    // Yearly: its most recent fire time is long past and it never ran.
    let log = store_with_schedule(&env, 20_000, "0 0 1 1 *");
    let before = fold_file(&log);
    let mut d = env.daemon(&[]);
    d.wait_line("started (pid", T);
    d.wait_line("store m: catch-up run", T);
    wait_for("the daemon's run record", T, || env.last_run("m").is_some());
    let rec = env.last_run("m").unwrap();
    assert_eq!(rec["trigger"], "daemon");
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_eq!(rec["pid"], d.pid());
    assert_eq!(fold_file(&log), before, "G1: fold changed");
    assert!(std::fs::metadata(&log).unwrap().len() < 20_000 * 50);

    // status: the daemon is alive, with its pid; the store's next run is the
    // next yearly fire time.
    let st = env.lk(["status", "--json"]).status(0).json();
    assert_eq!(st["daemon"]["running"], true);
    assert_eq!(st["daemon"]["pid"], d.pid());
    assert!(st["daemon"]["started_at"].is_string());
    let next = st["stores"][0]["next_run"].as_str().unwrap();
    assert!(next.contains("-01-01T00:00:00"), "{next}");
    assert!(st["stores"][0]["backoff"].is_null());
    env.lk(["status"])
        .status(0)
        .stdout_has(&format!("daemon: running, pid {}", d.pid()));

    // A second daemon for the same config refuses to start.
    env.lk(["daemon"])
        .status(75)
        .stderr_has("already runs for this config");

    // No second run: the catch-up satisfied the schedule.
    assert_eq!(env.history("m").len(), 1);
    let st = d.stop(T);
    assert_eq!(st.code(), Some(0), "{}", d.stderr());
    // A clean stop removes the daemon file: status says none runs.
    let st = env.lk(["status", "--json"]).status(0).json();
    assert!(st["daemon"].is_null(), "{st}");
}

#[test]
fn a_store_that_ran_since_its_last_fire_time_is_not_caught_up() {
    let env = Env::new();
    store_with_schedule(&env, 2_000, "0 0 1 1 *");
    env.lk(["sync", "now"]).status(0);
    let mut d = env.daemon(&[]);
    d.wait_line("started (pid", T);
    // The daemon file is written before "started": next run is next year.
    let st = env.lk(["status", "--json"]).status(0).json();
    assert_eq!(st["daemon"]["stores"][0]["name"], "m");
    assert!(!d.stderr().contains("catch-up"), "{}", d.stderr());
    assert_eq!(d.stop(T).code(), Some(0));
    assert_eq!(
        env.history("m").len(),
        1,
        "the daemon ran a store that needed no catch-up"
    );
}

#[test]
fn sigterm_during_a_large_compaction_exits_0_promptly_with_the_fold_unchanged() {
    let env = Env::new();
    let log = store_with_schedule(&env, 400_000, "0 0 1 1 *");
    let before = fold_file(&log);
    let lock = env.path("events.jsonl.lock");
    let mut d = env.daemon(&[]);
    d.wait_line("store m: catch-up run", T);
    // The job holds the store lock: it is compacting now.
    wait_for("the daemon's job to hold the lock", T, || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("\"daemon\""))
    });
    let t0 = Instant::now();
    let st = d.stop(T);
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    eprintln!("daemon stopped {took:?} after SIGTERM");
    assert!(
        d.stderr()
            .contains("SIGTERM: stopping after the running job(s) of m"),
        "{}",
        d.stderr()
    );
    // It let the job finish and record itself.
    assert_eq!(env.last_run("m").unwrap()["outcome"], "ok");
    assert_eq!(fold_file(&log), before, "G1: fold changed");
    assert!(temps(&log).is_empty());
}

#[test]
fn sigterm_with_a_zero_stop_timeout_abandons_the_job_and_the_log_stays_whole() {
    let env = Env::new();
    let log = store_with_schedule(&env, 400_000, "0 0 1 1 *");
    let before = fold_file(&log);
    let lock = env.path("events.jsonl.lock");
    let mut d = env.daemon(&["--stop-timeout", "0s"]);
    d.wait_line("store m: catch-up run", T);
    wait_for("the daemon's job to hold the lock", T, || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("\"daemon\""))
    });
    let t0 = Instant::now();
    let st = d.stop(T);
    assert_eq!(st.code(), Some(0), "{}", d.stderr());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    // The log is the old one or the new one, never half-swapped.
    assert_eq!(fold_file(&log), before, "G2: fold changed");
    // The next run recovers whatever the abandoned job left.
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(fold_file(&log), before);
    assert!(temps(&log).is_empty());
}

#[test]
fn a_manual_run_racing_the_daemon_leaves_one_run_and_a_recorded_skip() {
    let env = Env::new();
    let log = store_with_schedule(&env, 400_000, "0 0 1 1 *");
    let before = fold_file(&log);
    let lock = env.path("events.jsonl.lock");
    let mut manual = env.lk(["sync", "now", "--force"]).spawn();
    wait_for("the manual run to hold the lock", T, || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("\"manual\""))
    });
    let mut d = env.daemon(&[]);
    d.wait_line("store m: skipped", T);
    assert_eq!(wait_exit(&mut manual, T).code(), Some(0));
    let h = env.history("m");
    let ok: Vec<_> = h.iter().filter(|r| r["outcome"] == "ok").collect();
    let skipped: Vec<_> = h.iter().filter(|r| r["outcome"] == "skipped").collect();
    assert_eq!(ok.len(), 1, "{h:?}");
    assert_eq!(ok[0]["trigger"], "manual");
    assert_eq!(skipped.len(), 1, "{h:?}");
    assert_eq!(skipped[0]["trigger"], "daemon");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("busy"));
    assert_eq!(h.len(), 2);
    // A skip is not a failure.
    let st = env.lk(["status", "--json"]).status(0).json();
    assert_eq!(st["stores"][0]["health"], "ok");
    assert_eq!(d.stop(T).code(), Some(0));
    assert_eq!(fold_file(&log), before);
    assert_eq!(
        env.history("m").len(),
        2,
        "the daemon ran again after the skip"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_a_fixed_one_is_loaded() {
    let env = Env::new();
    store_with_schedule(&env, 2_000, "0 0 1 1 *");
    let mut d = env.daemon(&[]);
    d.wait_line("started (pid", T);
    let good = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{good}bogus = [\n"));
    signal(d.pid(), libc::SIGHUP);
    d.wait_line("config reload refused", T);
    // (status itself cannot load the broken config; the daemon file says it)
    wait_for("the daemon file to carry the config error", T, || {
        files_with_prefix(&env.state(), "daemon-").iter().any(|p| {
            p.extension().is_some_and(|e| e == "json")
                && std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|v| v["config_error"].is_string())
        })
    });
    // Still running, with the old store.
    assert!(d.child.try_wait().unwrap().is_none());

    // A new store in a fixed config is picked up (by the mtime check or a
    // SIGHUP) and, never run, caught up at once.
    let other = env.path("other.jsonl");
    gen_log(&other, 2_000, 200, 0, false);
    env.write_config(&good);
    env.keyed_store("n", &other);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{text}schedule = \"@daily\"\n"));
    signal(d.pid(), libc::SIGHUP);
    d.wait_line("config reloaded: 2 store(s): m, n", T);
    wait_for("store n's run record", T, || env.last_run("n").is_some());
    assert_eq!(env.last_run("n").unwrap()["trigger"], "daemon");
    assert_eq!(d.stop(T).code(), Some(0), "{}", d.stderr());
}

#[test]
fn repeated_failures_back_off_and_status_says_so() {
    let env = Env::new();
    // A log that is a directory fails every run.
    let log = env.path("events.jsonl");
    std::fs::create_dir(&log).unwrap();
    env.keyed_store("m", &log);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{text}schedule = \"* * * * *\"\n"));
    env.lk(["sync", "now"]).status(1);
    env.lk(["sync", "now"]).status(1);
    let mut d = env.daemon(&[]);
    d.wait_line("started (pid", T);
    let st = env.lk(["status", "--json"]).status(1).json();
    let s = &st["stores"][0];
    assert_eq!(s["backoff"]["failures"], 2, "{st}");
    assert!(s["backoff"]["until"].is_string());
    assert!(
        s["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("backing off until")),
        "{s}"
    );
    // The backoff holds back the due run: no third attempt.
    assert_eq!(env.history("m").len(), 2);
    env.lk(["status"]).status(1).stdout_has("backing off until");
    assert_eq!(d.stop(T).code(), Some(0));
}

/// The scheduler as a library: it runs inside the caller's own runtime,
/// fires a catch-up run, and returns cleanly when the caller stops it.
#[test]
fn embedded_daemon_runs_in_the_callers_runtime_and_stops_on_its_handle() {
    use logkeeper::{Daemon, DaemonEvent as Event, DaemonOptions, Paths};
    use std::sync::{Arc, Mutex};

    let env = Env::new();
    let log = store_with_schedule(&env, 2_000, "0 0 1 1 *");
    let before = fold_file(&log);
    let paths = Paths {
        config: env.config(),
        state_dir: env.state(),
    };
    let daemon = Daemon::new(paths.clone(), DaemonOptions::default());
    let handle = daemon.handle();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = events.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let task = tokio::spawn(daemon.run(move |e: &Event| {
            seen.lock().unwrap().push(match e {
                Event::Ran(r) => format!("ran {} {}", r.store, r.outcome.as_str()),
                Event::Stopping { signal, .. } => format!("stopping {signal}"),
                Event::Stopped => "stopped".into(),
                _ => "other".into(),
            });
        }));
        let deadline = Instant::now() + T;
        while !events.lock().unwrap().iter().any(|e| e.starts_with("ran ")) {
            assert!(
                Instant::now() < deadline,
                "no run: {:?}",
                events.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.stop("caller");
        task.await.unwrap()
    });
    result.unwrap();
    let events = events.lock().unwrap().clone();
    assert!(events.contains(&"ran m ok".to_string()), "{events:?}");
    assert!(
        events.contains(&"stopping caller".to_string()),
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("stopped"));
    // The daemon file is removed at a clean stop.
    let files = files_with_prefix(&env.state(), "daemon-");
    let ext = |p: &std::path::PathBuf, e: &str| p.extension().is_some_and(|x| x == e);
    assert!(files.iter().any(|p| ext(p, "lock")), "{files:?}");
    assert!(!files.iter().any(|p| ext(p, "json")), "{files:?}");
    assert_eq!(env.last_run("m").unwrap()["trigger"], "daemon");
    assert_eq!(fold_file(&log), before, "G1: fold changed");
}
