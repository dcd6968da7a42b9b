//! Reading a file's lines through a bounded buffer, and finding line
//! boundaries, for the fold and for everything that reads logs line by line.

use std::fs::File;
use std::hash::Hasher;
use std::io;
use std::os::unix::fs::FileExt;

use crate::fold::Range;
#[cfg(target_os = "linux")]
use crate::fold::json::Batch;
use crate::fold::json::Pointers;
use crate::fold::json::{Indexed, Invalid, Span};

/// Read buffer of the scan: small enough that the bytes the kernel just
/// copied in are still in the core's L2 cache when they are parsed (a 4 MiB
/// buffer is not); it grows for a line longer than itself.
pub(crate) const SCAN_BUF: usize = 256 << 10;

/// Lines up to this long are scanned in memory (the read buffer grows to
/// hold one); a longer line is validated in pieces as it is read (by
/// `json::LineValidator`, which also finds the pointers' spans), so memory
/// stays flat whatever the line's length; only its key and op values are
/// then read back (see [`scan_chunk`]).
pub(crate) const LONG_LINE: usize = 2 << 20;

/// Whether a long line is valid JSON, with the spans of the pointers' values.
pub(crate) type Verdict = Result<Vec<Option<Span>>, Invalid>;

/// One line as [`for_each_line_bounded`] hands it over.
pub(crate) enum Line<'a> {
    /// The line's bytes, without its `\n`.
    Whole(&'a [u8]),
    /// A line longer than [`LONG_LINE`]: its length (without the `\n`) and
    /// whether it is valid JSON, with the spans of the pointers' values.
    Long { len: u64, verdict: Verdict },
}

/// Call `f(offset, line)` for each line of `[start, end)` (which must end
/// just after a `\n`), with memory bounded whatever the lines:
/// a line longer than [`LONG_LINE`] is validated as it streams by. On
/// Linux the range is read through maps ([`for_each_line_mapped`]), else
/// through a buffer that never grows past [`LONG_LINE`].
pub(crate) fn for_each_line_bounded(
    file: &File,
    start: u64,
    end: u64,
    ptrs: Option<&Pointers>,
    mut f: impl FnMut(u64, Line),
) -> io::Result<()> {
    for_each_line_indexed(file, start, end, ptrs, None, |at, line, _| f(at, line))
}

/// [`for_each_line_bounded`]; with an `index`, the whole lines of a
/// mapped range come with their batch's structural index ([`Batch`]:
/// stage 1 of the scan run over many lines at once, which also finds where
/// they end, so no separate search for `\n` is made) for
/// [`crate::fold::json::Scanner::scan_indexed`]. The caller keeps the
/// `Batch` from range to range: its index (256 KiB for a 64 KiB batch) is
/// then allocated, and its pages faulted, once per thread, not per range.
pub(crate) fn for_each_line_indexed(
    file: &File,
    start: u64,
    end: u64,
    ptrs: Option<&Pointers>,
    index: Option<&mut Batch>,
    mut f: impl FnMut(u64, Line, Option<Indexed>),
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if end - start >= MAP_MIN {
        return for_each_line_mapped(file, start, end, ptrs, index, f);
    }
    let _ = index;
    for_each_line_read(file, start, end, ptrs, |at, line| f(at, line, None))
}

/// Bytes of lines indexed at once ([`Batch`]): the batch and its index
/// stay in the core's L2 cache until its lines are walked.
#[cfg(target_os = "linux")]
const INDEX_BATCH: usize = 64 << 10;

/// A range shorter than this is read with `pread` (a map costs a few
/// system calls and page faults more than a small read).
#[cfg(target_os = "linux")]
const MAP_MIN: u64 = 1 << 20;

/// Bytes mapped at once per thread: more than [`LONG_LINE`] (so a window
/// always ends a line or holds a long one's start), few enough that the
/// mapped pages (counted in the process's RSS) stay a small share of it.
#[cfg(target_os = "linux")]
const MAP_WINDOW: usize = 4 << 20;

