//! The job (`sync`) for one store, steps 1-5 of the contract: lock, recover,
//! compact, prune, record.
//!
//! Invariant: [`sync_store`] always writes a last-run record, whatever
//! happens, and returns it; it never panics on I/O errors.

pub mod census;
pub mod compact;
pub mod late;
pub mod lock;
pub mod quarantine;
pub mod record;
pub mod rotation;
mod trigger;

pub use trigger::Trigger;

use std::time::Instant;

use chrono::Utc;

use crate::config::StoreConfig;
use crate::error::Error;
use crate::io::durable;
use crate::job::lock::{StoreLock, Wait};
use crate::job::record::{Outcome, RunRecord, Stats, StoreState};
use crate::ops::hooks;
use crate::paths::Paths;

/// How a sync was asked for.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// What started the run. A scheduled trigger records a held lock as a
    /// skip rather than as busy.
    pub trigger: Trigger,
    /// Wait for a held lock instead of reporting busy.
    pub wait: bool,
    /// Ignore `min_growth`.
    pub force: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            trigger: Trigger::Manual,
            wait: false,
            force: false,
        }
    }
}

impl SyncOptions {
    pub fn is_scheduled(&self) -> bool {
        self.trigger.is_scheduled()
    }
}

/// What the locked part of a run decided.
struct Done {
    outcome: Outcome,
    reason: Option<String>,
    stats: Stats,
    /// Counts as the store's last success (resets the health clock).
    success: bool,
    /// Updates the `min_growth` baseline.
    baseline: bool,
}

