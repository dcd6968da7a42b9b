//! `sync now --dry-run`: a report from the same fold a run makes, which
//! changes nothing, and which the run that follows bears out figure by
//! figure and line by line.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn dry(env: &Env, extra: &[&str]) -> Value {
    env.lk(["sync", "now", "m", "--dry-run", "--json"])
        .args(extra)
        .status(0)
        .json()["dry_runs"][0]
        .clone()
}

/// Every file under `dir` with its bytes (lock files and state included).
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Per key (item_type, item.id): how many of its lines a fold drops as
/// superseded (every write but a live last one, deletes aside).
fn reference_superseded(bytes: &[u8]) -> HashMap<(String, String), u64> {
    let mut writes: HashMap<(String, String), (u64, bool)> = HashMap::new();
    let complete = &bytes[..bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)];
    for line in complete.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let (Some(t), Some(id)) = (v.get("item_type"), v.pointer("/item/id")) else {
            continue;
        };
        let del = v["change_type"] == "DEL";
        let e = writes.entry((t.to_string(), id.to_string())).or_default();
        if !del {
            e.0 += 1;
        }
        e.1 = del;
    }
    writes
        .into_iter()
        .map(|(k, (sets, last_del))| (k, sets - u64::from(!last_del && sets > 0)))
        .collect()
}

#[test]
fn a_dry_run_changes_nothing_and_the_run_after_it_does_exactly_what_it_said() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 30_000, 3_000, 7, true);
    env.keyed_store("m", &log);
    let before = tree(env.dir.path());
    let d = dry(&env, &[]);
    // Byte for byte the same tree: log, no lock file, no quarantine, no
    // record, no state.
    assert_eq!(tree(env.dir.path()), before, "the dry run changed a file");
    assert_eq!(d["lock"], "none");
    assert_eq!(d["verdict"], "compact");

    let real = env.lk(["sync", "now", "m", "--json"]).status(0).json()["runs"][0].clone();
    let stats = &real["stats"];
    for (k, v) in d["run"].as_object().unwrap() {
        assert_eq!(
            &stats[k], v,
            "run figure {k}: dry run said {v}, the run did {}",
            stats[k]
        );
    }
    assert_eq!(stats["unglued"].as_u64().unwrap_or(0), 0);

    // Line for line: the new log's snapshot lines, per group, are the ones
    // the dry run said it would keep; the quarantine file holds exactly the
    // lines it named, at their offsets.
    let new = std::fs::read(&log).unwrap();
    let snapshot = &new[..new.len() - stats["tail_bytes"].as_u64().unwrap() as usize];
    let mut kept: HashMap<String, u64> = HashMap::new();
    for line in snapshot.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        *kept.entry(v["item_type"].to_string()).or_default() += 1;
    }
    let mut groups_in = 0;
    for g in d["groups"].as_array().unwrap() {
        groups_in += g["lines_in"].as_u64().unwrap();
        let sum: u64 = ["lines_kept", "superseded", "tombstones", "quarantined"]
            .iter()
            .map(|f| g[f].as_u64().unwrap())
            .sum();
        assert_eq!(sum, g["lines_in"].as_u64().unwrap(), "group {g}");
        if !g["group"].is_null() {
            assert_eq!(
                kept.get(&g["group"].to_string()).copied().unwrap_or(0),
                g["lines_kept"].as_u64().unwrap(),
                "group {}",
                g["group"]
            );
        }
    }
    assert_eq!(groups_in, stats["lines_in"].as_u64().unwrap());
    assert_eq!(
        d["superseded"]["lines"].as_u64().unwrap() + d["tombstones"]["lines"].as_u64().unwrap(),
        stats["lines_in"].as_u64().unwrap()
            - stats["lines_out"].as_u64().unwrap()
            - stats["quarantined"].as_u64().unwrap()
    );
    let q = std::fs::read_to_string(log.with_extension("jsonl.quarantine")).unwrap();
    let entries: Vec<Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries.len() as u64,
        d["quarantine"]["lines"].as_u64().unwrap()
    );
    for (e, f) in entries
        .iter()
        .zip(d["quarantine"]["first"].as_array().unwrap())
    {
        for k in ["source", "offset", "length", "reason"] {
            assert_eq!(e[k], f[k], "quarantined line field {k}");
        }
    }

    // The most superseded keys and their counts, by an independent fold of
    // the rotated (pre-run) file.
    let old = std::fs::read(stats["rotated"].as_str().unwrap()).unwrap();
    let reference = reference_superseded(&old);
    let mut counts: Vec<u64> = reference.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top = d["top_superseded"].as_array().unwrap();
    assert_eq!(top.len(), 10);
    for (i, t) in top.iter().enumerate() {
        let key = (t["key"][0].to_string(), t["key"][1].to_string());
        assert_eq!(reference[&key], t["superseded"].as_u64().unwrap(), "{t}");
        assert_eq!(counts[i], t["superseded"].as_u64().unwrap(), "rank {i}");
    }
}

