//! Stage 1 over a whole batch of lines at once, then each line walked on
//! its own: the scan of the fold's mapped lines.
//!
//! Per line, [`super::index::build`] pays for finding the line's end first
//! (a separate search for `\n`), for the line's short last block (copied
//! and padded) and for its own start-up. Here one pass of 64-byte blocks
//! over a batch of lines finds the newlines with the other masks, so the
//! lines are cut from the same pass; each line's entries are what
//! `build` would find for it alone (the invariants below and the tests).

use super::index::{
    bad_escapes, block_masks, block_masks_avx512, escaped, has_avx2, has_avx512, prefix_xor_with,
    push_bits_avx512, push_bits_with, reserve_entries,
};
use super::{Kind, Pointers, R, Scanner, Span, walk};

/// Stage 1 of a whole batch of lines at once (the line ends found in the
/// same pass); each line is then walked with [`Scanner::scan_indexed`].
/// Reused from batch to batch, so indexing allocates nothing once warm.
#[derive(Default)]
pub struct Batch {
    ix: BatchIndex,
}

/// One line of an indexed batch, as [`Scanner::scan_indexed`] takes it.
#[derive(Clone, Copy)]
pub struct Indexed<'a> {
    /// The batch's bytes, as given to [`Batch::index`].
    pub bytes: &'a [u8],
    pub batch: &'a Batch,
    /// The line's number in the batch.
    pub line: usize,
}

impl Batch {
    /// Index `bytes`: whole lines, each ending with `\n`.
    pub fn index(&mut self, bytes: &[u8]) {
        build_batch(bytes, &mut self.ix);
    }

    /// How many lines the batch holds (its `\n`s).
    pub fn lines(&self) -> usize {
        self.ix.marks.len()
    }

    /// Where line `j` is in the batch, without its `\n`.
    pub fn line(&self, j: usize) -> std::ops::Range<usize> {
        let start = match j {
            0 => 0,
            _ => self.ix.marks[j - 1].end as usize + 1,
        };
        start..self.ix.marks[j].end as usize
    }

    /// Free an index grown past [`KEEP_BATCH`] (by a batch of long
    /// lines), so memory stays flat.
    pub fn shrink(&mut self) {
        if self.ix.pos.capacity() > KEEP_BATCH {
            self.ix = BatchIndex::default();
        }
    }
}

/// A [`Batch`] keeps an index this large (entries, 1 MiB) between batches.
const KEEP_BATCH: usize = 1 << 18;

impl Scanner {
    /// [`Scanner::scan`] of one line of an indexed batch: the same result,
    /// without stage 1 per line.
    pub fn scan_indexed(
        &mut self,
        ix: Indexed,
        ptrs: &Pointers,
        out: &mut [Option<Span>],
    ) -> R<Kind> {
        debug_assert!(out.len() >= ptrs.len());
        for o in out.iter_mut() {
            *o = None;
        }
        let b = &ix.batch.ix;
        let mark = b.marks[ix.line];
        let k0 = match ix.line {
            0 => 0,
            j => b.marks[j - 1].k_end as usize,
        };
        let range = ix.batch.line(ix.line);
        let line = &ix.bytes[range.clone()];
        if mark.ok && (range.end <= b.utf8_upto || simdutf8::basic::from_utf8(line).is_ok()) {
            let walked = walk::Walk::new(
                &ix.bytes[..range.end],
                range.start,
                &b.pos[k0..mark.k_end as usize],
                &b.escapes,
            )
            .line(&mut self.stack, &ptrs.root, out);
            if let Ok(kind) = walked {
                return Ok(kind);
            }
        }
        // Not valid (rare): the per-line scan finds the reason.
        self.scan(line, ptrs, out)
    }
}

/// One line of a [`BatchIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    /// Position of the line's `\n` in the batch (the line is the bytes
    /// after the previous line's `\n` up to here).
    pub(super) end: u32,
    /// One past the line's last index entry (its first is the previous
    /// line's `k_end`).
    pub(super) k_end: u32,
    /// No check of stage 1 failed on the line (so the walk may proceed).
    pub(super) ok: bool,
}

