//! Folding a log prefix: which lines survive, which are quarantined.
//!
//! The fold is two passes over `[0, cut)` of the log, where `cut` is just
//! after the last `\n`:
//! 1. scan (in parallel over newline-aligned chunks): classify every line as
//!    keyed (with its key and whether it deletes), keyless (valid JSON without
//!    the key: kept in place) or malformed (quarantined); remember for each
//!    key only the byte range of its last write;
//! 2. copy the surviving byte ranges, in file order, which is the order of
//!    each key's last write (G4; the guarantees are in docs/design.md).
//!
//! Invariants:
//! - Memory grows with live keys (plus keyless and malformed lines), never
//!   with the log's size: lines are read through a bounded buffer and only
//!   offsets are kept.
//! - Surviving lines are copied byte for byte, `\n` included.
//! - Keys compare by JSON value and type: `"1"` and `1` differ, `"a"` and
//!   `"\u0061"` are the same.

mod classify;
#[cfg(test)]
mod differential;
pub(crate) mod digest;
pub mod json;
mod keymap;
mod lines;
mod merge;
mod pool;
mod runs;
mod scan;
pub(crate) mod snapshot;
pub mod spans;
#[cfg(test)]
mod tests;
mod torn;

pub use crate::io::ranges::{
    Range, copy_ranges, copy_ranges_nl, split_at_newlines, write_ranges_at,
};
pub use classify::{Class, Classifier, decode_key, first_component_len};
pub(crate) use lines::{Line, Verdict, for_each_line_bounded};
pub use lines::{count_lines_in, find_cut, fingerprint, next_line_start, scan_threads};
pub(crate) use scan::{MAP_BUDGET, Opts};

/// Fold `[0, cut)` of `file` as a compaction does. `cut` must be 0 or just
/// after a `\n`.
pub fn fold(
    spec: &FoldSpec,
    file: &std::fs::File,
    cut: u64,
    threads: usize,
) -> std::io::Result<Plan> {
    // Shares below a few MiB are not worth a thread.
    fold_min_chunk(spec, file, cut, threads, 8 << 20)
}

pub(crate) fn fold_min_chunk(
    spec: &FoldSpec,
    file: &std::fs::File,
    cut: u64,
    threads: usize,
    min_chunk: u64,
) -> std::io::Result<Plan> {
    let span = spans::FileSpan {
        file,
        path: std::path::Path::new(""),
        start: 0,
        end: cut,
    };
    spans::fold_spans(spec, &[span], threads, min_chunk)
}

use crate::fold::json::{Invalid, Pointers};

/// What to extract from each line.
#[derive(Debug)]
pub struct FoldSpec {
    ptrs: Pointers,
    key_slots: usize,
    op_slot: Option<usize>,
    delete: Vec<Vec<u8>>,
}

impl FoldSpec {
    pub fn new(key: &[String], op: Option<&str>, delete: &[String]) -> Result<Self, String> {
        let mut all: Vec<&str> = key.iter().map(String::as_str).collect();
        let op_slot = op.map(|o| {
            all.push(o);
            all.len() - 1
        });
        Ok(FoldSpec {
            ptrs: Pointers::new(&all)?,
            key_slots: key.len(),
            op_slot,
            delete: delete.iter().map(|d| d.as_bytes().to_vec()).collect(),
        })
    }

    pub fn is_keyed(&self) -> bool {
        self.key_slots > 0
    }
}

/// Read the bytes of `s`, a span of the line that starts at `off` in
/// `file`: how a line too long to hold ([`Line::Long`]) is classified, by
/// reading back only its key and op values.
pub(crate) fn read_span(
    file: &std::fs::File,
    off: u64,
    s: &json::Span,
) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; s.end - s.start];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut b, off + s.start as u64)?;
    Ok(b)
}