/// Run the job for one store and record it. Sets SIGXFSZ to ignored
/// (once, process-wide; [`crate::io::sys::ignore_sigxfsz`]) so a file-size
/// limit fails the run with EFBIG instead of killing the caller.
pub fn sync_store(paths: &Paths, store: &StoreConfig, opts: &SyncOptions) -> RunRecord {
    crate::io::sys::ignore_sigxfsz();
    let started_at = Utc::now();
    let t0 = Instant::now();
    let wait = if opts.wait { Wait::Yes } else { Wait::No };
    // The lock is held until the record is written, so a run's record is
    // on disk before any other run can start.
    let mut held = None;
    let result = match StoreLock::acquire(&store.name, &store.log, opts.trigger.as_str(), wait) {
        Ok(lock) => {
            let lock_ms = t0.elapsed().as_secs_f64() * 1e3;
            held = Some(lock);
            run_locked(paths, store, opts).map(|mut d| {
                d.stats.timings.lock_ms = lock_ms;
                d
            })
        }
        Err(Error::Busy { holder, lock, .. }) => Ok(Done {
            outcome: if opts.is_scheduled() {
                Outcome::Skipped
            } else {
                Outcome::Busy
            },
            // A skip needs to say it was the lock; `busy` says so itself.
            reason: Some(format!(
                "{}{holder} holds {}",
                if opts.is_scheduled() { "busy: " } else { "" },
                lock.display()
            )),
            stats: Stats::default(),
            success: false,
            baseline: false,
        }),
        Err(e) => Err(e),
    };
    let (outcome, reason, error, stats, success, baseline) = match result {
        Ok(d) => (d.outcome, d.reason, None, d.stats, d.success, d.baseline),
        Err(e) => (
            Outcome::Error,
            None,
            Some(e.to_string()),
            Stats::default(),
            false,
            false,
        ),
    };
    let mut rec = RunRecord {
        store: store.name.clone(),
        log: store.log.clone(),
        outcome,
        trigger: opts.trigger.as_str().to_string(),
        started_at,
        finished_at: Utc::now(),
        duration_ms: (t0.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        reason,
        error,
        stats,
        pid: std::process::id(),
        host: durable::hostname(),
        version: crate::VERSION.to_string(),
        run_id: format!(
            "{}-{}",
            started_at.format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        ),
        totals: None,
        hook: None,
    };
    crate::ops::progress::end();
    let state = StoreState::new(paths.store_state(&store.name));
    rec.totals = Some(state.totals().plus(&rec));
    let written = state.write_last(&rec, success, baseline);
    if let Err(e) = written {
        tracing::error!("could not record the run of store {:?}: {e}", store.name);
        let msg = format!("the run record could not be written: {e}");
        rec.error = Some(match rec.error.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
        rec.outcome = Outcome::Error;
        rec.totals = Some(state.totals().plus(&rec));
    }
    // The hook runs after the record is written and under the lock, so the
    // record it points to is this run's; the record is then rewritten with
    // the hook's result. Neither can change the outcome.
    if let Some((hook, command)) = hooks::which(&store.hooks, &rec, success) {
        let env = hooks::env(hook, &rec, &state.last_run_path());
        rec.hook = Some(hooks::run(hook, command, &env, store.hooks.timeout));
        if let Err(e) = state.write_last(&rec, success, false) {
            tracing::warn!("could not record the hook of store {:?}: {e}", store.name);
        }
    }
    if let Err(e) = state.append_history(&rec) {
        tracing::warn!(
            "could not append to the history of store {:?}: {e}",
            store.name
        );
    }
    drop(held);
    rec
}

fn run_locked(paths: &Paths, store: &StoreConfig, opts: &SyncOptions) -> crate::Result<Done> {
    let mut recovered = Vec::new();
    let skipped = |reason: String, success: bool| Done {
        outcome: Outcome::Skipped,
        reason: Some(reason),
        stats: Stats::default(),
        success,
        baseline: false,
    };
    let log = match std::fs::symlink_metadata(&store.log) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(skipped(
                format!(
                    "{} does not exist yet: nothing to compact (check the store's `log` if a writer should have created it)",
                    store.log.display()
                ),
                false,
            ));
        }
        _ => compact::resolve_log(&store.log)?,
    };
    // Step 2: what an earlier crashed run left.
    recovered.extend(durable::remove_stale_temps(&log)?);
    recovered.extend(rotation::remove_live_links(&log)?);
    for p in &recovered {
        tracing::warn!("removed {} left by an interrupted run", p.display());
    }

    // Late writes of a writer that ignores the lock, into the last rotated
    // file: carry them into the live log before anything else.
    let state_dir = paths.store_state(&store.name);
    let mode = std::fs::metadata(&log).map_or(0o644, |m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode()
    });
    let (late, mut watches) = late::carry_all(&log, &late::load(&state_dir), mode)?;
    if late.from.is_some() {
        late::save(&state_dir, &watches)?;
    }
    let with_late = |stats: &mut Stats| {
        stats.late_lines_carried = late.lines;
        stats.late_lines_quarantined = late.quarantined;
        stats.late_lines_from = late.from.clone();
    };

    if !opts.force && store.min_growth > 0.0 {
        let state = StoreState::new(paths.store_state(&store.name));
        if let Some(b) = state.baseline() {
            let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let grown = size.saturating_sub(b.bytes_after) as f64 / b.bytes_after.max(1) as f64;
            if grown < store.min_growth {
                let mut d = skipped(
                    format!(
                        "the log grew {:.0}% since the last compaction, below min_growth {:.0}% (use --force to compact anyway)",
                        grown * 100.0,
                        store.min_growth * 100.0
                    ),
                    true,
                );
                d.stats.bytes_before = size;
                d.stats.bytes_after = size;
                d.stats.recovered = recovered;
                with_late(&mut d.stats);
                return Ok(d);
            }
        }
    }

    let mut stats = compact::compact(store)?;
    stats.recovered = recovered;
    with_late(&mut stats);
    if let Some(rotated) = &stats.rotated {
        // Watch the file we just rotated for late writes.
        watches.push(late::Watch {
            rotated: rotated.clone(),
            size: stats.rotated_bytes,
        });
    }
    let t = Instant::now();
    // The newest rotated file is kept at least until the next run has
    // checked it for late writes, even with keep_rotated = 0.
    stats.pruned = rotation::prune(&log, store.keep_rotated.max(1), store.max_age)?;
    late::save(&state_dir, &watches)?;
    stats.timings.prune_ms = (t.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    crate::failpoint!("before-record");
    Ok(Done {
        outcome: Outcome::Ok,
        reason: (!stats.rewritten)
            .then(|| "the fold changed nothing; the log was left as it is".to_string()),
        stats,
        success: true,
        baseline: true,
    })
}
