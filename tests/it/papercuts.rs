//! Issue 16's wrong outcomes and papercuts (B.8, B.10, C.12–C.17): each
//! test is named for the behaviour and says its item.

use logkeeper::testing::RunRecords;
use logkeeper::{Outcome, RunRecord};

use crate::common::*;

/// Two stores, `good` and `bad`, the second with a typo in a field name,
/// metrics into `m.prom`.
fn good_and_broken(env: &Env) {
    std::fs::write(env.path("good.jsonl"), "{\"a\":1}\n").unwrap();
    env.write_config(
        "metrics_file = \"m.prom\"\n\n[[store]]\nname = \"good\"\nlog = \"good.jsonl\"\n\n[[store]]\nname = \"bad\"\nlog = \"bad.jsonl\"\nkeep_rotatd = 2\n",
    );
}

// Issue 16 B.8: one config typo stopped every store.
#[test]
fn config_typo_refuses_only_its_own_store() {
    let env = Env::new();
    good_and_broken(&env);
    // Named, the good store runs as if the bad one were not there.
    env.lk(["sync", "now", "good"])
        .status(0)
        .stdout_has("good: ok");
    // Named, the broken store is a config error at its line.
    env.lk(["sync", "now", "bad"])
        .status(2)
        .stderr_has(&format!("{}:10", env.config().display()))
        .stderr_has("keep_rotatd");
    // All: the good one runs (and is recorded), the bad one is refused.
    let d = env.lk(["sync", "now", "--all"]).status(2);
    assert!(d.stdout().contains("good: ok"), "{}", d.stdout());
    assert!(
        d.stderr().contains("store \"bad\" not run"),
        "{}",
        d.stderr()
    );
    let hist = history(&env, "good");
    assert_eq!(hist.len(), 2, "both runs of good are recorded");
    // Status shows it as a config error; the listing lists it.
    let j = env.lk(["status", "--json"]).status(2).json();
    let health: Vec<(&str, &str)> = j["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["health"].as_str().unwrap()))
        .collect();
    assert_eq!(health, [("good", "ok"), ("bad", "config_error")]);
    env.lk(["status"]).status(2).stdout_has("CONFIG ERROR");
    env.lk(["store", "list"])
        .status(0)
        .stdout_has("good\t")
        .stdout_has("bad\tbad.jsonl\tCONFIG ERROR");
    // The metrics file marks it.
    let prom = std::fs::read_to_string(env.path("m.prom")).unwrap();
    assert!(
        prom.contains("logkeeper_health{store=\"bad\",health=\"config_error\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("logkeeper_health{store=\"good\",health=\"ok\"} 1"),
        "{prom}"
    );
    // A schedule install says it leaves it out.
    env.lk(["schedule", "install", "--backend", "systemd", "--dry-run"])
        .env("XDG_CONFIG_HOME", env.path("xdg"))
        .status(0)
        .stderr_has("store \"bad\" is not scheduled");
    // And the broken store can be removed by name.
    env.lk(["store", "remove", "bad"]).status(0);
    env.lk(["status"]).status(0);
}

/// A store's run history, through the library's own reader.
fn history(env: &Env, store: &str) -> Vec<RunRecord> {
    RunRecords::new(env.state().join("stores").join(store)).history()
}

fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
}

// Issue 16 B.10: output to a full disk panicked with exit 101.
#[test]
fn output_to_a_full_disk_is_an_error_and_the_run_stands() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 200, 10, 0, false);
    env.keyed_store("s", &log);
    let d = env
        .lk(["sync", "now", "s", "--force"])
        .stdout_to(dev_full())
        .status(1);
    let err = d.stderr();
    assert!(
        err.contains("write the output to stdout") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The run's own outcome is kept: it compacted and is recorded as ok.
    let last = history(&env, "s").pop().expect("a record");
    assert_eq!(last.outcome, Outcome::Ok);
    assert!(last.stats.rewritten);
    assert!(fold_file(&log).len() <= 10);
    let d = env.lk(["status"]).stdout_to(dev_full()).status(1);
    assert!(
        d.stderr().contains("No space left on device"),
        "{}",
        d.stderr()
    );
    env.lk(["status", "--json"]).stdout_to(dev_full()).status(1);
}

