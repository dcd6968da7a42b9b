//! Retention by each limit, health of sealed segments, what is never
//! touched, config, status and the lock of a segmented store.

use std::time::{Duration, SystemTime};

use super::*;

fn age(p: &Path, days: u64) {
    let f = std::fs::File::options().append(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

fn names(dir: &Path) -> Vec<u64> {
    segments(dir).into_iter().map(|(s, _)| s).collect()
}

fn pruned_seqs(env: &Env) -> Vec<u64> {
    last_segments(env)["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn retention_by_keep_files_prunes_the_oldest_sealed_segments_and_records_them() {
    let env = Env::new();
    let dir = env.path("feed");
    for i in 0..10 {
        write_segment(&dir, 1 + i * 10, 10);
    }
    seg_store(&env, &dir, "keep_files = 3");
    env.lk(["sync", "now", "feed"])
        .status(0)
        .stdout_has("pruned 6 segment(s) (keep_files")
        .stdout_has("oldest seq 1 -> 61");
    assert_eq!(names(&dir), [61, 71, 81, 91]);
    assert_eq!(pruned_seqs(&env), [1, 11, 21, 31, 41, 51]);
    let seg = last_segments(&env);
    assert_eq!(seg["pruned"][5]["next_seq"], 61);
    assert_eq!(seg["pruned"][0]["reason"], "keep_files");
    assert_eq!(seg["dir"]["oldest_seq"], 61);
    assert_eq!(read_since(&dir, 60), (61..=100).collect::<Vec<_>>());
    // keep_files = 0 still keeps the active segment.
    seg_store(&env, &dir, "keep_files = 0");
    env.lk(["sync", "now", "feed"]).status(0);
    assert_eq!(names(&dir), [91]);
}

#[test]
fn retention_by_max_age_prunes_only_an_old_prefix() {
    let env = Env::new();
    let dir = env.path("feed");
    let segs: Vec<_> = (0..6)
        .map(|i| write_segment(&dir, 1 + i * 10, 10))
        .collect();
    for (i, p) in segs.iter().enumerate() {
        // 30 days old, except the fourth (2 days); the active one is old too.
        age(p, if i == 3 { 2 } else { 30 });
    }
    seg_store(&env, &dir, "max_age = \"14d\"");
    env.lk(["sync", "now", "feed"]).status(0);
    // The old file after the young one stays: deleting it would leave a gap.
    assert_eq!(names(&dir), [31, 41, 51]);
    assert_eq!(pruned_seqs(&env), [1, 11, 21]);
    assert_eq!(last_segments(&env)["pruned"][0]["reason"], "max_age");
}

#[test]
fn retention_by_max_bytes_counts_every_segment_and_spares_the_active() {
    let env = Env::new();
    let dir = env.path("feed");
    for i in 0..8 {
        write_segment(&dir, 1 + i * 100, 100);
    }
    let size = std::fs::metadata(dir.join("events-00000000000000000001.jsonl"))
        .unwrap()
        .len();
    // Room for three and a half segments: four are pruned... from the oldest.
    seg_store(&env, &dir, &format!("max_bytes = {}", size * 7 / 2));
    env.lk(["sync", "now", "feed"]).status(0);
    let left = names(&dir);
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left, [501, 601, 701]);
    assert_eq!(last_segments(&env)["pruned"][0]["reason"], "max_bytes");
    // A limit below one segment leaves the active segment alone.
    seg_store(&env, &dir, "max_bytes = \"1KiB\"");
    env.lk(["sync", "now", "feed"]).status(0);
    assert_eq!(names(&dir), [701]);
}

#[test]
fn malformed_line_in_a_sealed_segment_is_quarantined_once_with_its_origin() {
    let env = Env::new();
    let dir = env.path("feed");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("events-00000000000000000001.jsonl");
    let good1 = "{\"seq\":1}\n";
    let broken = "{\"seq\":2,\"x\":\n";
    let good3 = "{\"seq\":3}\n";
    let torn = "{\"seq\":4,\"y";
    std::fs::write(&bad, format!("{good1}{broken}{good3}{torn}")).unwrap();
    set_mode(&bad, 0o640);
    let active = dir.join("events-00000000000000000005.jsonl");
    std::fs::write(&active, "{\"seq\":5}\n{\"seq\":6,\"torn").unwrap();
    let active_before = std::fs::read(&active).unwrap();
    seg_store(&env, &dir, "");

    env.lk(["sync", "now", "feed"])
        .status(0)
        .stdout_has("2 quarantined");
    env.lk(["sync", "now", "feed"]).status(0);
    // Quarantined once, with origin: the segment and the byte offset.
    let q = std::fs::read_to_string(dir.join("feed.quarantine")).unwrap();
    let entries: Vec<Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{q}");
    assert_eq!(entries[0]["source"], bad.to_str().unwrap());
    assert_eq!(entries[0]["offset"], good1.len());
    assert_eq!(entries[0]["line"], broken.trim_end());
    assert_eq!(
        entries[1]["offset"],
        good1.len() + broken.len() + good3.len()
    );
    assert_eq!(entries[1]["line"], torn);
    // The sealed segment keeps its complete lines, name and mode.
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        format!("{good1}{good3}")
    );
    assert_eq!(mode(&bad), 0o640);
    // The active segment, torn line and all, is untouched.
    assert_eq!(std::fs::read(&active).unwrap(), active_before);
    // The second run had nothing to read.
    assert_eq!(last_segments(&env)["validated"], 0);
    assert_eq!(env.last_run("feed").unwrap()["reason"], "nothing to do");
}

#[test]
fn a_sealed_segment_open_for_writing_stops_retention_before_it() {
    let env = Env::new();
    let dir = env.path("feed");
    let segs: Vec<_> = (0..5)
        .map(|i| write_segment(&dir, 1 + i * 10, 10))
        .collect();
    // A process still holding the second segment open for writing.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys,time; fd=os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND); print('open', flush=True); time.sleep(60)",
        ])
        .arg(&segs[1])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed by the segmented-store tests");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    seg_store(&env, &dir, "keep_files = 0");
    env.lk(["sync", "now", "feed"]).status(0);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(names(&dir), [11, 21, 31, 41]);
    let seg = last_segments(&env);
    assert_eq!(seg["open_for_writing"][0], segs[1].to_str().unwrap());
    env.lk(["status", "feed"])
        .status(0)
        .stdout_has("open for writing");
    // Once it is closed, the next run goes on.
    env.lk(["sync", "now", "feed"]).status(0);
    assert_eq!(names(&dir), [41]);
}

