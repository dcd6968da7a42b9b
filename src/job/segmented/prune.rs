//! Step 3 of a run of a segmented store: execute retention's drop set
//! (planned in `plan::retention`). The prunes are written to the journal
//! before the first unlink, so a run killed before its record is written
//! has them named by the next run's record.

use chrono::Utc;

use crate::config::pattern::Listing;
use crate::error::{IoContext, Result};
use crate::io::durable;
use crate::job::segmented::Run;
use crate::job::segmented::state::{self, Pruned};

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
        crate::failpoint!("segment-prune");
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
