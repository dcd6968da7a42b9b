//! Store health for `logkeeper status` (G6 in docs/design.md).
//!
//! A store is:
//! - `failed` when its last run ended in error;
//! - `never_run` when it has no successful run on record;
//! - `overdue` when it has a schedule and its last success is older than the
//!   latest scheduled time that is at least [`GRACE`] (plus the store's
//!   jitter) in the past;
//! - `config_error` when its own `[[store]]` table does not validate (it
//!   is not run; the other stores are);
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
use crate::job::record::{Outcome, RunRecord, RunRecords};
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
    /// The store's table in the config is invalid: it is not run.
    ConfigError,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Failed => "FAILED",
            Health::Overdue => "OVERDUE",
            Health::NeverRun => "NEVER RUN",
            Health::ConfigError => "CONFIG ERROR",
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
    /// While a run is running: the pids holding the writers' lock (`flock`)
    /// on the live log, which the run waits for before its swap (C.12).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<u32>,
    pub next_run: Option<DateTime<Local>>,
    /// The daemon is holding this store back after repeated failures
    /// (filled in from the daemon file by `schedule::daemon::with_daemon`).
    pub backoff: Option<Backoff>,
    /// Segmented stores only: the directory now (files, bytes, oldest and
    /// newest seq, active segment, bytes since the last compaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<crate::job::segmented::DirSummary>,
    /// Stores with a growth trigger: the log's growth now against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<crate::job::growth::GrowthNow>,
}

/// A store the daemon is backing off.
#[derive(Clone, Debug, Serialize)]
pub struct Backoff {
    /// Consecutive failed runs.
    pub failures: u32,
    /// No run before this time.
    pub until: DateTime<Utc>,
}

/// When a store whose last success finished at `last_success` becomes
/// overdue, with the scheduled run it missed: the first scheduled time
/// after that success, plus [`GRACE`] and the store's jitter. The one rule
/// for `status` and the metrics' `logkeeper_overdue_at_timestamp_seconds`
/// (C.16): it follows the schedule's own gaps, so a `mon-fri` store is not
/// overdue over the weekend. None without a schedule.
pub fn overdue_at(
    store: &StoreConfig,
    last_success: DateTime<Utc>,
) -> Option<(DateTime<Local>, DateTime<Local>)> {
    let schedule = store.schedule.as_ref()?;
    let due = schedule.next_after(&last_success.with_timezone(&Local))?;
    let grace = GRACE + store.jitter.unwrap_or_default();
    Some((due, due + chrono::Duration::from_std(grace).ok()?))
}

/// Compute one store's status as of `now`.
pub fn store_status(paths: &Paths, store: &StoreConfig, now: DateTime<Local>) -> StoreStatus {
    let state = RunRecords::new(paths.store_state(&store.name));
    let running = lock::current_holder(&store.lock_anchor());
    let last_run = last_run_shown(&state, running.is_some());
    let last_success = state.last_success();
    let (health, reasons) = judge(store, &last_run, &last_success, running.is_some(), now);
    let (mut notes, warnings) = match &last_run {
        Some(r) => run_notes(store, r),
        None => Default::default(),
    };
    let segments = store.segments().as_ref().map(|policy| {
        let (summary, seg_notes) = crate::job::segmented::status_notes(paths, store, policy);
        notes.extend(seg_notes);
        summary
    });
    let growth = crate::job::growth::now(paths, store);
    if let Some(g) = &growth {
        notes.push(growth_note(g));
    }
    if let Some(r) = last_run.as_ref().filter(|r| r.trigger != "manual") {
        notes.push(format!("last run started by: {}", r.trigger));
    }
    StoreStatus {
        growth,
        segments,
        name: store.name.clone(),
        notes,
        warnings,
        writers: last_run
            .as_ref()
            .map(|r| r.stats.writers.clone())
            .unwrap_or_default(),
        log: store.path().to_path_buf(),
        schedule: store.schedule.as_ref().map(|s| s.expr().to_string()),
        schedule_description: store.schedule.as_ref().map(|s| s.describe()),
        health,
        reasons,
        last_run,
        last_success,
        waiting_for: running
            .as_ref()
            .and_then(|h| waiting_for_writer(store, h))
            .unwrap_or_default(),
        running,
        next_run: store.schedule.as_ref().and_then(|s| s.next_after(&now)),
        backoff: None,
    }
}

