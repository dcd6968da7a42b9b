//! Retention and compaction of a segmented store, run 40 times while a
//! change-feed writer (a separate process) keeps writing, most runs
//! SIGKILLed at a random instant. `LOGKEEPER_KILL_SEED` replays a sequence;
//! `LOGKEEPER_LONG_TESTS=1` makes it 300 runs.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logkeeper::testing::XorShift;

use super::*;

fn runs() -> usize {
    if std::env::var("LOGKEEPER_LONG_TESTS").is_ok_and(|v| v == "1") {
        300
    } else {
        40
    }
}

fn seed() -> u64 {
    let seed = std::env::var("LOGKEEPER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("LOGKEEPER_KILL_SEED={seed}");
    seed
}

/// The writer process; it checks on its own that its active file is never
/// touched (same inode, exactly its bytes) and exits 3 if it was.
fn start_writer(dir: &Path, ledger: &Path, roll: u64, keys: u64) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new("python3")
        .arg(WRITER)
        .arg(dir)
        .arg(ledger)
        .args([roll.to_string(), keys.to_string(), "300".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed by the segmented-store tests (apt-get install python3)");
    wait_for(
        "the writer's first segments",
        Duration::from_secs(20),
        || segments(dir).len() >= 3,
    );
    child
}

/// Stop the writer (SIGTERM: it finishes its line and checks its active
/// file); returns the last seq it wrote and how many files it made.
fn stop_writer(mut child: Child) -> (u64, u64) {
    signal(child.id(), libc::SIGTERM);
    let st = wait_exit(&mut child, Duration::from_secs(20));
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success(), "the writer failed ({st}): {err}");
    let mut it = out.split_whitespace().map(|w| w.parse().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Run `sync now` `runs` times, killing three runs in four at a random
/// instant within 1.2x an undisturbed run; `check` after each, then wait
/// for the writer to roll to a new segment, so every run has new sealed
/// files to handle. Returns how many kills landed while the run was still
/// going.
fn runs_with_kills(
    env: &Env,
    dir: &Path,
    runs: usize,
    rng: &mut XorShift,
    mut check: impl FnMut(usize),
) -> usize {
    let t = Instant::now();
    env.lk(["sync", "now", "--force", "--wait"]).status(0);
    let full = t.elapsed();
    let mut mid_run = 0;
    for k in 0..runs {
        let mut child = env.lk(["sync", "now", "--force", "--wait"]).spawn();
        if k % 4 != 3 {
            let at = Duration::from_micros(rng.next_u64() % (full.as_micros() as u64 * 6 / 5 + 1));
            // The kill instant itself is the randomised variable under test.
            std::thread::sleep(at);
            if child.try_wait().unwrap().is_none() {
                mid_run += 1;
            }
            let _ = child.kill();
        }
        let st = child.wait().unwrap();
        assert!(
            k % 4 != 3 || st.success(),
            "run {k} (not killed) failed: {st}"
        );
        check(k);
        let newest = segments(dir).last().unwrap().0;
        wait_for("the writer to roll", Duration::from_secs(20), || {
            segments(dir).last().unwrap().0 > newest
        });
    }
    mid_run
}

/// Every run record (a torn history line, from a run killed mid-append,
/// is skipped).
fn records(env: &Env) -> Vec<Value> {
    std::fs::read_to_string(env.state().join("stores/feed/history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// No run found an event out of seq order (the writer never writes one,
/// and neither retention nor compaction may make one).
fn assert_seqs_in_order(env: &Env) {
    for r in records(env) {
        let p = &r["stats"]["segments"]["seq_problems"];
        assert!(
            p.as_array().is_none_or(|a| a.is_empty()),
            "a run reported seqs out of order: {p}"
        );
    }
}

/// The pruned ranges `[seq, next_seq)` named by all run records.
fn pruned_ranges(env: &Env) -> Vec<(u64, u64)> {
    let history = std::fs::read_to_string(env.state().join("stores/feed/history.jsonl")).unwrap();
    // A run killed mid-append leaves a torn line; its prunes are named by
    // the next run's record.
    history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|r| {
            r["stats"]["segments"]["pruned"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|p| (p["seq"].as_u64().unwrap(), p["next_seq"].as_u64().unwrap()))
        .collect()
}

#[test]
fn retention_under_random_kills_keeps_a_gap_free_suffix_and_names_every_prune() {
    let mut rng = XorShift::new(seed());
    let env = Env::new();
    let dir = env.path("feed");
    let ledger = env.path("written.jsonl");
    seg_store(&env, &dir, "keep_files = 4\nseq = \"/seq\"\n");
    let writer = start_writer(&dir, &ledger, 2 << 10, 0);

    let mid_run = runs_with_kills(&env, &dir, runs(), &mut rng, |k| {
        // Mid-run (after each kill): the retained segments are a gap-free run
        // starting at the smallest name.
        let oldest = segments(&dir)[0].0;
        let got = read_since(&dir, oldest - 1);
        assert_eq!(
            got[0], oldest,
            "after run {k}: the oldest name is not the oldest event"
        );
        for w in got.windows(2) {
            assert_eq!(w[1], w[0] + 1, "after run {k}: a gap or repeat in {w:?}");
        }
    });
    let (last, files) = stop_writer(writer);
    env.lk(["sync", "now", "--force"]).status(0);

    let segs = segments(&dir);
    let oldest = segs[0].0;
    assert_eq!(
        segs.len(),
        5,
        "keep_files = 4 plus the active segment: {segs:?}"
    );
    // For every retained seq as a cursor, read_since returns exactly the
    // events after it, up to the newest written.
    for cursor in (oldest - 1)..last {
        let got = read_since(&dir, cursor);
        let want: Vec<u64> = (cursor + 1..=last).collect();
        assert!(
            got == want,
            "read_since({cursor}) is not {}..={last}",
            cursor + 1
        );
    }
    // Every event written is retained or in a segment a run record names as
    // pruned by policy.
    let pruned = pruned_ranges(&env);
    for s in 1..oldest {
        assert!(
            pruned.iter().any(|&(a, b)| a <= s && s < b),
            "event {s} is neither retained (oldest {oldest}) nor in a pruned segment named by a run record (records name {pruned:?})"
        );
    }
    assert_seqs_in_order(&env);
    // The ledger is what the writer wrote: all of it accounted for, and the
    // retained segments hold its tail byte for byte.
    let written = complete_lines(&ledger);
    assert_eq!(written.len() as u64, last);
    assert!(
        dir_lines(&dir) == written[(oldest - 1) as usize..],
        "the retained segments differ from what the writer wrote"
    );
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".lk-tmp.")),
        "temp files left"
    );
    eprintln!(
        "segments retention: {} runs ({mid_run} killed mid-run), {last} events in {files} files written, {} named as pruned",
        runs() + 1,
        pruned.len()
    );
}

#[test]
fn compaction_under_random_kills_keeps_the_fold_of_everything_written() {
    let mut rng = XorShift::new(seed());
    let env = Env::new();
    let dir = env.path("feed");
    let ledger = env.path("written.jsonl");
    seg_store(
        &env,
        &dir,
        "seq = \"/seq\"\nkey = [\"/account\"]\nop = \"/op\"\ndelete = [\"CLOSE\"]\nmin_dirty_ratio = 0.0\nmin_compaction_lag = \"0s\"\ndelete_retention = \"0s\"\nfile_delete_delay = \"0s\"\n",
    );
    let writer = start_writer(&dir, &ledger, 2 << 10, 40);

    let mid_run = runs_with_kills(&env, &dir, runs(), &mut rng, |k| {
        // Mid-run (after each kill), the directory folds to what was written
        // up to its newest event: duplicates are allowed, stale or missing
        // events are not.
        let lines = dir_lines(&dir);
        let max = lines.iter().map(|l| seq_of_line(l)).max().unwrap();
        let mut written = Vec::new();
        wait_for("the ledger to catch up", Duration::from_secs(10), || {
            written = complete_lines(&ledger);
            written.len() as u64 >= max
        });
        written.truncate(max as usize);
        assert!(
            fold_accounts(&lines) == fold_accounts(&written),
            "after run {k}: the directory does not fold to the events written up to seq {max}"
        );
    });
    let (last, files) = stop_writer(writer);
    env.lk(["sync", "now", "--force"]).status(0);

    let written = complete_lines(&ledger);
    assert_eq!(written.len() as u64, last);
    let want = fold_accounts(&written);
    let lines = dir_lines(&dir);
    assert!(
        fold_accounts(&lines) == want,
        "the directory's fold differs from the fold of everything written"
    );
    // `replay` prints that same state.
    let out = env.lk(["replay", "feed"]).status(0).out.stdout;
    let replayed: BTreeSet<Vec<u8>> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(replayed, want.values().cloned().collect::<BTreeSet<_>>());
    // Readers still see increasing seqs up to the newest written, and the
    // smallest name is still the first event.
    let got = read_since(&dir, 0);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "seqs not increasing");
    assert_eq!(*got.last().unwrap(), last);
    assert_eq!(
        segments(&dir)[0].0,
        1,
        "compaction renamed the oldest segment"
    );
    assert_seqs_in_order(&env);
    // Compaction really ran and shrank the directory.
    let history = std::fs::read_to_string(env.state().join("stores/feed/history.jsonl")).unwrap();
    let compactions = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| {
            !r["stats"]["segments"]["compaction"]["outputs"]
                .as_array()
                .is_none_or(|o| o.is_empty())
        })
        .count();
    assert!(
        compactions >= 3,
        "only {compactions} runs compacted anything"
    );
    assert!(
        lines.len() < written.len() / 2,
        "{} lines left of {}",
        lines.len(),
        written.len()
    );
    eprintln!(
        "segments compaction: {} runs ({mid_run} killed mid-run, {compactions} recorded compactions), {last} events in {files} files written, {} lines left in {} files",
        runs() + 1,
        lines.len(),
        segments(&dir).len()
    );
}
