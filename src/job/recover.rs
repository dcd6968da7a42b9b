//! Step 2 of the job: clean up what an earlier run left when it was killed.
//!
//! - temp files beside the log (`.<log>.lk-tmp.*`): an unfinished snapshot,
//!   or, after an exchange, a second name of the old log whose rotated name
//!   keeps it; and an unfinished replacement of the lock file
//!   (`.<log>.lock.lk-tmp.*`), only those provably this user's own;
//! - temp files of the store's state records (`.last-run.json.lk-tmp.*`,
//!   `.late-writes.json.lk-tmp.*`, …) in `<state>/stores/<name>/`;
//! - rotated names that point at the live inode (a run killed between
//!   linking and swapping).
//!
//! Only temp-prefixed names and rotated links to the live inode are
//! removed, never a file with data found nowhere else; the caller holds the
//! store lock (and, for the state dir, the records lock), so no live run
//! owns them. The late-write state needs no
//! repair: `late::load` picks the prepared or the committed state by the
//! live log's inode.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io::durable;
use crate::job::record::RunRecords;
use crate::job::rotation;

/// Remove the leftovers; returns what was removed.
pub fn recover(log: &Path, state_dir: &Path) -> Result<Vec<PathBuf>> {
    crate::failpoint::failpoint!(BeforeRecover);
    let mut recovered = durable::remove_stale_temps(log)?;
    recovered.extend(crate::job::lock::remove_stale_temps(log)?);
    recovered.extend(rotation::remove_live_links(log)?);
    recovered.extend(remove_state_temps(state_dir)?);
    for p in &recovered {
        tracing::warn!("removed {} left by an interrupted run", p.display());
    }
    Ok(recovered)
}

/// Remove the temp files of the store's state records
/// (`<state>/stores/<name>/.*.lk-tmp.*`) a crashed run left; the caller
/// holds the store lock. Returns what was removed. Both kinds of store
/// write their records and state there, so both recover them.
pub(crate) fn remove_state_temps(state_dir: &Path) -> Result<Vec<PathBuf>> {
    // The records lock: a run that found the store busy writes its record
    // (through a temp file here) under that lock only, not under the store
    // lock this run holds; its live temp file must not be taken for a
    // leftover (issue 16 B.5). A temp file found under both locks belongs
    // to no live run.
    let _records = if state_dir.is_dir() {
        Some(RunRecords::new(state_dir.to_path_buf()).lock_records()?)
    } else {
        None
    };
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Ok(removed);
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".lk-tmp.") {
            let p = e.path();
            std::fs::remove_file(&p)
                .map_err(|err| crate::Error::io("remove stale temp file", &p, err))?;
            removed.push(p);
        }
    }
    if !removed.is_empty() {
        durable::fsync_dir(state_dir)?;
    }
    Ok(removed)
}
