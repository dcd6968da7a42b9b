//! Store health for `logkeeper status` (G6 in docs/design.md).
//!
//! A store is:
//! - `failed` when its last run ended in error;
//! - `never_run` when it has no successful run on record;
//! - `overdue` when it has a schedule and its last success is older than the
//!   latest scheduled time that is at least [`GRACE`] (plus the store's
//!   jitter) in the past;
//! - `ok` otherwise.
//!
//! Status only reads: it never takes a lock, so it cannot make a concurrent
//! run report busy.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use serde::Serialize;

use crate::config::StoreConfig;
use crate::job::lock::{self, Holder};
use crate::job::record::{Outcome, RunRecord, StoreState};
use crate::paths::Paths;

/// How long after a scheduled time a run may take to succeed before the
/// store counts as overdue.
pub const GRACE: Duration = Duration::from_secs(10 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Failed,
    Overdue,
    NeverRun,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Failed => "FAILED",
            Health::Overdue => "OVERDUE",
            Health::NeverRun => "NEVER RUN",
        }
    }
}

/// Everything `status` says about one store.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStatus {
    pub name: String,
    pub log: PathBuf,
    pub schedule: Option<String>,
    pub schedule_description: Option<String>,
    pub health: Health,
    /// Why the store is not healthy (empty when `ok`).
    pub reasons: Vec<String>,
    /// Things worth knowing that do not make the store unhealthy (lines
    /// quarantined or carried from a writer that ignores the lock).
    pub notes: Vec<String>,
    /// Writer patterns served only by a fallback (see docs/writers.md "Writer
    /// classes"); they do not make the store unhealthy.
    pub warnings: Vec<String>,
    /// Who had the log or a rotated file open for writing at the last run.
    pub writers: crate::job::census::Census,
    pub last_run: Option<RunRecord>,
    pub last_success: Option<RunRecord>,
    /// The run holding the store's lock right now, if any.
    pub running: Option<Holder>,
    pub next_run: Option<DateTime<Local>>,
    /// The daemon is holding this store back after repeated failures
    /// (filled in from the daemon file by [`with_daemon`]).
    pub backoff: Option<Backoff>,
    /// Segmented stores only: the directory now (files, bytes, oldest and
    /// newest seq, active segment, bytes since the last compaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<crate::job::segmented::DirSummary>,
}

/// A store the daemon is backing off.
#[derive(Clone, Debug, Serialize)]
pub struct Backoff {
    /// Consecutive failed runs.
    pub failures: u32,
    /// No run before this time.
    pub until: DateTime<Utc>,
}

/// Add what a running daemon knows: its next run time for the store (which
/// accounts for jitter and backoff) and the store's backoff.
pub fn with_daemon(status: &mut StoreStatus, daemon: &crate::schedule::daemon::DaemonStatus) {
    if !daemon.running {
        return;
    }
    let Some(d) = daemon.info.stores.iter().find(|d| d.name == status.name) else {
        return;
    };
    if d.next_run.is_some() {
        status.next_run = d.next_run;
    }
    if let Some(until) = d.backoff_until {
        status.reasons.push(format!(
            "the daemon is backing off until {} after {} failures in a row",
            fmt_time(until),
            d.failures
        ));
        status.backoff = Some(Backoff {
            failures: d.failures,
            until,
        });
    }
}

