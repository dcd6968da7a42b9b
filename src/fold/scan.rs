//! One thread's scan in the fold: the lines of the parts it takes
//! ([`crate::fold::pool`]) classified, each key's last write among them kept
//! in a [`KeyMap`].

use std::fs::File;
use std::io;

use crate::fold::digest::LineDigest;
use crate::fold::json::Indexed;
use crate::fold::keymap::{Entry, KeyMap, hash_key};
use crate::fold::lines::{Line, for_each_line_indexed};
use crate::fold::{Bad, Class, Classifier, FoldSpec, Range};

/// How the engine folds (see [`crate::fold::spans::fold_source`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opts {
    /// Threads to scan on (each takes parts of the stream in turn).
    pub(crate) threads: usize,
    /// A share smaller than this is not worth a thread.
    pub(crate) min_chunk: u64,
    /// Keep each deleted key's last write (its tombstone) in
    /// [`crate::fold::Plan::tombs`]; otherwise deletes are dropped.
    pub(crate) tombs: bool,
    /// Split a malformed line that ends in a complete event (a torn
    /// fragment, or two events glued); otherwise it is malformed whole.
    pub(crate) salvage: bool,
    /// Bytes all the threads' key maps may hold together. A thread whose
    /// map would outgrow its share keeps only the lower part of the hash
    /// range it still holds; the keys above are folded by a further pass
    /// over the input (see [`crate::fold::spans::fold_source`]).
    pub(crate) budget: usize,
    /// Also hash every line (first pass) into [`crate::fold::Plan::digest`],
    /// for the verification before a swap: one read of the new file.
    pub(crate) digest: bool,
    /// Start each thread's key map with room for this many keys (capped
    /// by the budget and by what the input could hold), instead of growing
    /// it from small: the last fold of the same log says how many its maps
    /// held ([`crate::fold::Plan::map_keys`]). Each doubling allocates a
    /// fresh table (its pages cleared by the kernel) and moves every key:
    /// 15-20 ms of a run over 100k keys. Only the start changes: the fold
    /// is the same.
    pub(crate) presize: u64,
    /// Count the live keys without keeping their ranges: the plan's
    /// figures and digest are right, its `keep` holds only keyless lines.
    /// The verification before a swap wants the figures only; each pass
    /// over 10M live keys held a list of its survivors (16 bytes each)
    /// beside the maps.
    pub(crate) count_only: bool,
}

/// The default [`Opts::budget`]: the maps stay under this however many
/// keys are live, so the whole run stays under 64 MiB.
pub(crate) const MAP_BUDGET: usize = 32 << 20;

impl Opts {
    /// The single-file compaction's fold.
    pub(crate) fn compaction(threads: usize, min_chunk: u64) -> Self {
        Opts {
            threads,
            min_chunk,
            tombs: false,
            salvage: true,
            budget: MAP_BUDGET,
            digest: false,
            presize: 0,
            count_only: false,
        }
    }
}

/// What one thread's parts of the stream found. Offsets are virtual (see
/// [`crate::fold::spans`]).
#[derive(Default)]
pub(crate) struct ChunkScan {
    pub(crate) map: KeyMap,
    pub(crate) keyless: crate::fold::runs::Runs,
    /// Malformed lines (and fragments), adjacent whole lines in one run.
    pub(crate) bad: Vec<Bad>,
    pub(crate) bad_lines: u64,
    pub(crate) lines: u64,
    pub(crate) keyed: u64,
    pub(crate) deletes: u64,
    pub(crate) salvaged: u64,
    pub(crate) unglued: u64,
    pub(crate) newlines: Vec<u64>,
    /// The map holds every key of these parts whose hash is in `[lo, hi]`.
    pub(crate) hi: u64,
    /// The parts' lines hashed ([`Opts::digest`], first pass only).
    pub(crate) digest: Option<LineDigest>,
}

/// One part's results that are joined in stream order, part after part
/// (see [`crate::fold::pool`]): the rest of a scan is counts and the key
/// map, which do not depend on the order the parts were scanned in.
#[derive(Default)]
pub(crate) struct Ordered {
    pub(crate) keyless: crate::fold::runs::Runs,
    pub(crate) bad: Vec<Bad>,
    pub(crate) newlines: Vec<u64>,
}

/// Keyed lines wait this many lines between their hash (and a prefetch of
/// their slot) and their map update, so the slot's cache line arrives while
/// the next lines are parsed instead of stalling the scan.
const PIPELINE: usize = 16;

/// A keyed line waiting for its map update.
#[derive(Default)]
struct Pending {
    hash: u64,
    key: Vec<u8>,
    entry: Entry,
}

/// The per-thread state of a scan: its results and the update pipeline.
pub(crate) struct Scan<'s> {
    pub(crate) out: ChunkScan,
    cls: Classifier<'s>,
    opts: Opts,
    /// Nothing precedes the part being scanned (and tombstones are not wanted): a
    /// delete just removes its key.
    first: bool,
    /// The first pass records everything; later ones only keys.
    pass0: bool,
    lo: u64,
    /// This thread's map may hold this many bytes.
    budget: usize,
    ring: [Pending; PIPELINE],
    /// Stage 1's index, kept from piece to piece.
    batch: crate::fold::json::Batch,
    /// Pending updates: `ring[head..head + queued]` (mod PIPELINE).
    head: usize,
    queued: usize,
}

