//! G1 + G2 under random kills: `sync now` is SIGKILLed at random instants
//! while it compacts and a writer appends; after every kill the log must
//! still fold to the same state plus every acknowledged append.
//!
//! CI runs 50 kills on a ~10 MB log; `LOGKEEPER_LONG_TESTS=1` runs 60 kills
//! on a ~100 MB log. `LOGKEEPER_KILL_SEED` replays a given sequence.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use logkeeper::testing::XorShift;

use crate::common::*;

type Key = (String, String);

fn keys_of(lines: &[Vec<u8>]) -> (HashSet<Key>, HashSet<u64>) {
    let mut base = HashSet::new();
    let mut writer = HashSet::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap();
        match v["item_type"].as_str() {
            Some("W") => {
                writer.insert(v["item"]["id"].as_u64().unwrap());
            }
            Some("HB") => {}
            _ => {
                base.insert((v["item_type"].to_string(), v["item"]["id"].to_string()));
            }
        }
    }
    (base, writer)
}

/// The swap (with its carry window): issue 8's kill test.
#[test]
fn sync_killed_at_random_instants_loses_nothing() {
    killed_at_random_instants("swap", 50);
}

/// The in-place rewrite (issue 14): killed anywhere in its append, copy
/// down or truncate, the log still folds to the same state plus every
/// acknowledged append.
#[test]
fn in_place_sync_killed_at_random_instants_loses_nothing() {
    killed_at_random_instants("in-place", 30);
}

