//! Folding a log prefix: which lines survive, which are quarantined.
//!
//! The fold is two passes over `[0, cut)` of the log, where `cut` is just
//! after the last `\n`:
//! 1. scan (in parallel over newline-aligned chunks): classify every line as
//!    keyed (with its key and whether it deletes), keyless (valid JSON without
//!    the key: kept in place) or malformed (quarantined); remember for each
//!    key only the byte range of its last write;
//! 2. copy the surviving byte ranges, in file order, which is the order of
//!    each key's last write (G4).
//!
//! Invariants:
//! - Memory grows with live keys (plus keyless and malformed lines), never
//!   with the log's size: lines are read through a bounded buffer and only
//!   offsets are kept.
//! - Surviving lines are copied byte for byte, `\n` included.
//! - Keys compare by JSON value and type: `"1"` and `1` differ, `"a"` and
//!   `"\u0061"` are the same.

pub mod json;
pub mod segments;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use crate::config::StoreConfig;
use crate::fold::json::{Invalid, Kind, Pointers, Scanner, Span, unescape};

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

    pub fn for_store(store: &StoreConfig) -> Self {
        FoldSpec::new(&store.key, store.op.as_deref(), &store.delete)
            .expect("validated when the config was loaded")
    }

    pub fn is_keyed(&self) -> bool {
        self.key_slots > 0
    }
}

/// How one line classifies.
#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// Valid and keyed; the key is in [`Classifier::key`].
    Keyed {
        delete: bool,
    },
    /// Valid JSON without (all of) the key, or any valid line of an
    /// append-only store.
    Keyless,
    Malformed(Invalid),
}

/// Per-thread scratch for classifying lines.
pub struct Classifier<'s> {
    spec: &'s FoldSpec,
    scanner: Scanner,
    spans: Vec<Option<Span>>,
    /// The encoded key of the last [`Class::Keyed`] line.
    pub key: Vec<u8>,
}

impl<'s> Classifier<'s> {
    pub fn new(spec: &'s FoldSpec) -> Self {
        Classifier {
            spec,
            scanner: Scanner::new(),
            spans: vec![None; spec.ptrs.len()],
            key: Vec::with_capacity(64),
        }
    }

    pub fn classify(&mut self, line: &[u8]) -> Class {
        if let Err(e) = self.scanner.scan(line, &self.spec.ptrs, &mut self.spans) {
            return Class::Malformed(e);
        }
        if self.spec.key_slots == 0 {
            return Class::Keyless;
        }
        self.key.clear();
        for span in &self.spans[..self.spec.key_slots] {
            let Some(s) = span else {
                return Class::Keyless;
            };
            encode_component(line, s, &mut self.key);
        }
        let delete = match self.spec.op_slot.and_then(|i| self.spans[i]) {
            Some(Span {
                start,
                end,
                kind: Kind::String { escaped },
            }) => {
                let raw = &line[start..end];
                if escaped {
                    let v = unescape(raw);
                    self.spec.delete.contains(&v)
                } else {
                    self.spec.delete.iter().any(|d| d.as_slice() == raw)
                }
            }
            _ => false,
        };
        Class::Keyed { delete }
    }
}

/// Append one key component: a type tag, the length as a LEB128 varint, and
/// the value's bytes (decoded for strings, raw text for anything else). The
/// encoding is prefix-free, so a tuple of components encodes injectively.
fn encode_component(line: &[u8], s: &Span, out: &mut Vec<u8>) {
    let raw = &line[s.start..s.end];
    let (tag, owned);
    let bytes: &[u8] = match s.kind {
        Kind::String { escaped } => {
            tag = b's';
            if escaped {
                owned = unescape(raw);
                &owned
            } else {
                raw
            }
        }
        Kind::Number => {
            tag = b'n';
            raw
        }
        Kind::True => {
            tag = b't';
            raw
        }
        Kind::False => {
            tag = b'f';
            raw
        }
        Kind::Null => {
            tag = b'z';
            raw
        }
        Kind::Object => {
            tag = b'o';
            raw
        }
        Kind::Array => {
            tag = b'a';
            raw
        }
    };
    out.push(tag);
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}

/// A line's byte range in the log, `\n` included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A line (or the torn fragment at the start of one) that is not valid JSON.
#[derive(Clone, Debug)]
pub struct Bad {
    /// The bytes that leave the log: a whole line with its `\n`, or a
    /// fragment without one.
    pub range: Range,
    pub reason: Invalid,
}

