//! One store as the scheduler loop tracks it: its catch-up anchor, a due
//! fire, failures and backoff, and the jitter before a run.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, SubsecRound, Utc};

use crate::config::StoreConfig;
use crate::job::record::{Outcome, RunRecords};

/// The longest the loop sleeps before re-reading the wall clock and the
/// config file's mtime.
pub const MAX_STEP: Duration = Duration::from_secs(10);
/// Consecutive failures after which a store backs off.
pub const BACKOFF_AFTER: u32 = 2;
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How long a store backs off after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    if failures < BACKOFF_AFTER {
        return Duration::ZERO;
    }
    let exp = (failures - BACKOFF_AFTER).min(16);
    (Duration::from_secs(60) * 2u32.pow(exp)).min(BACKOFF_MAX)
}

pub(super) struct StoreRt {
    pub(super) cfg: StoreConfig,
    /// The last scheduled time handled (run, coalesced or skipped).
    pub(super) anchor: DateTime<Utc>,
    /// A due fire: its scheduled time and when to start it (after jitter).
    pub(super) pending: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub(super) failures: u32,
    pub(super) backoff_until: Option<DateTime<Utc>>,
    pub(super) running: bool,
    /// When the store's last run (any trigger) started and finished: the
    /// growth trigger's rate limit (from the last record at start-up, so a
    /// restart does not reset it).
    pub(super) last_start: Option<DateTime<Utc>>,
    pub(super) last_finish: Option<DateTime<Utc>>,
    /// Growth-triggered stores: the log size at the last check, and the
    /// earliest next growth run while one is due but held back.
    pub(super) growth_checked: Option<u64>,
    pub(super) growth_wait: Option<DateTime<Utc>>,
}

impl StoreRt {
    pub(super) fn new(cfg: StoreConfig, now: DateTime<Utc>, state: &RunRecords) -> StoreRt {
        let now = now.trunc_subsecs(0);
        // Catch-up: if the most recent scheduled time passed with no run
        // started since, put the anchor just before it, so it is due now.
        let mut anchor = now;
        if let Some(prev) = cfg
            .schedule
            .as_ref()
            .and_then(|s| s.prev_at_or_before(&now.with_timezone(&Local)))
        {
            let prev = prev.with_timezone(&Utc);
            let last = state.last_run().map(|r| r.started_at);
            if last.is_none_or(|l| l < prev) {
                anchor = prev - chrono::Duration::seconds(1);
            }
        }
        let failures = state
            .history()
            .iter()
            .rev()
            .take_while(|r| r.outcome == Outcome::Error)
            .count() as u32;
        let backoff_until = state
            .last_run()
            .filter(|_| failures >= BACKOFF_AFTER)
            .map(|r| r.finished_at + to_chrono(backoff(failures)))
            .filter(|t| *t > now);
        let last = state.last_run();
        StoreRt {
            cfg,
            anchor,
            pending: None,
            failures,
            backoff_until,
            running: false,
            last_start: last.as_ref().map(|r| r.started_at),
            last_finish: last.as_ref().map(|r| r.finished_at),
            growth_checked: None,
            growth_wait: None,
        }
    }

    pub(super) fn next_run(&self) -> Option<DateTime<Utc>> {
        if let Some((_, at)) = self.pending {
            return Some(at);
        }
        let s = self.cfg.schedule.as_ref()?;
        let next = s
            .next_after(&self.anchor.with_timezone(&Local))?
            .with_timezone(&Utc);
        match self.backoff_until {
            Some(b) if b > next => s
                .next_after(&(b - chrono::Duration::seconds(1)).with_timezone(&Local))
                .map(|t| t.with_timezone(&Utc)),
            _ => Some(next),
        }
    }
}

pub(super) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A random-enough delay in `[0, max)` (FNV-1a of pid, time and store).
pub(super) fn jitter_delay(max: Duration, store: &str) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let h = crate::schedule::fnv1a(format!("{}:{nanos}:{store}", std::process::id()).as_bytes());
    Duration::from_nanos(h % (max.as_nanos().min(u64::MAX as u128) as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(100), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for i in 0..100 {
            let j = jitter_delay(Duration::from_secs(10), &format!("s{i}"));
            assert!(j < Duration::from_secs(10));
        }
        assert_eq!(jitter_delay(Duration::ZERO, "x"), Duration::ZERO);
    }
}
