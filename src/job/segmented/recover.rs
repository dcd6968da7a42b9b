//! Step 2 of a run of a segmented store: what a crashed run left. Temp
//! files of an interrupted merge, repair or lock replacement, and those of
//! the state records in the state dir, are removed; the prunes of a run
//! killed before its record was written are named in this run's record
//! (they stay in the journal until a run's record names them); merged
//! inputs whose `file_delete_delay` has passed are deleted.

use chrono::Utc;

use crate::config::SegmentPolicy;
use crate::config::pattern::{Listing, list};
use crate::error::Result;
use crate::io::durable;
use crate::job::record::RunRecords;
use crate::job::segmented::state::{self, Pruned, SegState};
use crate::job::segmented::{Run, prune};

const INTERRUPTED: &str = " (by an interrupted run)";

/// Clean up after a crashed run and list the directory as it is now.
pub(super) fn recover(r: &mut Run, store: &str, policy: &SegmentPolicy) -> Result<Listing> {
    let pattern = &policy.pattern;
    let dir = &pattern.dir;
    let mut listing = list(pattern, store)?;
    for t in &listing.temps {
        std::fs::remove_file(t).map_err(|e| crate::Error::io("remove stale temp file", t, e))?;
        tracing::warn!("removed {} left by an interrupted run", t.display());
        r.stats.recovered.push(t.clone());
    }
    // An unfinished replacement of the store's lock file (this run holds
    // it), and the temp files of the state records and segment state.
    let mut others = crate::job::lock::remove_stale_temps(&pattern.lock_anchor(store))?;
    others.extend(crate::job::recover::remove_state_temps(&r.state_dir)?);
    for t in others {
        tracing::warn!("removed {} left by an interrupted run", t.display());
        r.stats.recovered.push(t);
    }
    if !r.state.journal.pruned.is_empty() {
        // Prunes of killed runs stay in the journal, now under this run,
        // until a run's record names them.
        r.seg.pruned.extend(recover_journal(
            &r.state,
            &RunRecords::new(r.state_dir.clone()),
        ));
        r.state.journal = state::Journal {
            pid: std::process::id(),
            at: Some(Utc::now()),
            pruned: r.seg.pruned.clone(),
        };
        r.state.save(&r.state_dir)?;
    }
    let before = r.state.pending.len();
    r.seg.inputs_deleted = prune::delete_due(
        dir,
        &|n| pattern.seq_of(n),
        &mut r.state,
        policy.file_delete_delay,
        Utc::now(),
    )?;
    r.dirty_state |= before != r.state.pending.len();
    if !r.stats.recovered.is_empty() || !r.seg.inputs_deleted.is_empty() {
        durable::fsync_dir(dir)?;
        listing = list(pattern, store)?;
    }
    Ok(listing)
}

/// The prunes of a run that was killed before its record was written:
/// those whose file is gone are reported (as this run's record is the first
/// to see them). A journal whose run did write its record is done.
fn recover_journal(state: &SegState, records: &RunRecords) -> Vec<Pruned> {
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