/// The last write of a key: its line's range and whether it deletes, in 16
/// bytes (the flag is the top bit of `end`; no file reaches 2^63 bytes).
#[derive(Clone, Copy)]
struct Entry {
    start: u64,
    end_tomb: u64,
}

const TOMB: u64 = 1 << 63;

impl Entry {
    fn new(range: Range, tomb: bool) -> Self {
        debug_assert!(range.end < TOMB);
        Entry {
            start: range.start,
            end_tomb: range.end | if tomb { TOMB } else { 0 },
        }
    }
    fn range(&self) -> Range {
        Range {
            start: self.start,
            end: self.end_tomb & !TOMB,
        }
    }
    fn tomb(&self) -> bool {
        self.end_tomb & TOMB != 0
    }
}

/// Encoded keys up to this long are stored inside the map's bucket.
const INLINE_KEY: usize = 30;

/// An encoded key as the map stores it: inline when short, so a lookup
/// compares against the bucket it already loaded instead of following a
/// pointer to a separate allocation (a second cache miss per line), and no
/// allocation is made per key; boxed when longer. Equality and hashing are
/// those of the bytes, so lookups by `&[u8]` work.
#[derive(Clone)]
enum StoredKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Boxed(Box<[u8]>),
}

impl StoredKey {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            StoredKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            StoredKey::Boxed(key.into())
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            StoredKey::Inline { len, bytes } => &bytes[..*len as usize],
            StoredKey::Boxed(b) => b,
        }
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for StoredKey {}

impl std::hash::Hash for StoredKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for StoredKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

type KeyMap = HashMap<StoredKey, Entry, foldhash::fast::RandomState>;

#[derive(Default)]
struct ChunkScan {
    map: KeyMap,
    keyless: Vec<Range>,
    bad: Vec<Bad>,
    lines: u64,
    deletes: u64,
    salvaged: u64,
    unglued: u64,
    newlines: Vec<u64>,
}

/// The result of folding a prefix: what to keep, what to quarantine, figures.
#[derive(Debug, Default)]
pub struct Plan {
    /// Byte ranges to keep, sorted and non-overlapping.
    pub keep: Vec<Range>,
    /// Malformed lines, sorted.
    pub bad: Vec<Bad>,
    pub lines_in: u64,
    pub keys_live: u64,
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
            self.lines_in - (self.bad.len() as u64 - self.salvaged) + self.unglued
        }
    }
    /// Whether the fold leaves the prefix exactly as it is.
    pub fn is_identity(&self) -> bool {
        self.bad.is_empty() && self.newlines.is_empty() && self.kept_bytes() == self.cut
    }
}

/// Read buffer size for both passes: large enough to amortise syscalls,
/// small enough to keep peak memory flat.
pub const BUF: usize = 4 << 20;

/// Read buffer of the scan: small enough that the bytes the kernel just
/// copied in are still in the core's L2 cache when they are parsed (a 4 MiB
/// buffer is not); it grows for a line longer than itself.
pub const SCAN_BUF: usize = 256 << 10;

/// Call `f(offset, line_without_newline)` for each line of `[start, end)`,
/// which must end just after a `\n`.
pub fn for_each_line(
    file: &File,
    start: u64,
    end: u64,
    mut f: impl FnMut(u64, &[u8]),
) -> io::Result<()> {
    let mut buf = vec![0u8; SCAN_BUF.min((end - start) as usize).max(1)];
    let mut filled = 0usize; // bytes of buf holding data
    let mut base = start; // file offset of buf[0]
    let mut pos = start; // next file offset to read
    while pos < end || filled > 0 {
        if pos < end && filled < buf.len() {
            let want = ((end - pos) as usize).min(buf.len() - filled);
            let n = file.read_at(&mut buf[filled..filled + want], pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the log shrank while being read (expected data at byte {pos})"),
                ));
            }
            filled += n;
            pos += n as u64;
        }
        let mut consumed = 0usize;
        for nl in memchr::memchr_iter(b'\n', &buf[..filled]) {
            f(base + consumed as u64, &buf[consumed..nl]);
            consumed = nl + 1;
        }
        if consumed == 0 && filled == buf.len() {
            // One line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if consumed == 0 && pos >= end && filled > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "range does not end with a newline",
            ));
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        base += consumed as u64;
    }
    Ok(())
}

