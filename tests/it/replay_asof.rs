//! `replay --as-of` and `replay --points`: the state as it was at each
//! retained point, and exactly at a time with a `time` pointer.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::*;

fn event(t: &str, id: u32, op: &str, v: u32, ts: Option<&str>) -> String {
    let ts = ts.map_or(String::new(), |ts| format!(r#","ts":{ts}"#));
    format!(r#"{{"change_type":"{op}","item_type":"{t}","item":{{"id":{id}}},"v":{v}{ts}}}"#)
}

/// A batch with superseded lines and deletes: every id of 0..n written
/// twice, every third one deleted.
fn batch(round: u32, n: u32) -> Vec<String> {
    let mut v = Vec::new();
    for id in 0..n {
        v.push(event("Task", id, "SET", round * 100, None));
        v.push(event("Task", id, "SET", round * 100 + 1, None));
        if id % 3 == round % 3 {
            v.push(event("Task", id, "DEL", 0, None));
        }
    }
    v
}

/// Append `lines` by the writer protocol (`logkeeper append`: a real writer
/// process).
fn append(env: &Env, lines: &[String]) {
    env.lk(["append", "m"])
        .stdin(lines.join("\n") + "\n")
        .status(0);
}

fn fold_of(lines: &[String]) -> Vec<Vec<u8>> {
    reference_fold((lines.join("\n") + "\n").as_bytes())
}

fn as_of(env: &Env, t: &str) -> Vec<Vec<u8>> {
    let d = env.lk(["replay", "m", "--as-of", t]).status(0);
    d.out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn points(env: &Env) -> Vec<Value> {
    env.lk(["replay", "m", "--points", "--json"])
        .status(0)
        .json()["points"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_state_at_each_point_is_the_fold_of_exactly_the_lines_written_before_it() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store_with("m", &log, &["--keep-rotated", "5"]);
    let mut written: Vec<String> = Vec::new();
    let mut before: Vec<Vec<String>> = Vec::new();
    for round in 0..3 {
        let b = batch(round, 40);
        append(&env, &b);
        written.extend(b);
        before.push(written.clone());
        let r = env.lk(["sync", "now", "m", "--json"]).status(0).json();
        assert_eq!(r["runs"][0]["stats"]["rewritten"], true);
    }
    // Lines written after the last run belong to the live point only.
    let extra = batch(3, 10);
    append(&env, &extra);
    written.extend(extra);

    let pts = points(&env);
    assert_eq!(pts.len(), 4, "{pts:?}");
    assert_eq!(
        pts.iter()
            .map(|p| p["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["run", "run", "run", "live"]
    );
    let history = env.history("m");
    for (i, p) in pts[..3].iter().enumerate() {
        assert_eq!(p["run_id"], history[i]["run_id"]);
        assert_eq!(p["file"], history[i]["stats"]["rotated"]);
        let t = p["time"].as_str().unwrap();
        assert_eq!(
            as_of(&env, t),
            fold_of(&before[i]),
            "state at point {i} ({t})"
        );
    }
    // Between two points: the earlier one.
    let t1: chrono::DateTime<chrono::Utc> = pts[1]["time"].as_str().unwrap().parse().unwrap();
    let just_after = (t1 + chrono::Duration::milliseconds(1)).to_rfc3339();
    assert_eq!(as_of(&env, &just_after), fold_of(&before[1]));
    // Later than every run: the live log.
    let future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    assert_eq!(as_of(&env, &future), fold_of(&written));
    assert_eq!(as_of(&env, &future), fold_file(&log));

    // Before the oldest point: an error that names it.
    let t0: chrono::DateTime<chrono::Utc> = pts[0]["time"].as_str().unwrap().parse().unwrap();
    let early = (t0 - chrono::Duration::seconds(1)).to_rfc3339();
    env.lk(["replay", "m", "--as-of", &early])
        .status(2)
        .stderr_has("before the oldest retained point")
        .stderr_has(pts[0]["file"].as_str().unwrap());
    env.lk(["replay", "m", "--as-of", "yesterday-ish"])
        .status(2)
        .stderr_has("is not a time");
    env.lk(["replay", "m", "--points"])
        .status(0)
        .stdout_has("TIME")
        .stdout_has(pts[2]["file"].as_str().unwrap());
}

#[test]
fn with_a_time_pointer_the_fold_stops_exactly_at_the_time_and_keeps_untimed_lines() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store("m", &log);
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{cfg}time = \"/ts\"\n"));
    let first = batch(0, 10);
    append(&env, &first);
    env.lk(["sync", "now", "m"]).status(0);
    let base = chrono::Utc::now().timestamp() + 3600;
    // Times an hour ahead, as numbers and as RFC 3339 strings; one line
    // without a time.
    let mut later = Vec::new();
    for (i, id) in (0..6).enumerate() {
        let ts = base + 10 * i as i64;
        let ts = if i % 2 == 0 {
            ts.to_string()
        } else {
            format!(
                "\"{}\"",
                chrono::DateTime::from_timestamp(ts, 0)
                    .unwrap()
                    .to_rfc3339()
            )
        };
        later.push(event("Task", id, "SET", 900 + i as u32, Some(&ts)));
    }
    later.push(event("Task", 7, "SET", 999, None));
    append(&env, &later);
    // Stop at base + 25: the lines at +0, +10, +20 are in, +30, +40, +50
    // out; the untimed one is kept.
    let at = chrono::DateTime::from_timestamp(base + 25, 0)
        .unwrap()
        .to_rfc3339();
    let mut expected_lines = first.clone();
    expected_lines.extend(later[..3].iter().cloned());
    expected_lines.push(later[6].clone());
    let d = env.lk(["replay", "m", "--as-of", &at]).status(0);
    let got: Vec<Vec<u8>> = d
        .out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(got, fold_of(&expected_lines));
    assert!(
        d.stderr().contains("3 later line(s) skipped"),
        "{}",
        d.stderr()
    );
    assert!(
        d.stderr().contains("have no readable time at /ts: kept"),
        "{}",
        d.stderr()
    );
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn replay_as_of_works_for_a_segmented_store() {
    let env = Env::new();
    let dir = env.path("feed");
    std::fs::create_dir(&dir).unwrap();
    env.write_config(&format!(
        "[[store]]\nname = \"m\"\nsegments = \"{}/events-{{seq}}.jsonl\"\nkey = [\"/item_type\", \"/item/id\"]\nop = \"/change_type\"\ndelete = [\"DEL\"]\n",
        dir.display()
    ));
    let now = SystemTime::now();
    let mut written = Vec::new();
    let mut before = Vec::new();
    for (k, seq) in [1u32, 200, 400].iter().enumerate() {
        let b = batch(k as u32, 20);
        let p = dir.join(format!("events-{seq}.jsonl"));
        std::fs::write(&p, b.join("\n") + "\n").unwrap();
        set_mtime(&p, now - Duration::from_secs(300 - 100 * k as u64));
        written.extend(b);
        before.push(written.clone());
    }
    let pts = points(&env);
    assert_eq!(pts.len(), 3);
    for (k, p) in pts.iter().enumerate() {
        assert_eq!(p["kind"], "segment");
        let t = p["time"].as_str().unwrap();
        assert_eq!(as_of(&env, t), fold_of(&before[k]), "segment point {k}");
    }
    let early = chrono::DateTime::<chrono::Utc>::from(now - Duration::from_secs(400)).to_rfc3339();
    env.lk(["replay", "m", "--as-of", &early])
        .status(2)
        .stderr_has("events-1.jsonl");
}

/// The events' own times need not agree with the runs': a value that a
/// later run compacted away is still found in the file it was written to.
#[test]
fn the_exact_fold_finds_a_value_a_later_run_compacted_away() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store_with("m", &log, &["--time", "/ts"]);
    let base = chrono::Utc::now().timestamp() + 3600;
    let ts = |m: i64| (base + 60 * m).to_string();
    let a = vec![
        event("Task", 1, "SET", 1, Some(&ts(0))),
        event("Task", 1, "SET", 2, Some(&ts(2))),
        event("Task", 3, "SET", 30, Some(&ts(4))),
    ];
    append(&env, &a);
    env.lk(["sync", "now", "m"]).status(0);
    let b = vec![event("Task", 3, "SET", 31, Some(&ts(5)))];
    append(&env, &b);
    env.lk(["sync", "now", "m"]).status(0);
    // The second run dropped value 30 from the live log; at +4m30s it is
    // the state.
    assert!(!std::fs::read_to_string(&log).unwrap().contains("\"v\":30"));
    let at = chrono::DateTime::from_timestamp(base + 270, 0)
        .unwrap()
        .to_rfc3339();
    assert_eq!(as_of(&env, &at), fold_of(&a));
    let at = chrono::DateTime::from_timestamp(base + 90, 0)
        .unwrap()
        .to_rfc3339();
    assert_eq!(as_of(&env, &at), fold_of(&a[..1]));
}