/// Call `f(offset, length_without_newline, class, key)` for each line of
/// `[start, end)` of `file`, classified as the fold classifies it, through
/// the fold's bounded reader: memory stays flat however long a line is (a
/// line longer than `LONG_LINE` is validated as it streams by and only its
/// key and op values are read). `key` is the line's encoded key when it is
/// keyed.
pub(crate) fn for_each_classified(
    cls: &mut Classifier,
    file: &std::fs::File,
    start: u64,
    end: u64,
    mut f: impl FnMut(u64, u64, Class, &[u8]),
) -> std::io::Result<()> {
    let ptrs = &cls.spec().ptrs;
    let mut read_err = None;
    for_each_line_bounded(file, start, end, Some(ptrs), |off, line| {
        let (len, class) = match line {
            Line::Whole(b) => (b.len() as u64, cls.classify(b)),
            Line::Long { len, verdict } => match verdict {
                Ok(spans) => match cls.classify_spans(&spans, |s| read_span(file, off, s)) {
                    Ok(class) => (len, class),
                    Err(e) => {
                        read_err.get_or_insert(e);
                        return;
                    }
                },
                Err(reason) => (len, Class::Malformed(reason)),
            },
        };
        f(off, len, class, &cls.key);
    })?;
    read_err.map_or(Ok(()), Err)
}

/// A line (or the torn fragment at the start of one) that is not valid
/// JSON, or a run of adjacent malformed lines.
#[derive(Clone, Debug)]
pub struct Bad {
    /// The bytes that leave the log: whole lines, each with its `\n`, or a
    /// fragment without one. The quarantine makes one entry per line.
    pub range: Range,
    /// Why the first line of the range is not valid JSON.
    pub reason: Invalid,
}

/// The result of folding a prefix: what to keep, what to quarantine, figures.
#[derive(Debug, Default)]
pub struct Plan {
    /// Byte ranges to keep, sorted and non-overlapping.
    pub keep: Vec<Range>,
    /// Malformed lines, sorted; adjacent malformed lines form one run
    /// (one entry), so this grows with runs, not with lines.
    pub bad: Vec<Bad>,
    /// How many malformed lines (and fragments) `bad` holds.
    pub bad_lines: u64,
    pub lines_in: u64,
    /// Lines (and salvaged events) with the key, deletes included.
    pub keyed_lines: u64,
    pub keys_live: u64,
    /// Each deleted key's last write (sorted), when the fold was asked to
    /// keep tombstones ([`Opts::tombs`]); empty otherwise.
    pub tombs: Vec<Range>,
    /// Passes over the input: more than one when the live keys would not
    /// fit the key maps' memory budget at once.
    pub passes: u32,
    pub keyless_kept: u64,
    pub deletes_dropped: u64,
    /// Malformed lines that ended in a complete event: the event was kept,
    /// the fragment before it quarantined.
    pub salvaged: u64,
    /// Lines that were two complete events glued together (a writer's `\n`
    /// was lost): both are kept, each as its own line.
    pub unglued: u64,
    /// Offsets (sorted) right after a kept event that was glued to the next
    /// one: a `\n` is written there ([`copy_ranges_nl`]).
    pub newlines: Vec<u64>,
    pub cut: u64,
    /// The most keys one thread's key map held at the end of a pass: what
    /// the next fold of this log may start its maps at ([`Opts::presize`]).
    pub map_keys: u64,
    /// Every line hashed, when the fold was asked for it ([`Opts::digest`]).
    pub(crate) digest: Option<digest::LineDigest>,
}

impl Plan {
    pub fn kept_bytes(&self) -> u64 {
        self.keep.iter().map(Range::len).sum()
    }
    pub fn lines_out(&self, keyed: bool) -> u64 {
        if keyed {
            self.keys_live + self.keyless_kept
        } else {
            // A salvaged line's fragment is quarantined but its event stays.
            self.lines_in - (self.bad_lines - self.salvaged) + self.unglued
        }
    }
    /// Whether the fold leaves the prefix exactly as it is.
    pub fn is_identity(&self) -> bool {
        self.bad.is_empty() && self.newlines.is_empty() && self.kept_bytes() == self.cut
    }
}