fn scan_chunk(
    spec: &FoldSpec,
    file: &File,
    start: u64,
    end: u64,
    first: bool,
) -> io::Result<ChunkScan> {
    let mut out = ChunkScan::default();
    let mut cls = Classifier::new(spec);
    let keyed = spec.is_keyed();
    for_each_line(file, start, end, |off, line| {
        out.lines += 1;
        let range = Range {
            start: off,
            end: off + line.len() as u64 + 1,
        };
        let mut class = cls.classify(line);
        let mut range = range;
        if let Class::Malformed(reason) = &class {
            (class, range) = salvage(
                &mut out,
                &mut cls,
                off,
                line,
                range,
                reason.clone(),
                keyed,
                first,
            );
        }
        record(&mut out, &cls.key, class, range, keyed, first);
    })?;
    Ok(out)
}

/// Record one classified line (or event) of a chunk.
#[inline(always)]
fn record(out: &mut ChunkScan, key: &[u8], class: Class, range: Range, keyed: bool, first: bool) {
    match class {
        Class::Malformed(reason) => out.bad.push(Bad { range, reason }),
        Class::Keyless => {
            if keyed {
                out.keyless.push(range)
            }
        }
        Class::Keyed { delete } => {
            if delete {
                out.deletes += 1;
            }
            // The first chunk needs no tombstones: nothing precedes it.
            if delete && first {
                out.map.remove(key);
            } else if let Some(e) = out.map.get_mut(key) {
                *e = Entry::new(range, delete);
            } else {
                out.map
                    .insert(StoredKey::new(key), Entry::new(range, delete));
            }
        }
    }
}

/// The rare path of [`scan_chunk`], kept out of line so the per-line loop
/// stays tight: if a malformed line ends in a complete event glued after
/// something else, the event (its bytes and the line's `\n`) is classified
/// and returned. What came before it is, if itself one valid JSON value (two
/// events glued: a writer's `\n` was lost), recorded as its own event, to be
/// written with a `\n` inserted after it ([`Plan::newlines`]); otherwise
/// it is a torn fragment and quarantined. A line with no complete event at
/// its end stays malformed.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn salvage(
    out: &mut ChunkScan,
    cls: &mut Classifier,
    off: u64,
    line: &[u8],
    range: Range,
    reason: Invalid,
    keyed: bool,
    first: bool,
) -> (Class, Range) {
    let Some(p) = salvage_point(cls, line) else {
        return (Class::Malformed(reason), range);
    };
    let head = Range {
        start: off,
        end: off + p as u64,
    };
    match cls.classify(&line[..p]) {
        Class::Malformed(_) => {
            out.bad.push(Bad {
                range: head,
                reason,
            });
            out.salvaged += 1;
        }
        class => {
            record(out, &cls.key.clone(), class, head, keyed, first);
            out.newlines.push(head.end);
            out.unglued += 1;
        }
    }
    (
        cls.classify(&line[p..]),
        Range {
            start: off + p as u64,
            end: range.end,
        },
    )
}

/// How many `{` positions to try when salvaging one line: bounds the work
/// on a long line of garbage.
const SALVAGE_TRIES: usize = 32;

/// Where a complete JSON object starts inside a malformed line, if the line
/// is a torn fragment followed by one (a writer that did not start a new
/// line after another died mid-write). The longest valid suffix wins.
fn salvage_point(cls: &mut Classifier, line: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'{', line)
        .filter(|&p| p > 0)
        .take(SALVAGE_TRIES)
        .find(|&p| cls.scanner.validate(&line[p..]).is_ok())
}

