//! The job (`sync`) for one store, steps 1-5 of the contract: lock
//! (`lock.rs`), recover, plan (`crate::plan`) and execute the choice (a
//! store of one log: `log.rs`, with `compact.rs`, `swap.rs`, `inplace.rs`;
//! a segmented store: `segmented/`), record and hook (`finish.rs`). The
//! pipeline is described once, in docs/design.md.
//!
//! Invariant: [`sync_store`] always writes a last-run record, whatever
//! happens, and returns it; it never panics on I/O errors.

pub mod carry;
pub mod census;
pub mod compact;
pub mod cut;
pub mod dryrun;
mod finish;
pub mod growth;
mod guard;
pub mod inplace;
pub mod interrupt;
pub mod late;
pub mod lock;
mod log;
pub mod quarantine;
pub mod record;
pub mod recover;
pub mod rotation;
pub mod segmented;
pub mod strategy;
pub mod swap;
mod trigger;
pub mod verify;

pub use trigger::Trigger;

pub(crate) use log::{min_growth_skip, missing_log_reason};

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::{StoreConfig, StoreKind};
use crate::error::Error;
use crate::io::durable;
use crate::job::lock::{StoreLock, Wait};
use crate::job::record::{Outcome, RunRecord, Stats};
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

impl Done {
    fn skipped(reason: String, success: bool) -> Done {
        Done {
            outcome: Outcome::Skipped,
            reason: Some(reason),
            stats: Stats::default(),
            success,
            baseline: false,
        }
    }

    fn busy(holder: &str, lock: &std::path::Path, opts: &SyncOptions) -> Done {
        Done {
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
        }
    }
}

/// Run the job for one store and record it: lock, recover, plan, execute,
/// record, hook. Sets SIGXFSZ to ignored (once, process-wide;
/// [`crate::io::sys::ignore_sigxfsz`]) so a file-size limit fails the run
/// with EFBIG instead of killing the caller.
pub fn sync_store(paths: &Paths, store: &StoreConfig, opts: &SyncOptions) -> RunRecord {
    crate::io::sys::ignore_sigxfsz();
    let started_at = Utc::now();
    let t0 = Instant::now();
    // A state dir that cannot be made would fail the record at the end:
    // find out before the log is touched, so such a run changes nothing.
    let state_ready = durable::ensure_private_dir(&paths.store_state(&store.name));
    // A state dir that is not trusted takes no record either: nothing of
    // this run is written there.
    let state_untrusted = matches!(&state_ready, Err(Error::Unsafe { .. }));
    // The lock is held until the record is written, so a run's record is
    // on disk before any other run can start.
    let (result, held) = match state_ready
        .and_then(|()| before_lock(store))
        .and_then(|()| lock(store, opts, t0))
    {
        Ok((lock, lock_ms)) => {
            // Recover, plan and execute: each kind's own pipeline.
            let result = match &store.kind {
                StoreKind::Log(policy) => log::run(paths, store, policy, opts),
                StoreKind::Segmented(policy) => segmented::run(paths, store, policy, opts),
            };
            let result = result.map(|mut d| {
                d.stats.timings.lock_ms = lock_ms;
                d
            });
            (result, Some(lock))
        }
        Err(Error::Lock(crate::error::LockError::Busy { holder, lock, .. })) => {
            (Ok(Done::busy(&holder, &lock, opts)), None)
        }
        Err(e) => (Err(e), None),
    };
    let waited = held.as_ref().map_or(Duration::ZERO, |l| l.waited());
    let (done, error) = finish::conclude(result);
    let flags = (done.success, done.baseline);
    let mut rec = finish::record(store, opts, (done, error), started_at, t0, waited);
    crate::io::progress::end();
    finish::trace(&rec);
    if !state_untrusted {
        finish::write_and_hook(paths, store, &mut rec, flags);
    }
    drop(held);
    rec
}

/// A run that could not keep the owner of the log (or of a segmented
/// store's segments) refuses before it makes any file beside them (the
/// lock included), deletes or rewrites anything.
fn before_lock(store: &StoreConfig) -> crate::Result<()> {
    match &store.kind {
        StoreKind::Log(p) => match std::fs::metadata(&p.log) {
            Ok(m) => guard::check_can_keep_owner(&p.log, &m),
            Err(_) => Ok(()),
        },
        StoreKind::Segmented(p) => {
            let listing = crate::config::pattern::list(&p.pattern, &store.name)?;
            guard::check_can_keep_segment_owners(listing.sealed())
        }
    }
}

/// Take the store lock (waiting for it if asked); how long taking it took,
/// besides any wait for another run.
fn lock(store: &StoreConfig, opts: &SyncOptions, t0: Instant) -> crate::Result<(StoreLock, f64)> {
    let wait = if opts.wait { Wait::Yes } else { Wait::No };
    let lock = StoreLock::acquire(
        &store.name,
        &store.lock_anchor(),
        opts.trigger.as_str(),
        wait,
    )?;
    let waited = lock.waited();
    let lock_ms = (t0.elapsed() - waited).as_secs_f64() * 1e3;
    tracing::info!(
        "store {:?}: lock {} taken in {lock_ms:.3}ms{}",
        store.name,
        lock.path().display(),
        if waited.is_zero() {
            String::new()
        } else {
            format!(
                " after waiting {:.3}s for another run",
                waited.as_secs_f64()
            )
        }
    );
    Ok((lock, lock_ms))
}
