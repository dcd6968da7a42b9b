//! The job (`sync`) for one store, steps 1-5 of the contract: lock, recover
//! (`recover.rs`), compact (`cut.rs` + `swap.rs`, late writes folded in at
//! their swap point: `late.rs`), census and prune (`census.rs`,
//! `rotation.rs`), record (`record.rs`).
//!
//! Crash order of the bookkeeping: the late-write state is *prepared* before
//! the swap's rename (by `compact`) and *committed* after pruning; pruning
//! never removes a file the prepared state still needs (one with a writer or
//! uncarried bytes), so a crash anywhere leaves a state that `late::load`
//! resolves by the live inode.
//!
//! Invariant: [`sync_store`] always writes a last-run record, whatever
//! happens, and returns it; it never panics on I/O errors.

pub mod carry;
pub mod census;
pub mod compact;
pub mod cut;
pub mod dryrun;
pub mod growth;
pub mod inplace;
pub mod interrupt;
pub mod late;
pub mod lock;
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

use std::time::Instant;

use chrono::Utc;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext};
use crate::io::{durable, safe};
use crate::job::lock::{StoreLock, Wait};
use crate::job::record::{Outcome, RunRecord, RunRecords, Stats};
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
    let mut waited = std::time::Duration::ZERO;
    // A state dir that cannot be made would fail the record at the end:
    // find out before the log is touched, so such a run changes nothing.
    let state_ready = durable::ensure_private_dir(&paths.store_state(&store.name));
    // A state dir that is not trusted takes no record either: nothing of
    // this run is written there.
    let state_untrusted = matches!(&state_ready, Err(Error::Unsafe { .. }));
    // A run that could not keep the log's owner refuses before it makes
    // any file beside the log.
    let state_ready = state_ready.and_then(|()| match &store.segments {
        None => match std::fs::metadata(&store.log) {
            Ok(m) => check_can_keep_owner(&store.log, &m),
            Err(_) => Ok(()),
        },
        Some(_) => Ok(()),
    });
    let result = match state_ready.and_then(|()| {
        StoreLock::acquire(
            &store.name,
            &store.lock_anchor(),
            opts.trigger.as_str(),
            wait,
        )
    }) {
        Ok(lock) => {
            waited = lock.waited();
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
            held = Some(lock);
            match &store.segments {
                Some(policy) => segmented::run(paths, store, policy, opts),
                None => run_locked(paths, store, opts),
            }
            .map(|mut d| {
                d.stats.timings.lock_ms = lock_ms;
                d
            })
        }
        Err(Error::Lock(crate::error::LockError::Busy { holder, lock, .. })) => {
            Ok(Done::busy(&holder, &lock, opts))
        }
        Err(e) => Err(e),
    };
    let result = match result {
        Err(e) => Err(interrupt::explain(e)),
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
            Ok(d)
        }
    };
    let (done, error) = match result {
        Ok(d) => (d, None),
        Err(e) => (
            Done {
                outcome: Outcome::Error,
                reason: None,
                stats: Stats {
                    // A failed verification's digests go in the record.
                    verify: match &e {
                        Error::Sync(crate::error::SyncError::VerifyFailed {
                            verification, ..
                        }) => Some((**verification).clone()),
                        _ => None,
                    },
                    ..refusal_stats(&e)
                },
                success: false,
                baseline: false,
            },
            Some(e),
        ),
    };
    let (success, baseline) = (done.success, done.baseline);
    let mut rec = RunRecord {
        store: store.name.clone(),
        log: store.log.clone(),
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
    };
    crate::io::progress::end();
    // -v / -vv (C.14): what was done, then how long each step took.
    tracing::info!(
        "store {:?}: {} in {:.3}ms ({} -> {} bytes, {} lines in, {} out)",
        store.name,
        rec.outcome.as_str(),
        rec.duration_ms,
        rec.stats.bytes_before,
        rec.stats.bytes_after,
        rec.stats.lines_in,
        rec.stats.lines_out
    );
    tracing::debug!(
        "store {:?}: timings {:?}; writers {:?}",
        store.name,
        rec.stats.timings,
        rec.stats.writers
    );
    if state_untrusted {
        return rec;
    }
    let state = RunRecords::new(paths.store_state(&store.name));
    let records_lock = lock_records(&state, &store.name);
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
    drop(records_lock);
    // The hook runs after the record is written and under the store lock,
    // so the record it points to is this run's; the record is then
    // rewritten with the hook's result, unless a run that found the store
    // busy meanwhile recorded itself (its record, and its counters, stay).
    // Neither can change the outcome.
    let records_lock = match hooks::which(&store.hooks, &rec, success) {
        Some((hook, command)) => {
            let env = hooks::env(hook, &rec, &state.last_run_path());
            rec.hook = Some(hooks::run(hook, command, &env, store.hooks.timeout));
            let records_lock = lock_records(&state, &store.name);
            let still_ours = state.last_run().is_some_and(|r| r.run_id == rec.run_id);
            if still_ours && let Err(e) = state.write_last(&rec, success, false) {
                tracing::warn!("could not record the hook of store {:?}: {e}", store.name);
            }
            records_lock
        }
        None => lock_records(&state, &store.name),
    };
    if let Err(e) = state.append_history(&rec) {
        tracing::warn!(
            "could not append to the history of store {:?}: {e}",
            store.name
        );
    }
    drop(records_lock);
    drop(held);
    rec
}