/// The offset just after the last `\n` in the first `size` bytes of `file`.
pub fn find_cut(file: &File, size: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut end = size;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The first offset at or after `at` that starts a line (within `[at, limit]`).
pub fn next_line_start(file: &File, at: u64, limit: u64) -> io::Result<u64> {
    if at == 0 {
        return Ok(0);
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = at - 1;
    while pos < limit {
        let n = ((limit - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Ok(limit)
}

/// Fold `[0, cut)` of `file`. `cut` must be 0 or just after a `\n`.
pub fn fold(spec: &FoldSpec, file: &File, cut: u64, threads: usize) -> io::Result<Plan> {
    // Chunks below a few MiB are not worth a thread.
    fold_min_chunk(spec, file, cut, threads, 8 << 20)
}

fn fold_min_chunk(
    spec: &FoldSpec,
    file: &File,
    cut: u64,
    threads: usize,
    min_chunk: u64,
) -> io::Result<Plan> {
    let threads = threads.clamp(1, 16).min((cut / min_chunk).max(1) as usize);
    let mut bounds = vec![0u64];
    for i in 1..threads {
        let b = next_line_start(file, cut * i as u64 / threads as u64, cut)?;
        if b > *bounds.last().unwrap() && b < cut {
            bounds.push(b);
        }
    }
    bounds.push(cut);
    let chunks: Vec<ChunkScan> = if bounds.len() == 2 {
        vec![scan_chunk(spec, file, 0, cut, true)?]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = bounds
                .windows(2)
                .enumerate()
                .map(|(i, w)| s.spawn(move || scan_chunk(spec, file, w[0], w[1], i == 0)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scan thread panicked"))
                .collect::<io::Result<Vec<_>>>()
        })?
    };
    Ok(merge(spec, chunks, cut))
}

/// Combine the chunks' scans. A key's last write is in the last chunk that
/// has it; an entry of chunk `i` survives unless it deletes or a later chunk
/// has the key. The chunk maps are read in order and each is freed once
/// read, and no map grows during the merge, so peak memory stays near the
/// sum of the chunk maps (inserting every chunk into the first one would
/// need a second, larger table while both are alive).
fn merge(spec: &FoldSpec, chunks: Vec<ChunkScan>, cut: u64) -> Plan {
    let mut plan = Plan {
        cut,
        ..Plan::default()
    };
    let mut maps = Vec::with_capacity(chunks.len());
    let mut keyless = Vec::new();
    for c in chunks {
        plan.lines_in += c.lines;
        plan.deletes_dropped += c.deletes;
        plan.salvaged += c.salvaged;
        plan.unglued += c.unglued;
        plan.newlines.extend(c.newlines);
        plan.bad.extend(c.bad);
        keyless.extend(c.keyless);
        maps.push(c.map);
    }
    if spec.is_keyed() {
        let mut keep: Vec<Range> = Vec::new();
        for i in 0..maps.len() {
            let map = std::mem::take(&mut maps[i]);
            let later = &maps[i + 1..];
            keep.extend(
                map.iter()
                    .filter(|(k, e)| {
                        !e.tomb() && !later.iter().any(|l| l.contains_key(k.as_slice()))
                    })
                    .map(|(_, e)| e.range()),
            );
        }
        plan.keys_live = keep.len() as u64;
        plan.keyless_kept = keyless.len() as u64;
        keep.extend(keyless);
        keep.sort_unstable();
        plan.keep = coalesce(keep);
    } else {
        // Append-only: everything but the malformed lines.
        let mut at = 0;
        for b in &plan.bad {
            if b.range.start > at {
                plan.keep.push(Range {
                    start: at,
                    end: b.range.start,
                });
            }
            at = b.range.end;
        }
        if cut > at {
            plan.keep.push(Range {
                start: at,
                end: cut,
            });
        }
    }
    // A `\n` is needed only after a glued event that survived.
    plan.newlines.sort_unstable();
    let keep = &plan.keep;
    plan.newlines.retain(|&x| {
        let i = keep.partition_point(|r| r.end < x);
        keep.get(i).is_some_and(|r| r.start < x)
    });
    plan
}

/// [`copy_ranges`], writing a `\n` at each offset of `newlines` (sorted)
/// that falls inside or at the end of a range. Returns the bytes written.
pub fn copy_ranges_nl(
    src: &File,
    ranges: &[Range],
    newlines: &[u64],
    dst: &mut impl Write,
) -> io::Result<u64> {
    if newlines.is_empty() {
        return copy_ranges(src, ranges, dst);
    }
    let mut total = 0;
    for piece in split_at_newlines(ranges, newlines) {
        total += copy_ranges(src, &[piece.0], dst)?;
        if piece.1 {
            dst.write_all(b"\n")?;
            total += 1;
        }
    }
    Ok(total)
}

/// `ranges` cut at each of `newlines` (sorted), each piece with whether a
/// `\n` follows it.
pub fn split_at_newlines(ranges: &[Range], newlines: &[u64]) -> Vec<(Range, bool)> {
    let mut out = Vec::with_capacity(ranges.len() + newlines.len());
    let mut n = 0;
    for r in ranges {
        let mut at = r.start;
        while n < newlines.len() && newlines[n] <= at {
            n += 1;
        }
        while n < newlines.len() && newlines[n] <= r.end {
            out.push((
                Range {
                    start: at,
                    end: newlines[n],
                },
                true,
            ));
            at = newlines[n];
            n += 1;
        }
        if at < r.end {
            out.push((
                Range {
                    start: at,
                    end: r.end,
                },
                false,
            ));
        }
    }
    out
}

/// Join adjacent ranges, in place.
fn coalesce(mut sorted: Vec<Range>) -> Vec<Range> {
    sorted.dedup_by(|next, prev| {
        if prev.end == next.start {
            prev.end = next.end;
            true
        } else {
            false
        }
    });
    sorted.shrink_to_fit();
    sorted
}

/// Copy `ranges` (sorted, non-overlapping) of `src` to `dst`, reading each
/// byte at most once through a bounded window. Returns the bytes copied.
pub fn copy_ranges(src: &File, ranges: &[Range], dst: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let (mut wstart, mut wend) = (0u64, 0u64); // file span held in buf
    let mut total = 0;
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            if !(wstart <= at && at < wend) {
                let want = (r.end - at).max(BUF as u64 / 4).min(BUF as u64) as usize;
                let n = read_full_at(src, &mut buf[..want], at)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the log shrank while being copied (expected data at byte {at})"),
                    ));
                }
                wstart = at;
                wend = at + n as u64;
            }
            let upto = r.end.min(wend);
            dst.write_all(&buf[(at - wstart) as usize..(upto - wstart) as usize])?;
            total += upto - at;
            at = upto;
        }
    }
    Ok(total)
}