impl<'s> Scan<'s> {
    /// The scan of one thread in the pass that folds the keys whose hash
    /// is at least `lo`, its map holding at most `budget` bytes.
    pub(crate) fn new(spec: &'s FoldSpec, opts: Opts, first: bool, lo: u64, budget: usize) -> Self {
        Scan {
            out: ChunkScan {
                hi: u64::MAX,
                digest: (opts.digest && lo == 0).then(|| LineDigest::new(0)),
                map: KeyMap::with_room(opts.presize, budget),
                ..ChunkScan::default()
            },
            cls: Classifier::new(spec),
            opts,
            first: first && !opts.tombs,
            pass0: lo == 0,
            lo,
            budget,
            ring: Default::default(),
            batch: Default::default(),
            head: 0,
            queued: 0,
        }
    }

    /// The next lines scanned are the stream's first (nothing precedes
    /// them, so a delete just removes its key) or not. Updates still in the
    /// pipeline are unaffected but for a delete, which may then leave a
    /// tombstone where removing it would have done: the same fold.
    pub(crate) fn set_first(&mut self, first: bool) {
        self.first = first && !self.opts.tombs;
    }

    /// Take what was recorded in stream order since the last call: the
    /// scan goes on with another part.
    pub(crate) fn take_ordered(&mut self) -> Ordered {
        Ordered {
            keyless: std::mem::take(&mut self.out.keyless),
            bad: std::mem::take(&mut self.out.bad),
            newlines: std::mem::take(&mut self.out.newlines),
        }
    }

    /// Scan `[start, end)` of `file` (line-aligned), recording its ranges
    /// shifted to start at virtual offset `base`.
    pub(crate) fn piece(&mut self, file: &File, start: u64, end: u64, base: u64) -> io::Result<()> {
        let shift = base.wrapping_sub(start);
        let ptrs = &self.cls.spec().ptrs;
        let mut read_err = None;
        let mut batch = std::mem::take(&mut self.batch);
        let scanned = for_each_line_indexed(
            file,
            start,
            end,
            Some(ptrs),
            Some(&mut batch),
            |off, line, ix| {
                self.out.lines += u64::from(self.pass0);
                if let Some(d) = self.out.digest.as_mut() {
                    let at = off.wrapping_add(shift);
                    match &line {
                        Line::Whole(b) => d.line(at, b),
                        Line::Long { len, .. } => {
                            if let Err(e) = d.line_in_file(file, off, *len, at) {
                                read_err.get_or_insert(e);
                            }
                        }
                    }
                }
                let (class, len) = match line {
                    Line::Whole(line) => return self.whole(off, shift, line, ix),
                    Line::Long { len, verdict } => match verdict {
                        // Validated in pieces; only its key and op values are read.
                        Ok(spans) => (
                            self.cls
                                .classify_spans(&spans, |s| crate::fold::read_span(file, off, s))
                                .unwrap_or_else(|e| {
                                    read_err.get_or_insert(e);
                                    Class::Keyless
                                }),
                            len,
                        ),
                        Err(reason) => (Class::Malformed(reason), len),
                    },
                };
                let range = Range {
                    start: off.wrapping_add(shift),
                    end: (off + len + 1).wrapping_add(shift),
                };
                self.record(class, range);
            },
        );
        self.batch = batch;
        scanned?;
        read_err.map_or(Ok(()), Err)
    }

    /// One whole line at file offset `off` (with its batch's index, if the
    /// batch was indexed whole).
    #[inline(always)]
    fn whole(&mut self, off: u64, shift: u64, line: &[u8], ix: Option<Indexed>) {
        let v = off.wrapping_add(shift);
        let range = Range {
            start: v,
            end: v + line.len() as u64 + 1,
        };
        let class = match ix {
            Some(ix) => self.cls.classify_indexed(line, ix),
            None => self.cls.classify(line),
        };
        if let Class::Malformed(reason) = &class
            && self.opts.salvage
        {
            let reason = reason.clone();
            return self.salvage(v, line, range, reason);
        }
        self.record(class, range);
    }

    /// Record one classified line (or event); its key, if any, is
    /// `self.cls.key`.
    #[inline(always)]
    fn record(&mut self, class: Class, range: Range) {
        let out = &mut self.out;
        match class {
            Class::Keyed { delete } => {
                out.keyed += u64::from(self.pass0);
                out.deletes += u64::from(delete && self.pass0);
                self.enqueue(range, delete);
            }
            _ if !self.pass0 => {}
            Class::Malformed(reason) => {
                out.bad_lines += 1;
                // A malformed line right after another (both whole lines)
                // joins its run: memory grows with runs of malformed lines,
                // not with their count. The quarantine splits runs into lines.
                match out.bad.last_mut() {
                    // (Only whole lines come here: a salvaged fragment is
                    // pushed by `salvage`, and the event after it is valid,
                    // so no line starts where a fragment ends.)
                    Some(last) if last.range.end == range.start => last.range.end = range.end,
                    _ => out.bad.push(Bad { range, reason }),
                }
            }
            Class::Keyless => {
                if self.cls.spec().is_keyed() {
                    out.keyless.push(range)
                }
            }
        }
    }

