//! The parallel scan over newline-aligned chunks and the merge of the
//! chunks' key maps into one [`Plan`].

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::fold::json::{Invalid, Pointers, Span};
use crate::fold::{Bad, Class, Classifier, FoldSpec, Plan, Range};
use crate::io::ranges::coalesce;

/// The last write of a key: its line's range and whether it deletes, in 16
/// bytes (the flag is the top bit of `end`; no file reaches 2^63 bytes).
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    start: u64,
    end_tomb: u64,
}

const TOMB: u64 = 1 << 63;

impl Entry {
    pub(super) fn new(range: Range, tomb: bool) -> Self {
        debug_assert!(range.end < TOMB);
        Entry {
            start: range.start,
            end_tomb: range.end | if tomb { TOMB } else { 0 },
        }
    }
    pub(super) fn range(&self) -> Range {
        Range {
            start: self.start,
            end: self.end_tomb & !TOMB,
        }
    }
    pub(super) fn tomb(&self) -> bool {
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
pub(super) enum StoredKey {
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
pub(super) struct ChunkScan {
    pub(super) map: KeyMap,
    pub(super) keyless: Vec<Range>,
    /// Malformed lines (and fragments), adjacent whole lines in one run.
    pub(super) bad: Vec<Bad>,
    bad_lines: u64,
    lines: u64,
    deletes: u64,
    salvaged: u64,
    unglued: u64,
    pub(super) newlines: Vec<u64>,
}

/// Read buffer of the scan: small enough that the bytes the kernel just
/// copied in are still in the core's L2 cache when they are parsed (a 4 MiB
/// buffer is not); it grows for a line longer than itself.
pub(crate) const SCAN_BUF: usize = 256 << 10;

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
            crate::io::progress::advance(n as u64);
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

/// Lines up to this long are scanned in memory (the read buffer grows to
/// hold one); a longer line is validated in pieces as it is read (by
/// `json::LineValidator`, which also finds the pointers' spans), so memory
/// stays flat whatever the line's length; only its key and op values are
/// then read back (see [`scan_chunk`]).
pub(crate) const LONG_LINE: usize = 2 << 20;

/// One line as [`for_each_line_bounded`] hands it over.
pub(crate) enum Line<'a> {
    /// The line's bytes, without its `\n`, and whether they are already
    /// known to be valid UTF-8 (checked with the whole buffer at once).
    Whole(&'a [u8], bool),
    /// A line longer than [`LONG_LINE`]: its length (without the `\n`) and
    /// whether it is valid JSON, with the spans of the pointers' values.
    Long {
        len: u64,
        verdict: Result<Vec<Option<Span>>, Invalid>,
    },
}

/// Like [`for_each_line`], but the buffer never grows past [`LONG_LINE`]:
/// a longer line is validated as it streams by.
pub(crate) fn for_each_line_bounded(
    file: &File,
    start: u64,
    end: u64,
    ptrs: Option<&Pointers>,
    mut f: impl FnMut(u64, Line),
) -> io::Result<()> {
    let mut buf = vec![0u8; SCAN_BUF.min((end - start) as usize).max(1)];
    let mut filled = 0usize; // bytes of buf holding data
    let mut base = start; // file offset of buf[0]
    let mut pos = start; // next file offset to read
    let read = |buf: &mut [u8], pos: u64| -> io::Result<usize> {
        let n = file.read_at(buf, pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the log shrank while being read (expected data at byte {pos})"),
            ));
        }
        crate::io::progress::advance(n as u64);
        Ok(n)
    };
    while pos < end || filled > 0 {
        if pos < end && filled < buf.len() {
            let want = ((end - pos) as usize).min(buf.len() - filled);
            let n = read(&mut buf[filled..filled + want], pos)?;
            filled += n;
            pos += n as u64;
        }
        let mut consumed = 0usize;
        // One UTF-8 check for all the whole lines in the buffer (a `\n`
        // is a character boundary); a line of a buffer that fails is
        // checked on its own by the scanner.
        let utf8 = memchr::memrchr(b'\n', &buf[..filled])
            .is_some_and(|i| simdutf8::basic::from_utf8(&buf[..i]).is_ok());
        for nl in memchr::memchr_iter(b'\n', &buf[..filled]) {
            f(
                base + consumed as u64,
                Line::Whole(&buf[consumed..nl], utf8),
            );
            consumed = nl + 1;
        }
        if consumed == 0 && filled == buf.len() && pos < end {
            if buf.len() < LONG_LINE {
                // One line longer than the buffer: grow it.
                buf.resize((buf.len() * 2).min(LONG_LINE), 0);
                continue;
            }
            // Longer still: validate it in pieces until its `\n`.
            let mut v = crate::fold::json::LineValidator::with_pointers(ptrs);
            v.feed(&buf[..filled]);
            let mut len = filled as u64;
            loop {
                if pos >= end {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "range does not end with a newline",
                    ));
                }
                let want = ((end - pos) as usize).min(buf.len());
                let n = read(&mut buf[..want], pos)?;
                pos += n as u64;
                if let Some(nl) = memchr::memchr(b'\n', &buf[..n]) {
                    v.feed(&buf[..nl]);
                    len += nl as u64;
                    f(
                        base,
                        Line::Long {
                            len,
                            verdict: v.finish(),
                        },
                    );
                    buf.copy_within(nl + 1..n, 0);
                    filled = n - nl - 1;
                    base += len + 1;
                    break;
                }
                if v.ok() {
                    v.feed(&buf[..n]);
                }
                len += n as u64;
            }
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

pub(super) fn scan_chunk(
    spec: &FoldSpec,
    file: &File,
    start: u64,
    end: u64,
    first: bool,
) -> io::Result<ChunkScan> {
    let mut out = ChunkScan::default();
    let mut cls = Classifier::new(spec);
    let keyed = spec.is_keyed();
    let mut read_err = None;
    for_each_line_bounded(file, start, end, Some(&spec.ptrs), |off, line| {
        out.lines += 1;
        let line = match line {
            Line::Whole(line, utf8) => {
                cls.utf8_known = utf8;
                line
            }
            Line::Long { len, verdict } => {
                // Validated in pieces; only its key and op values are read.
                let class = match verdict {
                    Ok(spans) => cls
                        .classify_spans(&spans, |s| {
                            let mut b = vec![0u8; s.end - s.start];
                            file.read_exact_at(&mut b, off + s.start as u64)?;
                            Ok(b)
                        })
                        .unwrap_or_else(|e| {
                            read_err.get_or_insert(e);
                            Class::Keyless
                        }),
                    Err(reason) => Class::Malformed(reason),
                };
                let range = Range {
                    start: off,
                    end: off + len + 1,
                };
                return record(&mut out, &cls.key, class, range, keyed, first);
            }
        };
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
    match read_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Record one classified line (or event) of a chunk.
#[inline(always)]
fn record(out: &mut ChunkScan, key: &[u8], class: Class, range: Range, keyed: bool, first: bool) {
    match class {
        Class::Malformed(reason) => {
            out.bad_lines += 1;
            // A malformed line right after another (both whole lines)
            // joins its run: memory grows with runs of malformed lines,
            // not with their count. The quarantine splits runs into lines.
            match out.bad.last_mut() {
                // (Only whole lines come here: a salvaged fragment is pushed
                // by `salvage`, and the event after it is valid, so no line
                // starts where a fragment ends.)
                Some(last) if last.range.end == range.start => last.range.end = range.end,
                _ => out.bad.push(Bad { range, reason }),
            }
        }
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
            out.bad_lines += 1;
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
/// None when the line could be one value cut short: then a suffix may be a
/// value nested in it, not an event (issue 16 A.1, `torn.rs`).
fn salvage_point(cls: &mut Classifier, line: &[u8]) -> Option<usize> {
    let p = memchr::memchr_iter(b'{', line)
        .filter(|&p| p > 0)
        .take(SALVAGE_TRIES)
        .find(|&p| cls.scanner.validate(&line[p..]).is_ok())?;
    (!super::torn::could_be_one_torn_value(line)).then_some(p)
}

/// How many lines `range` of `file` holds: its `\n`s, plus one for a last
/// line without one (a fragment). Read in a bounded buffer.
pub fn count_lines_in(file: &File, range: Range) -> io::Result<u64> {
    let mut buf = vec![0u8; (64 << 10).min(range.len() as usize)];
    let (mut n, mut at, mut last) = (0, range.start, b'\n');
    while at < range.end {
        let want = ((range.end - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..want], at)?;
        n += memchr::memchr_iter(b'\n', &buf[..want]).count() as u64;
        last = buf[want - 1];
        at += want as u64;
    }
    Ok(n + (last != b'\n') as u64)
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

pub(super) fn fold_min_chunk(
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
pub(super) fn merge(spec: &FoldSpec, chunks: Vec<ChunkScan>, cut: u64) -> Plan {
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
        plan.bad_lines += c.bad_lines;
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