/// The records lock, or none if it cannot be had (the records are still
/// written: a lost counter increment is better than a lost record).
fn lock_records(state: &RunRecords, store: &str) -> Option<record::RecordsLock> {
    state
        .lock_records()
        .inspect_err(|e| tracing::warn!("store {store:?}: {e}"))
        .ok()
}

/// Steps 2-4 under the store lock: recover, compact (late writes folded in
/// at their swap point), census and prune, then commit the late-write state.
fn run_locked(paths: &Paths, store: &StoreConfig, opts: &SyncOptions) -> crate::Result<Done> {
    if let Err(e) = std::fs::symlink_metadata(&store.log)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(Done::skipped(missing_log_reason(store), false));
    }
    let log = compact::resolve_log(&store.log)?;
    let state_dir = paths.store_state(&store.name);
    let recovered = recover::recover(&log, &state_dir)?;
    interrupt::check("after cleaning up")?;
    let live = std::fs::metadata(&log).ctx("stat log", &log)?;
    check_state_file(&late::state_path(&state_dir))?;
    let (mut late_state, leftover) = late::load(&state_dir, &log, &live);
    trusted_watches(&log, &live, &mut late_state);

    if let Some(mut d) = below_min_growth(paths, store, opts, &live, &late_state) {
        d.stats.recovered = recovered;
        d.stats.writers = census::take(&[&log]);
        return Ok(d);
    }

    refuse_broken_watches(&state_dir, &late_state)?;
    refuse_unsafe_writers(store, &log)?;
    interrupt::check("before compacting")?;
    let compacted = replace_log(store, &log, &state_dir, &late_state)?;
    let mut stats = compacted.stats;
    stats.recovered = recovered;
    let t = Instant::now();
    let state = prune(&log, store, &compacted.state, &mut stats)?;
    if leftover || state != late_state || compacted.state != late_state {
        late::commit(&state_dir, &state)?;
    }
    stats.timings.prune_ms = (t.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    note_detached_writers(&log, &mut stats);
    crate::failpoint::failpoint!(BeforeRecord);
    Ok(Done {
        outcome: Outcome::Ok,
        reason: (!stats.rewritten)
            .then(|| "the fold changed nothing; the log was left as it is".to_string()),
        stats,
        success: true,
        baseline: true,
    })
}

