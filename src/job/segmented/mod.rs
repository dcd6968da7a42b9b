//! Segmented stores: a directory of `<prefix><seq><suffix>` files that the
//! app rotates itself (a change feed writing `events-<20-digit seq>.jsonl`
//! and rolling to a new file past a size). The job for such a store:
//! 1. (lock: `<dir>/.<store>.lock`, the same holder record as any store,
//!    taken by [`crate::job::sync_store`]);
//! 2. recover: remove temp files of a crashed run, name in this run's record
//!    the prunes a killed run made ([`state::Journal`]), delete compaction
//!    inputs that are due;
//! 3. retention ([`retention`]): delete the oldest sealed segments until
//!    `keep_files`, `max_age` and `max_bytes` hold;
//! 4. health ([`health`]): check the lines of sealed segments not checked
//!    yet; quarantine and repair;
//! 5. keyed compaction ([`compact`]) when the dirty ratio passes
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
pub mod state;
pub mod view;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use serde::{Deserialize, Serialize};

pub use view::{DirSummary, replay, summary};

pub use crate::config::pattern;
pub(crate) use crate::plan::retention;

use crate::config::StoreConfig;
use crate::error::Result;
use crate::fold::FoldSpec;
use crate::io::durable;
use crate::job::record::{Outcome, Stats, StoreState};
use crate::job::segmented::compact::CompactionStats;
use crate::job::segmented::pattern::{Pattern, list};
use crate::job::segmented::retention::Limits;
use crate::job::segmented::state::{FileId, Pruned, SegState};
use crate::job::{Done, SyncOptions, census};
use crate::paths::Paths;

/// Default `min_dirty_ratio`, as Kafka's `min.cleanable.dirty.ratio`.
pub const DEFAULT_MIN_DIRTY_RATIO: f64 = 0.5;
/// Default `delete_retention`, as Kafka's `delete.retention.ms`.
pub const DEFAULT_DELETE_RETENTION: Duration = Duration::from_secs(86_400);
/// Default `file_delete_delay`, as Kafka's `file.delete.delay.ms`.
pub const DEFAULT_FILE_DELETE_DELAY: Duration = Duration::from_secs(60);

/// The policy of a segmented store (`segments = "dir/events-{seq}.jsonl"`).
/// `max_age` is the store's own [`StoreConfig::max_age`].
#[derive(Clone, Debug)]
pub struct SegmentPolicy {
    pub pattern: Pattern,
    /// Newest sealed segments to keep (the active one always stays).
    pub keep_files: Option<usize>,
    /// Total bytes of the store's segments, active one included.
    pub max_bytes: Option<u64>,
    /// A sealed segment is compacted only once it is this old (mtime).
    pub min_compaction_lag: Duration,
    /// Tombstones are kept this long after their segment was written.
    pub delete_retention: Duration,
    /// Compact when dirty bytes / sealed bytes reaches this.
    pub min_dirty_ratio: f64,
    /// How long a compaction input whose events are in a merged segment
    /// stays before it is deleted (for readers mid-pass).
    pub file_delete_delay: Duration,
    /// JSON pointer to each event's seq (optional): health then checks that
    /// the seqs of a sealed segment increase and lie in
    /// `[its name's seq, the next name's seq)`.
    pub seq: Option<String>,
}

/// What a run of a segmented store did, in the run record
/// (`stats.segments`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentStats {
    /// The directory after the run.
    pub dir: DirSummary,
    /// The oldest retained seq before the run.
    pub oldest_seq_before: Option<u64>,
    /// Segments deleted by retention (by this run, or by an interrupted run
    /// whose record was never written: `reason` then says so).
    pub pruned: Vec<Pruned>,
    /// Sealed segments whose lines were checked by this run.
    pub validated: u64,
    /// Sealed segments rewritten without their malformed or torn lines.
    pub repaired: Vec<PathBuf>,
    /// Sealed segments left alone because a process had them open for
    /// writing.
    pub open_for_writing: Vec<PathBuf>,
    /// Events whose seq (with `seq` set) is not increasing across the
    /// checked segments (at most 10 per segment); nothing is changed.
    pub seq_problems: Vec<health::SeqProblem>,
    /// Bytes of sealed segments not yet compacted, and their share of the
    /// sealed bytes, when the run decided whether to compact.
    pub dirty_bytes: u64,
    pub dirty_ratio: f64,
    pub compaction: Option<CompactionStats>,
    /// Compaction inputs deleted (their events are in a merged segment).
    pub inputs_deleted: Vec<PathBuf>,
}

