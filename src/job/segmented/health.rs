//! Health of sealed segments: every line checked once, malformed lines and
//! a torn last line moved to the quarantine file, the segment repaired.
//!
//! Invariants:
//! - Only sealed segments that the census does not show open for writing
//!   are read or repaired; the active segment never is.
//! - Repair order: the malformed bytes are appended to the quarantine file
//!   (with their origin: segment path, byte offset) and fsynced first; then
//!   the segment's remaining lines are written to a temp file beside it
//!   with its mode and mtime, fsynced, renamed over the segment's own name,
//!   and the directory fsynced. A crash before the rename leaves the segment
//!   as it was and the next run finds the same lines at the same offsets,
//!   which the quarantine does not repeat; a crash after it leaves the
//!   repaired segment. Either way every byte is in the segment or the
//!   quarantine, never both once the run completes, never neither.
//! - Surviving lines are copied byte for byte, in order; the name (and so
//!   the seq readers sort by) does not change.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::pattern::Segment;
use crate::error::{IoContext, Result};
use crate::fold::json::{Invalid, Kind, Pointers, Scanner, Span};
use crate::fold::{self, Bad, FoldSpec, Range};
use crate::io::rewrite::{Like, Rewrite};
use crate::job::quarantine;
pub use crate::job::record::report::SeqProblem;
use crate::job::segmented::state::FileId;

/// Reported per segment at most.
const SEQ_PROBLEMS_MAX: usize = 10;

/// What checking one segment found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Events out of seq order (with a `seq` pointer).
    pub seq_problems: Vec<SeqProblem>,
    pub lines: u64,
    /// Malformed lines and torn bytes quarantined.
    pub quarantined: u64,
    pub quarantine_file: Option<PathBuf>,
    /// The segment was rewritten without them.
    pub repaired: bool,
    /// The segment's identity after the check.
    pub id: FileId,
}

/// Check every line of `seg`; quarantine into `<anchor>.quarantine` and
/// repair in place if needed. With `seq` (the pointer, and the next
/// segment's seq), also check that the events' seqs increase within
/// `[seg.seq, next)`.
pub fn check(
    seg: &Segment,
    quarantine_anchor: &Path,
    seq: Option<(&Pointers, Option<u64>)>,
) -> Result<Checked> {
    let file = File::open(&seg.path).ctx("open segment", &seg.path)?;
    let meta = file.metadata().ctx("stat segment", &seg.path)?;
    let size = meta.len();
    let cut = fold::find_cut(&file, size).ctx("read segment", &seg.path)?;
    let spec = FoldSpec::new(&[], None, &[]).expect("no pointers");
    let plan = fold::fold(&spec, &file, cut, 1).ctx("read segment", &seg.path)?;
    let mut bad = plan.bad.clone();
    if cut < size {
        // A sealed segment's writer has moved on: a torn last line will
        // never be completed.
        bad.push(Bad {
            range: Range {
                start: cut,
                end: size,
            },
            reason: Invalid {
                reason: "torn last line of a sealed segment",
                at: (size - cut) as usize,
            },
        });
    }
    let seq_problems = match seq {
        Some((ptr, next)) => {
            check_seqs(&file, cut, seg, ptr, next).ctx("read segment", &seg.path)?
        }
        None => Vec::new(),
    };
    let mut out = Checked {
        seq_problems,
        lines: plan.lines_in,
        id: FileId {
            ino: meta.ino(),
            size,
        },
        ..Checked::default()
    };
    if bad.is_empty() {
        return Ok(out);
    }
    let mode = meta.mode();
    out.quarantine_file = Some(quarantine::append(
        quarantine_anchor,
        &seg.path,
        &file,
        &bad,
        mode,
    )?);
    out.quarantined = plan.bad_lines + (cut < size) as u64;
    crate::failpoint::failpoint!(SegmentBeforeRepair);
    let mut tmp = Rewrite::beside(&seg.path, Like::File(&file, &meta))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.file_mut());
        fold::copy_ranges(&file, &plan.keep, &mut w).ctx("copy segment", &seg.path)?;
        w.flush().ctx("write", &seg.path)?;
    }
    tmp.file()
        .set_modified(seg.mtime)
        .ctx("set mtime of", tmp.path())?;
    let new = tmp.file().metadata().ctx("stat", tmp.path())?;
    tmp.persist()?;
    out.repaired = true;
    out.id = FileId {
        ino: new.ino(),
        size: new.len(),
    };
    Ok(out)
}