// Issue 16 C.15: `store add` and `replay` papercuts.
#[test]
fn store_add_names_its_own_error_and_normalises_paths() {
    let env = Env::new();
    env.lk(["store", "add", "a", "--log", "./a.jsonl"])
        .status(0);
    env.lk(["store", "add", "b", "--log", "b.jsonl"]).status(0);
    let before = std::fs::read_to_string(env.config()).unwrap();
    // An invalid name is the argument's error, not a line of a file that
    // was never written (it said `config.toml:9: store #3`).
    let d = env
        .lk(["store", "add", "bad name", "--log", "c.jsonl"])
        .status(2);
    let err = d.stderr();
    assert!(err.contains("store \"bad name\": `name`"), "{err}");
    assert!(
        !err.contains("store #3") && !err.contains("config.toml:"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(env.config()).unwrap(), before);
    // `./a.jsonl` is stored without its `.`.
    let a = env.path("a.jsonl").display().to_string();
    assert!(before.contains(&format!("log = \"{a}\"")), "{before}");
    assert!(!before.contains("/./"), "{before}");
    // A segment-only flag without --segments is refused by the parser.
    env.lk([
        "store",
        "add",
        "c",
        "--log",
        "c.jsonl",
        "--file-delete-delay",
        "60s",
    ])
    .status(2)
    .stderr_has("cannot be used with");
    assert_eq!(std::fs::read_to_string(env.config()).unwrap(), before);
}

// Issue 16 C.15: a log whose folder is missing is warned about at `store
// add`; a log that does not exist yet replays as no state, like a sync skip.
#[test]
fn store_add_warns_of_a_missing_folder_and_replay_of_no_log_is_empty() {
    let env = Env::new();
    env.lk(["store", "add", "far", "--log", "nowhere/e.jsonl"])
        .status(0)
        .stderr_has(&format!(
            "warning: {} does not exist",
            env.path("nowhere").display()
        ));
    let d = env
        .lk(["store", "add", "near", "--log", "e.jsonl"])
        .status(0);
    assert!(!d.stderr().contains("warning"), "{}", d.stderr());
    env.lk(["sync", "now", "near"])
        .status(0)
        .stdout_has("skipped");
    let d = env
        .lk(["replay", "near"])
        .status(0)
        .stderr_has("does not exist yet");
    assert!(d.stdout().is_empty(), "{}", d.stdout());
}

/// A shell that holds `path` with flock(1) until its stdin closes; returns
/// once the lock is held. The lock's holder is the flock process itself.
fn hold_flock(path: &std::path::Path) -> std::process::Child {
    use std::io::BufRead;
    let mut holder = std::process::Command::new("flock")
        .arg(path)
        .args(["-c", "echo locked; read _"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1) is needed for this test");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    holder
}

// Issue 16 C.12: a refused run recorded an empty, "unsupported" census.
#[test]
fn refused_run_keeps_the_census_that_refused_it() {
    use std::io::BufRead;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    env.keyed_store("s", &log);
    // A positional writer: fd 3 open read-write without O_APPEND.
    let mut w = std::process::Command::new("bash")
        .arg("-c")
        .arg("exec 3<>\"$1\"; echo open; read _")
        .arg("bash")
        .arg(&log)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(w.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    env.lk(["sync", "now", "--force"])
        .status(1)
        .stderr_has("without O_APPEND");
    let rec = history(&env, "s").pop().unwrap();
    assert_eq!(rec.outcome, Outcome::Error);
    assert!(rec.stats.writers.supported);
    assert!(
        rec.stats
            .writers
            .openers
            .iter()
            .any(|o| o.pid == w.id() && !o.append && o.fd == 3),
        "{:?}",
        rec.stats.writers
    );
    env.lk(["status"])
        .status(1)
        .stdout_has(&format!("writer: pid {} (bash) fd 3", w.id()));
    drop(w.stdin.take());
    w.wait().unwrap();
}

// Issue 16 C.12: while a run waits for a writer's lock on the log, status
// showed the busy attempt as the last run ("NEVER RUN ... busy").
#[test]
fn status_says_whose_lock_a_running_run_waits_for() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    env.keyed_store("s", &log);
    let mut writer = hold_flock(&log);
    let mut run = env.lk(["sync", "now", "s", "--force"]).spawn();
    // The run holds the store lock (its holder record names it) and waits
    // for the writer's: a second attempt finds it busy and records that.
    let lock = env.path("events.jsonl.lock");
    let me = format!("\"pid\":{},", run.id());
    wait_for(
        "the run to hold the store lock",
        std::time::Duration::from_secs(20),
        || std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&me)),
    );
    env.lk(["sync", "now", "s"]).status(75);
    assert_eq!(history(&env, "s").last().unwrap().outcome, Outcome::Busy);
    let want = format!("running, waiting for pid {}'s lock on the log", writer.id());
    let d = env.lk(["status"]).output();
    let out = d.stdout();
    assert!(out.contains(&want), "{out}");
    assert!(out.contains("the first one is running now"), "{out}");
    assert!(
        !out.contains("busy"),
        "the busy attempt is not the last run:\n{out}"
    );
    let j = env.lk(["status", "--json"]).output().json();
    assert_eq!(j["stores"][0]["waiting_for"][0], writer.id());
    assert!(j["stores"][0]["last_run"].is_null(), "{}", j["stores"][0]);
    drop(writer.stdin.take());
    writer.wait().unwrap();
    assert_eq!(
        wait_exit(&mut run, std::time::Duration::from_secs(60)).code(),
        Some(0)
    );
    env.lk(["status"]).status(0);
}

