//! The dry run's per-line breakdown: each line of the logical stream,
//! classified as the fold classifies it, with its fate in the plan (kept,
//! superseded, a tombstone, quarantined), counted per key group.

use std::collections::HashMap;
use std::path::Path;

use super::{Dropped, Group, LIST, TopKey};
use crate::error::{IoContext, Result};
use crate::fold::spans::FileSpan;
use crate::fold::{self, Class, Classifier, FoldSpec, Range};

/// The per-line breakdown: groups, drops and the most superseded keys.
pub(super) struct Lines {
    pub(super) groups: Vec<Group>,
    pub(super) superseded: Dropped,
    pub(super) tombstones: Dropped,
    pub(super) top: Vec<TopKey>,
}

/// What the plan does with one line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Quarantined,
    Dropped,
}

/// Walks the plan's sorted keep and bad ranges alongside the lines.
struct Fates<'p> {
    keep: &'p [Range],
    bad: &'p [fold::Bad],
    k: usize,
    b: usize,
}

impl Fates<'_> {
    /// The fate of line `r` (lines must come in order).
    fn of(&mut self, r: Range) -> Fate {
        while self.b < self.bad.len() && self.bad[self.b].range.end <= r.start {
            self.b += 1;
        }
        if self.b < self.bad.len() && self.bad[self.b].range.start < r.end {
            return Fate::Quarantined;
        }
        while self.k < self.keep.len() && self.keep[self.k].end <= r.start {
            self.k += 1;
        }
        match self.keep.get(self.k) {
            Some(k) if k.start <= r.start && k.end >= r.end => Fate::Kept,
            _ => Fate::Dropped,
        }
    }
}

/// Per group and in total, what the plan does with the lines.
#[derive(Default)]
struct Tally {
    groups: HashMap<Vec<u8>, Group>,
    no_key: Group,
    per_key: HashMap<Vec<u8>, u64>,
    superseded: Dropped,
    tombstones: Dropped,
}

impl Tally {
    /// Count one line of `len` bytes, classified as `class` (`key`, the
    /// classifier's key for a keyed line), with its fate.
    fn count(&mut self, class: &Class, key: &[u8], fate: Fate, len: u64) {
        let g = match (class, fate) {
            (Class::Keyed { .. }, f) if f != Fate::Quarantined => {
                let group = &key[..fold::first_component_len(key)];
                if !self.groups.contains_key(group) {
                    self.groups.insert(group.to_vec(), Group::default());
                }
                self.groups.get_mut(group).expect("inserted above")
            }
            _ => &mut self.no_key,
        };
        g.lines_in += 1;
        g.bytes_in += len;
        match (fate, class) {
            (Fate::Kept, _) => {
                g.lines_kept += 1;
                g.bytes_kept += len;
            }
            (Fate::Quarantined, _) => g.quarantined += 1,
            (Fate::Dropped, Class::Keyed { delete: true }) => {
                g.tombstones += 1;
                self.tombstones.lines += 1;
                self.tombstones.bytes += len;
            }
            (Fate::Dropped, _) => {
                g.superseded += 1;
                self.superseded.lines += 1;
                self.superseded.bytes += len;
                if matches!(class, Class::Keyed { .. }) {
                    match self.per_key.get_mut(key) {
                        Some(n) => *n += 1,
                        None => {
                            self.per_key.insert(key.to_vec(), 1);
                        }
                    }
                }
            }
        }
    }

    /// The groups, largest first (ties: keyed before keyless, then by
    /// name), and the most superseded keys.
    fn lines(self) -> Lines {
        let mut groups: Vec<Group> = self
            .groups
            .into_iter()
            .map(|(k, mut g)| {
                g.group = fold::decode_key(&k).into_iter().next();
                g
            })
            .collect();
        if self.no_key.lines_in > 0 {
            groups.push(self.no_key);
        }
        groups.sort_by(|a, b| {
            b.lines_in
                .cmp(&a.lines_in)
                .then_with(|| a.group.is_none().cmp(&b.group.is_none()))
                .then_with(|| {
                    let s = |g: &Group| g.group.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    s(a).cmp(&s(b))
                })
        });
        let mut top: Vec<(Vec<u8>, u64)> = self.per_key.into_iter().collect();
        // Most superseded first; ties by key bytes, so the report is stable.
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(LIST);
        Lines {
            groups,
            superseded: self.superseded,
            tombstones: self.tombstones,
            top: top
                .into_iter()
                .map(|(k, n)| TopKey {
                    key: fold::decode_key(&k),
                    superseded: n,
                })
                .collect(),
        }
    }
}

/// One pass over the logical stream: classify each line with the fold's
/// own classifier and take its fate from the plan. Memory grows with the
/// keys that have superseded lines (a count each), like the fold's.
pub(super) fn classify_lines(
    spec: &FoldSpec,
    segs: &[FileSpan],
    plan: &fold::Plan,
    log: &Path,
) -> Result<Lines> {
    let mut fates = Fates {
        keep: &plan.keep,
        bad: &plan.bad,
        k: 0,
        b: 0,
    };
    let mut cls = Classifier::new(spec);
    let mut tally = Tally::default();
    let mut base = 0u64;
    for seg in segs {
        let shift = base as i128 - seg.start as i128;
        fold::for_each_classified(
            &mut cls,
            seg.file,
            seg.start,
            seg.end,
            |off, len, class, key| {
                let len = len + 1;
                let start = (off as i128 + shift) as u64;
                let fate = fates.of(Range {
                    start,
                    end: start + len,
                });
                tally.count(&class, key, fate, len);
            },
        )
        .ctx("read log", log)?;
        base += seg.len();
    }
    Ok(tally.lines())
}