/// Stage 1 of a whole batch of lines at once ([`build_batch`]): the index
/// entries of all its lines, and where each line ends.
#[derive(Default)]
pub(super) struct BatchIndex {
    /// Index entries, as positions in the batch, line after line.
    pub(super) pos: Vec<u32>,
    /// Per 64-byte block of the batch, its backslashes inside strings.
    pub(super) escapes: Vec<u64>,
    pub(super) marks: Vec<Mark>,
    /// A line that ends at or before this position is valid UTF-8.
    pub(super) utf8_upto: usize,
}

/// Build the index of `bytes`, whole lines each ending with `\n` (bytes
/// after the last `\n` are not a line and get no [`Mark`]). One pass of
/// 64-byte blocks over the batch finds the newlines too, so the lines are
/// cut from the same masks (no separate search for `\n`), and the short
/// last block of each line costs nothing extra.
///
/// Each line gets what [`build`] would find for it alone: a newline can
/// never be inside a valid string, so a line still inside a string at its
/// `\n` is bad (the `\n` is a control byte in a string) and the next
/// line starts outside any string; an escape never reaches past a `\n`
/// (which is not a backslash). A line's entries are [`build`]'s shifted
/// by the line's start; its `ok` is `false` exactly when `build` would
/// return `None`. Whether it is valid UTF-8 comes from one check of the
/// whole batch: a batch that is valid UTF-8 has only valid lines, since
/// lines are cut at an ASCII byte.
pub(super) fn build_batch(bytes: &[u8], ix: &mut BatchIndex) {
    debug_assert!(bytes.len() < u32::MAX as usize - 64);
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512 (F, BW) and the AVX2 path's features were
        // detected at run time.
        return unsafe { build_batch_avx512(bytes, ix) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 was detected at run time.
        return unsafe { build_batch_avx2(bytes, ix) };
    }
    build_batch_with::<false, false>(bytes, ix)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
unsafe fn build_batch_avx2(bytes: &[u8], ix: &mut BatchIndex) {
    build_batch_with::<true, false>(bytes, ix)
}

/// The AVX2 path with a block's masks from one 64-byte compare each and
/// its entries compressed 16 at a time (`masks_avx512`,
/// `push_bits_compress`): stage 1 of the standard 397 MB log on one
/// thread took 111-114 ms against the AVX2 path's 126-132.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq,avx512f,avx512bw")]
unsafe fn build_batch_avx512(bytes: &[u8], ix: &mut BatchIndex) {
    build_batch_with::<true, true>(bytes, ix)
}

/// Stage 1 over a batch; `AVX512` (only with `AVX2`) swaps in the
/// AVX-512 classifier and flattening.
#[inline(always)]
fn build_batch_with<const AVX2: bool, const AVX512: bool>(bytes: &[u8], ix: &mut BatchIndex) {
    let BatchIndex {
        pos,
        escapes,
        marks,
        utf8_upto,
    } = ix;
    pos.clear();
    marks.clear();
    reserve_entries(pos, bytes.len());
    // One word per block, written in place (no capacity check per block).
    let n_blocks = bytes.len().div_ceil(64);
    escapes.clear();
    escapes.reserve(n_blocks);
    let mut s = Carries::default();
    let mut blocks = bytes.chunks_exact(64);
    let mut out = escapes.spare_capacity_mut()[..n_blocks].iter_mut();
    let mut at = 0usize;
    for (block, esc) in (&mut blocks).zip(&mut out) {
        prefetch(bytes, at + PREFETCH);
        let block = block.try_into().unwrap();
        esc.write(s.block::<AVX2, AVX512>(bytes, block, at, pos, marks));
        at += 64;
    }
    let rest = blocks.remainder();
    if let Some(esc) = out.next() {
        // The last, partial block, padded with spaces (whitespace ends a
        // scalar and changes nothing else).
        let mut tail = [b' '; 64];
        tail[..rest.len()].copy_from_slice(rest);
        esc.write(s.block::<AVX2, AVX512>(bytes, &tail, at, pos, marks));
    }
    // SAFETY: the loops above wrote the first `n_blocks` words, one per
    // block (`n_blocks` counts a partial last block, which `out` had left).
    unsafe { escapes.set_len(n_blocks) };
    // Not from stage 1's masks: `simdutf8` tells an ASCII batch apart in
    // its own pass, as cheaply as the top-bit mask would per block.
    *utf8_upto = if simdutf8::basic::from_utf8(bytes).is_ok() {
        bytes.len()
    } else {
        simdutf8::compat::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len())
    };
}

