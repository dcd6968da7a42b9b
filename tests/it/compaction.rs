//! The job on real files: G1 (fold preserved), G3 (bad input kept), G4
//! (byte-exact, mode kept), rotation, pruning, min_growth.

use crate::common::*;

#[test]
fn fold_of_new_log_equals_fold_of_old_and_torn_tail_survives() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 200_000, 20_000, 5, true);
    set_mode(&log, 0o640);
    let before = std::fs::read(&log).unwrap();
    env.keyed_store("m", &log);

    let done = env.lk(["sync", "now", "--force", "--json"]).status(0);
    let rec = &done.json()["runs"][0];
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["stats"]["quarantined"], 5);

    let after = std::fs::read(&log).unwrap();
    assert_eq!(
        reference_fold(&after),
        reference_fold(&before),
        "G1: fold changed"
    );
    assert!(after.len() < before.len() / 4, "nothing was compacted");
    // The torn last line stays, byte for byte, for its writer.
    let torn = &before[before.iter().rposition(|&b| b == b'\n').unwrap() + 1..];
    assert!(!torn.is_empty());
    assert!(after.ends_with(torn));
    assert_eq!(rec["stats"]["tail_bytes"], torn.len());
    // G4: surviving lines are exactly the reference's, in the same order.
    let snapshot = &after[..after.len() - torn.len()];
    let expected: Vec<u8> = reference_fold(&before)
        .into_iter()
        .flat_map(|mut l| {
            l.push(b'\n');
            l
        })
        .collect();
    assert_eq!(snapshot, expected.as_slice());
    assert_eq!(mode(&log), 0o640, "G4: mode changed");

    // The rotated file is the old log, byte for byte.
    let rot = rotated(&log);
    assert_eq!(rot.len(), 1);
    assert_eq!(std::fs::read(&rot[0]).unwrap(), before);
    assert!(temps(&log).is_empty());
}

#[test]
fn malformed_lines_are_quarantined_with_their_origin() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 20_000, 2_000, 5, false);
    let before = std::fs::read(&log).unwrap();
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "--force"])
        .status(0)
        .stdout_has("5 quarantined");

    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert_eq!(q.len(), 5);
    for e in &q {
        let at = e.offset as usize;
        let line = &before[at..at + e.length as usize];
        assert_eq!(e.bytes(), line, "quarantined bytes differ from the source");
        assert_eq!(before[at + e.length as usize], b'\n');
        assert_eq!(e.source, log);
        assert!(serde_json::from_slice::<serde_json::Value>(line).is_err());
    }
    let after = std::fs::read_to_string(&log).unwrap();
    assert!(
        after
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn lines_without_the_key_stay_in_place() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::write(
        &log,
        concat!(
            "{\"item_type\":\"T\",\"item\":{\"id\":1},\"v\":1}\n",
            "{\"note\":\"no key here\"}\n",
            "{\"item_type\":\"T\",\"item\":{\"id\":1},\"v\":2}\n",
            "{\"item_type\":\"T\",\"item\":{\"id\":\"1\"},\"v\":3}\n",
        ),
    )
    .unwrap();
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        concat!(
            "{\"note\":\"no key here\"}\n",
            "{\"item_type\":\"T\",\"item\":{\"id\":1},\"v\":2}\n",
            "{\"item_type\":\"T\",\"item\":{\"id\":\"1\"},\"v\":3}\n",
        )
    );
}

#[test]
fn private_log_stays_private() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 5_000, 500, 2, true);
    set_mode(&log, 0o600);
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&rotated(&log)[0]), 0o600);
    assert_eq!(mode(&env.path("events.jsonl.quarantine")), 0o600);
    assert_eq!(mode(&env.path("events.jsonl.lock")) & 0o077, 0);
    assert_eq!(mode(&env.state()), 0o700);
}