/// Reads of survivors separated by at most this many bytes are merged into
/// one read: re-reading a small gap costs less than another syscall, while
/// long gaps (early in a log, where few lines are any key's last write) are
/// skipped rather than read again.
pub const READ_GAP: u64 = 8 << 10;

/// Output staged per thread before each `pwrite`.
const OUT_BUF: usize = 1 << 20;

/// Start writeback of the output every this many bytes per thread, so the
/// final fsync has little left to flush (Linux; elsewhere a no-op).
const WRITEBACK_STEP: u64 = 8 << 20;

/// Write the bytes of `ranges` (sorted, non-overlapping) of `src` to `dst`
/// from offset 0, in order, with up to `threads` threads, each copying a
/// contiguous share of the ranges to its own offset with positioned writes.
/// Only the survivors (and gaps under [`READ_GAP`]) are read. Writeback of
/// the output is started in steps; the caller still fsyncs `dst`. Returns
/// the bytes written. `dst`'s file position is not used or moved.
pub fn write_ranges_at(
    src: &File,
    ranges: &[Range],
    dst: &File,
    threads: usize,
) -> io::Result<u64> {
    write_ranges_at_with(src, ranges, dst, threads, BUF, READ_GAP)
}

fn write_ranges_at_with(
    src: &File,
    ranges: &[Range],
    dst: &File,
    threads: usize,
    buf_size: usize,
    gap: u64,
) -> io::Result<u64> {
    let total: u64 = ranges.iter().map(Range::len).sum();
    // Below a few MiB a second thread costs more than it saves.
    let threads = threads
        .clamp(1, 16)
        .min((total / (4 << 20)).max(1) as usize);
    if threads == 1 {
        return copy_share(src, ranges, dst, 0, buf_size, gap);
    }
    // Split by output bytes; each share starts where the previous one ends.
    let mut shares = Vec::with_capacity(threads);
    let (mut from, mut acc, mut out_at) = (0usize, 0u64, 0u64);
    for (i, r) in ranges.iter().enumerate() {
        acc += r.len();
        if acc * threads as u64 >= total * (shares.len() as u64 + 1) && shares.len() + 1 < threads {
            shares.push((&ranges[from..=i], out_at));
            from = i + 1;
            out_at = acc;
        }
    }
    shares.push((&ranges[from..], out_at));
    std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|(part, at)| s.spawn(move || copy_share(src, part, dst, at, buf_size, gap)))
            .collect();
        let mut written = 0;
        for h in handles {
            written += h.join().expect("copy thread panicked")?;
        }
        Ok(written)
    })
}