// Issue 16 C.12: the writer-lock timeout names the writer.
#[cfg(feature = "failpoints")]
#[test]
fn writer_lock_timeout_names_the_pid() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 200, 20, 0, false);
    env.keyed_store("s", &log);
    let mut writer = hold_flock(&log);
    env.lk(["sync", "now", "--force"])
        .env("LOGKEEPER_WRITER_LOCK_WAIT_MS", "300")
        .status(1)
        .stderr_has(&format!(
            "pid {} (flock) has held the log's lock",
            writer.id()
        ));
    drop(writer.stdin.take());
    writer.wait().unwrap();
}

// Issue 16 C.12: after a run with no writers, status noted "kept beyond
// keep_rotated for late writes" for the run's own rotated file.
#[test]
fn no_late_write_note_after_a_run_without_writers() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 300, 20, 0, false);
    env.keyed_store_with("s", &log, &["--keep-rotated", "0"]);
    env.lk(["sync", "now", "--force"]).status(0);
    let rec = history(&env, "s").pop().unwrap();
    assert!(rec.stats.writers.openers.is_empty());
    let d = env.lk(["status"]).status(0);
    assert!(
        !d.stdout().contains("kept beyond keep_rotated"),
        "{}",
        d.stdout()
    );
}

// Issue 16 C.12: a non-root run's census counted every process it could
// not inspect (root's daemons), so status always said it "may be
// incomplete"; now only processes that could write the log count.
#[test]
fn census_of_a_non_root_run_counts_only_possible_writers() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    env.keyed_store("s", &log);
    const NOBODY: u32 = 65534;
    for p in [env.dir.path().to_path_buf(), log.clone(), env.config()] {
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let as_nobody = |mode: u32| {
        set_mode(&log, mode);
        let out = env
            .cmd()
            .args(["sync", "now", "--force"])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        history(&env, "s").pop().unwrap().stats.writers.unreadable
    };
    // Only nobody (whose processes it can read) may write a 0644 log.
    assert_eq!(as_nobody(0o644), 0);
    let st = env
        .cmd()
        .arg("status")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&st.stdout);
    assert!(!out.contains("could not be inspected"), "{out}");
    // Anyone may write a 0666 log: root's processes may be writers.
    assert!(as_nobody(0o666) > 0);
    let st = env
        .cmd()
        .arg("status")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&st.stdout);
    assert!(out.contains("could not be inspected"), "{out}");
}