#[test]
fn names_that_do_not_match_and_duplicate_seqs_are_reported_never_deleted() {
    let env = Env::new();
    let dir = env.path("feed");
    for i in 0..4 {
        write_segment(&dir, 1 + i * 10, 10);
    }
    std::fs::write(dir.join("events-1.jsonl"), "{\"seq\":1}\n").unwrap();
    std::fs::write(dir.join("events-latest.jsonl"), "{}\n").unwrap();
    std::fs::write(dir.join("README"), "mine\n").unwrap();
    seg_store(&env, &dir, "keep_files = 0");
    env.lk(["sync", "now", "feed"]).status(0);
    assert!(dir.join("events-latest.jsonl").exists() && dir.join("README").exists());
    let out = env.lk(["status", "feed"]).status(0);
    out.stdout_has("2 file(s) in")
        .stdout_has("do not match events-{seq}.jsonl")
        .stdout_has("README");
    let j = env.lk(["status", "--json", "feed"]).status(0).json();
    let d = &j["stores"][0]["segments"];
    assert_eq!(d["unmatched"].as_array().unwrap().len(), 2);
    // The duplicate was pruned in seq order along with the other old ones.
    assert_eq!(d["files"], 1);
    assert_eq!(d["oldest_seq"], 31);
    // A duplicate seq that stays is reported.
    write_segment(&dir, 40, 1);
    std::fs::write(dir.join("events-40.jsonl"), "{\"seq\":40}\n").unwrap();
    env.lk(["status", "feed"])
        .status(0)
        .stdout_has("seqs are not increasing across files");
}

