//! Positioned I/O over byte ranges of a file: copying the surviving ranges
//! of a log, sequentially or with several threads writing at their own
//! offsets.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use crate::io::sys::start_writeback;

mod parallel;
pub use parallel::write_ranges_at;
#[cfg(test)]
use parallel::{split_by_output, write_ranges_at_with};

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
}

/// Read buffer size for both passes: large enough to amortise syscalls,
/// small enough to keep peak memory flat.
pub const BUF: usize = 4 << 20;

/// Join adjacent ranges, in place (the fold joins its own: `fold::runs`).
#[cfg(test)]
pub(crate) fn coalesce(mut sorted: Vec<Range>) -> Vec<Range> {
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

/// How much of the file one map covers in [`copy_ranges_mapped`]. The
/// survivors lie sparse over most of a log, so a window is mapped in as it
/// is touched ([`Window::sparse`]), not populated whole: populating the
/// windows made page-table entries for every page of the log and tore
/// them down again (the two copy threads contending on the address
/// space's lock, and a TLB shootdown per window), 20-25% of the
/// snapshot's write. Not larger: where the survivors are dense (a log of
/// 10M live keys) every page of a window is touched, and the mapped pages
/// count in the peak RSS (16 MiB windows took that fold from 57 to 98 MiB
/// with the merge's copy below; on the standard log they were within the
/// noise of 4 MiB ones).
#[cfg(target_os = "linux")]
const MAP_WINDOW: usize = 4 << 20;

/// Ranges ahead of the one being copied whose first bytes are fetched
/// into the cache (see [`prefetch_range`]).
#[cfg(target_os = "linux")]
const PREFETCH_AHEAD: usize = 4;

/// Ask the CPU to fetch the first bytes of `r` (up to 512) if they lie in
/// the window `w` mapped at file offset `s`. Survivors lie a few KiB apart,
/// each on a page of its own, which the hardware prefetchers do not cross:
/// without this every range starts with a TLB and cache miss, most of the
/// time of hashing the survivors (issue 16). A prefetch never faults, so
/// an address whose page is not mapped in yet is harmless (the windows are
/// mapped in as they are touched: such a prefetch is simply dropped).
#[cfg(target_os = "linux")]
#[inline]
fn prefetch_range(w: &[u8], s: u64, r: Range) {
    if r.start < s || r.start >= s + w.len() as u64 {
        return;
    }
    let from = (r.start - s) as usize;
    let to = (r.end.min(s + w.len() as u64) - s) as usize;
    #[cfg(target_arch = "x86_64")]
    for off in (from..to.min(from + 512)).step_by(64) {
        // SAFETY: `off` is inside `w`; a prefetch reads nothing and never
        // faults.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                w.as_ptr().add(off).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (from, to);
}

/// [`copy_ranges`] through maps: on Linux the bytes are handed over from
/// read-only maps of the file (`io::mapped`), so a range costs no copy out
/// of the page cache and the gaps between ranges are never read (the
/// survivors of a log lie a few KiB apart: merged `pread`s copied nearly
/// every byte of it). Used by the snapshot's write ([`write_ranges_at`])
/// and the verification's planned side. A window the file lost while
/// mapped is reported after its bytes were handed over (zeros in their
/// place), so `dst` must be something the caller throws away on error (a
/// hash, a temp file), never a file a reader sees.
pub fn copy_ranges_mapped(src: &File, ranges: &[Range], dst: &mut impl Write) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        use crate::io::mapped::Window;
        let last = ranges.last().map_or(0, |r| r.end);
        let mut held: Option<(u64, Window)> = None;
        let mut total = 0;
        for (i, r) in ranges.iter().enumerate() {
            if let (Some((s, w)), Some(next)) = (&held, ranges.get(i + PREFETCH_AHEAD)) {
                prefetch_range(w.bytes(), *s, *next);
            }
            let mut at = r.start;
            while at < r.end {
                let inside = held
                    .as_ref()
                    .is_some_and(|(s, w)| *s <= at && at < s + w.bytes().len() as u64);
                if !inside {
                    if let Some((s, w)) = held.take() {
                        w.check(s)?;
                    }
                    let len = ((last - at) as usize).min(MAP_WINDOW);
                    held = Some((at, Window::sparse(src, at, len)?));
                }
                let (s, w) = held.as_ref().expect("a window holds `at`");
                let upto = r.end.min(s + w.bytes().len() as u64);
                dst.write_all(&w.bytes()[(at - s) as usize..(upto - s) as usize])?;
                total += upto - at;
                at = upto;
            }
        }
        if let Some((s, w)) = held {
            w.check(s)?;
        }
        Ok(total)
    }
    #[cfg(not(target_os = "linux"))]
    copy_ranges(src, ranges, dst)
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

/// Copy `ranges` of `src` to `dst` starting at output offset `out_at`:
/// through maps on Linux ([`copy_ranges_mapped`]; `buf_size` and `gap`
/// are then unused), else with merged reads ([`copy_share_read`]).
/// `staging` is the output buffer, kept for the caller's next part: a
/// fresh [`OUT_BUF`] per part is a fresh map (over glibc's pinned mmap
/// threshold), its 256 pages faulted, cleared and unmapped again: 4k of
/// the run's 14k page faults on the standard workload.
pub(crate) fn copy_share(
    src: &File,
    ranges: &[Range],
    dst: &File,
    out_at: u64,
    (buf_size, gap): (usize, u64),
    staging: &mut Vec<u8>,
) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let _ = (buf_size, gap);
        let mut out = Positioned::new(dst, out_at, std::mem::take(staging));
        let copied = copy_ranges_mapped(src, ranges, &mut out).and_then(|_| out.flush());
        *staging = std::mem::take(&mut out.buf);
        copied?;
        // A part's bytes past its last step are left to the fsync, which
        // runs beside the verification and is done well before it: each
        // writeback started here (one per part, 16 on the standard
        // workload) cost the write itself ~0.15 ms of submitting I/O.
        Ok(out.at - out_at)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = staging;
        copy_share_read(src, ranges, dst, out_at, buf_size, gap)
    }
}

