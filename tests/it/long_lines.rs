//! A valid line far longer than the read buffer: every command that reads
//! the log line by line (the run, the dry run, `replay --as-of`) keeps its
//! memory flat and its bytes exact.

use crate::common::*;

/// One 64 MiB valid event, keyed and timed: the dry run and `replay
/// --as-of` used to read it whole into a buffer that doubled until it fit
/// (128 MiB and more); through the fold's bounded reader they stay far
/// below that, and the line comes out byte for byte.
#[test]
fn a_huge_line_keeps_dry_run_and_replay_as_of_flat_and_exact() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store("m", &log);
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    env.write_config(&format!("{cfg}time = \"/ts\"\n"));
    let ev = |id: u32, v: u32, ts: i64, pad: &str| {
        format!(
            r#"{{"change_type":"SET","item_type":"T","item":{{"id":{id}}},"v":{v},"ts":{ts},"pad":"{pad}"}}"#
        )
    };
    let now = chrono::Utc::now().timestamp();
    let huge = ev(1, 1, now - 60, &"x".repeat(64 << 20));
    let later = ev(2, 2, now + 3600, "");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        writeln!(f, "{}", ev(1, 0, now - 120, "")).unwrap();
        writeln!(f, "{huge}").unwrap();
        writeln!(f, "{later}").unwrap();
    }

    let (code, dry_kib) = peak_rss_kib(&env, &["sync", "now", "m", "--dry-run"]);
    assert_eq!(code, 0);
    let d = env
        .lk(["sync", "now", "m", "--dry-run", "--json"])
        .status(0)
        .json()["dry_runs"][0]
        .clone();
    let sum = |k: &str| -> u64 {
        d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g[k].as_u64().unwrap())
            .sum()
    };
    // The huge line is one line, keyed, and supersedes id 1's first write.
    assert_eq!((sum("lines_in"), sum("superseded")), (3, 1), "{d}");

    // The state an hour before `later`: the huge line is the last write of
    // id 1, and `later` is skipped by its time.
    let at = chrono::DateTime::from_timestamp(now + 60, 0)
        .unwrap()
        .to_rfc3339();
    let out = env.lk(["replay", "m", "--as-of", &at]).status(0).out.stdout;
    assert_eq!(out, format!("{huge}\n").into_bytes());
    let (code, replay_kib) = peak_rss_kib(&env, &["replay", "m", "--as-of", &at]);
    assert_eq!(code, 0);

    for (what, kib) in [("dry run", dry_kib), ("replay --as-of", replay_kib)] {
        assert!(
            kib < 48 * 1024,
            "{what}: peak RSS {} MiB beside one 64 MiB line (bound 48 MiB)",
            kib / 1024
        );
    }
}