/// Copy `ranges` of `src` to `dst` starting at output offset `out_at`.
fn copy_share(
    src: &File,
    ranges: &[Range],
    dst: &File,
    mut out_at: u64,
    buf_size: usize,
    gap: u64,
) -> io::Result<u64> {
    let start_at = out_at;
    let mut buf = vec![
        0u8;
        buf_size
            .min(ranges.iter().map(Range::len).sum::<u64>() as usize)
            .max(1)
    ];
    let mut out: Vec<u8> = Vec::with_capacity(OUT_BUF.min(buf.len().max(4096)));
    let mut synced = out_at; // writeback started up to here
    let flush = |out: &mut Vec<u8>, out_at: &mut u64, synced: &mut u64| -> io::Result<()> {
        dst.write_all_at(out, *out_at)?;
        *out_at += out.len() as u64;
        out.clear();
        if *out_at - *synced >= WRITEBACK_STEP {
            start_writeback(dst, *synced, *out_at - *synced);
            *synced = *out_at;
        }
        Ok(())
    };
    let mut i = 0;
    while i < ranges.len() {
        let first = ranges[i];
        if first.len() > buf.len() as u64 {
            // A line longer than the buffer: stream it through.
            flush(&mut out, &mut out_at, &mut synced)?;
            let mut at = first.start;
            while at < first.end {
                let n = ((first.end - at) as usize).min(buf.len());
                read_exact_log(src, &mut buf[..n], at)?;
                out.extend_from_slice(&buf[..n]);
                flush(&mut out, &mut out_at, &mut synced)?;
                at += n as u64;
            }
            i += 1;
            continue;
        }
        // One read covering the following ranges that fit in the buffer and
        // lie close to each other.
        let mut j = i + 1;
        let mut end = first.end;
        while j < ranges.len()
            && ranges[j].start - end <= gap
            && ranges[j].end - first.start <= buf.len() as u64
        {
            end = ranges[j].end;
            j += 1;
        }
        let span = &mut buf[..(end - first.start) as usize];
        read_exact_log(src, span, first.start)?;
        for r in &ranges[i..j] {
            let piece = &span[(r.start - first.start) as usize..(r.end - first.start) as usize];
            if out.len() + piece.len() > out.capacity() {
                flush(&mut out, &mut out_at, &mut synced)?;
            }
            out.extend_from_slice(piece);
        }
        i = j;
    }
    if !out.is_empty() {
        flush(&mut out, &mut out_at, &mut synced)?;
    }
    Ok(out_at - start_at)
}

fn read_exact_log(src: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    if read_full_at(src, buf, at)? < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the log shrank while being copied (expected data at byte {at})"),
        ));
    }
    Ok(())
}

/// Ask the kernel to start writing `[off, off + len)` of `f` back now,
/// without waiting: the final fsync then has little left to do. A hint only;
/// durability still comes from the caller's fsync.
#[cfg(target_os = "linux")]
fn start_writeback(f: &File, off: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid fd; failure is harmless (a hint).
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &File, _off: u64, _len: u64) {}