/// [`for_each_line_bounded`] through read-only maps of [`MAP_WINDOW`]
/// bytes ([`crate::io::mapped`]): no copy out of the page cache. Lines are
/// handed over in batches of about [`SCAN_BUF`] bytes; a batch is trusted
/// only if the window was not torn (the file shrank) by the time it was
/// parsed: else the scan fails as a short read does, and what `f` was given
/// from that batch must be dropped (the fold's error does that). With an
/// `index`, up to [`INDEX_BATCH`] bytes are indexed at once, the batch ends
/// after the last complete line among them, and its lines are handed over
/// with their index.
#[cfg(target_os = "linux")]
fn for_each_line_mapped(
    file: &File,
    start: u64,
    end: u64,
    ptrs: Option<&Pointers>,
    mut index: Option<&mut Batch>,
    mut f: impl FnMut(u64, Line, Option<Indexed>),
) -> io::Result<()> {
    use crate::io::mapped::Window;
    let step = if index.is_some() {
        INDEX_BATCH
    } else {
        SCAN_BUF
    };
    let mut at = start;
    'window: while at < end {
        let w = Window::new(file, at, ((end - at) as usize).min(MAP_WINDOW))?;
        let bytes = w.bytes();
        let mut i = 0;
        while i < bytes.len() {
            let lim = (i + step).min(bytes.len());
            // Indexed, the batch's own pass finds its last `\n` (the partial
            // line after it is indexed again with the next batch): no
            // out-of-order first touch of the batch's end by `memrchr`.
            let mut indexed = 0;
            let last = match index.as_deref_mut() {
                Some(ix) => {
                    ix.index(&bytes[i..lim]);
                    indexed = lim - i;
                    ix.lines().checked_sub(1).map(|j| i + ix.line(j).end)
                }
                None => memchr::memrchr(b'\n', &bytes[i..lim]).map(|k| i + k),
            };
            let nl = match last {
                Some(nl) => nl,
                // One line longer than a batch.
                None => match memchr::memchr(b'\n', &bytes[lim..bytes.len().min(i + LONG_LINE)]) {
                    Some(k) => lim + k,
                    None if i + LONG_LINE < bytes.len() || at + bytes.len() as u64 == end => {
                        w.check(at + i as u64)?;
                        let from = at + i as u64;
                        let (len, verdict) = stream_mapped(file, from, end, ptrs)?;
                        f(from, Line::Long { len, verdict }, None);
                        at = from + len + 1;
                        continue 'window;
                    }
                    // The line goes on past the window: map from its start.
                    None => break,
                },
            };
            if let Some(ix) = index.as_deref_mut() {
                if ix.lines() == 0 {
                    // One line longer than a batch: index it whole.
                    ix.index(&bytes[i..=nl]);
                    indexed = nl + 1 - i;
                }
                hand_over(&bytes[i..i + indexed], ix, at + i as u64, &mut f);
            } else {
                let batch = &bytes[i..nl];
                let mut line_at = i;
                for k in memchr::memchr_iter(b'\n', batch) {
                    let line = &bytes[line_at..i + k];
                    f(at + line_at as u64, Line::Whole(line), None);
                    line_at = i + k + 1;
                }
                f(at + line_at as u64, Line::Whole(&bytes[line_at..nl]), None);
            }
            // Lines handed over from a torn window may have read zeros:
            // the caller's results are void (it sees the error).
            w.check(at + i as u64)?;
            crate::io::progress::advance((nl + 1 - i) as u64);
            i = nl + 1;
        }
        at += i as u64;
        if let Some(ix) = index.as_deref_mut() {
            ix.shrink();
        }
    }
    Ok(())
}

/// Hand over every line of an indexed batch that starts at file offset
/// `base`, with its index.
#[cfg(target_os = "linux")]
fn hand_over(batch: &[u8], ix: &Batch, base: u64, f: &mut impl FnMut(u64, Line, Option<Indexed>)) {
    for j in 0..ix.lines() {
        let r = ix.line(j);
        let indexed = Indexed {
            bytes: batch,
            batch: ix,
            line: j,
        };
        f(base + r.start as u64, Line::Whole(&batch[r]), Some(indexed));
    }
}

/// A line longer than [`LONG_LINE`] starting at `from`, validated window by
/// window until its `\n`: its length (without the `\n`) and verdict.
#[cfg(target_os = "linux")]
fn stream_mapped(
    file: &File,
    from: u64,
    end: u64,
    ptrs: Option<&Pointers>,
) -> io::Result<(u64, Verdict)> {
    let mut v = crate::fold::json::LineValidator::with_pointers(ptrs);
    let mut at = from;
    while at < end {
        let w = crate::io::mapped::Window::new(file, at, ((end - at) as usize).min(MAP_WINDOW))?;
        let bytes = w.bytes();
        let nl = memchr::memchr(b'\n', bytes);
        let piece = &bytes[..nl.unwrap_or(bytes.len())];
        if v.ok() {
            v.feed(piece);
        }
        w.check(at)?;
        crate::io::progress::advance(piece.len() as u64 + u64::from(nl.is_some()));
        at += piece.len() as u64;
        if nl.is_some() {
            return Ok((at - from, v.finish()));
        }
    }
    Err(no_newline())
}