// Issue 16 C.14: -v and -vv printed nothing more.
#[test]
fn verbose_flags_log_more_to_stderr() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 300, 20, 0, false);
    env.keyed_store("s", &log);
    let quiet = env.lk(["sync", "now", "--force"]).status(0);
    assert!(quiet.stderr().is_empty(), "{}", quiet.stderr());
    let v = env.lk(["-v", "sync", "now", "--force"]).status(0);
    let err = v.stderr();
    assert!(
        err.contains("INFO") && err.contains("store \"s\": ok in"),
        "{err}"
    );
    assert!(!err.contains("DEBUG"), "{err}");
    let vv = env.lk(["sync", "now", "--force", "-vv"]).status(0);
    let err = vv.stderr();
    assert!(err.contains("DEBUG") && err.contains("timings"), "{err}");
}

// Issue 16 C.14: --json timings had float noise ("lock_ms":
// 0.07410800000000001), and a --wait run counted its wait as run time.
#[test]
fn json_timings_are_clean_and_a_wait_is_reported_apart() {
    use std::io::BufRead;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 300, 20, 0, false);
    env.keyed_store("s", &log);
    let mut other = hold_flock(&env.path("events.jsonl.lock"));
    let mut run = env
        .lk(["-v", "sync", "now", "--force", "--wait", "--json"])
        .spawn();
    let mut err = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no 'waiting for' line"
        );
    }
    // The run is blocked in the lock: let it go.
    drop(other.stdin.take());
    other.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    // No `_ms` figure with float noise anywhere in the document.
    let mut noisy = Vec::new();
    ms_noise(&j, &mut noisy);
    assert!(noisy.is_empty(), "{noisy:?} in\n{text}");
    let r = &j["runs"][0];
    let wait = r["wait_ms"].as_f64().unwrap();
    let took = r["duration_ms"].as_f64().unwrap();
    assert!(wait > 0.0, "{r}");
    let span = chrono::DateTime::parse_from_rfc3339(r["finished_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
    assert!(
        wait + took <= span.num_microseconds().unwrap() as f64 / 1e3 + 1.0,
        "wait {wait} + run {took} exceed the whole span {span}"
    );
}

/// `_ms` fields whose figure has more than 3 decimals (float noise).
fn ms_noise(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let decimals = v.to_string().split_once('.').map_or(0, |(_, d)| d.len());
                if k.ends_with("_ms") && decimals > 3 {
                    out.push(format!("{k}: {v}"));
                }
                ms_noise(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| ms_noise(v, out)),
        _ => {}
    }
}

// Issue 16 C.16: the README's overdue alert used the gap between the next
// two fire times, so a mon-fri store alerted over the weekend. The metric
// `logkeeper_overdue_at_timestamp_seconds` follows the schedule from the
// last success instead: after a Friday run, the next due run is Monday's.
#[test]
fn overdue_metric_of_a_weekday_schedule_skips_the_weekend() {
    use chrono::{Datelike, Local, TimeZone, Utc};
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 50, 5, 0, false);
    env.lk(["store", "add", "weekdays", "--log"])
        .arg(&log)
        .args(["--schedule", "0 9 * * mon-fri"])
        .status(0);
    env.lk(["store", "add", "other", "--log"])
        .arg(env.path("other.jsonl"))
        .status(0);
    // Its last success: a Friday, right after its 09:00 run.
    let friday = Local.with_ymd_and_hms(2026, 11, 27, 9, 0, 5).unwrap();
    assert_eq!(friday.weekday(), chrono::Weekday::Fri);
    let mut rec = env_record(&env, "weekdays", &log);
    rec.started_at = friday.with_timezone(&Utc);
    rec.finished_at = rec.started_at;
    RunRecords::new(env.state().join("stores/weekdays"))
        .record(&rec, true, false)
        .unwrap();
    // Any run rewrites the metrics file for every store.
    let prom = env.path("m.prom");
    env.lk(["sync", "now", "other", "--metrics-file"])
        .arg(&prom)
        .status(0);
    let text = std::fs::read_to_string(&prom).unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let monday_due = Local.with_ymd_and_hms(2026, 11, 30, 9, 10, 0).unwrap();
    assert_eq!(
        value("logkeeper_overdue_at_timestamp_seconds{store=\"weekdays\"}"),
        monday_due.timestamp() as f64
    );
    assert_eq!(
        value("logkeeper_overdue_at_timestamp_seconds{store=\"other\"}"),
        0.0
    );
}

