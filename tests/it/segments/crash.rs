//! SIGKILL at each named point of a segmented store's run (feature
//! `failpoints`): the directory still folds to the original files minus a
//! pruned prefix, the smallest name is still the oldest event, and the next
//! run finishes the job, names every prune and quarantines once.

use std::collections::BTreeMap;

use super::*;

/// The latest valid line per account over `lines` (malformed lines skipped,
/// as readers skip them), CLOSE removes.
fn fold_valid(lines: &[Vec<u8>]) -> BTreeMap<String, Vec<u8>> {
    let valid: Vec<Vec<u8>> = lines
        .iter()
        .filter(|l| serde_json::from_slice::<Value>(l).is_ok())
        .cloned()
        .collect();
    fold_accounts(&valid)
}

/// 9 segments of 20 events over 15 accounts (every 6th a CLOSE); the third
/// holds a malformed line.
fn setup(env: &Env) -> (PathBuf, Vec<Vec<Vec<u8>>>) {
    let dir = env.path("feed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut seq = 1u64;
    for f in 0..9 {
        let mut lines = Vec::new();
        let start = seq;
        for _ in 0..20 {
            let op = if seq.is_multiple_of(6) {
                "CLOSE"
            } else {
                "SET"
            };
            lines.push(
                format!(
                    r#"{{"seq":{seq},"op":"{op}","account":"a{}","v":{seq}}}"#,
                    seq % 15
                )
                .into_bytes(),
            );
            seq += 1;
        }
        if f == 2 {
            lines.insert(5, br#"{"seq":"broken","#.to_vec());
        }
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        std::fs::write(dir.join(format!("events-{start:020}.jsonl")), text).unwrap();
        files.push(lines);
    }
    seg_store(
        env,
        &dir,
        "keep_files = 6\nkey = [\"/account\"]\nop = \"/op\"\ndelete = [\"CLOSE\"]\nmin_dirty_ratio = 0.0\ndelete_retention = \"0s\"\nfile_delete_delay = \"0s\"\n",
    );
    (dir, files)
}

#[test]
fn a_segmented_run_killed_at_each_point_leaves_a_consistent_directory() {
    // Every crash point of a segmented run, from `Failpoint::ALL`.
    for point in crash_points(logkeeper::testing::FailpointPipeline::Segmented) {
        let point = point.name();
        let env = Env::new();
        let (dir, files) = setup(&env);
        let names_before: Vec<u64> = segments(&dir).iter().map(|s| s.0).collect();
        let out = env
            .lk(["sync", "now", "feed"])
            .env("LOGKEEPER_FAILPOINT", point)
            .output();
        assert_eq!(
            out.out.status.code(),
            None,
            "{point}: the run was not killed"
        );

        // Consistent: a suffix of the original names is left, and the
        // directory folds to the original files from its oldest one on.
        let names: Vec<u64> = segments(&dir).iter().map(|s| s.0).collect();
        let k = names_before.iter().position(|n| *n == names[0]).unwrap();
        assert!(
            names.iter().all(|n| names_before[k..].contains(n)),
            "{point}: names {names:?} are not a subset of the original suffix"
        );
        assert_eq!(
            fold_valid(&dir_lines(&dir)),
            fold_valid(&files[k..].concat()),
            "{point}: the directory no longer folds to its retained files"
        );

        // The next run finishes the job.
        env.lk(["sync", "now", "feed"]).status(0);
        let names: Vec<u64> = segments(&dir).iter().map(|s| s.0).collect();
        assert_eq!(
            names[0], names_before[2],
            "{point}: retention did not end at keep_files"
        );
        assert_eq!(
            fold_valid(&dir_lines(&dir)),
            fold_valid(&files[2..].concat()),
            "{point}: wrong fold after recovery"
        );
        assert!(names.len() < 7, "{point}: nothing was compacted: {names:?}");
        let history =
            std::fs::read_to_string(env.state().join("stores/feed/history.jsonl")).unwrap();
        let mut pruned: Vec<u64> = history
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|r| {
                r["stats"]["segments"]["pruned"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|p| p["seq"].as_u64().unwrap())
            .collect();
        pruned.sort();
        pruned.dedup();
        assert_eq!(
            pruned,
            names_before[..2],
            "{point}: prunes not named by the records"
        );
        let q = std::fs::read_to_string(dir.join("feed.quarantine")).unwrap();
        assert_eq!(
            q.lines().count(),
            1,
            "{point}: quarantined {} times: {q}",
            q.lines().count()
        );
        let left = temps_under(&[&dir, &env.state()]);
        assert!(left.is_empty(), "{point}: temp files left: {left:?}");
    }
}