    /// Hash the key, prefetch its slot, and apply the oldest pending
    /// update if the pipeline is full. Updates apply in line order, so the
    /// map ends as if each were applied at once.
    #[inline(always)]
    fn enqueue(&mut self, range: Range, delete: bool) {
        if self.queued == PIPELINE {
            self.apply_one();
        }
        let hash = hash_key(&self.cls.key);
        if hash < self.lo || hash > self.out.hi {
            return; // another pass's key
        }
        self.out.map.prefetch(hash);
        let p = &mut self.ring[(self.head + self.queued) % PIPELINE];
        p.hash = hash;
        // The key moves to the ring without a copy: the classifier gets
        // the applied update's buffer back and clears it before its next
        // key (so `self.cls.key` is stale until the next keyed line).
        std::mem::swap(&mut p.key, &mut self.cls.key);
        p.entry = Entry::new(range, delete);
        self.queued += 1;
        // Halfway down the pipeline, the slot has arrived: ask for its key.
        if self.queued > PIPELINE / 2 {
            let mid = &self.ring[(self.head + self.queued - 1 - PIPELINE / 2) % PIPELINE];
            self.out.map.prefetch_key(mid.hash);
        }
    }

    #[inline(always)]
    fn apply_one(&mut self) {
        let map = &self.out.map;
        if map.past_half() {
            if map.grow_peak_bytes() <= self.budget {
                self.out.map.grow_early();
            } else if map.needs_grow() && !map.is_empty() {
                self.evict();
            }
        }
        let p = &self.ring[self.head];
        if p.hash > self.out.hi {
            // Evicted meanwhile: a later pass folds it.
        } else if p.entry.tomb() && self.first {
            // Nothing precedes this part: a delete leaves no trace.
            self.out.map.remove(p.hash, &p.key);
        } else {
            self.out.map.upsert(p.hash, &p.key, p.entry);
        }
        self.head = (self.head + 1) % PIPELINE;
        self.queued -= 1;
    }

    /// The map is full: keep the lower part of the hash range it holds.
    #[cold]
    #[inline(never)]
    fn evict(&mut self) {
        self.out.hi = self.out.map.evict(self.lo, self.out.hi);
    }

    /// Apply every pending update and return the thread's results.
    pub(crate) fn finish(mut self) -> ChunkScan {
        while self.queued > 0 {
            self.apply_one();
        }
        self.out
    }

    /// The rare path of [`Scan::whole`], kept out of line so the per-line
    /// loop stays tight: if a malformed line ends in a complete event glued
    /// after something else, the event (its bytes and the line's `\n`) is
    /// recorded. What came before it is, if itself one valid JSON value (two
    /// events glued: a writer's `\n` was lost), recorded as its own event, to
    /// be written with a `\n` inserted after it ([`crate::fold::Plan::newlines`]);
    /// otherwise it is a torn fragment and quarantined. A line with no
    /// complete event at its end stays malformed.
    #[cold]
    #[inline(never)]
    fn salvage(&mut self, v: u64, line: &[u8], range: Range, reason: crate::fold::json::Invalid) {
        let Some(p) = salvage_point(&mut self.cls, line) else {
            return self.record(Class::Malformed(reason), range);
        };
        let head = Range {
            start: v,
            end: v + p as u64,
        };
        match self.cls.classify(&line[..p]) {
            Class::Malformed(_) if !self.pass0 => {}
            Class::Malformed(_) => {
                self.out.bad.push(Bad {
                    range: head,
                    reason,
                });
                self.out.bad_lines += 1;
                self.out.salvaged += 1;
            }
            class => {
                self.record(class, head);
                if self.pass0 {
                    self.out.newlines.push(head.end);
                    self.out.unglued += 1;
                }
            }
        }
        let class = self.cls.classify(&line[p..]);
        self.record(
            class,
            Range {
                start: v + p as u64,
                end: range.end,
            },
        );
    }
}

/// How many `{` positions to try when salvaging one line: bounds the work
/// on a long line of garbage.
const SALVAGE_TRIES: usize = 32;

/// Where a complete JSON object starts inside a malformed line, if the line
/// is a torn fragment followed by one (a writer that did not start a new
/// line after another died mid-write). The longest valid suffix wins.
/// None when the line could be one value cut short: then a suffix may be a
/// value nested in it, not an event (issue 16 A.1, `torn.rs`).
fn salvage_point(cls: &mut Classifier, line: &[u8]) -> Option<usize> {
    let p = memchr::memchr_iter(b'{', line)
        .filter(|&p| p > 0)
        .take(SALVAGE_TRIES)
        .find(|&p| cls.scanner.validate(&line[p..]).is_ok())?;
    (!super::torn::could_be_one_torn_value(line)).then_some(p)
}