/// A writer at increasing offsets of `dst` (positioned writes of up to
/// [`OUT_BUF`] bytes), starting writeback every [`WRITEBACK_STEP`] and
/// reporting progress, as [`copy_share_read`] does.
#[cfg(target_os = "linux")]
struct Positioned<'a> {
    dst: &'a File,
    /// Where the next flush writes.
    at: u64,
    /// Writeback started up to here.
    synced: u64,
    buf: Vec<u8>,
}

#[cfg(target_os = "linux")]
impl<'a> Positioned<'a> {
    /// Staged in `buf` (emptied; grown to [`OUT_BUF`] if smaller).
    fn new(dst: &'a File, at: u64, mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.reserve(OUT_BUF);
        Positioned {
            dst,
            at,
            synced: at,
            buf,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.dst.write_all_at(bytes, self.at)?;
        crate::io::progress::advance(bytes.len() as u64);
        self.at += bytes.len() as u64;
        if self.at - self.synced >= WRITEBACK_STEP {
            start_writeback(self.dst, self.synced, self.at - self.synced);
            self.synced = self.at;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl Write for Positioned<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len() + bytes.len() > OUT_BUF {
            self.flush()?;
        }
        if bytes.len() >= OUT_BUF {
            self.put(bytes)?;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.put(&buf)?;
            self.buf = buf;
            self.buf.clear();
        }
        Ok(())
    }
}

/// [`copy_share`] with `pread`s of up to `buf_size` bytes, each covering
/// the following ranges less than `gap` apart.
#[cfg(any(test, not(target_os = "linux")))]
fn copy_share_read(
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
        crate::io::progress::advance(out.len() as u64);
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

#[cfg(any(test, not(target_os = "linux")))]
fn read_exact_log(src: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    if read_full_at(src, buf, at)? < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the log shrank while being copied (expected data at byte {at})"),
        ));
    }
    Ok(())
}

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
/// `\n` follows it. Lazy ([`Pieces`]): a fold over millions of live keys
/// has as many pieces, and a list of them (24 bytes each) was most of the
/// verification's memory at 10M keys.
pub fn split_at_newlines<'a>(ranges: &'a [Range], newlines: &'a [u64]) -> Pieces<'a> {
    let mut p = Pieces {
        ranges,
        newlines,
        at: 0,
        n: 0,
    };
    p.enter();
    p
}

/// The pieces of [`split_at_newlines`], in order.
pub struct Pieces<'a> {
    /// The ranges not yet done, the first from `at` on.
    ranges: &'a [Range],
    newlines: &'a [u64],
    at: u64,
    /// The first newline not yet passed.
    n: usize,
}

impl Pieces<'_> {
    /// Start the first range left: a newline at or before its start
    /// belongs to the ranges before it.
    fn enter(&mut self) {
        if let Some(r) = self.ranges.first() {
            self.at = r.start;
            while self.n < self.newlines.len() && self.newlines[self.n] <= self.at {
                self.n += 1;
            }
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = (Range, bool);

    fn next(&mut self) -> Option<(Range, bool)> {
        loop {
            let end = self.ranges.first()?.end;
            let start = self.at;
            if self.n < self.newlines.len() && self.newlines[self.n] <= end {
                self.at = self.newlines[self.n];
                self.n += 1;
                return Some((
                    Range {
                        start,
                        end: self.at,
                    },
                    true,
                ));
            }
            self.ranges = &self.ranges[1..];
            self.enter();
            if start < end {
                return Some((Range { start, end }, false));
            }
        }
    }
}

#[cfg(test)]
mod tests;