#[test]
fn status_and_json_describe_the_directory() {
    let env = Env::new();
    let dir = env.path("feed");
    for i in 0..4 {
        write_segment(&dir, 1 + i * 10, 10);
    }
    seg_store(&env, &dir, "schedule = \"*/30 * * * *\"");
    env.lk(["status", "feed"]).status(3).stdout_has("NEVER RUN");
    env.lk(["sync", "now", "feed"]).status(0);
    let j = env.lk(["status", "--json", "feed"]).status(0).json();
    let d = &j["stores"][0]["segments"];
    let size = |s: u64| {
        std::fs::metadata(dir.join(format!("events-{s:020}.jsonl")))
            .unwrap()
            .len()
    };
    assert_eq!(d["files"], 4);
    assert_eq!(d["bytes"], size(1) + size(11) + size(21) + size(31));
    assert_eq!(d["oldest_seq"], 1);
    assert_eq!(d["newest_seq"], 31);
    assert_eq!(
        d["active"],
        dir.join("events-00000000000000000031.jsonl")
            .to_str()
            .unwrap()
    );
    assert_eq!(d["active_bytes"], size(31));
    // No key: nothing is ever compacted.
    assert_eq!(d["bytes_since_compaction"], d["bytes"]);
    env.lk(["status", "feed"])
        .status(0)
        .stdout_has("segments: 4 file(s)")
        .stdout_has("seqs 1..31, active events-00000000000000000031.jsonl");
    // A failed run shows as failed: a malformed line in a new sealed
    // segment, and a full disk when it is quarantined.
    std::fs::write(dir.join("events-00000000000000000041.jsonl"), "{\"seq\":\n").unwrap();
    write_segment(&dir, 42, 1);
    env.lk(["sync", "now", "feed"])
        .env("LOGKEEPER_FAILPOINT", "quarantine-write:ENOSPC")
        .status(1)
        .stderr_has("feed.quarantine");
    env.lk(["status", "feed"]).status(1).stdout_has("FAILED");
    env.lk(["sync", "now", "feed"]).status(0);
    env.lk(["status", "feed"]).status(0);
}

#[test]
fn the_lock_is_a_dot_file_beside_the_segments_and_a_held_lock_is_busy() {
    let env = Env::new();
    let dir = env.path("feed");
    write_segment(&dir, 1, 1);
    seg_store(&env, &dir, "");
    let lock = dir.join(".feed.lock");
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed by the segmented-store tests");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    env.lk(["sync", "now", "feed"])
        .status(75)
        .stderr_has(".feed.lock");
    let _ = holder.kill();
    let _ = holder.wait();
    env.lk(["sync", "now", "feed"]).status(0);
    assert!(lock.exists());
    // The lock file is logkeeper's own: not reported as a stranger.
    let j = env.lk(["status", "--json", "feed"]).status(0).json();
    assert_eq!(
        j["stores"][0]["segments"]["unmatched"],
        serde_json::json!([])
    );
}

#[test]
fn config_takes_exactly_one_of_log_and_segments() {
    let env = Env::new();
    env.write_config(
        "[[store]]\nname = \"f\"\nlog = \"a.jsonl\"\nsegments = \"d/e-{seq}.jsonl\"\n",
    );
    env.lk(["status"])
        .status(2)
        .stderr_has("config.toml:4: store #1 `segments`: is set along with `log`");
    env.write_config("[[store]]\nname = \"f\"\nsegments = \"d/events.jsonl\"\n");
    env.lk(["status"])
        .status(2)
        .stderr_has("no `{seq}` placeholder");
    env.write_config(
        "[[store]]\nname = \"f\"\nsegments = \"d/e-{seq}\"\nmax_bytes = \"2 parsecs\"\n",
    );
    env.lk(["status"])
        .status(2)
        .stderr_has("config.toml:4: store #1 `max_bytes`");
    env.write_config("[[store]]\nname = \"f\"\nlog = \"a.jsonl\"\nkeep_files = 3\n");
    env.lk(["status"])
        .status(2)
        .stderr_has("`keep_files`: only applies to a segmented store");
}