fn read_full_at(f: &File, buf: &mut [u8], mut off: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off)? {
            0 => break,
            k => {
                n += k;
                off += k as u64;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FoldSpec {
        FoldSpec::new(&["/t".into(), "/id".into()], Some("/op"), &["DEL".into()]).unwrap()
    }

    fn fold_text(spec: &FoldSpec, text: &str, threads: usize) -> (String, Plan) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let cut = find_cut(&f, text.len() as u64).unwrap();
        let plan = fold(spec, &f, cut, threads).unwrap();
        let mut out = Vec::new();
        copy_ranges(&f, &plan.keep, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), plan)
    }

    #[test]
    fn latest_per_key_in_order_of_last_write_and_deletes_drop() {
        let text = concat!(
            "{\"t\":\"A\",\"id\":1,\"v\":1}\n",
            "{\"t\":\"A\",\"id\":2,\"v\":1}\n",
            "{\"no_key\":true}\n",
            "{\"t\":\"A\",\"id\":1,\"v\":2}\n",
            "not json\n",
            "{\"t\":\"A\",\"id\":\"1\",\"v\":3}\n",
            "{\"t\":\"A\",\"id\":2,\"op\":\"D\\u0045L\"}\n",
            "{\"t\":\"A\",\"id\":3,\"v\":1}\n",
            "{\"t\":\"A\",\"id\":3,\"op\":\"DEL\"}\n",
            "{\"t\":\"A\",\"id\":3,\"v\":2}\n",
            "{\"t\":\"A\",\"id\":4,"
        );
        let (out, plan) = fold_text(&spec(), text, 1);
        assert_eq!(
            out,
            concat!(
                "{\"no_key\":true}\n",
                "{\"t\":\"A\",\"id\":1,\"v\":2}\n",
                "{\"t\":\"A\",\"id\":\"1\",\"v\":3}\n",
                "{\"t\":\"A\",\"id\":3,\"v\":2}\n",
            )
        );
        assert_eq!(plan.bad.len(), 1);
        assert_eq!(
            plan.bad[0].range.start,
            text.find("not json").unwrap() as u64
        );
        assert_eq!(
            (
                plan.keys_live,
                plan.keyless_kept,
                plan.deletes_dropped,
                plan.lines_in
            ),
            (3, 1, 2, 10)
        );
    }

    #[test]
    fn parallel_fold_equals_sequential_fold() {
        let mut text = String::new();
        for i in 0..200_000u64 {
            let k = (i * 7919) % 5000;
            let op = if i % 13 == 0 { "DEL" } else { "SET" };
            text.push_str(&format!(
                "{{\"t\":\"T{}\",\"id\":{k},\"op\":\"{op}\",\"i\":{i}}}\n",
                k % 3
            ));
            if i % 50_000 == 7 {
                text.push_str("{broken\n");
            }
        }
        let (seq, p1) = fold_text(&spec(), &text, 1);
        // fold() gives each thread at least 8 MiB, more than this text: use
        // small chunks so that 2..16 threads really split it.
        for threads in [2, 3, 4, 16] {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(text.as_bytes()).unwrap();
            let cut = text.len() as u64;
            let plan = fold_min_chunk(&spec(), &f, cut, threads, 1 << 10).unwrap();
            let mut par = Vec::new();
            copy_ranges(&f, &plan.keep, &mut par).unwrap();
            assert!(String::from_utf8(par).unwrap() == seq, "{threads} threads");
            assert_eq!(
                (p1.keys_live, p1.bad.len(), p1.lines_in, p1.deletes_dropped),
                (
                    plan.keys_live,
                    plan.bad.len(),
                    plan.lines_in,
                    plan.deletes_dropped
                )
            );
        }
    }

    #[test]
    fn long_and_short_keys_fold_alike() {
        // Keys around the inline limit, and long ones (boxed), with a delete
        // and a re-set; equal keys must meet whichever way they are stored.
        let mut text = String::new();
        let ids: Vec<String> = [0, 1, 20, 21, 22, 23, 24, 40, 200, 5000]
            .iter()
            .map(|&n| "x".repeat(n))
            .collect();
        for round in 0..3 {
            for id in &ids {
                let op = if round == 1 && id.len() % 2 == 0 {
                    "DEL"
                } else {
                    "SET"
                };
                text.push_str(&format!(
                    "{{\"t\":\"A\",\"id\":\"{id}\",\"op\":\"{op}\",\"r\":{round}}}\n"
                ));
            }
        }
        for threads in [1, 3] {
            let (out, plan) = fold_text(&spec(), &text, threads);
            assert_eq!(plan.keys_live, ids.len() as u64);
            let want: String = text
                .lines()
                .skip(2 * ids.len())
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(out, want);
        }
        assert_eq!(std::mem::size_of::<StoredKey>(), 32);
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    #[test]
    fn key_encoding_is_injective_across_component_boundaries() {
        let enc = |parts: &[&str]| {
            let line = format!(
                "[{}]",
                parts
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let mut out = Vec::new();
            let mut at = 1;
            for p in parts {
                let start = at + 1;
                let end = start + p.len();
                encode_component(
                    line.as_bytes(),
                    &Span {
                        start,
                        end,
                        kind: Kind::String { escaped: false },
                    },
                    &mut out,
                );
                at = end + 2;
            }
            out
        };
        let long = "y".repeat(300);
        assert_ne!(enc(&["ab", "c"]), enc(&["a", "bc"]));
        assert_ne!(enc(&[&long, "c"]), enc(&[&long[..299], "yc"]));
        assert_eq!(enc(&[&long, "c"]), enc(&[&long, "c"]));
    }

    #[test]
    fn a_later_chunk_overrides_and_deletes_across_chunks() {
        // One line per chunk (min chunk 1 byte): set in one chunk, deleted or
        // re-set in later ones, keyless and malformed lines in between.
        let text = concat!(
            "{\"t\":\"A\",\"id\":1,\"v\":1}\n",
            "{\"t\":\"A\",\"id\":2,\"v\":1}\n",
            "{\"t\":\"A\",\"id\":3,\"v\":1}\n",
            "{\"nokey\":1}\n",
            "{\"t\":\"A\",\"id\":1,\"op\":\"DEL\"}\n",
            "oops\n",
            "{\"t\":\"A\",\"id\":2,\"v\":2}\n",
            "{\"t\":\"A\",\"id\":3,\"op\":\"DEL\"}\n",
            "{\"t\":\"A\",\"id\":3,\"v\":3}\n",
        );
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        for threads in [1, 2, 5, 9, 16] {
            let plan = fold_min_chunk(&spec(), &f, text.len() as u64, threads, 1).unwrap();
            let mut out = Vec::new();
            copy_ranges(&f, &plan.keep, &mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                concat!(
                    "{\"nokey\":1}\n",
                    "{\"t\":\"A\",\"id\":2,\"v\":2}\n",
                    "{\"t\":\"A\",\"id\":3,\"v\":3}\n",
                ),
                "{threads} threads"
            );
            assert_eq!(
                (
                    plan.keys_live,
                    plan.keyless_kept,
                    plan.deletes_dropped,
                    plan.bad.len()
                ),
                (2, 1, 2, 1)
            );
        }
    }

    #[test]
    fn append_only_keeps_everything_but_malformed_lines() {
        let spec = FoldSpec::new(&[], None, &[]).unwrap();
        let (out, plan) = fold_text(&spec, "{\"a\":1}\n{\"a\":1}\nnope\n[]\n{\"torn", 1);
        assert_eq!(out, "{\"a\":1}\n{\"a\":1}\n[]\n");
        assert_eq!(plan.bad.len(), 1);
        assert_eq!(plan.lines_out(false), 3);
    }

    #[test]
    fn event_glued_to_a_torn_fragment_is_salvaged() {
        let text = concat!(
            "{\"t\":\"A\",\"id\":1,\"v\":1}\n",
            "{\"t\":\"A\",\"id\":{\"t\":\"A\",\"id\":2,\"v\":2}\n",
        );
        let (out, plan) = fold_text(&spec(), text, 1);
        assert_eq!(
            out,
            "{\"t\":\"A\",\"id\":1,\"v\":1}\n{\"t\":\"A\",\"id\":2,\"v\":2}\n"
        );
        assert_eq!(plan.salvaged, 1);
        assert_eq!(plan.bad.len(), 1);
        let frag = &plan.bad[0].range;
        assert_eq!(
            &text[frag.start as usize..frag.end as usize],
            "{\"t\":\"A\",\"id\":"
        );
    }

    #[test]
    fn write_ranges_at_equals_plain_concatenation() {
        // Varied line lengths, some longer than the test buffer, and gaps
        // both under and over the merge threshold.
        let mut text = Vec::new();
        let mut lines = Vec::new();
        let mut x = 12345u64;
        for i in 0..3000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = if i % 500 == 3 {
                5000
            } else {
                (x >> 33) as usize % 300
            };
            let start = text.len() as u64;
            text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
            text.push(b'\n');
            lines.push(Range {
                start,
                end: text.len() as u64,
            });
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&text).unwrap();
        for keep_every in [1usize, 2, 7, 40] {
            let ranges: Vec<Range> = coalesce(lines.iter().copied().step_by(keep_every).collect());
            let want: Vec<u8> = ranges
                .iter()
                .flat_map(|r| text[r.start as usize..r.end as usize].iter().copied())
                .collect();
            for threads in [1, 2, 3, 16] {
                for (buf, gap) in [(1024, 0), (4096, 512), (BUF, READ_GAP)] {
                    let out = tempfile::tempfile().unwrap();
                    let n = write_ranges_at_with(&f, &ranges, &out, threads, buf, gap).unwrap();
                    let mut got = Vec::new();
                    std::io::Read::read_to_end(&mut &out, &mut got).unwrap();
                    assert_eq!(n, want.len() as u64);
                    assert!(
                        got == want,
                        "keep 1/{keep_every}, {threads} threads, buf {buf}"
                    );
                }
            }
        }
    }

    #[test]
    fn write_ranges_at_reports_a_log_that_shrank() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"{}\n{}\n").unwrap();
        let out = tempfile::tempfile().unwrap();
        let e = write_ranges_at(&f, &[Range { start: 3, end: 10 }], &out, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn lines_longer_than_the_buffer_are_read_whole() {
        let big = format!(
            "{{\"t\":\"A\",\"id\":1,\"pad\":\"{}\"}}\n",
            "x".repeat(BUF * 2 + 3)
        );
        let text = format!("{big}{{\"t\":\"A\",\"id\":2}}\n");
        let (out, plan) = fold_text(&spec(), &text, 1);
        assert_eq!(out, text);
        assert_eq!(plan.keys_live, 2);
    }
}
