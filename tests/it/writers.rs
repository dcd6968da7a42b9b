//! G1 nothing lost: writers appending by the protocol while compactions run.

use std::collections::HashSet;
use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn appenders_lose_nothing_across_ten_compactions() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 20_000, 2_000, 0, false);
    env.keyed_store("m", &log);
    let per_writer = 300;
    // Two processes, each running `logkeeper append` once per line.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let script = format!(
                r#"for i in $(seq 1 {per_writer}); do "$LK" append m "{{\"change_type\":\"SET\",\"item_type\":\"W{w}\",\"item\":{{\"id\":$i}}}}" || exit 1; done"#
            );
            let c = env.cmd();
            let prog = c.get_program().to_owned();
            let mut sh = Command::new("bash");
            sh.arg("-c").arg(script).env("LK", prog);
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            sh.stdout(Stdio::null()).spawn().unwrap()
        })
        .collect();
    let mut writers = writers;
    let mut syncs = 0;
    let mut rewritten = 0;
    let mut hb = logkeeper::LogWriter::open(&log).unwrap();
    while syncs < 10 || writers.iter_mut().any(|w| w.try_wait().unwrap().is_none()) {
        // A repeating key, so that every compaction has something to fold.
        hb.append(
            format!(r#"{{"change_type":"SET","item_type":"HB","item":{{"id":0}},"n":{syncs}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let d = env
            .lk(["sync", "now", "--force", "--json"])
            .status(0)
            .json();
        if d["runs"][0]["stats"]["rewritten"] == true {
            rewritten += 1;
        }
        syncs += 1;
    }
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    assert!(
        rewritten >= 10,
        "only {rewritten} compactions rewrote the log"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "the log ends in a torn line");
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
    }
    let keys: HashSet<(String, String)> = fold_file(&log)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            (v["item_type"].to_string(), v["item"]["id"].to_string())
        })
        .collect();
    for w in 0..2 {
        for i in 1..=per_writer {
            assert!(
                keys.contains(&(format!("\"W{w}\""), i.to_string())),
                "line {i} of writer {w} was lost"
            );
        }
    }
}

#[test]
fn append_rejects_invalid_json_and_writes_nothing() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::write(&log, "{\"a\":1}\n").unwrap();
    env.lk(["store", "add", "j", "--log"]).arg(&log).status(0);
    env.lk(["append", "j", "{\"ok\":1}", "{nope"])
        .status(2)
        .stderr_has("line 2 is not a single valid JSON value");
    env.lk(["append", "j"])
        .stdin("{\"b\":1}\n\n")
        .status(2)
        .stderr_has("empty line");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "{\"a\":1}\n");
    env.lk(["append", "j"]).stdin("{\"b\":1}\n[2]\n").status(0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "{\"a\":1}\n{\"b\":1}\n[2]\n"
    );
}

#[test]
fn append_after_a_torn_line_starts_a_new_line() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::write(&log, "{\"a\":1}\n{\"a\":").unwrap();
    env.lk(["store", "add", "j", "--log"]).arg(&log).status(0);
    env.lk(["append", "j", "{\"b\":2}"]).status(0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "{\"a\":1}\n{\"a\":\n{\"b\":2}\n"
    );
}

#[test]
fn library_writer_follows_a_swapped_file() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store("m", &log);
    let mut w = logkeeper::LogWriter::open(&log).unwrap();
    let line = |i: u32| {
        format!(
            r#"{{"change_type":"SET","item_type":"T","item":{{"id":{}}},"n":{i}}}"#,
            i % 3
        )
    };
    for i in 0..10 {
        w.append(line(i).as_bytes()).unwrap();
    }
    env.lk(["sync", "now", "--force"]).status(0);
    // The writer's fd points at the rotated inode now; it must follow the path.
    w.append(line(10).as_bytes()).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with(&format!("{}\n", line(10))), "{text}");
    assert_eq!(text.lines().count(), 4);
}

#[test]
fn late_writes_of_a_writer_that_ignores_the_lock_are_carried_and_reported() {
    use std::io::Write;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store("m", &log);
    // A rogue writer: one fd held open, never locked, never re-checked.
    let mut rogue = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let line =
        |i: u32| format!(r#"{{"change_type":"SET","item_type":"Rogue","item":{{"id":{i}}}}}"#);
    writeln!(rogue, "{}", line(0)).unwrap();
    env.lk(["sync", "now", "--force"]).status(0);
    // After the swap its writes land in the rotated file...
    for i in 1..=5 {
        writeln!(rogue, "{}", line(i)).unwrap();
    }
    writeln!(rogue, "{{not json").unwrap();
    write!(rogue, "{{\"partial").unwrap();
    // ...and the next run carries the complete ones into the live log.
    let d = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json();
    let s = &d["runs"][0]["stats"];
    assert_eq!(s["late_lines_carried"], 5);
    assert_eq!(s["late_lines_quarantined"], 1);
    let keys: Vec<String> = fold_file(&log)
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .filter(|l| l.contains("Rogue"))
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    env.lk(["status"])
        .status(0)
        .stdout_has("does not take the lock appended 6 line(s)")
        .stdout_has("at the swap point");
    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert!(q.iter().any(|e| e.bytes() == b"{not json"));
    // Once the rogue finishes its line (still in the first rotated file),
    // the next run carries that too, and only once.
    writeln!(rogue, "\":1}}").unwrap();
    let d = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json();
    assert_eq!(d["runs"][0]["stats"]["late_lines_carried"], 1);
    let d = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json();
    assert_eq!(d["runs"][0]["stats"]["late_lines_carried"], 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("{\"partial\":1}\n").count(), 1, "{text}");
}
