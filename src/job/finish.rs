//! Step 5 of a run: the record (built from what the locked part decided,
//! written under the records lock) and the hook (run after the record is
//! written and under the store lock, so the record it points to is this
//! run's).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::StoreConfig;
use crate::error::Error;
use crate::io::durable;
use crate::job::record::{self, Outcome, RunRecord, RunRecords, Stats};
use crate::job::{Done, SyncOptions, guard, interrupt};
use crate::ops::hooks;
use crate::paths::Paths;

/// What the locked part's result becomes: a failure is an error outcome
/// (with a failed verification's digests, or a refusing writer's census);
/// a signal received after the last safe point is a note on a success.
pub(super) fn conclude(result: crate::Result<Done>) -> (Done, Option<Error>) {
    match result.map_err(interrupt::explain) {
        Ok(mut d) => {
            if let Some(signal) = interrupt::received() {
                // Past its last safe point: the run finished its work.
                let note = format!(
                    "interrupted by {signal} after its last safe point: the run finished first"
                );
                d.reason = Some(match d.reason.take() {
                    Some(r) => format!("{r}; {note}"),
                    None => note,
                });
            }
            (d, None)
        }
        Err(e) => {
            let stats = Stats {
                // A failed verification's digests go in the record.
                verify: match &e {
                    Error::Sync(crate::error::SyncError::VerifyFailed { verification, .. }) => {
                        Some((**verification).clone())
                    }
                    _ => None,
                },
                ..guard::refusal_stats(&e)
            };
            let d = Done {
                outcome: Outcome::Error,
                reason: None,
                stats,
                success: false,
                baseline: false,
            };
            (d, Some(e))
        }
    }
}

/// The run's record (not written yet).
pub(super) fn record(
    store: &StoreConfig,
    opts: &SyncOptions,
    (done, error): (Done, Option<Error>),
    started_at: DateTime<Utc>,
    t0: Instant,
    waited: Duration,
) -> RunRecord {
    RunRecord {
        store: store.name.clone(),
        log: store.path().to_path_buf(),
        outcome: done.outcome,
        trigger: opts.trigger.as_str().to_string(),
        started_at,
        finished_at: Utc::now(),
        duration_ms: ((t0.elapsed() - waited).as_secs_f64() * 1e6).round() / 1e3,
        wait_ms: (waited.as_secs_f64() * 1e6).round() / 1e3,
        reason: done.reason,
        // The record keeps the message; the error itself ends here.
        error: error.map(|e| e.to_string()),
        stats: done.stats,
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
    }
}

/// -v / -vv (C.14): what was done, then how long each step took.
pub(super) fn trace(rec: &RunRecord) {
    tracing::info!(
        "store {:?}: {} in {:.3}ms ({} -> {} bytes, {} lines in, {} out)",
        rec.store,
        rec.outcome.as_str(),
        rec.duration_ms,
        rec.stats.bytes_before,
        rec.stats.bytes_after,
        rec.stats.lines_in,
        rec.stats.lines_out
    );
    tracing::debug!(
        "store {:?}: timings {:?}; writers {:?}",
        rec.store,
        rec.stats.timings,
        rec.stats.writers
    );
}

/// Write the record, run the hook, rewrite the record with the hook's
/// result, append to the history. A record that cannot be written makes
/// the run an error (said in the returned record).
pub(super) fn write_and_hook(
    paths: &Paths,
    store: &StoreConfig,
    rec: &mut RunRecord,
    (success, baseline): (bool, bool),
) {
    let state = RunRecords::new(paths.store_state(&store.name));
    let records_lock = lock_records(&state, &store.name);
    rec.totals = Some(state.totals().plus(rec));
    if let Err(e) = state.write_last(rec, success, baseline) {
        tracing::error!("could not record the run of store {:?}: {e}", store.name);
        let msg = format!("the run record could not be written: {e}");
        rec.error = Some(match rec.error.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
        rec.outcome = Outcome::Error;
        rec.totals = Some(state.totals().plus(rec));
    }
    drop(records_lock);
    // The record is rewritten with the hook's result, unless a run that
    // found the store busy meanwhile recorded itself (its record, and its
    // counters, stay). Neither can change the outcome.
    let records_lock = match hooks::which(&store.hooks, rec, success) {
        Some((hook, command)) => {
            let env = hooks::env(hook, rec, &state.last_run_path());
            rec.hook = Some(hooks::run(hook, command, &env, store.hooks.timeout));
            let records_lock = lock_records(&state, &store.name);
            let still_ours = state.last_run().is_some_and(|r| r.run_id == rec.run_id);
            if still_ours && let Err(e) = state.write_last(rec, success, false) {
                tracing::warn!("could not record the hook of store {:?}: {e}", store.name);
            }
            records_lock
        }
        None => lock_records(&state, &store.name),
    };
    if let Err(e) = state.append_history(rec) {
        tracing::warn!(
            "could not append to the history of store {:?}: {e}",
            store.name
        );
    }
    drop(records_lock);
}

/// The records lock, or none if it cannot be had (the records are still
/// written: a lost counter increment is better than a lost record).
fn lock_records(state: &RunRecords, store: &str) -> Option<record::RecordsLock> {
    state
        .lock_records()
        .inspect_err(|e| tracing::warn!("store {store:?}: {e}"))
        .ok()
}