fn killed_at_random_instants(strategy: &str, kills: usize) {
    let long = std::env::var("LOGKEEPER_LONG_TESTS").is_ok_and(|v| v == "1");
    let (events, kills) = if long { (650_000, 60) } else { (65_000, kills) };
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
    let mut rng = XorShift::new(seed);

    let env = Env::new();
    let log = env.path("events.jsonl");
    // Mostly distinct keys, so every run rewrites nearly the whole log.
    gen_log(&log, events, events, 3, true);
    env.keyed_store("m", &log);
    let cfg =
        std::fs::read_to_string(env.config()).unwrap() + &format!("strategy = \"{strategy}\"\n");
    env.write_config(&cfg);
    let (base_keys, _) = keys_of(&fold_file(&log));

    // A writer appending uniquely keyed lines all along, plus a repeating
    // key so that every run has something to fold away.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, log) = (acked.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut w = logkeeper::LogWriter::open(&log).unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                w.append(
                    format!(r#"{{"change_type":"SET","item_type":"W","item":{{"id":{i}}}}}"#)
                        .as_bytes(),
                )
                .unwrap();
                w.append(
                    format!(
                        r#"{{"change_type":"SET","item_type":"HB","item":{{"id":0}},"n":{i}}}"#
                    )
                    .as_bytes(),
                )
                .unwrap();
                i += 1;
                acked.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // How long an undisturbed run takes: kills land uniformly in 0..1.2x that.
    let t = Instant::now();
    env.lk(["sync", "now", "--force"]).status(0);
    let full = t.elapsed();
    let mut mid_run = 0;
    for k in 0..kills {
        let at = Duration::from_micros(rng.next_u64() % (full.as_micros() as u64 * 6 / 5 + 1));
        let mut child = env.lk(["sync", "now", "--force", "--wait"]).spawn();
        // The kill instant itself is the randomised variable under test.
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();

        let acked_now = acked.load(Ordering::SeqCst) as u64;
        let (base, written) = keys_of(&fold_file(&log));
        assert_eq!(
            base, base_keys,
            "kill {k} at {at:?} (seed {seed}): base keys changed"
        );
        for i in 0..acked_now {
            assert!(
                written.contains(&i),
                "kill {k} at {at:?} (seed {seed}): appended line {i} lost"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    env.lk(["sync", "now", "--force"]).status(0);
    assert!(temps(&log).is_empty(), "temp files left: {:?}", temps(&log));
    let (base, written) = keys_of(&fold_file(&log));
    assert_eq!(base, base_keys);
    assert_eq!(written.len(), acked.load(Ordering::SeqCst));
    eprintln!(
        "random kills ({strategy}): {kills} kills ({mid_run} mid-run) on a {} MB log, run time {full:?}, {} lines appended meanwhile, 0 lost",
        (events as u64 * 150) >> 20,
        written.len()
    );
}

/// The carry window (issue 14) under random kills: a lock-less writer
/// process of class A (it reopens 100 ms after it sees a new inode, so
/// every run's window carries its lines from the old inode until then)
/// appends numbered lines, one key per line plus ten repeating keys; `sync now` is SIGKILLed
/// at random instants, so kills land in the fold, the swap, the carries
/// (between a carry's journal, its append and its fsync) and the window's
/// end. After each kill the next run recovers: every line the writer had
/// written before that run started is in the live fold (nothing lost),
/// and each repeating key holds its last value written by then or a newer
/// one (nothing stale or replayed out of order: a line carried twice or
/// placed after a newer one would put a key back).
#[test]
fn carry_window_killed_at_random_instants_loses_nothing() {
    let kills = 25;
    let seed = std::env::var("LOGKEEPER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15u64);
    eprintln!("LOGKEEPER_KILL_SEED={seed}");
    let mut rng = XorShift::new(seed);
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 5_000, 500, 0, false);
    env.keyed_store("m", &log);
    let cfg = std::fs::read_to_string(env.config()).unwrap()
        + "strategy = \"swap\"\ncarry_window = \"1s\"\nkeep_rotated = 2\n";
    env.write_config(&cfg);
    let count = env.path("written");
    let stop = env.path("stop");
    // Each line in one write on a lock-less O_APPEND fd, reopened 100 ms
    // after the path names a new inode; its number is
    // published (to `written`) only after the write returned.
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
log, count, stop = sys.argv[1:4]
fd = os.open(log, os.O_WRONLY | os.O_APPEND)
c = os.open(count, os.O_WRONLY | os.O_CREAT, 0o644)
i = 0
seen = None
while not os.path.exists(stop):
    st, fst = os.stat(log), os.fstat(fd)
    if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
        seen = seen or time.monotonic()
        if time.monotonic() - seen >= 0.1:
            os.close(fd)
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            seen = None
    line = '{"change_type":"SET","item_type":"K","item":{"id":%d},"n":%d}\n' % (i, i)
    rep = '{"change_type":"SET","item_type":"R","item":{"id":%d},"n":%d}\n' % (i % 10, i)
    os.write(fd, (line + rep).encode())
    i += 1
    os.pwrite(c, b"%20d" % i, 0)
    time.sleep(0.002)
"#,
        )
        .arg(&log)
        .arg(&count)
        .arg(&stop)
        .spawn()
        .expect("python3");
    let written = || -> u64 {
        std::fs::read_to_string(&count)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_for("the writer", Duration::from_secs(10), || written() > 10);
    let check = |k: usize, n0: u64| {
        let mut ks = HashSet::new();
        let mut rep = [None::<u64>; 10];
        for l in fold_file(&log) {
            let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
            let (id, n) = (v["item"]["id"].as_u64(), v["n"].as_u64());
            match v["item_type"].as_str() {
                Some("K") => {
                    ks.insert(id.unwrap());
                }
                Some("R") => rep[id.unwrap() as usize] = n,
                _ => {}
            }
        }
        for i in 0..n0 {
            assert!(ks.contains(&i), "kill {k} (seed {seed}): line {i} lost");
        }
        for (key, got) in rep.iter().enumerate() {
            // The last line of this key written before the run began.
            let Some(last) = (0..n0).rev().find(|i| i % 10 == key as u64) else {
                continue;
            };
            assert!(
                got.is_some_and(|g| g >= last),
                "kill {k} (seed {seed}): key R {key} is {got:?}, older than {last}"
            );
        }
    };
    let t = Instant::now();
    env.lk(["sync", "now", "--force"]).status(0);
    let full = t.elapsed();
    let mut mid_run = 0;
    for k in 0..kills {
        let at = Duration::from_micros(rng.next_u64() % (full.as_micros() as u64 + 1));
        let mut child = env.lk(["sync", "now", "--force", "--wait"]).spawn();
        // The kill instant itself is the randomised variable under test.
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let n0 = written();
        env.lk(["sync", "now", "--force", "--wait"]).status(0);
        check(k, n0);
    }
    std::fs::write(&stop, b"").unwrap();
    assert!(wait_exit(&mut writer, Duration::from_secs(10)).success());
    let n = written();
    env.lk(["sync", "now", "--force"]).status(0);
    check(kills, n);
    eprintln!(
        "random kills (carry window): {kills} kills ({mid_run} mid-run, run time {full:?}), {n} lines from a lock-less writer, 0 lost, 0 stale"
    );
}
