//! The locked part of a run of a store of one live log (steps 2-4 of the
//! contract): recover, plan (`plan::log`), execute the choice (compact:
//! `compact.rs`, in place: `inplace.rs`), census and prune, then commit the
//! late-write state.
//!
//! Crash order of the bookkeeping: the late-write state is *prepared* before
//! the swap's rename (by `compact`) and *committed* after pruning; pruning
//! never removes a file the prepared state still needs (one with a writer or
//! uncarried bytes), so a crash anywhere leaves a state that `late::load`
//! resolves by the live inode.

use std::path::Path;
use std::time::Instant;

use crate::config::{LogPolicy, StoreConfig};
use crate::error::IoContext;
use crate::io::safe;
use crate::job::guard::{
    check_state_file, refuse_broken_watches, refuse_unsafe_writers, trusted_watches,
};
use crate::job::record::{Outcome, RunRecords, Stats};
use crate::job::{
    Done, SyncOptions, census, compact, inplace, interrupt, late, quarantine, recover, rotation,
    strategy,
};
use crate::paths::Paths;
use crate::plan::{self, Busy};

/// Steps 2-4 under the store lock: recover, skip by `min_growth` or
/// compact (late writes folded in at their swap point), census and prune,
/// then commit the late-write state.
pub(super) fn run(
    paths: &Paths,
    store: &StoreConfig,
    policy: &LogPolicy,
    opts: &SyncOptions,
) -> crate::Result<Done> {
    if let Err(e) = std::fs::symlink_metadata(&policy.log)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(Done::skipped(missing_log_reason(store), false));
    }
    let log = compact::resolve_log(&policy.log)?;
    let state_dir = paths.store_state(&store.name);
    let recovered = recover::recover(&log, &state_dir)?;
    interrupt::check("after cleaning up")?;
    let live = std::fs::metadata(&log).ctx("stat log", &log)?;
    check_state_file(&late::state_path(&state_dir))?;
    let (mut late_state, leftover) = late::load(&state_dir, &log, &live);
    trusted_watches(&log, &live, &mut late_state);

    if let Some(reason) = min_growth_skip(paths, store, opts.force, live.len(), &late_state) {
        let mut d = Done::skipped(reason, true);
        (d.stats.bytes_before, d.stats.bytes_after) = (live.len(), live.len());
        d.stats.recovered = recovered;
        d.stats.writers = census::take(&[&log]);
        return Ok(d);
    }

    refuse_broken_watches(&state_dir, &late_state)?;
    // One census of the writers before the run compacts: who may not be
    // swapped away from (no `O_APPEND`), the strategy's, the carry
    // window's first.
    let before = census::take(&[&log]);
    refuse_unsafe_writers(store, &log, &before)?;
    interrupt::check("before compacting")?;
    let compacted = replace_log(store, policy, &log, &state_dir, &late_state, &before)?;
    let mut stats = compacted.stats;
    stats.recovered = recovered;
    let t = Instant::now();
    let state = prune(&log, store, policy, &compacted.state, &mut stats)?;
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

/// Why `min_growth` skips a run of `store` whose log has `size` bytes, or
/// None (the rule is `plan::log::skip`; this gathers its inputs: the
/// baseline the last compaction left, and whether late writes wait to be
/// carried). A run and `sync now --dry-run` both ask it.
pub(crate) fn min_growth_skip(
    paths: &Paths,
    store: &StoreConfig,
    force: bool,
    size: u64,
    late_state: &late::LateWrites,
) -> Option<String> {
    let policy = store.log_policy()?;
    if force || policy.min_growth <= 0.0 {
        return None;
    }
    let baseline = RunRecords::new(paths.store_state(&store.name))
        .baseline()
        .map(|b| b.bytes_after);
    let late_waiting = late_state
        .watches
        .iter()
        .any(|w| std::fs::metadata(&w.rotated).is_ok_and(|m| m.len() > w.carried));
    match plan::log::skip(policy, force, size, baseline, late_waiting)? {
        plan::log::Choice::Skip(why) => Some(why),
        _ => None,
    }
}

/// Compact by the strategy this run chooses (`strategy.rs`): in place for
/// a keyed store whose writers keep their fd and lock, else a swap and its
/// carry window. The choice and its reason go into the record.
fn replace_log(
    store: &StoreConfig,
    policy: &LogPolicy,
    log: &std::path::Path,
    state_dir: &std::path::Path,
    late_state: &late::LateWrites,
    before: &census::Census,
) -> crate::Result<compact::Compacted> {
    let (mut chosen, mut report) = strategy::decide(store, log, state_dir, before)?;
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
            policy,
            state_dir,
            late_state,
            Some(compact::CarryWindow {
                before,
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
        store.path().display()
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

/// Step 4: take the writer census of the live log and every rotated file,
/// prune by retention (`plan::log::prune`), never a busy file (this run's,
/// one a writer holds open, one with uncarried late writes, one not quiet
/// long enough), and drop the watches that can receive nothing more.
/// Returns the late-write state to commit.
fn prune(
    log: &Path,
    store: &StoreConfig,
    policy: &LogPolicy,
    state: &late::LateWrites,
    stats: &mut Stats,
) -> crate::Result<late::LateWrites> {
    let rotated = rotation::list(log)?;
    let mut files: Vec<&Path> = vec![log];
    files.extend(rotated.iter().map(|(_, p)| p.as_path()));
    let census = census::take(&files);
    let mut state = state.clone();
    quarantine_dead_fragments(log, &mut state, &census, store.blind_grace, stats)?;
    let busy = busy_files(&rotated, &state, &census, store, stats);
    let chosen = plan::log::prune(
        &rotated,
        policy.keep_rotated,
        store.max_age,
        chrono::Utc::now(),
        &busy,
    );
    rotation::remove(log, &chosen.remove)?;
    let mut next = state.clone();
    next.watches.retain(|w| {
        !chosen.remove.contains(&w.rotated) && w.rotated.exists() && busy.is_busy(&w.rotated)
    });
    stats.pruned = chosen.remove;
    stats.kept_for_late_writes = chosen.kept;
    stats.writers = census;
    Ok(next)
}

/// The busy set of a log's rotated files and watched files: this run's
/// rotated file, one a writer holds open, one with uncarried late writes,
/// one not quiet for `blind_grace` under an incomplete census.
fn busy_files(
    rotated: &[(chrono::DateTime<chrono::Utc>, std::path::PathBuf)],
    state: &late::LateWrites,
    census: &census::Census,
    store: &StoreConfig,
    stats: &Stats,
) -> Busy {
    let uncarried = |p: &Path| {
        state
            .watches
            .iter()
            .any(|w| w.rotated == p && std::fs::metadata(p).is_ok_and(|m| m.len() > w.carried))
    };
    let mut busy = Busy::none();
    let files = rotated
        .iter()
        .map(|(_, p)| p.as_path())
        .chain(state.watches.iter().map(|w| w.rotated.as_path()));
    for p in files {
        if census.of(p).next().is_some() {
            busy.open(p);
        }
        if stats.rotated.as_deref() == Some(p)
            || uncarried(p)
            || !quiet(p, census, store.blind_grace)
        {
            busy.protect(p);
        }
    }
    busy
}
