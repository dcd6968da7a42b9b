//! Which way a run replaces the log, per store and per run (issue 14, G7;
//! docs/writers.md):
//!
//! - **swap**: a new file exchanged in (`swap.rs`), then the carry window
//!   (`carry.rs`). Serves writers that open per line (C, D) and lock-less
//!   writers that reopen on a new inode (A). A writer that keeps one fd for
//!   life (B) is left on the old inode: its lines reach the live path at
//!   the next run only.
//! - **in-place**: the log's own inode rewritten under the writers' `flock`
//!   (`inplace.rs`). Serves B (its fd stays on the live inode) and D; a
//!   lock-less writer can race the final truncate, so it is chosen only
//!   when none was seen.
//!
//! `auto` (the default) decides from the census and a *probe*: when some
//! process holds the log open for writing, the run takes the writers' lock
//! for up to [`PROBE`] and watches who waits for it (`/proc/locks`: a
//! writer that takes `flock`) and whether the log grows meanwhile (a writer
//! that ignores it). The last conclusive decision is remembered
//! (`strategy.json` in the store's state dir) for runs whose probe sees no
//! write at all.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{StoreConfig, Strategy};
use crate::error::{IoContext, Result};
use crate::io::durable;
use crate::job::census::{Census, Opener};
pub use crate::job::record::report::Report;
use crate::job::swap;

/// How long the probe holds the writers' lock at most.
pub const PROBE: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Memory {
    strategy: String,
    reason: String,
    #[serde(default)]
    unserved: Option<String>,
    /// The pids seen taking the writers' lock when `in-place` was chosen:
    /// a later run reuses `in-place` only while every writer is one of them.
    #[serde(default)]
    lockers: Vec<u32>,
}

fn memory_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("strategy.json")
}

/// What the probe saw.
#[derive(Debug, Default)]
pub struct Probe {
    /// Writers (from the census) that waited for the writers' lock.
    pub lockers: Vec<Opener>,
    /// The log grew while the run held the writers' lock.
    pub grew: bool,
}

/// Choose the strategy of this run. `census` is the census of the live log.
pub fn decide(
    store: &StoreConfig,
    log: &Path,
    state_dir: &Path,
    census: &Census,
) -> Result<(Strategy, Report)> {
    if let Strategy::Swap | Strategy::InPlace = store.strategy {
        let s = store.strategy;
        let why = format!("strategy = \"{}\" in the config", s.as_str());
        return Ok((s, report(s, why, None)));
    }
    if census.is_empty() {
        let why = "no process holds the log open for writing: a swap serves writers that open it per line";
        return Ok((Strategy::Swap, report(Strategy::Swap, why.into(), None)));
    }
    let file = File::open(log).ctx("open log", log)?;
    let p = probe(&file, log, census, PROBE)?;
    let Some((s, reason, unserved)) = conclude(&p, census) else {
        return Ok(recall(state_dir, census));
    };
    remember(store, state_dir, &p, s, &reason, &unserved);
    Ok((s, report(s, reason, unserved)))
}

fn report(s: Strategy, reason: String, unserved: Option<String>) -> Report {
    Report {
        strategy: s.as_str().into(),
        reason,
        unserved,
        window: None,
    }
}