/// Compact by the strategy this run chooses (`strategy.rs`): in place for
/// a keyed store whose writers keep their fd and lock, else a swap and its
/// carry window. The choice and its reason go into the record.
fn replace_log(
    store: &StoreConfig,
    log: &std::path::Path,
    state_dir: &std::path::Path,
    late_state: &late::LateWrites,
) -> crate::Result<compact::Compacted> {
    let before = census::take(&[log]);
    let (mut chosen, mut report) = strategy::decide(store, log, state_dir, &before)?;
    if chosen == crate::config::Strategy::InPlace && !store.is_keyed() {
        chosen = crate::config::Strategy::Swap;
        report.strategy = "swap".into();
        report.reason = format!(
            "{}; but an append-only store is never rewritten in place",
            report.reason
        );
    }
    let mut compacted = None;
    if chosen == crate::config::Strategy::InPlace {
        match inplace::compact(store, late_state)? {
            inplace::Attempt::Done(c) => compacted = Some(*c),
            inplace::Attempt::Declined(why) => {
                report.strategy = "swap".into();
                report.reason = format!("{}; swapped this run: {why}", report.reason);
            }
        }
    }
    let mut compacted = match compacted {
        Some(c) => c,
        None => compact::compact(
            store,
            state_dir,
            late_state,
            Some(compact::CarryWindow {
                before: &before,
                window: store.carry_window,
            }),
        )?,
    };
    report.window = compacted.window.take();
    if let Some(w) = &report.window
        && !w.stayed.is_empty()
        && report.unserved.is_none()
    {
        report.unserved = Some(format!(
            "{} still held the old inode when the carry window closed: its lines written after that reach the live path at the next run. If it keeps one fd for life and takes flock (class B), set strategy = \"in-place\"; if it reopens late, raise carry_window",
            w.stayed
                .iter()
                .map(|o| format!("pid {} ({})", o.pid, o.program))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    compacted.stats.strategy = Some(report);
    Ok(compacted)
}

/// Writers still holding an older rotated file (one fd for life, left on
/// the inode of an earlier swap): their lines reach the live path only at
/// each run. Said in the record's `strategy.unserved` (G7).
fn note_detached_writers(log: &std::path::Path, stats: &mut Stats) {
    let detached: Vec<String> = stats
        .writers
        .openers
        .iter()
        .filter(|o| o.file != log)
        .map(|o| format!("pid {} ({}) on {}", o.pid, o.program, o.file.display()))
        .collect();
    if let Some(rep) = stats.strategy.as_mut()
        && rep.unserved.is_none()
        && !detached.is_empty()
    {
        rep.unserved = Some(format!(
            "{} still writes to a rotated file (it kept its fd across a swap): its lines reach the live path only at each run. If it takes flock around its appends (class B), restart it and set strategy = \"in-place\" (or make it reopen on a new inode, the writer protocol)",
            detached.join(", ")
        ));
    }
}

/// Why a run of a store whose log does not exist is skipped.
pub(crate) fn missing_log_reason(store: &StoreConfig) -> String {
    format!(
        "{} does not exist yet: nothing to compact (check the store's `log` if a writer should have created it)",
        store.log.display()
    )
}

/// A rotated file whose only uncarried bytes are a partial line, and that
/// no process holds open, will never see that line finished: the fragment
/// (a writer's torn last write) is quarantined (G3) and counted as carried,
/// so the file can be pruned. An older rotated file gains no new writer
/// (only an fd opened before its swap reaches it), so a census that shows
/// none means none will come; this run's file is left for the next run.
fn quarantine_dead_fragments(
    log: &std::path::Path,
    state: &mut late::LateWrites,
    census: &census::Census,
    grace: std::time::Duration,
    stats: &mut Stats,
) -> crate::Result<()> {
    let mode = std::fs::metadata(log).map_or(0o644, |m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode()
    });
    for w in state.watches.iter_mut() {
        if stats.rotated.as_deref() == Some(w.rotated.as_path())
            || census.of(&w.rotated).next().is_some()
            || !quiet(&w.rotated, census, grace)
        {
            continue;
        }
        let Ok(f) = safe::open_beside(&w.rotated, safe::Access::Read) else {
            continue;
        };
        let size = f.metadata().ctx("stat", &w.rotated)?.len();
        if size <= w.carried || crate::fold::find_cut(&f, size).ctx("read", &w.rotated)? > w.carried
        {
            continue;
        }
        let bad = crate::fold::Bad {
            range: crate::fold::Range {
                start: w.carried,
                end: size,
            },
            reason: crate::fold::json::Invalid {
                reason: "a torn line left in a rotated file by a writer that has exited",
                at: 0,
            },
        };
        stats.quarantine_file = Some(quarantine::append(log, &w.rotated, &f, &[bad], mode)?);
        stats.late_lines_quarantined += 1;
        w.carried = size;
    }
    Ok(())
}

/// Issue 16 A.3: a watched rotated file that shrank, was replaced or had
/// its carried bytes rewritten fails the run before anything is touched.
/// The broken watch is dropped from the committed state (so the failure is
/// reported once, by this run's record and hook, and the next run goes on);
/// it is never dropped silently.
fn refuse_broken_watches(
    state_dir: &std::path::Path,
    state: &late::LateWrites,
) -> crate::Result<()> {
    let broken = late::broken_watches(state);
    let Some((first, what)) = broken.first() else {
        return Ok(());
    };
    let mut next = state.clone();
    next.watches
        .retain(|w| !broken.iter().any(|(b, _)| b.rotated == w.rotated));
    late::commit(state_dir, &next)?;
    Err(Error::Sync(crate::error::SyncError::LateWatchBroken {
        rotated: first.rotated.clone(),
        what: what.clone(),
    }))
}

/// The one writer pattern a swap cannot serve: a process with the live log
/// open for writing *without* `O_APPEND` writes at its own file offset. After
/// a swap it goes on writing into the rotated file at that offset, which
/// can be below what was already carried (another writer appended after
/// it), so its lines would be overwritten or never carried. Detected before
/// anything is touched; the run fails naming the process.
fn refuse_unsafe_writers(store: &StoreConfig, log: &std::path::Path) -> crate::Result<()> {
    if store.allow_positional_writers {
        return Ok(());
    }
    let census = census::take(&[log]);
    let Some(o) = census.openers.iter().find(|o| !o.append) else {
        return Ok(());
    };
    Err(Error::Sync(crate::error::SyncError::UnsafeWriter {
        path: log.to_path_buf(),
        pid: o.pid,
        program: o.program.clone(),
        fd: o.fd,
        flags: o.flags.clone(),
    }))
}

/// Whether the census may let `p` go: it sees every writer, or `p` has
/// been quiet (size and mtime unchanged, so mtime at least `grace` ago)
/// for the grace period. With an incomplete census an unseen writer may
/// still hold `p` open, and a rotated file it writes to must stay watched.
fn quiet(p: &std::path::Path, census: &census::Census, grace: std::time::Duration) -> bool {
    if census.complete() {
        return true;
    }
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= grace))
}