/// A successful manual run record of `store`, finished now.
fn env_record(_env: &Env, store: &str, log: &std::path::Path) -> RunRecord {
    let now = chrono::Utc::now();
    RunRecord {
        store: store.into(),
        log: log.into(),
        outcome: Outcome::Ok,
        trigger: "manual".into(),
        started_at: now,
        finished_at: now,
        duration_ms: 1.0,
        wait_ms: 0.0,
        reason: None,
        error: None,
        stats: Default::default(),
        pid: 1,
        host: "h".into(),
        version: "0".into(),
        run_id: "r".into(),
        totals: None,
        hook: None,
    }
}

// Issue 16 C.16: the typed error of a refused reload reaches an embedder.
#[test]
fn refused_reload_event_carries_the_typed_config_error() {
    use logkeeper::{Daemon, DaemonEvent as Event, DaemonOptions, Paths};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let env = Env::new();
    env.lk(["store", "add", "m", "--log"])
        .arg(env.path("m.jsonl"))
        .args(["--schedule", "0 0 1 1 *"])
        .status(0);
    let paths = Paths {
        config: env.config(),
        state_dir: env.state(),
    };
    let daemon = Daemon::new(paths, DaemonOptions::default());
    let handle = daemon.handle();
    let refused: Arc<Mutex<Vec<Option<usize>>>> = Arc::default();
    let started = Arc::new(Mutex::new(false));
    let (seen, up) = (refused.clone(), started.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let good = std::fs::read_to_string(env.config()).unwrap();
    rt.block_on(async {
        let task = tokio::spawn(daemon.run(move |e: &Event| match e {
            Event::Started { .. } => *up.lock().unwrap() = true,
            Event::ReloadFailed(err) => {
                // The typed error: its class and its line.
                assert_eq!(err.class(), logkeeper::ErrorClass::Usage);
                if let logkeeper::Error::Config(logkeeper::ConfigError::Invalid { line, .. }) =
                    &**err
                {
                    seen.lock().unwrap().push(*line);
                }
            }
            _ => {}
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !*started.lock().unwrap() {
            assert!(Instant::now() < deadline, "the daemon did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.write_config(&format!("{good}bogus = [\n"));
        handle.reload();
        while refused.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no ReloadFailed event");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.stop("test");
        task.await.unwrap().unwrap();
    });
    let lines = refused.lock().unwrap().clone();
    assert!(lines[0].is_some(), "{lines:?}");
}

// Issue 16 C.16: LOGKEEPER_EXIT_CODE comes from the one home of the exit
// codes, for each outcome that calls a hook.
#[test]
fn hook_exit_code_is_what_sync_now_exits_with() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 50, 5, 0, false);
    let out = env.path("hook.out");
    env.keyed_store("s", &log);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!(
        "on_success = 'echo \"$LOGKEEPER_EXIT_CODE\" >> {0}'\non_failure = 'echo \"$LOGKEEPER_EXIT_CODE\" >> {0}'\n{text}",
        out.display()
    ));
    let ok = env.lk(["sync", "now"]).status(0);
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let failed = env.lk(["sync", "now"]).status(1);
    let codes: Vec<i32> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            ok.out.status.code().unwrap(),
            failed.out.status.code().unwrap()
        ]
    );
    assert_eq!(
        codes,
        [
            logkeeper::exit_code::OK as i32,
            logkeeper::exit_code::FAILED as i32
        ]
    );
}

// Issue 16 C.13: "write quarantine file ...: No space left on device" did
// not say that the log was unchanged.
#[cfg(feature = "failpoints")]
#[test]
fn quarantine_enospc_says_the_log_is_unchanged() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 300, 20, 5, false);
    env.keyed_store("s", &log);
    let before = std::fs::read(&log).unwrap();
    let d = env
        .lk(["sync", "now", "--force"])
        .env("LOGKEEPER_FAILPOINT", "quarantine-write:ENOSPC")
        .status(1);
    let err = d.stderr();
    assert!(err.contains("write quarantine file"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&format!("{} is unchanged", log.display())),
        "{err}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert!(temps(&log).is_empty());
}

// Issue 16 C.17: the demo's "Try next" lines said `logkeeper ...`, which is
// not on PATH after `cargo run`; each demo left ~51 MB in a new temp dir.
#[test]
fn demo_prints_commands_that_run_and_reuses_one_directory() {
    let env = Env::new();
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let demo = || {
        env.lk(["demo", "--events", "3000", "--keys", "300"])
            .env("TMPDIR", &tmp)
            .env("PATH", "/usr/bin:/bin")
            .status(0)
            .stdout()
    };
    let out = demo();
    let try_status = out
        .lines()
        .find(|l| l.trim_end().ends_with("status --json"))
        .unwrap_or_else(|| panic!("no status line in\n{out}"));
    let st = std::process::Command::new("sh")
        .args(["-c", try_status.trim()])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(
        st.status.code() == Some(0),
        "{try_status}: {:?}\n{}",
        st.status,
        String::from_utf8_lossy(&st.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(j["stores"][0]["name"], "demo");
    let dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    assert_eq!(dirs().len(), 1, "{:?}", dirs());
    let size = |d: &std::path::Path| -> u64 {
        files_under(d)
            .iter()
            .map(|f| f.metadata().unwrap().len())
            .sum()
    };
    let first = size(&dirs()[0]);
    demo();
    demo();
    assert_eq!(dirs().len(), 1, "{:?}", dirs());
    let third = size(&dirs()[0]);
    assert!(third <= first + first / 20, "{first} -> {third} bytes");
}

fn files_under(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

// Issue 16 C.17: `man --dir` said nothing about how man finds the pages;
// the advice it prints makes `man logkeeper` work.
#[test]
fn man_dir_says_how_man_finds_the_pages() {
    need("man", "man-db");
    let env = Env::new();
    let root = env.path("share/man");
    let d = env
        .lk(["man", "--dir"])
        .arg(root.join("man1"))
        .env("MANPATH", "/usr/share/man")
        .status(0);
    let out = d.stdout();
    assert!(
        out.contains(&format!("export MANPATH=\"{}:", root.display())),
        "{out}"
    );
    // Following it: man finds the page.
    let page = std::process::Command::new("man")
        .args(["-P", "cat", "logkeeper-sync-now"])
        .env("MANPATH", format!("{}:", root.display()))
        .env("MANWIDTH", "80")
        .env("MAN_DISABLE_SECCOMP", "1")
        .output()
        .unwrap();
    assert!(
        page.status.success() && String::from_utf8_lossy(&page.stdout).contains("--metrics-file"),
        "{page:?}"
    );
    // Once on its path, it says so.
    env.lk(["man", "--dir"])
        .arg(root.join("man1"))
        .env("MANPATH", format!("{}:", root.display()))
        .status(0)
        .stdout_has("`man logkeeper` shows the page");
}

// Issue 16 C.17: bash completion did not complete store names.
#[test]
fn bash_completion_offers_store_names() {
    need("bash", "bash");
    let env = Env::new();
    for s in ["alpha", "beta"] {
        env.lk(["store", "add", s, "--log"])
            .arg(env.path(&format!("{s}.jsonl")))
            .status(0);
    }
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            r#"source <('{BIN}' completions bash) || exit 9
fn=$(complete -p logkeeper | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
COMP_WORDS[0]='{BIN}'
"$fn" "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cword = words.len() - 1,
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &script])
            .env("LOGKEEPER_CONFIG", env.config())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut v: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(complete("logkeeper sync now "), ["alpha", "beta"]);
    assert_eq!(complete("logkeeper status a"), ["alpha"]);
    assert_eq!(complete("logkeeper store remove b"), ["beta"]);
    // Subcommands still complete as before.
    assert_eq!(complete("logkeeper st"), ["status", "store"]);
}