fn ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// The locked part of a run of a segmented store.
pub(super) fn run(
    paths: &Paths,
    store: &StoreConfig,
    policy: &SegmentPolicy,
    opts: &SyncOptions,
) -> Result<Done> {
    let pattern = &policy.pattern;
    let dir = &pattern.dir;
    if !dir.is_dir() {
        return Ok(Done {
            outcome: Outcome::Skipped,
            reason: Some(format!(
                "{} does not exist yet: no segments (check the store's `segments` if a writer should have created it)",
                dir.display()
            )),
            stats: Stats::default(),
            success: false,
            baseline: false,
        });
    }
    let t_scan = Instant::now();
    let state_dir = paths.store_state(&store.name);
    let mut state = SegState::load(&state_dir);
    let mut stats = Stats::default();
    let mut seg = SegmentStats::default();
    let mut dirty_state = false;

    // Step 2: what a crashed run left.
    let mut listing = list(pattern, &store.name)?;
    for t in &listing.temps {
        std::fs::remove_file(t).map_err(|e| crate::Error::io("remove stale temp file", t, e))?;
        tracing::warn!("removed {} left by an interrupted run", t.display());
        stats.recovered.push(t.clone());
    }
    if !state.journal.pruned.is_empty() {
        // Prunes of killed runs stay in the journal, now under this run,
        // until a run's record names them.
        seg.pruned
            .extend(recover_journal(&state, &StoreState::new(state_dir.clone())));
        state.journal = state::Journal {
            pid: std::process::id(),
            at: Some(Utc::now()),
            pruned: seg.pruned.clone(),
        };
        state.save(&state_dir)?;
    }
    let now = Utc::now();
    let seq_of = |n: &str| pattern.seq_of(n);
    let before = state.pending.len();
    seg.inputs_deleted =
        compact::delete_due(dir, &seq_of, &mut state, policy.file_delete_delay, now)?;
    dirty_state |= before != state.pending.len();
    if !stats.recovered.is_empty() || !seg.inputs_deleted.is_empty() {
        durable::fsync_dir(dir)?;
        listing = list(pattern, &store.name)?;
    }
    stats.bytes_before = listing.total_bytes();
    seg.oldest_seq_before = listing.segments.first().map(|s| s.seq);
    let present: BTreeMap<&str, FileId> = listing
        .segments
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                FileId {
                    ino: s.ino,
                    size: s.size,
                },
            )
        })
        .collect();
    let (nv, nc) = (state.validated.len(), state.clean.len());
    state.forget_missing(&present);
    dirty_state |= (nv, nc) != (state.validated.len(), state.clean.len());

    // What there is to do, from names and sizes only.
    let limits = Limits {
        keep_files: policy.keep_files,
        max_age: store.max_age,
        max_bytes: policy.max_bytes,
    };
    let sys_now = SystemTime::now();
    let merged = |s: &pattern::Segment| state.is_pending(&s.name);
    let prune_plan = retention::plan(&listing, &limits, sys_now, &|_| false, &merged);
    let sealed = listing.sealed();
    let unchecked = sealed[prune_plan.len()..]
        .iter()
        .filter(|s| {
            !state.is_pending(&s.name)
                && !state.is_validated(
                    &s.name,
                    FileId {
                        ino: s.ino,
                        size: s.size,
                    },
                )
        })
        .count();
    let spec = FoldSpec::for_store(store)?;
    let (dirty, ratio) = dirty_ratio(&listing.sealed()[prune_plan.len()..], &state);
    seg.dirty_bytes = dirty;
    seg.dirty_ratio = ratio;
    // Not while merged inputs wait for deletion: one of them may hold an
    // older write of a key whose tombstone a new merge would drop.
    let want_compaction = spec.is_keyed()
        && state.pending.is_empty()
        && dirty > 0
        && (opts.force || ratio >= policy.min_dirty_ratio)
        && sealed[prune_plan.len()..].iter().any(|s| {
            sys_now.duration_since(s.mtime).unwrap_or_default() >= policy.min_compaction_lag
                && !state.is_clean(&s.name, s.ino)
        });
    stats.timings.scan_ms = ms(t_scan);

    if prune_plan.is_empty() && unchecked == 0 && !want_compaction {
        if dirty_state {
            state.save(&state_dir)?;
        }
        return Ok(finish(stats, seg, &listing, &state, "nothing to do".into()));
    }

    // Who has a sealed segment open for writing.
    let census = census::take(&sealed.iter().map(|s| s.path.as_path()).collect::<Vec<_>>());
    let open: HashSet<PathBuf> = census.openers.iter().map(|o| o.file.clone()).collect();
    seg.open_for_writing = sealed
        .iter()
        .filter(|s| open.contains(&s.path))
        .map(|s| s.path.clone())
        .collect();

    // Step 3: retention.
    let t_prune = Instant::now();
    let merged = |s: &pattern::Segment| state.is_pending(&s.name);
    let prune = retention::plan(
        &listing,
        &limits,
        sys_now,
        &|s| open.contains(&s.path),
        &merged,
    );
    if !prune.is_empty() {
        state.journal = state::Journal {
            pid: std::process::id(),
            at: Some(Utc::now()),
            pruned: seg.pruned.iter().chain(&prune).cloned().collect(),
        };
        state.save(&state_dir)?;
        retention::execute(dir, &prune)?;
        for p in &prune {
            state.validated.remove(&file_name(&p.file));
            state.clean.remove(&file_name(&p.file));
            state.pending.retain(|x| x.name != file_name(&p.file));
        }
        listing.segments.drain(..prune.len());
        seg.pruned.extend(prune);
    }
    stats.timings.prune_ms = ms(t_prune);

    // Step 4: health of sealed segments not checked yet.
    let t_health = Instant::now();
    let anchor = pattern.quarantine_anchor(&store.name);
    let n_sealed = listing.segments.len().saturating_sub(1);
    let seq_ptr = policy
        .seq
        .as_ref()
        .map(|p| crate::fold::json::Pointers::new(&[p]))
        .transpose()
        .map_err(|msg| crate::Error::InvalidStore {
            store: store.name.clone(),
            msg,
        })?;
    for i in 0..n_sealed {
        let s = &listing.segments[i];
        let id = FileId {
            ino: s.ino,
            size: s.size,
        };
        if state.is_validated(&s.name, id) || open.contains(&s.path) || state.is_pending(&s.name) {
            continue;
        }
        // The range a segment's events must lie in ends at the next name
        // that is not a merged input waiting for deletion.
        let next = listing.segments[i + 1..]
            .iter()
            .find(|n| !state.is_pending(&n.name))
            .map(|n| n.seq);
        let c = health::check(s, &anchor, seq_ptr.as_ref().map(|p| (p, next)))?;
        seg.seq_problems.extend(c.seq_problems.iter().cloned());
        let s = &mut listing.segments[i];
        seg.validated += 1;
        stats.lines_in += c.lines;
        if c.quarantined > 0 {
            stats.quarantined += c.quarantined;
            stats.quarantine_file = c.quarantine_file;
        }
        if c.repaired {
            seg.repaired.push(s.path.clone());
            state.clean.remove(&s.name);
            s.ino = c.id.ino;
            s.size = c.id.size;
        }
        state.validated.insert(s.name.clone(), c.id);
    }
    // The journal stays until the next run has seen this run's record.
    state.save(&state_dir)?;
    stats.timings.scan_ms += ms(t_health);

    // Step 5: keyed compaction of the eligible prefix.
    if want_compaction {
        let t = Instant::now();
        let inputs: Vec<_> = listing.segments[..n_sealed]
            .iter()
            .take_while(|s| {
                state.is_validated(
                    &s.name,
                    FileId {
                        ino: s.ino,
                        size: s.size,
                    },
                ) && !open.contains(&s.path)
                    && !state.is_pending(&s.name)
                    && sys_now.duration_since(s.mtime).unwrap_or_default()
                        >= policy.min_compaction_lag
            })
            .cloned()
            .collect();
        if inputs.iter().any(|s| !state.is_clean(&s.name, s.ino)) {
            let c = compact::compact(
                &inputs,
                &spec,
                policy.delete_retention,
                sys_now,
                &mut state,
                &state_dir,
            )?;
            stats.lines_out = c.lines_out;
            stats.keys_live = c.keys_live;
            stats.deletes_dropped = c.tombstones_dropped;
            stats.rewritten = !c.outputs.is_empty();
            state.last_compaction = Some(Utc::now());
            seg.compaction = Some(c);
            seg.inputs_deleted.extend(compact::delete_due(
                dir,
                &seq_of,
                &mut state,
                policy.file_delete_delay,
                Utc::now(),
            )?);
            state.save(&state_dir)?;
        }
        stats.timings.write_ms = ms(t);
    }
    let listing = list(pattern, &store.name)?;
    crate::failpoint!("before-record");
    let reason = if seg.pruned.is_empty() && seg.compaction.is_none() && seg.repaired.is_empty() {
        format!(
            "checked {} sealed segment(s); nothing to change",
            seg.validated
        )
    } else {
        String::new()
    };
    Ok(finish(stats, seg, &listing, &state, reason))
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Dirty bytes (sealed, not clean, not waiting for deletion) and their
/// share of the sealed bytes that are not waiting for deletion.
fn dirty_ratio(sealed: &[pattern::Segment], state: &SegState) -> (u64, f64) {
    let (mut dirty, mut total) = (0u64, 0u64);
    for s in sealed.iter().filter(|s| !state.is_pending(&s.name)) {
        total += s.size;
        if !state.is_clean(&s.name, s.ino) {
            dirty += s.size;
        }
    }
    (dirty, dirty as f64 / total.max(1) as f64)
}