#[test]
fn rotated_files_beyond_keep_rotated_are_pruned() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store("m", &log);
    let mut all = Vec::new();
    for i in 0..5 {
        // Each run needs something to fold away.
        env.lk(["append", "m"])
            .arg(format!(r#"{{"change_type":"SET","item_type":"Task","item":{{"id":"task-00000001","n":{i}}}}}"#))
            .status(0);
        env.lk(["sync", "now", "--force"]).status(0);
        all.extend(rotated(&log));
    }
    all.sort();
    all.dedup();
    let left = rotated(&log);
    assert_eq!(all.len(), 5);
    assert_eq!(left, all[2..].to_vec(), "the newest 3 are kept");
}

#[test]
fn min_growth_skips_until_the_log_grew_and_force_ignores_it() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 4_000, 100, 0, false);
    env.keyed_store("m", &log);
    let mut cfg = std::fs::read_to_string(env.config()).unwrap();
    cfg.push_str("min_growth = 0.5\n");
    env.write_config(&cfg);

    env.lk(["sync", "now"]).status(0).stdout_has("m: ok");
    env.lk(["sync", "now", "--json"]).status(0).json()["runs"][0]["outcome"]
        .as_str()
        .map(|o| assert_eq!(o, "skipped"))
        .unwrap();
    let d = env.lk(["status", "--json"]).status(0).json();
    assert_eq!(d["stores"][0]["last_run"]["outcome"], "skipped");
    assert!(
        d["stores"][0]["last_run"]["reason"]
            .as_str()
            .unwrap()
            .contains("min_growth")
    );
    env.lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json()["runs"][0]["outcome"]
        .as_str()
        .map(|o| assert_eq!(o, "ok"))
        .unwrap();
}

#[test]
fn append_only_store_keeps_every_valid_line_and_quarantines_the_rest() {
    let env = Env::new();
    let log = env.path("journal.jsonl");
    std::fs::write(&log, "{\"a\":1}\n{\"a\":1}\nnot json\n[1,2]\n{\"torn\":").unwrap();
    env.lk(["store", "add", "j", "--log"]).arg(&log).status(0);
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "{\"a\":1}\n{\"a\":1}\n[1,2]\n{\"torn\":"
    );
    assert_eq!(
        logkeeper::testing::read_quarantine(&env.path("journal.jsonl.quarantine"))
            .unwrap()
            .len(),
        1
    );
    // Nothing to do the second time: the log is left alone.
    let d = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json();
    assert_eq!(d["runs"][0]["stats"]["rewritten"], false);
}

#[test]
fn replay_prints_the_fold() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 10_000, 1_000, 2, true);
    env.keyed_store("m", &log);
    let d = env.lk(["replay", "m"]).status(0).stderr_has("2 malformed");
    let expected: Vec<u8> = fold_file(&log)
        .into_iter()
        .flat_map(|mut l| {
            l.push(b'\n');
            l
        })
        .collect();
    assert_eq!(d.out.stdout, expected);
}

/// A compaction records how many keys its fold's maps held
/// (`compaction.json`, `map_keys`), and the next run starts its maps with
/// that much room. The count only sizes the maps: a wrong one (far too
/// many for the log, or too few) gives the same fold.
#[test]
fn the_last_runs_key_count_sizes_the_next_fold_and_a_wrong_one_changes_nothing() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 60_000, 6_000, 0, false);
    let before = std::fs::read(&log).unwrap();
    env.keyed_store("m", &log);
    env.lk(["sync", "now", "--force"]).status(0);
    let baseline = env.state().join("stores/m/compaction.json");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    let held = recorded["map_keys"].as_u64().expect("map_keys recorded");
    assert!((1000..=6_000).contains(&held), "map_keys {held}");
    let folded = std::fs::read(&log).unwrap();
    assert_eq!(reference_fold(&folded), reference_fold(&before));

    for wrong in [1u64, 1 << 40] {
        std::fs::write(&log, &before).unwrap();
        let mut b = recorded.clone();
        b["map_keys"] = wrong.into();
        std::fs::write(&baseline, b.to_string()).unwrap();
        env.lk(["sync", "now", "--force"]).status(0);
        let after = std::fs::read(&log).unwrap();
        assert_eq!(after, folded, "map_keys {wrong}: another fold");
    }
}
