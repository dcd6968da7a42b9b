//! Issue 16's wrong outcomes and papercuts (B.8, B.10, C.12–C.17): each
//! test is named for the behaviour and says its item.

use logkeeper::job::record::{Outcome, RunRecord, StoreState};

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
    // And the broken store can be removed by name.
    env.lk(["store", "remove", "bad"]).status(0);
    env.lk(["status"]).status(0);
}

/// A store's run history, through the library's own reader.
fn history(env: &Env, store: &str) -> Vec<RunRecord> {
    StoreState::new(env.state().join("stores").join(store)).history()
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
