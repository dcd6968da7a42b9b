//! Segmented stores: a directory of `<prefix><seq><suffix>` files that the
//! app rotates itself (a change feed writing `events-<20-digit seq>.jsonl`
//! and rolling to a new file past a size). The job for such a store:
//! 1. (lock: `<dir>/.<store>.lock`, the same holder record as any store,
//!    taken by [`crate::job::sync_store`]);
//! 2. recover (`recover.rs`): remove temp files of a crashed run, name in
//!    this run's record the prunes a killed run made ([`state::Journal`]),
//!    delete compaction inputs that are due;
//! 3. plan (`plan::segmented`, pure): which segments retention drops, which
//!    the health check reads, whether to merge;
//! 4. drop (`prune.rs`): delete the oldest sealed segments until
//!    `keep_files`, `max_age` and `max_bytes` hold;
//! 5. check ([`health`]): check the lines of sealed segments not checked
//!    yet; quarantine and repair;
//! 6. merge ([`compact`]): keyed compaction when the dirty ratio passes
//!    `min_dirty_ratio`.
//!
//! Invariants (each module states its own crash reasoning):
//! - The active segment, the newest by seq, is never opened for writing,
//!   renamed or deleted; nor is a sealed one the writer census shows open
//!   for writing.
//! - Segment names never change, and the smallest name is always the oldest
//!   retained seq: retention deletes a prefix oldest first, compaction
//!   writes each result under its first input's name.
//! - A file whose name does not match the pattern is reported, never touched.
//! - A run with nothing to do reads no segment: it lists the directory,
//!   compares with the state (which segments were validated, which are
//!   clean), and stops. It takes no census either.

pub mod compact;
pub mod health;
mod prune;
mod recover;
pub mod state;
pub mod view;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use chrono::Utc;

pub use view::{DirSummary, replay, status_notes};

pub use crate::config::SegmentPolicy;

pub use crate::config::pattern;

use crate::config::StoreConfig;
use crate::config::pattern::{Listing, list};
use crate::error::Result;
use crate::fold::FoldSpec;
pub use crate::job::record::report::SegmentStats;
use crate::job::record::{Outcome, Stats};
use crate::job::segmented::state::SegState;
use crate::job::{Done, SyncOptions, census};
use crate::paths::Paths;
use crate::plan::Busy;
use crate::plan::segmented::{self as planner, Choice, Facts};

fn ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// What a run carries from step to step: the state it loaded (and saves
/// before each change it makes), and what it will record.
pub(super) struct Run {
    state_dir: PathBuf,
    state: SegState,
    stats: Stats,
    seg: SegmentStats,
    /// The state changed without a save yet.
    dirty_state: bool,
}

/// The locked part of a run of a segmented store: recover, plan, then
/// execute the choice (drop, check, merge) and describe the directory.
pub(super) fn run(
    paths: &Paths,
    store: &StoreConfig,
    policy: &SegmentPolicy,
    opts: &SyncOptions,
) -> Result<Done> {
    let dir = &policy.pattern.dir;
    if !dir.is_dir() {
        return Ok(missing_dir(dir));
    }
    let t_scan = Instant::now();
    let state_dir = paths.store_state(&store.name);
    let mut r = Run {
        state: SegState::load(&state_dir),
        state_dir,
        stats: Stats::default(),
        seg: SegmentStats::default(),
        dirty_state: false,
    };
    // Step 2: what a crashed run left.
    let mut listing = recover::recover(&mut r, &store.name, policy)?;
    r.stats.bytes_before = listing.total_bytes();
    r.seg.oldest_seq_before = listing.segments.first().map(|s| s.seq);
    r.dirty_state |= r.state.forget_missing(&listing);
    // The plan, from names and sizes only: no census yet.
    let spec = FoldSpec::for_store(store)?;
    let now = SystemTime::now();
    let plan = |busy: &Busy, listing: &Listing, state: &SegState| {
        planner::choose(&Facts {
            listing,
            marks: state,
            busy,
            policy,
            max_age: store.max_age,
            keyed: spec.is_keyed(),
            force: opts.force,
            now,
        })
    };
    let mut busy = pending(&r.state, dir);
    let first = plan(&busy, &listing, &r.state);
    (r.seg.dirty_bytes, r.seg.dirty_ratio) = (first.dirty_bytes, first.dirty_ratio);
    r.stats.timings.scan_ms = ms(t_scan);
    if first.is_nothing() {
        if r.dirty_state {
            r.state.save(&r.state_dir)?;
        }
        return Ok(finish(r, &listing, "nothing to do".into()));
    }
    // Who has a sealed segment open for writing; the plan again with them.
    r.seg.open_for_writing = open_for_writing(&listing, &mut busy);
    let choice = plan(&busy, &listing, &r.state);
    execute(
        &mut r,
        &mut listing,
        choice,
        first.merge,
        &busy,
        (store, policy, &spec, now),
    )?;
    let listing = list(&policy.pattern, &store.name)?;
    crate::failpoint::failpoint!(BeforeRecord);
    let seg = &r.seg;
    let reason = if seg.pruned.is_empty() && seg.compaction.is_none() && seg.repaired.is_empty() {
        format!(
            "checked {} sealed segment(s); nothing to change",
            seg.validated
        )
    } else {
        String::new()
    };
    Ok(finish(r, &listing, reason))
}

