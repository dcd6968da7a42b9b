//! The daemon's growth trigger: when a store whose log grew past its
//! `growth` threshold may run, and the watch on its log.
//!
//! Without the flaws of the peers' equivalents:
//! - the baseline is the size the last compaction left, read from the
//!   state dir ([`crate::job::growth`]), so a restart does not reset it;
//! - runs are at least `min_interval` apart, and after failures back off
//!   exponentially up to an hour ([`backoff`]), never giving up for good
//!   (a store is tried again at least hourly, unlike a log marked
//!   "uncleanable" until a restart);
//! - the log is watched with `notify` (inotify on Linux, FSEvents on macOS):
//!   a write is seen at once, and the loop's bounded step re-checks every
//!   store anyway, so a lost or unsupported watch only delays a run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The least time between two checks woken by changes to the logs.
pub const SETTLE: Duration = Duration::from_millis(250);

/// The longest wait after failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// The wait after `failures` consecutive failed runs: `min_interval`
/// (at least a minute) doubled per failure after the first, at most an hour
/// (or `min_interval` if that is longer). Never infinite.
pub fn backoff(min_interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let base = min_interval.max(Duration::from_secs(60));
    let cap = BACKOFF_MAX.max(min_interval);
    base.checked_mul(1u32 << (failures - 1).min(16))
        .unwrap_or(cap)
        .min(cap)
}

/// What the store's runs so far allow: the earliest time a growth run may
/// start. `last_start` is the start of the store's last run (any
/// trigger), `last_finish` its end, `failures` the failed runs in a row.
pub fn earliest(
    min_interval: Duration,
    last_start: Option<DateTime<Utc>>,
    last_finish: Option<DateTime<Utc>>,
    failures: u32,
) -> Option<DateTime<Utc>> {
    let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let by_interval = last_start.map(|s| s + chrono(min_interval));
    let by_backoff = last_finish
        .filter(|_| failures > 0)
        .map(|f| f + chrono(backoff(min_interval, failures)));
    by_interval.max(by_backoff)
}

/// What to do about a store's growth now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not due (below `min_size`, or not grown enough).
    Idle,
    /// Due, but rate-limited or backing off until then.
    WaitUntil(DateTime<Utc>),
    Run,
}

/// Decide for a store whose log `due` says whether it is past both
/// thresholds ([`crate::job::growth::is_due`]). Pure.
pub fn decide(due: bool, now: DateTime<Utc>, earliest: Option<DateTime<Utc>>) -> Decision {
    match earliest {
        _ if !due => Decision::Idle,
        Some(t) if t > now => Decision::WaitUntil(t),
        _ => Decision::Run,
    }
}

/// The watch on the growth stores' logs: wakes the loop when one changes.
pub(super) struct Watch {
    watcher: Option<notify::RecommendedWatcher>,
    dirs: HashSet<PathBuf>,
    logs: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Watch {
    /// A watch that calls `wake` on a change to any of the logs it is
    /// given by [`Watch::set`]. Without one (no inotify instance left, say)
    /// the loop's bounded step still checks every store.
    pub(super) fn new(wake: Arc<tokio::sync::Notify>) -> Watch {
        let logs: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let seen = logs.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            let logs = seen.lock().unwrap_or_else(|p| p.into_inner());
            if ev.paths.iter().any(|p| logs.contains(p)) {
                wake.notify_one();
            }
        })
        .inspect_err(|e| {
            tracing::warn!("cannot watch logs for growth ({e}); checking every few seconds instead")
        })
        .ok();
        Watch {
            watcher,
            dirs: HashSet::new(),
            logs,
        }
    }

    /// Watch these logs (and no others). The directory is watched, not the
    /// file: a swap renames a new inode over the log.
    pub(super) fn set<'a>(&mut self, logs: impl Iterator<Item = &'a Path>) {
        use notify::Watcher;
        let logs: HashSet<PathBuf> = logs.map(Path::to_path_buf).collect();
        let dirs: HashSet<PathBuf> = logs
            .iter()
            .map(|l| crate::io::durable::parent_dir(l).to_path_buf())
            .collect();
        if let Some(w) = self.watcher.as_mut() {
            for d in self.dirs.difference(&dirs) {
                let _ = w.unwatch(d);
            }
            for d in dirs.difference(&self.dirs) {
                if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
                    tracing::warn!(
                        "cannot watch {} for growth ({e}); checking it every few seconds instead",
                        d.display()
                    );
                }
            }
        }
        self.dirs = dirs;
        *self.logs.lock().unwrap_or_else(|p| p.into_inner()) = logs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn backoff_doubles_from_min_interval_and_stops_at_an_hour() {
        assert_eq!(backoff(MIN, 0), Duration::ZERO);
        assert_eq!(backoff(MIN, 1), MIN);
        assert_eq!(backoff(MIN, 2), 2 * MIN);
        assert_eq!(backoff(MIN, 3), 4 * MIN);
        assert_eq!(backoff(MIN, 7), Duration::from_secs(3600));
        assert_eq!(backoff(MIN, 1000), Duration::from_secs(3600), "never more");
        assert_eq!(backoff(Duration::from_secs(1), 1), MIN, "at least a minute");
        let day = Duration::from_secs(86_400);
        assert_eq!(backoff(day, 5), day, "a longer min_interval is its own cap");
    }

    #[test]
    fn a_due_store_runs_when_min_interval_and_backoff_allow() {
        let five = Duration::from_secs(300);
        // Never ran: at once.
        assert_eq!(
            decide(true, at(0), earliest(five, None, None, 0)),
            Decision::Run
        );
        // Not due: idle, whatever the timing.
        assert_eq!(decide(false, at(0), None), Decision::Idle);
        // Ran 100 s ago: waits out min_interval.
        let e = earliest(five, Some(at(-100)), Some(at(-90)), 0);
        assert_eq!(decide(true, at(0), e), Decision::WaitUntil(at(200)));
        assert_eq!(decide(true, at(200), e), Decision::Run);
        // Three failures in a row: backoff 4 x 5 min from the last finish.
        let e = earliest(five, Some(at(-100)), Some(at(-90)), 3);
        assert_eq!(decide(true, at(0), e), Decision::WaitUntil(at(-90 + 1200)));
        // A hundred failures: still tried again within the hour.
        let e = earliest(five, Some(at(0)), Some(at(10)), 100);
        assert_eq!(decide(true, at(3610), e), Decision::Run);
    }
}
