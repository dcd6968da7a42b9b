//! Planning a run of a store of one live log. Pure: the job reads the
//! log's size, the `min_growth` baseline, the late-write watches, folds the
//! log, lists the rotated files and takes the census; these functions
//! decide.
//!
//! A run's choice, in the order it is made:
//! 1. [`skip`], before the log is read: `Skip` when it grew less than
//!    `min_growth` since the last compaction (unless forced, or late writes
//!    wait to be carried);
//! 2. [`choose`], after the fold: `Keep` (the fold changes nothing: the log
//!    and its inode are left alone), `Archive` (an append-only log past
//!    `rotate_bytes`: the whole old file becomes the rotated archive and the
//!    new log starts empty) or `Rewrite` (swap or in place, `strategy.rs`);
//! 3. [`prune`], after the replacement: which rotated files go.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::LogPolicy;
use crate::plan::Busy;

/// What a run does to the live log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Not now, and why (`min_growth`).
    Skip(String),
    /// The fold changes nothing: the log is left as it is.
    Keep,
    /// The folded log replaces the live one.
    Rewrite,
    /// The whole old file is kept as a rotated archive; the new log holds
    /// only what was appended after the cut.
    Archive,
}

/// `Skip` (with why) when `min_growth` skips a run of a log of `size`
/// bytes, or None when it does not: forced, not set, no baseline
/// (`baseline`: the size the last compaction left), grown enough, or late
/// writes wait to be carried. The one home of the rule: a run and
/// `sync now --dry-run` both ask it.
pub fn skip(
    policy: &LogPolicy,
    force: bool,
    size: u64,
    baseline: Option<u64>,
    late_waiting: bool,
) -> Option<Choice> {
    if force || policy.min_growth <= 0.0 {
        return None;
    }
    let grown = growth(size, baseline?);
    if grown >= policy.min_growth || late_waiting {
        return None;
    }
    Some(Choice::Skip(format!(
        "the log grew {:.0}% since the last compaction, below min_growth {:.0}% (use --force to compact anyway)",
        grown * 100.0,
        policy.min_growth * 100.0
    )))
}

/// How much a log of `size` bytes grew since a compaction left `baseline`.
pub fn growth(size: u64, baseline: u64) -> f64 {
    size.saturating_sub(baseline) as f64 / baseline.max(1) as f64
}

/// What the fold found, for [`choose`].
#[derive(Clone, Copy, Debug)]
pub struct Folded {
    /// The store has a key.
    pub keyed: bool,
    /// The fold keeps every byte as it is.
    pub identity: bool,
    /// Bytes of late writes folded in at the swap point.
    pub late_bytes: u64,
    /// The live log's size when it was cut.
    pub size: u64,
}

/// Keep, Rewrite or Archive. An append-only log past `rotate_bytes` is
/// archived, unless late writes of an earlier rewrite are in this fold:
/// they would land in the new log, so the archive waits one run (this run
/// rewrites), and none is dropped.
pub fn choose(policy: &LogPolicy, f: &Folded) -> Choice {
    let archive =
        !f.keyed && f.late_bytes == 0 && policy.rotate_bytes.is_some_and(|limit| f.size > limit);
    if archive {
        Choice::Archive
    } else if f.identity && f.late_bytes == 0 {
        Choice::Keep
    } else {
        Choice::Rewrite
    }
}

/// Which rotated files go, and which past a limit stay because they are busy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prune {
    pub remove: Vec<PathBuf>,
    /// Past a limit, but busy (a writer holds it, late writes not carried,
    /// this run's own rotated file, not quiet long enough).
    pub kept: Vec<PathBuf>,
}

/// The rotated files (`rotated`, newest first, with their rotation time)
/// that `keep_rotated` and `max_age` let go, never a busy one.
pub fn prune(
    rotated: &[(DateTime<Utc>, PathBuf)],
    keep: usize,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
    busy: &Busy,
) -> Prune {
    let mut out = Prune::default();
    for (i, (at, path)) in rotated.iter().enumerate() {
        let too_old = max_age.is_some_and(|age| {
            now.signed_duration_since(*at)
                .to_std()
                .is_ok_and(|d| d > age)
        });
        if i < keep && !too_old {
            continue;
        }
        if busy.is_busy(path) {
            out.kept.push(path.clone());
        } else {
            out.remove.push(path.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
