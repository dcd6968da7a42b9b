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

use crate::common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

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
    let mut rng = Rng(seed);

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
        let at = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 6 / 5 + 1));
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