/// What [`build_batch`] carries from one block to the next.
#[derive(Default)]
struct Carries {
    /// The previous block ended in an odd run of backslashes.
    esc: u64,
    /// All ones when the previous block ended inside a string.
    in_str: u64,
    /// The previous block ended with a scalar byte.
    scalar: u64,
    /// A check failed on the line in progress, in an earlier block.
    line_bad: bool,
}

impl Carries {
    /// Index the 64-byte `block` at `at` in `bytes`: push its entries and
    /// the marks of the lines that end in it; return its backslashes
    /// inside strings.
    #[inline(always)]
    fn block<const AVX2: bool, const AVX512: bool>(
        &mut self,
        bytes: &[u8],
        block: &[u8; 64],
        at: usize,
        pos: &mut Vec<u32>,
        marks: &mut Vec<Mark>,
    ) -> u64 {
        let m = if AVX512 {
            block_masks_avx512(block)
        } else {
            block_masks::<AVX2>(block)
        };
        let esc = if m.backslash | self.esc == 0 {
            0
        } else {
            escaped(m.backslash, &mut self.esc)
        };
        let quote = m.quote & !esc;
        let mut in_str = prefix_xor_with::<AVX2>(quote) ^ self.in_str;
        // A newline inside a string: its line is bad (the control check
        // below), and the bytes after it start outside any string.
        let mut open = m.newline & in_str;
        while open != 0 {
            let after = (!0u64 << open.trailing_zeros()) << 1;
            in_str ^= after;
            open = m.newline & in_str & after;
        }
        self.in_str = (((in_str & !m.newline) as i64) >> 63) as u64;
        let mut bad = m.control & in_str;
        let esc_in_str = esc & in_str;
        if esc_in_str != 0 {
            bad |= bad_escapes(bytes, block, at, esc_in_str);
        }
        let scalar = !(m.op | m.space | m.quote | in_str);
        let starts = scalar & !(scalar << 1 | self.scalar);
        self.scalar = scalar >> 63;
        let structural = (m.op & !in_str) | quote | starts;
        if m.newline != 0 {
            self.marks(m.newline, bad, structural, at, pos.len() as u32, marks);
        } else {
            self.line_bad |= bad != 0;
        }
        if AVX512 {
            push_bits_avx512(pos, at as u32, structural);
        } else {
            push_bits_with::<AVX2>(pos, at as u32, structural);
        }
        m.backslash & in_str
    }

    /// Push the marks of the lines that end at the `newline` bits of the
    /// block at `at`, whose entries start at `before`.
    #[inline(always)]
    fn marks(
        &mut self,
        mut newline: u64,
        mut bad: u64,
        structural: u64,
        at: usize,
        before: u32,
        marks: &mut Vec<Mark>,
    ) {
        while newline != 0 {
            let k = newline.trailing_zeros();
            // Bits 0..=k: this block's part of the line ending at `k`.
            let upto = u64::MAX >> (63 - k);
            marks.push(Mark {
                end: at as u32 + k,
                k_end: before + (structural & (upto >> 1)).count_ones(),
                ok: !self.line_bad && bad & upto == 0,
            });
            bad &= !upto;
            self.line_bad = false;
            newline &= newline - 1;
        }
        self.line_bad = bad != 0;
    }
}

/// How far ahead of the block being indexed [`build_batch`] asks for the
/// batch's bytes. The block loop is long enough that the CPU has only a
/// few blocks' loads in flight at once; a batch read for the first time
/// (from the page cache) otherwise waits on memory at almost every block.
const PREFETCH: usize = 1024;

/// Ask for the cache line of `bytes[at]`. No check that `at` is inside
/// `bytes` (one compare and branch less per block): a prefetch is only a
/// hint, it never faults, and the address is only computed (wrapping),
/// never read by Rust.
#[inline(always)]
fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults
    // and has no effect on the program's state.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().wrapping_add(at).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

#[cfg(test)]
mod tests;