#[test]
fn store_add_declares_a_segmented_store_with_its_retention() {
    let env = Env::new();
    std::fs::remove_file(env.config()).ok();
    env.lk([
        "store",
        "add",
        "feed",
        "--segments",
        "feed/events-{seq}.jsonl",
    ])
    .args([
        "--keep-files",
        "50",
        "--max-age",
        "14d",
        "--max-bytes",
        "2GiB",
    ])
    .args([
        "--key",
        "/account",
        "--min-compaction-lag",
        "1h",
        "--min-dirty-ratio",
        "0.3",
        "--seq",
        "/seq",
    ])
    .status(0)
    .stdout_has("added segmented store \"feed\"");
    let text = std::fs::read_to_string(env.config()).unwrap();
    for want in [
        "segments = ",
        "keep_files = 50",
        "max_age = \"14d\"",
        "max_bytes = \"2GiB\"",
        "min_compaction_lag = \"1h\"",
        "min_dirty_ratio = 0.3",
        "seq = \"/seq\"",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    assert!(!text.contains("log = "), "{text}");
    env.lk(["store", "list"]).status(0).stdout_has("segments ");
    env.lk(["store", "add", "x", "--log", "a", "--segments", "d/e-{seq}"])
        .status(2);
    env.lk(["append", "feed", "{}"])
        .status(2)
        .stderr_has("rotates itself");
}

#[test]
fn compacted_inputs_stay_for_file_delete_delay_and_the_fold_holds_meanwhile() {
    let env = Env::new();
    let dir = env.path("feed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut all = Vec::new();
    for f in 0..5u64 {
        let mut text = String::new();
        for i in 0..10u64 {
            let seq = 1 + f * 10 + i;
            let line = format!(r#"{{"seq":{seq},"op":"SET","account":"a{}"}}"#, seq % 4);
            text.push_str(&line);
            text.push('\n');
            all.push(line.into_bytes());
        }
        std::fs::write(dir.join(format!("events-{:020}.jsonl", 1 + f * 10)), text).unwrap();
    }
    let keyed = "key = [\"/account\"]\nop = \"/op\"\ndelete = [\"CLOSE\"]\nmin_dirty_ratio = 0.0\n";
    seg_store(&env, &dir, &format!("{keyed}file_delete_delay = \"1h\""));
    env.lk(["sync", "now", "feed"])
        .status(0)
        .stdout_has("compacted 4 segment(s) into 1");
    // The merged file took the first input's name; the others wait.
    assert_eq!(names(&dir), [1, 11, 21, 31, 41]);
    assert_eq!(fold_accounts(&dir_lines(&dir)), fold_accounts(&all));
    assert_eq!(
        complete_lines(&dir.join("events-00000000000000000001.jsonl")).len(),
        4
    );
    env.lk(["status", "feed"])
        .status(0)
        .stdout_has("3 compacted input(s) wait for file_delete_delay");
    env.lk(["sync", "now", "feed"]).status(0);
    assert_eq!(names(&dir), [1, 11, 21, 31, 41], "deleted before the delay");
    // Once the delay has passed (here: shortened), they go, oldest first.
    seg_store(&env, &dir, &format!("{keyed}file_delete_delay = \"0s\""));
    env.lk(["sync", "now", "feed"])
        .status(0)
        .stdout_has("deleted 3 compacted input(s)");
    assert_eq!(names(&dir), [1, 41]);
    assert_eq!(fold_accounts(&dir_lines(&dir)), fold_accounts(&all));
    let replayed = env.lk(["replay", "feed"]).status(0).stdout();
    assert_eq!(replayed.lines().count(), 4, "{replayed}");
}

#[test]
fn replay_without_a_key_prints_every_event_in_seq_order() {
    let env = Env::new();
    let dir = env.path("feed");
    for s in [100, 1, 21, 11] {
        write_segment(&dir, s, 10);
    }
    std::fs::write(
        dir.join("events-00000000000000000200.jsonl"),
        "{\"seq\":200}\n{\"seq\":201,\"to",
    )
    .unwrap();
    seg_store(&env, &dir, "");
    let out = env.lk(["replay", "feed"]).status(0).stdout();
    let seqs: Vec<u64> = out.lines().map(|l| seq_of_line(l.as_bytes())).collect();
    let want: Vec<u64> = (1..=30).chain(100..110).chain([200]).collect();
    assert_eq!(seqs, want);
}

#[test]
fn with_a_seq_pointer_events_out_of_order_are_reported_and_left_alone() {
    let env = Env::new();
    let dir = env.path("feed");
    std::fs::create_dir_all(&dir).unwrap();
    let seg = |start: u64, seqs: &[u64]| {
        let text: String = seqs.iter().map(|s| format!("{{\"seq\":{s}}}\n")).collect();
        let p = dir.join(format!("events-{start:020}.jsonl"));
        std::fs::write(&p, text).unwrap();
        p
    };
    seg(1, &[1, 2, 3]);
    let overlap = seg(11, &[11, 12, 25]); // 25 belongs past the next name (21)
    let repeat = seg(21, &[21, 22, 22, 23]);
    seg(31, &[31]);
    let before = (
        std::fs::read(&overlap).unwrap(),
        std::fs::read(&repeat).unwrap(),
    );
    seg_store(&env, &dir, "seq = \"/seq\"");
    env.lk(["sync", "now", "feed"]).status(0);
    let problems = last_segments(&env)["seq_problems"].clone();
    let got: Vec<(String, u64, u64)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["offset"].as_u64().unwrap(),
                p["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (overlap.to_str().unwrap().to_string(), 22, 25),
            (repeat.to_str().unwrap().to_string(), 22, 22),
        ]
    );
    assert!(
        problems[0]["problem"]
            .as_str()
            .unwrap()
            .contains("next file's seq (21)")
    );
    assert_eq!(
        (
            std::fs::read(&overlap).unwrap(),
            std::fs::read(&repeat).unwrap()
        ),
        before
    );
    env.lk(["status", "feed"])
        .status(0)
        .stdout_has("seqs are not increasing across files: 2 event(s) out of order");
    // `seq` is only for segmented stores.
    env.write_config("[[store]]\nname = \"f\"\nlog = \"a.jsonl\"\nseq = \"/seq\"\n");
    env.lk(["status"])
        .status(2)
        .stderr_has("`seq`: only applies to a segmented store");
}

/// The seq check of a sealed segment (`seq = "/seq"`) read each line whole
/// into a buffer that doubled until the line fit: a 96 MiB line took over
/// 128 MiB. It now holds a bounded buffer, as the fold does, and streams a
/// longer line through the validator; the event's seq is still checked.
#[test]
fn seq_check_of_a_huge_line_keeps_memory_flat() {
    let env = Env::new();
    let dir = env.path("feed");
    std::fs::create_dir_all(&dir).unwrap();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(dir.join(format!("events-{:020}.jsonl", 1))).unwrap(),
        );
        writeln!(f, r#"{{"seq":1,"account":"a"}}"#).unwrap();
        // 5, then 3: the check must read the huge line's seq to report
        // the event after it.
        write!(f, r#"{{"seq":5,"account":"a","pad":""#).unwrap();
        let chunk = vec![b'p'; 1 << 20];
        for _ in 0..96 {
            f.write_all(&chunk).unwrap();
        }
        writeln!(f, r#""}}"#).unwrap();
        writeln!(f, r#"{{"seq":3,"account":"a"}}"#).unwrap();
    }
    std::fs::write(
        dir.join(format!("events-{:020}.jsonl", 10)),
        "{\"seq\":10,\"account\":\"b\"}\n",
    )
    .unwrap();
    seg_store(&env, &dir, "seq = \"/seq\"");
    let (code, peak_kib) = peak_rss_kib(&env, &["sync", "now", "feed"]);
    assert_eq!(code, 0);
    let problems = last_segments(&env)["seq_problems"].clone();
    let got: Vec<(u64, u64, String)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["offset"].as_u64().unwrap(),
                p["seq"].as_u64().unwrap(),
                p["problem"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let size = std::fs::metadata(dir.join(format!("events-{:020}.jsonl", 1)))
        .unwrap()
        .len();
    let last = r#"{"seq":3,"account":"a"}"#.len() as u64 + 1;
    assert_eq!(
        got,
        [(
            size - last,
            3,
            "is not greater than the previous event's (5)".to_string()
        )],
        "{problems}"
    );
    assert!(
        peak_kib < 48 * 1024,
        "peak RSS {} MiB for a 96 MiB line (bound 48 MiB)",
        peak_kib / 1024
    );
}
