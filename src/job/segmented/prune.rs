//! Step 3 of a run of a segmented store: execute retention's drop set
//! (planned in `plan::retention`). The prunes are written to the journal
//! before the first unlink, so a run killed before its record is written
//! has them named by the next run's record.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::config::pattern::Listing;
use crate::error::{IoContext, Result};
use crate::io::durable;
use crate::job::segmented::Run;
use crate::job::segmented::state::{self, Pruned, SegState};

/// Journal, then delete the planned prefix; forget the deleted segments in
/// the state and the listing.
pub(super) fn drop_segments(r: &mut Run, listing: &mut Listing, drop: Vec<Pruned>) -> Result<()> {
    if drop.is_empty() {
        return Ok(());
    }
    r.state.journal = state::Journal {
        pid: std::process::id(),
        at: Some(Utc::now()),
        pruned: r.seg.pruned.iter().chain(&drop).cloned().collect(),
    };
    r.state.save(&r.state_dir)?;
    execute(durable::parent_dir(&drop[0].file), &drop)?;
    for p in &drop {
        let name = super::file_name(&p.file);
        r.state.validated.remove(&name);
        r.state.clean.remove(&name);
        r.state.pending.retain(|x| x.name != name);
    }
    listing.segments.drain(..drop.len());
    r.seg.pruned.extend(drop);
    Ok(())
}

/// Delete the planned segments in order, fsyncing the directory after each,
/// so a crash never leaves a newer one deleted and an older one retained.
pub fn execute(dir: &std::path::Path, pruned: &[Pruned]) -> Result<()> {
    for p in pruned {
        crate::failpoint::failpoint!(SegmentPrune);
        match std::fs::remove_file(&p.file) {
            Ok(()) => {}
            // Already gone (the app pruned it at boot): the order still holds.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("delete segment", &p.file),
        }
        durable::fsync_dir(dir)?;
    }
    Ok(())
}

/// Delete the pending compaction inputs that are due, oldest seq first,
/// stopping at the first that is not (so a newer input is never deleted
/// while an older one stays). Entries whose merge never happened, or whose
/// file is gone or replaced, are dropped without deleting anything.
pub(super) fn delete_due(
    dir: &Path,
    seq_of: &dyn Fn(&str) -> Option<u64>,
    state: &mut SegState,
    delay: Duration,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<PathBuf>> {
    let ino_of = |name: &str| {
        std::fs::symlink_metadata(dir.join(name))
            .ok()
            .map(|m| m.ino())
    };
    state.pending.retain(|p| {
        ino_of(&p.name) == Some(p.ino)
            && match ino_of(&p.after.0) {
                Some(ino) => ino == p.after.1,
                // The merged file itself was pruned by retention (oldest
                // first): the input is older than what is retained now.
                None => true,
            }
    });
    state
        .pending
        .sort_by_key(|p| (seq_of(&p.name).unwrap_or(u64::MAX), p.name.clone()));
    let delay = chrono::Duration::from_std(delay).unwrap_or_default();
    let mut deleted = Vec::new();
    while let Some(p) = state.pending.first() {
        if p.since + delay > now {
            break;
        }
        let path = dir.join(&p.name);
        crate::failpoint::failpoint!(SegmentDeleteInput);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("delete compacted segment", &path),
        }
        durable::fsync_dir(dir)?;
        deleted.push(path);
        state.pending.remove(0);
    }
    Ok(deleted)
}