const INTERRUPTED: &str = " (by an interrupted run)";

/// The prunes of a run that was killed before its record was written:
/// those whose file is gone are reported (as this run's record is the first
/// to see them). A journal whose run did write its record is done.
fn recover_journal(state: &SegState, records: &StoreState) -> Vec<Pruned> {
    let j = &state.journal;
    // The history is appended after last-run.json is replaced: a run
    // killed between the two (or mid-append) has no history entry, so the
    // history decides.
    let recorded = records.history().iter().rev().take(3).any(|r| {
        r.pid == j.pid
            && j.at
                .is_some_and(|at| r.started_at <= at && at <= r.finished_at)
    });
    if recorded {
        return Vec::new();
    }
    j.pruned
        .iter()
        .filter(|p| !p.file.exists())
        .map(|p| Pruned {
            reason: if p.reason.ends_with(INTERRUPTED) {
                p.reason.clone()
            } else {
                format!("{}{INTERRUPTED}", p.reason)
            },
            ..p.clone()
        })
        .collect()
}

fn finish(
    mut stats: Stats,
    mut seg: SegmentStats,
    listing: &pattern::Listing,
    state: &SegState,
    reason: String,
) -> Done {
    seg.dir = view::describe(listing, state);
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

/// The directory summary for `status`, and what is worth a note: names
/// that do not match, duplicate seqs, files left open, compaction inputs
/// waiting. A directory that cannot be listed is a note, not a failure
/// (status reports runs; the next run will fail and say why).
pub fn status_notes(
    paths: &Paths,
    store: &StoreConfig,
    policy: &SegmentPolicy,
) -> (DirSummary, Vec<String>) {
    let mut notes = Vec::new();
    let summary = summary(paths, store, policy).unwrap_or_else(|e| {
        notes.push(format!("cannot list the segments: {e}"));
        DirSummary::default()
    });
    if !summary.unmatched.is_empty() {
        notes.push(format!(
            "{} file(s) in {} do not match {}{{seq}}{} and are left alone: {}",
            summary.unmatched.len(),
            policy.pattern.dir.display(),
            policy.pattern.prefix,
            policy.pattern.suffix,
            summary
                .unmatched
                .iter()
                .take(5)
                .map(|p| file_name(p))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !summary.duplicate_seqs.is_empty() {
        notes.push(format!(
            "seqs are not increasing across files: more than one file name carries seq {:?}; readers cannot order them (rename or remove the extra file)",
            summary.duplicate_seqs
        ));
    }
    let state = StoreState::new(paths.store_state(&store.name));
    if let Some(s) = state.last_run().and_then(|r| r.stats.segments) {
        if !s.open_for_writing.is_empty() {
            notes.push(format!(
                "last run left {} sealed segment(s) alone because a process had them open for writing (first: {})",
                s.open_for_writing.len(),
                s.open_for_writing[0].display()
            ));
        }
        if !s.repaired.is_empty() {
            notes.push(format!(
                "last run repaired {} sealed segment(s) (malformed or torn lines moved to the quarantine file)",
                s.repaired.len()
            ));
        }
        if let Some(p) = s.seq_problems.first() {
            notes.push(format!(
                "seqs are not increasing across files: {} event(s) out of order in the segments the last run checked, first in {} at byte {}: seq {} {}",
                s.seq_problems.len(),
                p.file.display(),
                p.offset,
                p.seq,
                p.problem
            ));
        }
    }
    (summary, notes)
}
