//! Read-only views of a segmented store: the directory summary that
//! `status` and run records show, and `replay`.
//!
//! Neither takes the lock nor writes anything. A summary lists the
//! directory and stats each segment (no segment is read), so `status`
//! stays fast however large the store is.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::config::SegmentPolicy;
use crate::config::StoreConfig;
use crate::config::pattern::{Listing, list};
use crate::error::{Error, IoContext, Result};
use crate::fold::spans::{Reopened, copy_spans, fold_source};
use crate::fold::{self, FoldSpec};
use crate::job::record::RunRecords;
pub use crate::job::record::report::DirSummary;
use crate::job::segmented::state::SegState;
use crate::paths::Paths;

pub(super) fn describe(l: &Listing, state: &SegState) -> DirSummary {
    DirSummary {
        files: l.segments.len() as u64,
        bytes: l.total_bytes(),
        oldest_seq: l.segments.first().map(|s| s.seq),
        newest_seq: l.active().map(|s| s.seq),
        active: l.active().map(|s| s.path.clone()),
        active_bytes: l.active().map_or(0, |s| s.size),
        bytes_since_compaction: l
            .segments
            .iter()
            .filter(|s| !state.is_clean(&s.name, s.ino) && !state.is_pending(&s.name))
            .map(|s| s.size)
            .sum(),
        last_compaction: state.last_compaction,
        pending_delete: state.pending.len() as u64,
        unmatched: l.unmatched.clone(),
        duplicate_seqs: l.duplicate_seqs.clone(),
    }
}

/// The store's directory now, as `status` shows it.
pub fn summary(paths: &Paths, store: &StoreConfig, policy: &SegmentPolicy) -> Result<DirSummary> {
    let l = list(&policy.pattern, &store.name)?;
    Ok(describe(
        &l,
        &SegState::load(&paths.store_state(&store.name)),
    ))
}

/// What `replay` of a segmented store read.
#[derive(Debug, Default)]
pub struct Replayed {
    pub files: u64,
    pub lines: u64,
    pub malformed: u64,
    /// Torn last lines left out (the active segment's may still complete).
    pub torn: u64,
}

/// Write the store's state to `out`: with a key, the latest line per key
/// (a delete removes the key) over all segments in seq order, each line in
/// the order of its key's last write; without one, every valid line in seq
/// order. Malformed lines and torn last lines are left out. A segment that
/// vanishes between listing and reading (pruned meanwhile) is skipped.
pub fn replay(
    store: &StoreConfig,
    policy: &SegmentPolicy,
    out: &mut impl Write,
) -> Result<Replayed> {
    let l = list(&policy.pattern, &store.name)?;
    let spec = FoldSpec::for_store(store)?;
    let mut r = Replayed::default();
    // Each segment up to its last `\n`; the fold engine reopens them as it
    // reads (a store may hold more segments than a process may keep open).
    let mut files: Vec<(PathBuf, u64)> = Vec::new();
    let mut spans = Vec::new();
    for seg in &l.segments {
        let file = match File::open(&seg.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open segment", &seg.path, e)),
        };
        let meta = file.metadata().ctx("stat segment", &seg.path)?;
        let size = meta.len();
        let cut = fold::find_cut(&file, size).ctx("read segment", &seg.path)?;
        r.files += 1;
        r.torn += u64::from(cut < size);
        files.push((seg.path.clone(), meta.ino()));
        spans.push((0, cut));
    }
    let src = Reopened {
        spans,
        open: |k: usize| reopen(&files[k].0, files[k].1),
    };
    let opts = fold::Opts {
        tombs: false,
        salvage: false,
        ..fold::Opts::compaction(crate::fold::scan_threads(), 8 << 20)
    };
    let reread = "read segments (pruned or compacted during the replay? run it again) in";
    let dir = &policy.pattern.dir;
    let plan = fold_source(&spec, &src, opts).map_err(|e| Error::io(reread, dir, e))?;
    r.lines = plan.lines_in;
    r.malformed = plan.bad_lines;
    copy_spans(&src, &plan.keep, &plan.newlines, out).map_err(|e| {
        // A write error is the output's; a read error, the store's.
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof => {
                Error::io(reread, dir, e)
            }
            _ => Error::io("write to", "stdout", e),
        }
    })?;
    Ok(r)
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
                .map(|p| super::file_name(p))
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
    let state = RunRecords::new(paths.store_state(&store.name));
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

/// Open a segment again, if it is still the file that was listed.
fn reopen(path: &std::path::Path, ino: u64) -> std::io::Result<File> {
    let f = File::open(path)?;
    if f.metadata()?.ino() != ino {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} was replaced", path.display()),
        ));
    }
    Ok(f)
}