/// Execute a choice: step 3 drop (retention), step 4 check (health), step
/// 5 merge (keyed compaction of the eligible prefix), in that order.
fn execute(
    r: &mut Run,
    listing: &mut Listing,
    choice: Choice,
    merge: bool,
    busy: &Busy,
    (store, policy, spec, now): (&StoreConfig, &SegmentPolicy, &FoldSpec, SystemTime),
) -> Result<()> {
    let t = Instant::now();
    prune::drop_segments(r, listing, choice.drop)?;
    r.stats.timings.prune_ms = ms(t);
    let t = Instant::now();
    health::check_chosen(r, listing, &choice.check, busy, policy, &store.name)?;
    // The journal stays until the next run has seen this run's record.
    r.state.save(&r.state_dir)?;
    r.stats.timings.scan_ms += ms(t);
    if merge {
        let t = Instant::now();
        if let Some(inputs) = planner::merge_inputs(listing.sealed(), &r.state, busy, policy, now) {
            merge_segments(r, &inputs, spec, policy, now)?;
        }
        r.stats.timings.write_ms = ms(t);
    }
    Ok(())
}

/// Merge `inputs`, then delete the inputs whose delay is already over.
fn merge_segments(
    r: &mut Run,
    inputs: &[crate::config::pattern::Segment],
    spec: &FoldSpec,
    policy: &SegmentPolicy,
    now: SystemTime,
) -> Result<()> {
    let c = compact::compact(
        inputs,
        spec,
        policy.delete_retention,
        now,
        &mut r.state,
        &r.state_dir,
    )?;
    r.stats.lines_out = c.lines_out;
    r.stats.keys_live = c.keys_live;
    r.stats.deletes_dropped = c.tombstones_dropped;
    r.stats.rewritten = !c.outputs.is_empty();
    r.state.last_compaction = Some(Utc::now());
    r.seg.compaction = Some(c);
    r.seg.inputs_deleted.extend(prune::delete_due(
        &policy.pattern.dir,
        &|n| policy.pattern.seq_of(n),
        &mut r.state,
        policy.file_delete_delay,
        Utc::now(),
    )?);
    r.state.save(&r.state_dir)
}

/// The busy set before the census: merged inputs waiting for deletion.
fn pending(state: &SegState, dir: &Path) -> Busy {
    let mut busy = Busy::none();
    for p in &state.pending {
        busy.pending(dir.join(&p.name));
    }
    busy
}

/// Take the census of the sealed segments; add the ones open for writing
/// to `busy` and return them.
fn open_for_writing(listing: &Listing, busy: &mut Busy) -> Vec<PathBuf> {
    let sealed = listing.sealed();
    let census = census::take(&sealed.iter().map(|s| s.path.as_path()).collect::<Vec<_>>());
    for o in &census.openers {
        busy.open(o.file.clone());
    }
    sealed
        .iter()
        .filter(|s| busy.is_open(&s.path))
        .map(|s| s.path.clone())
        .collect()
}

fn missing_dir(dir: &Path) -> Done {
    Done {
        outcome: Outcome::Skipped,
        reason: Some(format!(
            "{} does not exist yet: no segments (check the store's `segments` if a writer should have created it)",
            dir.display()
        )),
        stats: Stats::default(),
        success: false,
        baseline: false,
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn finish(r: Run, listing: &Listing, reason: String) -> Done {
    let (mut stats, mut seg) = (r.stats, r.seg);
    seg.dir = view::describe(listing, &r.state);
    stats.bytes_after = listing.total_bytes();
    stats.pruned = seg.pruned.iter().map(|p| p.file.clone()).collect();
    stats.segments = Some(seg);
    Done {
        outcome: Outcome::Ok,
        reason: (!reason.is_empty()).then_some(reason),
        stats,
        success: true,
        baseline: false,
    }
}