/// The watches a run may act on: a watch names a rotated file of this
/// log, in its directory. One without its inode (`ino` 0, from the old
/// watch file) is kept only for a regular file owned by the log's owner,
/// and gets that file's inode; never is a state file's word enough to
/// read a file elsewhere (G8).
fn trusted_watches(log: &std::path::Path, live: &std::fs::Metadata, state: &mut late::LateWrites) {
    use std::os::unix::fs::MetadataExt;
    let dir = durable::parent_dir(log);
    let ours: Vec<std::path::PathBuf> = rotation::list(log)
        .map(|l| l.into_iter().map(|(_, p)| p).collect())
        .unwrap_or_default();
    state.watches.retain_mut(|w| {
        if durable::parent_dir(&w.rotated) != dir || !ours.contains(&w.rotated) {
            tracing::warn!(
                "ignoring a late-write watch on {}: not a rotated file of {}",
                w.rotated.display(),
                log.display()
            );
            return false;
        }
        if w.ino != 0 {
            return true;
        }
        match safe::open_beside(&w.rotated, safe::Access::Read).and_then(|f| f.metadata()) {
            Ok(m) if m.uid() == live.uid() => {
                (w.dev, w.ino) = (m.dev(), m.ino());
                true
            }
            _ => false,
        }
    });
}

/// A state file not owned by this user, or writable by others, is refused:
/// its content could have been planted.
fn check_state_file(path: &std::path::Path) -> crate::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if m.file_type().is_file() && m.uid() == safe::euid() && m.mode() & 0o022 == 0 {
        return Ok(());
    }
    Err(Error::Unsafe {
        path: path.to_path_buf(),
        msg: format!(
            "is not a private file of {} (owner {}, mode {:o}): a state file another user could write is never trusted; nothing was changed: remove it if you did not make it",
            safe::user_name(safe::euid()),
            safe::user_name(m.uid()),
            m.mode() & 0o7777
        ),
    })
}

/// Before the log is touched: the run can keep the log's owner and group
/// on the rewritten file (root can; another user only for a log it owns,
/// in one of its groups), and the state it reads is its own (G8).
fn check_can_keep_owner(log: &std::path::Path, live: &std::fs::Metadata) -> crate::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if safe::is_root() || (live.uid() == safe::euid() && safe::in_group(live.gid())) {
        return Ok(());
    }
    let (u, g) = (safe::user_name(live.uid()), safe::group_name(live.gid()));
    Err(Error::Unsafe {
        path: log.to_path_buf(),
        msg: format!(
            "belongs to {u}:{g}, and a run as {me} cannot give the rewritten log that owner (the app would lose access to its own log); nothing was changed: run this store as {u} (`sudo -u {u} logkeeper sync now`, `User={u}` in the systemd unit) or as root",
            me = safe::user_name(safe::euid())
        ),
    })
}