/// The run `status` shows as the last one. C.12: while a run is running,
/// an attempt that found it busy is not "the last run": the one before it
/// is (the running one is shown as running).
fn last_run_shown(state: &RunRecords, running: bool) -> Option<RunRecord> {
    let last_run = state.last_run();
    if running
        && last_run
            .as_ref()
            .is_some_and(|r| r.outcome == Outcome::Busy)
    {
        return state
            .history()
            .into_iter()
            .rev()
            .find(|r| r.outcome != Outcome::Busy);
    }
    last_run
}

/// The store's health as of `now` and the reasons for it: failed if the
/// last run failed, else never run, else overdue by its schedule.
fn judge(
    store: &StoreConfig,
    last_run: &Option<RunRecord>,
    last_success: &Option<RunRecord>,
    running: bool,
    now: DateTime<Local>,
) -> (Health, Vec<String>) {
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
    match (last_success, &store.schedule) {
        (None, _) => {
            if health == Health::Ok {
                health = Health::NeverRun;
            }
            let why = match (running, last_run.as_ref().and_then(|r| r.reason.clone())) {
                (true, _) => "no successful run yet: the first one is running now".into(),
                (false, Some(reason)) => format!("no successful run yet (last attempt: {reason})"),
                (false, None) => "no successful run yet: sync the store or schedule it".into(),
            };
            reasons.push(why);
        }
        (Some(ok), Some(schedule)) => {
            if let Some((due, at)) = overdue_at(store, ok.finished_at)
                && at <= now
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
    (health, reasons)
}

/// What the last run `r` leaves to say: notes, and warnings about writers.
fn run_notes(store: &StoreConfig, r: &RunRecord) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    let s = &r.stats;
    if let Some(st) = &s.strategy {
        notes.push(strategy_note(st));
        if let Some(u) = &st.unserved {
            warnings.push(format!("not served within 1 s (G7): {u}"));
        }
    }
    if s.late_lines_carried + s.late_lines_quarantined > 0 {
        notes.push(format!(
            "late writes: a writer that does not take the lock appended {} line(s) to {} after it was rotated; they were folded into the live log at the swap point ({} malformed, quarantined). Make that writer follow the writer protocol.",
            s.late_lines_carried + s.late_lines_quarantined,
            s.late_lines_from.as_deref().map_or("the rotated file".into(), |p| p.display().to_string()),
            s.late_lines_quarantined
        ));
    }
    for o in s.writers.openers.iter().filter(|o| {
        o.file != r.log && !same_file(&o.file, store.path()) && s.rotated.as_ref() != Some(&o.file)
    }) {
        warnings.push(format!(
            "pid {} ({}) still writes to the rotated file {} (it keeps its fd across a swap and never reopens): served by the late-write fallback, its lines reach the live log only at the next run, and the file is kept until it lets go. Make it reopen the log when the inode changes, or follow the writer protocol.",
            o.pid,
            o.program,
            o.file.display()
        ));
    }
    // This run's own rotated file is kept for writers that have not
    // reopened yet; with none in a complete census there are none (C.12).
    let no_writers =
        s.writers.supported && s.writers.openers.is_empty() && s.writers.unreadable == 0;
    let kept: Vec<String> = s
        .kept_for_late_writes
        .iter()
        .filter(|p| !(no_writers && s.rotated.as_ref() == Some(p)))
        .map(|p| p.display().to_string())
        .collect();
    if !kept.is_empty() {
        notes.push(format!(
            "kept beyond keep_rotated for late writes (a writer holds them open, or lines not carried yet): {}",
            kept.join(", ")
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
    (notes, warnings)
}

/// The growth trigger's state, in one line.
fn growth_note(g: &crate::job::growth::GrowthNow) -> String {
    let grown = match (g.grown, g.baseline_bytes) {
        (Some(x), Some(b)) => format!(
            "grown {:.0}% since the last compaction ({} -> {} bytes)",
            x * 100.0,
            b,
            g.size
        ),
        (_, Some(_)) => format!("{} bytes, empty after the last compaction", g.size),
        (_, None) => format!("{} bytes, never compacted", g.size),
    };
    format!(
        "growth trigger: {grown}; runs at {:.0}% once the log is at least {} bytes{}",
        g.threshold * 100.0,
        g.min_size,
        if g.due { " (due now)" } else { "" }
    )
}

/// The status of a store whose table is invalid (B.8): the config error as
/// its reason, and its records if its name is one it can have run under.
pub fn config_error_status(
    paths: &Paths,
    broken: &crate::config::BrokenStore,
    config: &std::path::Path,
) -> StoreStatus {
    let state = broken
        .has_valid_name()
        .then(|| RunRecords::new(paths.store_state(&broken.name)));
    StoreStatus {
        name: broken.name.clone(),
        log: broken.log.as_deref().map(PathBuf::from).unwrap_or_default(),
        schedule: None,
        schedule_description: None,
        health: Health::ConfigError,
        reasons: vec![format!(
            "not run: its config is invalid: {}",
            broken.error(config)
        )],
        notes: Vec::new(),
        warnings: Vec::new(),
        writers: Default::default(),
        last_run: state.as_ref().and_then(RunRecords::last_run),
        last_success: state.as_ref().and_then(RunRecords::last_success),
        running: None,
        waiting_for: Vec::new(),
        next_run: None,
        backoff: None,
        segments: None,
        growth: None,
    }
}

/// Who, other than the running run, holds the writers' lock on the live
/// log: the run cannot swap until they let go.
fn waiting_for_writer(store: &StoreConfig, run: &Holder) -> Option<Vec<u32>> {
    if store.segments().is_some() || run.alive() != Some(true) {
        return None;
    }
    let meta = std::fs::metadata(store.path()).ok()?;
    let pids: Vec<u32> = crate::io::locks::flock_holders(&meta)
        .into_iter()
        .filter(|&p| p != run.pid)
        .collect();
    (!pids.is_empty()).then_some(pids)
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok() && a.exists()
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `strategy: swap (why); carry window: ...` for `status` (docs/writers.md).
fn strategy_note(st: &crate::job::strategy::Report) -> String {
    use crate::job::carry::GateKind;
    let mut note = format!("strategy: {} ({})", st.strategy, st.reason);
    if let Some(w) = &st.window {
        let who = |v: &[crate::job::census::Opener]| {
            v.iter()
                .map(|o| format!("pid {} ({})", o.pid, o.program))
                .collect::<Vec<_>>()
                .join(", ")
        };
        note.push_str(&format!(
            "; carry window: {} line(s) carried from the old inode in {:.0} ms",
            w.lines, w.ms
        ));
        if !w.followed.is_empty() {
            note.push_str(&format!("; moved to the new inode: {}", who(&w.followed)));
        }
        if !w.stayed.is_empty() {
            note.push_str(&format!("; still on the old inode: {}", who(&w.stayed)));
        }
        match w.gate {
            GateKind::None if !w.followed.is_empty() => note.push_str(
                "; no open gate (a fanotify mark needs root, a lease needs the run to own the log): an app that reopens right after its last write to the old inode can read the log before that write is carried, and a line still in the old inode when its writer left waits for the next run; run logkeeper as the log's owner or as root, without LOGKEEPER_OPEN_GATE=off, to close that gap",
            ),
            GateKind::None => {}
            GateKind::Fanotify => note.push_str(&format!(
                "; open gate: fanotify ({} open(s) of the log waited for a carry)",
                w.gated_opens
            )),
            GateKind::Lease => note.push_str(&format!(
                "; open gate: lease ({} break(s): opens of the log waited for a carry)",
                w.gated_opens
            )),
        }
    }
    note
}