#[test]
fn a_dry_run_names_each_writer_and_the_strategy_it_would_get() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 200, 20, 0, false);
    env.keyed_store("m", &log);
    let appender = OpenOptions::new().append(true).open(&log).unwrap();
    let d = dry(&env, &[]);
    let me = std::process::id();
    // Only this process's fds count: a child another test forks meanwhile
    // may hold an inherited copy until it execs.
    let w = &d["writers"]["openers"];
    let mine: Vec<&Value> = w
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["pid"] == me)
        .collect();
    assert_eq!(mine.len(), 1, "{w}");
    assert_eq!(mine[0]["strategy"], "swap");
    assert_eq!(d["verdict"], "compact");

    let positional = OpenOptions::new().write(true).open(&log).unwrap();
    let d = dry(&env, &[]);
    assert_eq!(d["verdict"], "refuse");
    let strategies: Vec<&str> = d["writers"]["openers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["pid"] == me)
        .map(|o| o["strategy"].as_str().unwrap())
        .collect();
    assert!(
        strategies.contains(&"refuse") && strategies.contains(&"swap"),
        "{strategies:?}"
    );
    assert!(
        d["reason"].as_str().unwrap().contains("without O_APPEND"),
        "{}",
        d["reason"]
    );
    // And the run refuses, as the dry run said.
    env.lk(["sync", "now", "m"]).status(1);
    drop((appender, positional));
}

#[test]
fn a_dry_run_says_when_min_growth_would_skip_and_force_would_not() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store_with("m", &log, &["--min-growth", "0.5"]);
    env.lk(["sync", "now", "m"]).status(0);
    let after = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| {
            use std::io::Write;
            // Twice: the second supersedes the first.
            let line = b"{\"item_type\":\"Task\",\"item\":{\"id\":1},\"change_type\":\"SET\"}\n";
            f.write_all(line)?;
            f.write_all(line)
        })
        .unwrap();
    let d = dry(&env, &[]);
    assert_eq!(d["verdict"], "skip");
    assert_eq!(d["min_growth"]["would_skip"], true);
    assert_eq!(d["min_growth"]["baseline_bytes"], after);
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("below min_growth 50%")
    );
    let real = env.lk(["sync", "now", "m", "--json"]).status(0).json()["runs"][0].clone();
    assert_eq!(real["outcome"], "skipped");
    assert_eq!(real["reason"], d["reason"]);
    for (k, v) in d["run"].as_object().unwrap() {
        assert_eq!(&real["stats"][k], v, "skipped run figure {k}");
    }
    let forced = dry(&env, &["--force"]);
    assert_eq!(forced["verdict"], "compact");
    assert_eq!(forced["min_growth"]["would_skip"], false);
}

#[test]
fn a_dry_run_prints_a_human_report_and_config_errors_exit_2() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 2, false);
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "m", "--dry-run"])
        .status(0)
        .stdout_has("no lock taken, nothing written")
        .stdout_has("superseded:")
        .stdout_has("per key group")
        .stdout_has("most superseded keys:");
    env.lk(["sync", "now", "nope", "--dry-run"]).status(2);
    env.lk(["sync", "now", "m", "--dry-run", "--wait"])
        .status(2);
}

/// Lines a writer that keeps its fd appends to the rotated file after a
/// swap (late writes, one malformed) are in the dry run's figures as in
/// the run's, and the malformed one is named in its rotated file.
#[test]
fn a_dry_run_folds_late_writes_as_the_run_does() {
    use std::io::Write;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 200, 0, false);
    env.keyed_store("m", &log);
    let mut old_fd = OpenOptions::new().append(true).open(&log).unwrap();
    let first = env.lk(["sync", "now", "m", "--json"]).status(0).json()["runs"][0].clone();
    let rotated = first["stats"]["rotated"].as_str().unwrap().to_string();
    for v in 0..5 {
        writeln!(
            old_fd,
            r#"{{"change_type":"SET","item_type":"Task","item":{{"id":"late"}},"v":{v}}}"#
        )
        .unwrap();
    }
    writeln!(old_fd, "not json").unwrap();
    let d = dry(&env, &[]);
    assert_eq!(d["quarantine"]["first"][0]["source"], rotated.as_str());
    let real = env.lk(["sync", "now", "m", "--json"]).status(0).json()["runs"][0].clone();
    assert_eq!(real["stats"]["late_lines_carried"], 5);
    for (k, v) in d["run"].as_object().unwrap() {
        assert_eq!(&real["stats"][k], v, "run figure {k}");
    }
    drop(old_fd);
}

#[test]
fn a_dry_run_of_a_log_not_created_yet_says_the_run_would_skip() {
    let env = Env::new();
    let log = env.path("later.jsonl");
    env.keyed_store("m", &log);
    let d = dry(&env, &[]);
    assert_eq!(d["verdict"], "skip");
    assert!(!log.exists());
    let real = env.lk(["sync", "now", "m", "--json"]).status(0).json()["runs"][0].clone();
    assert_eq!(real["outcome"], "skipped");
    assert_eq!(real["reason"], d["reason"]);
}