fn names(v: &[Opener]) -> String {
    v.iter()
        .map(|o| format!("pid {} ({})", o.pid, o.program))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the probe `p` proves about the writers in `census` (pure): the
/// strategy, why, and who it leaves unserved; `None` when nobody wrote
/// during the probe (nothing proven).
fn conclude(p: &Probe, census: &Census) -> Option<(Strategy, String, Option<String>)> {
    // In place is safe only for writers that take the lock: a process that
    // holds the log open and was not seen waiting for the lock may be a
    // lock-less writer that just did not write during the probe.
    let unlocked: Vec<Opener> = census
        .openers
        .iter()
        .filter(|o| !p.lockers.iter().any(|l| l.pid == o.pid))
        .cloned()
        .collect();
    Some(if !p.lockers.is_empty() && p.grew {
        (
            Strategy::Swap,
            format!(
                "{} keeps the log open and takes flock around each append (class B), and a lock-less writer appended while logkeeper held that lock (class A or C)",
                names(&p.lockers)
            ),
            Some(format!(
                "{} keeps writing into the rotated file after each swap: its lines reach the live path only at the next run (one schedule interval). An in-place rewrite would serve it but can cut a lock-less writer's line. Make it re-check the inode under its flock and reopen (the writer protocol), or make the lock-less writer take the flock; then set strategy = \"in-place\"",
                names(&p.lockers)
            )),
        )
    } else if p.grew {
        (
            Strategy::Swap,
            "a lock-less writer appended while logkeeper held the writers' lock (class A or C): swap, then carry its lines from the old inode until it reopens".into(),
            None,
        )
    } else if !p.lockers.is_empty() && !census.complete() {
        (
            Strategy::Swap,
            format!(
                "{} takes flock around each append (class B), but the census is incomplete ({}): an unseen writer may not take the lock, so swap, safe for every writer",
                names(&p.lockers),
                census.blind.join("; ")
            ),
            Some(format!(
                "{} may keep writing into the rotated file after a swap: its lines reach the live path only at the next run. Run logkeeper where it sees every writer (as root in the app's PID namespace), or set strategy = \"in-place\" if every writer takes the lock",
                names(&p.lockers)
            )),
        )
    } else if !p.lockers.is_empty() && !unlocked.is_empty() {
        (
            Strategy::Swap,
            format!(
                "{} takes flock around each append (class B), but {} holds the log open and was not seen taking the lock (it may write without it): swap, safe for every writer",
                names(&p.lockers),
                names(&unlocked)
            ),
            Some(format!(
                "{} may keep writing into the rotated file after a swap: its lines reach the live path only at the next run. If {} never writes the log, close its write fd; then in-place serves the flock writer",
                names(&p.lockers),
                names(&unlocked)
            )),
        )
    } else if !p.lockers.is_empty() {
        (
            Strategy::InPlace,
            format!(
                "{} keeps the log open and takes flock around each append (class B): rewrite in place, so it goes on writing at the live path",
                names(&p.lockers)
            ),
            None,
        )
    } else {
        return None;
    })
}

/// A probe that saw no write: the last conclusive decision (while every
/// writer is one it saw taking the lock, for in-place), else a swap.
fn recall(state_dir: &Path, census: &Census) -> (Strategy, Report) {
    let mem: Option<Memory> = std::fs::read(memory_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let earlier = |m: &Memory| {
        format!(
            "no writer wrote during the probe; as an earlier run found: {}",
            m.reason
        )
    };
    match mem {
        Some(m)
            if m.strategy == "in-place"
                && census.complete()
                && census.openers.iter().all(|o| m.lockers.contains(&o.pid)) =>
        {
            let why = earlier(&m);
            (
                Strategy::InPlace,
                report(Strategy::InPlace, why, m.unserved),
            )
        }
        Some(m) => {
            let why = earlier(&m);
            (Strategy::Swap, report(Strategy::Swap, why, m.unserved))
        }
        None => {
            let why = format!(
                "{} holds the log open but wrote nothing during the probe: swap (safe for every writer), then carry until it reopens",
                names(&census.openers)
            );
            (Strategy::Swap, report(Strategy::Swap, why, None))
        }
    }
}

/// Keep a conclusive decision for runs whose probe sees no write.
fn remember(
    store: &StoreConfig,
    state_dir: &Path,
    p: &Probe,
    s: Strategy,
    reason: &str,
    unserved: &Option<String>,
) {
    let mem = Memory {
        strategy: s.as_str().into(),
        reason: reason.into(),
        unserved: unserved.clone(),
        lockers: p.lockers.iter().map(|o| o.pid).collect(),
    };
    if let Ok(json) = serde_json::to_vec(&mem)
        && let Err(e) = durable::atomic_write(&memory_path(state_dir), &json, 0o600)
    {
        tracing::warn!(
            "could not remember the strategy of store {:?}: {e}",
            store.name
        );
    }
}

/// Hold the writers' lock on `file` for up to `dur`: who waits for it, and
/// does the log grow meanwhile? Ends early once both are known.
fn probe(file: &File, log: &Path, census: &Census, dur: Duration) -> Result<Probe> {
    swap::lock_writers(file, log)?;
    let ino = file.metadata().ctx("stat log", log)?.ino();
    let size0 = file.metadata().ctx("stat log", log)?.len();
    let t0 = Instant::now();
    let mut p = Probe::default();
    while t0.elapsed() < dur && (!p.grew || p.lockers.is_empty()) {
        for pid in lock_waiters(ino) {
            if let Some(o) = census.openers.iter().find(|o| o.pid == pid)
                && !p.lockers.iter().any(|l| l.pid == pid)
            {
                p.lockers.push(o.clone());
            }
        }
        p.grew |= file.metadata().ctx("stat log", log)?.len() > size0;
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = file.unlock();
    Ok(p)
}

/// Pids blocked waiting for a `flock` on inode `ino` (`/proc/locks` lines
/// `N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INO 0 EOF`).
fn lock_waiters(ino: u64) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) != Some(&"->") || f.get(2) != Some(&"FLOCK") {
                return None;
            }
            let inode = f.get(6)?.rsplit(':').next()?.parse::<u64>().ok()?;
            (inode == ino).then(|| f.get(5)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! `conclude` is the strategy's planner: pure over the census and what
    //! the probe saw, tested with fake writers.
    use super::*;

    fn opener(pid: u32) -> Opener {
        Opener {
            pid,
            program: format!("w{pid}"),
            file: "events.jsonl".into(),
            fd: 3,
            flags: "O_WRONLY|O_APPEND".into(),
            append: true,
        }
    }

    fn census(pids: &[u32], blind: bool) -> Census {
        Census {
            openers: pids.iter().map(|&p| opener(p)).collect(),
            supported: true,
            blind: if blind {
                vec!["hidepid".into()]
            } else {
                vec![]
            },
            ..Census::default()
        }
    }

    fn probe(lockers: &[u32], grew: bool) -> Probe {
        Probe {
            lockers: lockers.iter().map(|&p| opener(p)).collect(),
            grew,
        }
    }

    #[test]
    fn in_place_only_when_every_writer_was_seen_locking_and_the_census_is_complete() {
        let c = census(&[1, 2], false);
        let (s, _, unserved) = conclude(&probe(&[1, 2], false), &c).unwrap();
        assert_eq!((s, unserved), (Strategy::InPlace, None));
        // One writer never seen taking the lock: it may be lock-less.
        let (s, _, unserved) = conclude(&probe(&[1], false), &c).unwrap();
        assert_eq!(s, Strategy::Swap);
        assert!(unserved.unwrap().contains("pid 2 (w2)"));
        // A census that may miss writers.
        let (s, why, _) = conclude(&probe(&[1, 2], false), &census(&[1, 2], true)).unwrap();
        assert_eq!(s, Strategy::Swap);
        assert!(why.contains("census is incomplete"), "{why}");
    }

    #[test]
    fn a_lockless_append_during_the_probe_means_swap_and_leaves_the_locker_unserved() {
        let c = census(&[1, 2], false);
        let (s, _, unserved) = conclude(&probe(&[], true), &c).unwrap();
        assert_eq!((s, unserved), (Strategy::Swap, None));
        let (s, _, unserved) = conclude(&probe(&[1], true), &c).unwrap();
        assert_eq!(s, Strategy::Swap);
        assert!(unserved.unwrap().contains("next run"));
    }

    #[test]
    fn a_probe_that_saw_no_write_proves_nothing() {
        assert_eq!(conclude(&probe(&[], false), &census(&[1], false)), None);
    }
}