/// [`for_each_line_bounded`] through a bounded read buffer.
fn for_each_line_read(
    file: &File,
    start: u64,
    end: u64,
    ptrs: Option<&Pointers>,
    mut f: impl FnMut(u64, Line),
) -> io::Result<()> {
    let mut r = Reader {
        file,
        buf: vec![0u8; SCAN_BUF.min((end - start) as usize).max(1)],
        filled: 0,
        base: start,
        pos: start,
        end,
    };
    while r.pos < end || r.filled > 0 {
        r.fill()?;
        let (buf, filled, base) = (&r.buf, r.filled, r.base);
        let mut consumed = 0usize;
        for nl in memchr::memchr_iter(b'\n', &buf[..filled]) {
            f(base + consumed as u64, Line::Whole(&buf[consumed..nl]));
            consumed = nl + 1;
        }
        if consumed == 0 && filled == r.buf.len() && r.pos < end {
            if r.buf.len() < LONG_LINE {
                // One line longer than the buffer: grow it.
                r.buf.resize((r.buf.len() * 2).min(LONG_LINE), 0);
            } else {
                let (at, len, verdict) = r.stream_long_line(ptrs)?;
                f(at, Line::Long { len, verdict });
            }
            continue;
        }
        if consumed == 0 && r.pos >= end && filled > 0 {
            return Err(no_newline());
        }
        r.consume(consumed);
    }
    Ok(())
}

fn no_newline() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "range does not end with a newline",
    )
}

/// The bounded buffer of [`for_each_line_bounded`] over `[base, end)`.
struct Reader<'f> {
    file: &'f File,
    buf: Vec<u8>,
    /// Bytes of `buf` holding data.
    filled: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Next file offset to read.
    pos: u64,
    end: u64,
}

impl Reader<'_> {
    /// Read into `buf[at..]` from `pos` (at most up to `end`).
    fn read(&mut self, at: usize) -> io::Result<usize> {
        let want = ((self.end - self.pos) as usize).min(self.buf.len() - at);
        let n = self.file.read_at(&mut self.buf[at..at + want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the log shrank while being read (expected data at byte {})",
                    self.pos
                ),
            ));
        }
        crate::io::progress::advance(n as u64);
        self.pos += n as u64;
        Ok(n)
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos < self.end && self.filled < self.buf.len() {
            self.filled += self.read(self.filled)?;
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
        self.base += n as u64;
    }

    /// The buffer is full with one line longer than [`LONG_LINE`]:
    /// validate it in pieces until its `\n`. Returns its offset, length
    /// (without the `\n`) and verdict; the buffer then holds what follows.
    fn stream_long_line(&mut self, ptrs: Option<&Pointers>) -> io::Result<(u64, u64, Verdict)> {
        let mut v = crate::fold::json::LineValidator::with_pointers(ptrs);
        v.feed(&self.buf[..self.filled]);
        let mut len = self.filled as u64;
        loop {
            if self.pos >= self.end {
                return Err(no_newline());
            }
            let n = self.read(0)?;
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[..n]) {
                v.feed(&self.buf[..nl]);
                len += nl as u64;
                let at = self.base;
                self.buf.copy_within(nl + 1..n, 0);
                self.filled = n - nl - 1;
                self.base += len + 1;
                return Ok((at, len, v.finish()));
            }
            if v.ok() {
                v.feed(&self.buf[..n]);
            }
            len += n as u64;
        }
    }
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

/// Bytes hashed at each end of the prefix by [`fingerprint`].
const PRINT: u64 = 64 << 10;

/// A hash of the first and last 64 KiB before `cut`, with `cut` itself: a
/// truncation (copytruncate) or a rewrite of the prefix changes it, while
/// appends after the cut do not.
pub fn fingerprint(file: &File, cut: u64) -> std::io::Result<u64> {
    let mut h = std::hash::DefaultHasher::new();
    h.write_u64(cut);
    let mut buf = vec![0u8; PRINT.min(cut) as usize];
    file.read_exact_at(&mut buf, 0)?;
    h.write(&buf);
    let n = buf.len() as u64;
    file.read_exact_at(&mut buf, cut - n)?;
    h.write(&buf);
    Ok(h.finish())
}

/// Threads a fold splits its work across (the engine's shares). Asked
/// once per process: `available_parallelism` reads the cgroup's CPU quota
/// from `/proc` and `/sys` each time (0.2-0.7 ms a call, three calls on a
/// run's critical path).
pub fn scan_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