/// What a failed run records besides its error: for a refusal because of a
/// writer, the census of the log at the refusal (C.12: it recorded an empty,
/// unsupported one), so `status` shows who the writer is.
fn refusal_stats(e: &Error) -> Stats {
    let mut stats = Stats::default();
    if let Error::Sync(crate::error::SyncError::UnsafeWriter { path, .. }) = e {
        stats.writers = census::take(&[path]);
    }
    stats
}

/// The `min_growth` check: a skip when the log grew too little since the
/// last compaction and no late writes wait to be carried.
fn below_min_growth(
    paths: &Paths,
    store: &StoreConfig,
    opts: &SyncOptions,
    live: &std::fs::Metadata,
    late_state: &late::LateWrites,
) -> Option<Done> {
    let reason = min_growth_skip(paths, store, opts.force, live.len(), late_state)?;
    let mut d = Done::skipped(reason, true);
    d.stats.bytes_before = live.len();
    d.stats.bytes_after = live.len();
    Some(d)
}

/// Why `min_growth` skips a run of `store` whose log has `size` bytes, or
/// None when it does not (forced, not set, no baseline, grown enough, or
/// late writes wait to be carried). The one home of the rule: a run and
/// `sync now --dry-run` both ask it.
pub(crate) fn min_growth_skip(
    paths: &Paths,
    store: &StoreConfig,
    force: bool,
    size: u64,
    late_state: &late::LateWrites,
) -> Option<String> {
    if force || store.min_growth <= 0.0 {
        return None;
    }
    let b = RunRecords::new(paths.store_state(&store.name)).baseline()?;
    let grown = size.saturating_sub(b.bytes_after) as f64 / b.bytes_after.max(1) as f64;
    let late_waiting = late_state
        .watches
        .iter()
        .any(|w| std::fs::metadata(&w.rotated).is_ok_and(|m| m.len() > w.carried));
    if grown >= store.min_growth || late_waiting {
        return None;
    }
    Some(format!(
        "the log grew {:.0}% since the last compaction, below min_growth {:.0}% (use --force to compact anyway)",
        grown * 100.0,
        store.min_growth * 100.0
    ))
}

/// Step 4: take the writer census of the live log and every rotated file,
/// prune by retention, never a protected file (this run's, one a writer
/// holds open, one with uncarried late writes), and drop the watches that
/// can receive nothing more. Returns the late-write state to commit.
fn prune(
    log: &std::path::Path,
    store: &StoreConfig,
    state: &late::LateWrites,
    stats: &mut Stats,
) -> crate::Result<late::LateWrites> {
    let rotated: Vec<std::path::PathBuf> =
        rotation::list(log)?.into_iter().map(|(_, p)| p).collect();
    let mut files: Vec<&std::path::Path> = vec![log];
    files.extend(rotated.iter().map(|p| p.as_path()));
    let census = census::take(&files);
    let mut state = state.clone();
    quarantine_dead_fragments(log, &mut state, &census, store.blind_grace, stats)?;
    let state = &state;
    let uncarried = |p: &std::path::Path| {
        state
            .watches
            .iter()
            .any(|w| w.rotated == p && std::fs::metadata(p).is_ok_and(|m| m.len() > w.carried))
    };
    let protect = |p: &std::path::Path| {
        stats.rotated.as_deref() == Some(p)
            || census.of(p).next().is_some()
            || uncarried(p)
            || !quiet(p, &census, store.blind_grace)
    };
    let pruned = rotation::prune(log, store.keep_rotated, store.max_age, &protect)?;
    let mut next = state.clone();
    next.watches.retain(|w| {
        !pruned.removed.contains(&w.rotated)
            && w.rotated.exists()
            && (protect(&w.rotated) || stats.rotated.as_deref() == Some(w.rotated.as_path()))
    });
    stats.pruned = pruned.removed;
    stats.kept_for_late_writes = pruned.kept;
    stats.writers = census;
    Ok(next)
}