/// The events of `[0, cut)` whose seq (at `ptr`) is not in
/// `[seg.seq, next)` or not greater than the previous one's. Lines that are
/// not valid JSON, or have no numeric seq, are health's other business.
/// `cut` is 0 or just after a `\n`.
fn check_seqs(
    file: &File,
    cut: u64,
    seg: &Segment,
    ptr: &Pointers,
    next: Option<u64>,
) -> std::io::Result<Vec<SeqProblem>> {
    let mut check = SeqCheck {
        seg,
        next,
        prev: None,
        out: Vec::new(),
    };
    let mut sc = Scanner::new();
    let mut spans = [None];
    // The fold's bounded reader: a line past `fold::LONG_LINE` is validated
    // as it streams by and only its seq is read back.
    fold::for_each_line_bounded(file, 0, cut, Some(ptr), |at, line| match line {
        fold::Line::Whole(line) => {
            if sc.scan(line, ptr, &mut spans).is_ok() {
                let v = spans[0].and_then(|s| seq_value(s, |a, b| Ok(line[a..b].to_vec())));
                check.event(at, v);
            }
        }
        fold::Line::Long { verdict, .. } => {
            if let Ok(found) = verdict {
                let read = |a: usize, b: usize| {
                    let mut v = vec![0u8; b - a];
                    std::os::unix::fs::FileExt::read_exact_at(file, &mut v, at + a as u64)?;
                    Ok(v)
                };
                check.event(at, found[0].and_then(|s| seq_value(s, read)));
            }
        }
    })?;
    Ok(check.out)
}

/// The seq at `span`, if it is a number that fits a u64; `bytes(start,
/// end)` reads the line's bytes.
fn seq_value(
    span: Span,
    bytes: impl FnOnce(usize, usize) -> std::io::Result<Vec<u8>>,
) -> Option<u64> {
    let Span {
        start,
        end,
        kind: Kind::Number,
    } = span
    else {
        return None;
    };
    let b = bytes(start, end).ok()?;
    std::str::from_utf8(&b).ok()?.parse::<u64>().ok()
}

/// The order rule of [`check_seqs`], one event at a time.
struct SeqCheck<'a> {
    seg: &'a Segment,
    next: Option<u64>,
    prev: Option<u64>,
    out: Vec<SeqProblem>,
}

impl SeqCheck<'_> {
    /// The event at `offset` has seq `v` (None: no numeric seq).
    fn event(&mut self, offset: u64, v: Option<u64>) {
        let Some(v) = v else { return };
        if self.out.len() >= SEQ_PROBLEMS_MAX {
            return;
        }
        let problem = if v < self.seg.seq {
            Some(format!(
                "is below the seq in its file name ({})",
                self.seg.seq
            ))
        } else if let Some(n) = self.next.filter(|&n| v >= n) {
            Some(format!("is at or past the next file's seq ({n})"))
        } else {
            self.prev
                .filter(|&p| v <= p)
                .map(|p| format!("is not greater than the previous event's ({p})"))
        };
        if let Some(problem) = problem {
            self.out.push(SeqProblem {
                file: self.seg.path.clone(),
                offset,
                seq: v,
                problem,
            });
        }
        self.prev = Some(v);
    }
}

/// Step 4 of a run: check the sealed segments the plan chose (not yet
/// validated, not busy), record each as validated, and note the repaired
/// ones (a repair gives the segment a new inode and size, and makes it
/// dirty again).
pub(super) fn check_chosen(
    r: &mut super::Run,
    listing: &mut crate::config::pattern::Listing,
    chosen: &[PathBuf],
    busy: &crate::plan::Busy,
    policy: &crate::config::SegmentPolicy,
    store: &str,
) -> Result<()> {
    let anchor = policy.pattern.quarantine_anchor(store);
    let seq_ptr = policy
        .seq
        .as_ref()
        .map(|p| Pointers::new(&[p]))
        .transpose()
        .map_err(|msg| {
            crate::Error::Config(crate::error::ConfigError::InvalidStore {
                store: store.to_string(),
                msg,
            })
        })?;
    let chosen: std::collections::HashSet<&PathBuf> = chosen.iter().collect();
    let n_sealed = listing.segments.len().saturating_sub(1);
    for i in 0..n_sealed {
        if !chosen.contains(&listing.segments[i].path) {
            continue;
        }
        let next = crate::plan::segmented::next_seq(&listing.segments, i, busy);
        let c = check(
            &listing.segments[i],
            &anchor,
            seq_ptr.as_ref().map(|p| (p, next)),
        )?;
        r.seg.seq_problems.extend(c.seq_problems.iter().cloned());
        let s = &mut listing.segments[i];
        r.seg.validated += 1;
        r.stats.lines_in += c.lines;
        if c.quarantined > 0 {
            r.stats.quarantined += c.quarantined;
            r.stats.quarantine_file = c.quarantine_file;
        }
        if c.repaired {
            r.seg.repaired.push(s.path.clone());
            r.state.clean.remove(&s.name);
            s.ino = c.id.ino;
            s.size = c.id.size;
        }
        r.state.validated.insert(s.name.clone(), c.id);
    }
    Ok(())
}