/// Compute one store's status as of `now`.
pub fn store_status(paths: &Paths, store: &StoreConfig, now: DateTime<Local>) -> StoreStatus {
    let state = StoreState::new(paths.store_state(&store.name));
    let last_run = state.last_run();
    let last_success = state.last_success();
    let mut reasons = Vec::new();
    let mut health = Health::Ok;

    if let Some(r) = last_run.as_ref().filter(|r| r.outcome == Outcome::Error) {
        health = Health::Failed;
        reasons.push(format!(
            "last run at {} failed: {}",
            fmt_time(r.finished_at),
            r.error.as_deref().unwrap_or("unknown error")
        ));
    }
    match (&last_success, &store.schedule) {
        (None, _) => {
            if health == Health::Ok {
                health = Health::NeverRun;
            }
            let why = match last_run.as_ref().and_then(|r| r.reason.clone()) {
                Some(reason) => format!("no successful run yet (last attempt: {reason})"),
                None => "no successful run yet: sync the store or schedule it".into(),
            };
            reasons.push(why);
        }
        (Some(ok), Some(schedule)) => {
            let grace = GRACE + store.jitter.unwrap_or_default();
            let horizon = now - chrono::Duration::from_std(grace).unwrap_or_default();
            if let Some(due) = schedule.prev_at_or_before(&horizon)
                && ok.finished_at < due.with_timezone(&Utc)
            {
                if health == Health::Ok {
                    health = Health::Overdue;
                }
                reasons.push(format!(
                    "overdue: last success {} is older than the run scheduled at {} ({})",
                    fmt_time(ok.finished_at),
                    due.format("%Y-%m-%d %H:%M %Z"),
                    schedule.expr()
                ));
            }
        }
        (Some(_), None) => {}
    }

    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    if let Some(r) = &last_run {
        let s = &r.stats;
        if s.late_lines_carried + s.late_lines_quarantined > 0 {
            notes.push(format!(
                "late writes: a writer that does not take the lock appended {} line(s) to {} after it was rotated; they were folded into the live log at the swap point ({} malformed, quarantined). Make that writer follow the writer protocol.",
                s.late_lines_carried + s.late_lines_quarantined,
                s.late_lines_from.as_deref().map_or("the rotated file".into(), |p| p.display().to_string()),
                s.late_lines_quarantined
            ));
        }
        for o in s.writers.openers.iter().filter(|o| {
            o.file != r.log
                && !same_file(&o.file, &store.log)
                && s.rotated.as_ref() != Some(&o.file)
        }) {
            warnings.push(format!(
                "pid {} ({}) still writes to the rotated file {} (it keeps its fd across a swap and never reopens): served by the late-write fallback, its lines reach the live log only at the next run, and the file is kept until it lets go. Make it reopen the log when the inode changes, or follow the writer protocol.",
                o.pid,
                o.program,
                o.file.display()
            ));
        }
        if !s.kept_for_late_writes.is_empty() {
            notes.push(format!(
                "kept beyond keep_rotated for late writes (a writer holds them open, or lines not carried yet): {}",
                s.kept_for_late_writes
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if s.free_space_unchecked {
            notes.push("the log's filesystem reports no size (0 total blocks), so the free-space check was skipped".into());
        }
        if s.quarantined > 0 {
            notes.push(format!(
                "last run quarantined {} malformed line(s) to {}",
                s.quarantined,
                s.quarantine_file
                    .as_deref()
                    .map_or("the quarantine file".into(), |p| p.display().to_string())
            ));
        }
        if let Some(h) = r.hook.as_ref().filter(|h| !h.ok()) {
            notes.push(format!(
                "after the last run, hook {} (the run's outcome stands; command: {})",
                h.describe(),
                h.command
            ));
        }
    }

    let segments = store.segments.as_ref().map(|policy| {
        let (summary, seg_notes) = crate::job::segmented::status_notes(paths, store, policy);
        notes.extend(seg_notes);
        summary
    });
    StoreStatus {
        segments,
        name: store.name.clone(),
        notes,
        warnings,
        writers: last_run
            .as_ref()
            .map(|r| r.stats.writers.clone())
            .unwrap_or_default(),
        log: store.log.clone(),
        schedule: store.schedule.as_ref().map(|s| s.expr().to_string()),
        schedule_description: store.schedule.as_ref().map(|s| s.describe()),
        health,
        reasons,
        last_run,
        last_success,
        running: lock::current_holder(&store.lock_anchor()),
        next_run: store.schedule.as_ref().and_then(|s| s.next_after(&now)),
        backoff: None,
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok() && a.exists()
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
