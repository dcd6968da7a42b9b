//! Stage 1 of the fast scan: a structural index of one line, built 64 bytes
//! at a time with bit tricks (the design of simdjson's stage 1).
//!
//! For each 64-byte block, five masks (one bit per byte) are computed with
//! SIMD where the CPU has it (`classes`): quotes, backslashes, control
//! bytes, whitespace and the six structural characters. From those, with carries
//! from block to block: which characters are escaped (odd runs of
//! backslashes), which bytes are inside strings (a prefix XOR of the
//! unescaped quotes), and where each scalar (number or literal) starts. The
//! index is the sorted list of positions of every structural character
//! outside strings, every unescaped quote (open and close, so a string is
//! two consecutive entries) and every scalar start.
//!
//! The checks that need no grammar are done here, on whole masks: a control
//! byte inside a string, an invalid escape, an unterminated string. A sixth
//! mask, the bytes' top bits, says whether the line is all ASCII; only a
//! line that is not gets a UTF-8 check, by `simdutf8` on the whole line (its
//! own runtime CPU detection).
//!
//! Invariants: when [`build`] returns `true`, between two consecutive index
//! entries outside a string there are only whitespace and the bytes of the
//! scalar the first entry starts; a `"` entry at an even string position is
//! always followed by the entry of its closing quote.

mod classes;

#[allow(unused_imports)]
use classes::masks_scalar;
pub(super) use classes::{Masks, has_avx2, has_avx512, masks};
#[cfg(target_arch = "x86_64")]
use classes::{masks_avx2, masks_avx512};

const EVEN: u64 = 0x5555_5555_5555_5555;

/// The characters escaped by a backslash (simdjson's algorithm): the byte
/// after each odd-length run of backslashes. `carry` is 1 when the previous
/// block ended in such a run.
#[inline(always)]
pub(super) fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    let backslash = backslash & !*carry;
    let follows = backslash << 1 | *carry;
    let odd_starts = backslash & !EVEN & !follows;
    let (on_even, overflow) = odd_starts.overflowing_add(backslash);
    *carry = overflow as u64;
    (EVEN ^ (on_even << 1)) & follows
}

/// Bit `k` is the XOR of bits `0..=k`: 1 from an opening quote up to (not
/// including) its closing quote.
#[inline(always)]
pub(super) fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// [`prefix_xor`] with the instructions `AVX2` picks: on the AVX2 path one
/// carry-less multiply by all-ones (simdjson's trick: bit `k` of the
/// product is the XOR of bits `0..=k`), instead of the six shift-xor steps.
#[inline(always)]
pub(super) fn prefix_xor_with<const AVX2: bool>(x: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: only `build_avx2` and `build_batch_avx2` instantiate
        // AVX2 = true, after `has_avx2` (which asks for PCLMULQDQ too).
        return unsafe { prefix_xor_clmul(x) };
    }
    prefix_xor(x)
}

/// The low 64 bits of `x` carry-less times `!0`. Safe to call only when
/// the CPU has PCLMULQDQ; inlined into callers compiled with it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq")]
#[inline]
unsafe fn prefix_xor_clmul(x: u64) -> u64 {
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set_epi64x, _mm_set1_epi8,
    };
    let product = _mm_clmulepi64_si128::<0>(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1));
    _mm_cvtsi128_si64(product) as u64
}

/// Whether `b` may follow a backslash in a JSON string.
#[inline]
pub(super) fn escape_ok(b: u8) -> bool {
    matches!(
        b,
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u'
    )
}

/// Build the structural index of `line` into `pos`. Returns `None` when
/// the line is certainly not valid JSON (a check that needs no grammar
/// failed); `Some(ascii)` means only that the grammar walk may proceed,
/// `ascii` that every byte of the line is ASCII (so it is valid UTF-8 and
/// needs no UTF-8 check: the common case, found for one compare per 32
/// bytes instead of a second pass over the line).
pub(super) fn build(line: &[u8], pos: &mut Vec<u32>, escapes: &mut Vec<u64>) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 was detected at run time.
        return unsafe { build_avx2(line, pos, escapes) };
    }
    build_with::<false>(line, pos, escapes)
}

/// Every AVX2 CPU (Haswell on) also has POPCNT and BMI1, which the bit
/// loops use (`count_ones`, `trailing_zeros`), and PCLMULQDQ, which the
/// prefix XOR uses; the check asks for all four.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
unsafe fn build_avx2(line: &[u8], pos: &mut Vec<u32>, escapes: &mut Vec<u64>) -> Option<bool> {
    build_with::<true>(line, pos, escapes)
}

/// The masks of one block with the classifier `AVX2` picks, each behind
/// an optimisation barrier: without it LLVM folds the movemasks and the
/// bit logic after them into vectors of single bits and unpacks them bit
/// by bit (callgrind: ~5x the instructions of the block loop). The
/// barrier is per mask and in a register ([`opaque`]), so a caller that
/// does not use a mask (the batch, `high`) does not pay for it, and no
/// mask goes through memory.
#[inline(always)]
pub(super) fn block_masks<const AVX2: bool>(block: &[u8; 64]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    let m = if AVX2 {
        // SAFETY: only `build_avx2` and `build_batch_avx2` instantiate
        // AVX2 = true, after the run-time check.
        unsafe { masks_avx2(block) }
    } else {
        masks(block)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let m = masks(block);
    behind_barriers(m)
}

/// [`block_masks`] with the AVX-512 classifier ([`masks_avx512`]), behind
/// the same barriers. Only `build_batch_avx512` reaches it, after the
/// run-time check ([`has_avx512`]); elsewhere than x86-64 it is the
/// portable classifier (never called).
#[inline(always)]
pub(super) fn block_masks_avx512(block: &[u8; 64]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: see above: AVX-512 F and BW were detected at run time.
    let m = unsafe { masks_avx512(block) };
    #[cfg(not(target_arch = "x86_64"))]
    let m = masks(block);
    behind_barriers(m)
}

/// Each of `m`'s masks behind its own barrier ([`opaque`]).
#[inline(always)]
fn behind_barriers(m: Masks) -> Masks {
    Masks {
        quote: opaque(m.quote),
        backslash: opaque(m.backslash),
        control: opaque(m.control),
        space: opaque(m.space),
        op: opaque(m.op),
        high: opaque(m.high),
        newline: opaque(m.newline),
    }
}

/// `x`, which the optimiser cannot see through: on x86-64 an empty `asm!`
/// that claims to change `x` in its register (no instruction, no memory);
/// elsewhere [`std::hint::black_box`]. Pure, so an unused result costs
/// nothing.
#[inline(always)]
fn opaque(x: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut x = x;
        // SAFETY: the template is a comment: no instruction runs.
        unsafe {
            std::arch::asm!("# {0}", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        x
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::hint::black_box(x)
}

/// The 64-byte block of `bytes` at `at`; the last, partial one is copied
/// into `tail` and padded with spaces (whitespace ends a scalar and
/// changes nothing else).
#[inline(always)]
pub(super) fn block_at<'b>(bytes: &'b [u8], at: usize, tail: &'b mut [u8; 64]) -> &'b [u8; 64] {
    match bytes.get(at..at + 64) {
        Some(b) => b.try_into().unwrap(),
        None => {
            let n = bytes.len() - at;
            tail[..n].copy_from_slice(&bytes[at..]);
            tail[n..].fill(b' ');
            tail
        }
    }
}

/// [`build`] with a given block classifier; `escapes` gets, per block, the
/// bits of the backslashes inside strings (so the walk can tell whether a
/// string has escapes without reading it).
#[inline(always)]
fn build_with<const AVX2: bool>(
    line: &[u8],
    pos: &mut Vec<u32>,
    escapes: &mut Vec<u64>,
) -> Option<bool> {
    pos.clear();
    escapes.clear();
    debug_assert!(line.len() < u32::MAX as usize);
    let mut esc_carry = 0u64;
    let mut in_str_carry = 0u64;
    let mut scalar_carry = 0u64;
    let mut high = 0u64;
    let mut at = 0usize;
    let mut tail = [b' '; 64];
    reserve_entries(pos, line.len());
    while at < line.len() {
        let block = block_at(line, at, &mut tail);
        let m = block_masks::<AVX2>(block);
        high |= m.high;
        let esc = if m.backslash | esc_carry == 0 {
            0
        } else {
            escaped(m.backslash, &mut esc_carry)
        };
        let quote = m.quote & !esc;
        let in_str = prefix_xor_with::<AVX2>(quote) ^ in_str_carry;
        in_str_carry = ((in_str as i64) >> 63) as u64;
        if m.control & in_str != 0 {
            return None;
        }
        let esc_in_str = esc & in_str;
        if esc_in_str != 0 && bad_escapes(line, block, at, esc_in_str) != 0 {
            return None;
        }
        escapes.push(m.backslash & in_str);
        // Scalar bytes: outside strings, not a quote, space or structural.
        let scalar = !(m.op | m.space | m.quote | in_str);
        let starts = scalar & !(scalar << 1 | scalar_carry);
        scalar_carry = scalar >> 63;
        let structural = (m.op & !in_str) | quote | starts;
        push_bits_with::<AVX2>(pos, at as u32, structural);
        at += 64;
    }
    (in_str_carry == 0).then_some(high == 0)
}

/// Whether `b` may follow a backslash in a JSON string, as a table.
static ESCAPE_OK: [bool; 256] = {
    let mut t = [false; 256];
    let ok = *b"\"\\/bfnrtu";
    let mut i = 0;
    while i < ok.len() {
        t[ok[i] as usize] = true;
        i += 1;
    }
    t
};

/// The escaped characters of a block (bits of `esc`, inside strings of
/// `bytes` at block offset `at`) that are not one of the nine JSON escapes,
/// or are a `\u` not followed by four hex digits.
#[inline]
pub(super) fn bad_escapes(bytes: &[u8], block: &[u8; 64], at: usize, mut esc: u64) -> u64 {
    let mut bad = 0;
    while esc != 0 {
        let k = esc.trailing_zeros() as usize;
        esc &= esc - 1;
        let b = block[k];
        if !ESCAPE_OK[b as usize] || b == b'u' && !hex4(bytes, at + k + 1) {
            bad |= 1 << k;
        }
    }
    bad
}

/// Whether `bytes[p..p + 4]` are four hex digits.
#[cold]
fn hex4(bytes: &[u8], p: usize) -> bool {
    bytes
        .get(p..p + 4)
        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
}

/// Room for every entry [`push_bits`] or [`push_bits_with`] may write for
/// `len` bytes: at most one per byte, plus their slack (8 entries). Reserved
/// once per line or batch, so the block loop does no capacity check.
#[inline(always)]
pub(super) fn reserve_entries(pos: &mut Vec<u32>, len: usize) {
    pos.reserve(len + 16);
}

/// Append `base + k` for every set bit `k` of `bits`.
#[inline(always)]
pub(super) fn push_bits(pos: &mut Vec<u32>, base: u32, mut bits: u64) {
    let n = bits.count_ones() as usize;
    let len = pos.len();
    debug_assert!(pos.capacity() >= len + n.next_multiple_of(4));
    // SAFETY: the callers call `reserve_entries` for all their bytes
    // before the first block; a block adds at most one entry per byte (the
    // padding of a last, partial block is spaces, which add none), and the
    // loop below writes at most 3 entries past `n` (into the slack;
    // `set_len` leaves them out).
    // The first `n` entries are initialised before `set_len`.
    unsafe {
        let out = pos.as_mut_ptr().add(len);
        let mut i = 0;
        // Four at a time: fewer hard-to-predict loop exits (simdjson's
        // trick); past the last bit the extra writes are ignored.
        while i < n {
            for j in 0..4 {
                *out.add(i + j) = base.wrapping_add(bits.trailing_zeros());
                bits &= bits.wrapping_sub(1);
            }
            i += 4;
        }
        pos.set_len(len + n);
    }
}

/// [`push_bits`] with the instructions `AVX2` picks: on the AVX2 path
/// [`push_bits_spread`], whose cost does not grow with the entries.
#[inline(always)]
pub(super) fn push_bits_with<const AVX2: bool>(pos: &mut Vec<u32>, base: u32, bits: u64) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: only `build_avx2` and `build_batch_avx2` instantiate
        // AVX2 = true, after `has_avx2` (which asks for POPCNT too); the
        // callers reserved with `reserve_entries`.
        return unsafe { push_bits_spread(pos, base, bits) };
    }
    push_bits(pos, base, bits)
}

/// [`push_bits`] with AVX-512 ([`push_bits_compress`]). Only
/// `build_batch_avx512` calls it, after [`has_avx512`], having reserved
/// with [`reserve_entries`]; elsewhere than x86-64 it is [`push_bits`].
#[inline(always)]
pub(super) fn push_bits_avx512(pos: &mut Vec<u32>, base: u32, bits: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: see above.
    unsafe {
        push_bits_compress(pos, base, bits)
    }
    #[cfg(not(target_arch = "x86_64"))]
    push_bits(pos, base, bits)
}

/// [`push_bits`] 16 bits at a time: the 16 positions `base + k` in one
/// vector, compressed (`vpcompressd`) to those whose bit is set, all 16
/// stored, and the end moved on by the bits' count (the entries past it
/// are overwritten by the next step's, or left in the slack). Four fixed
/// steps per block. Safe to call only when the CPU has AVX-512 F and
/// POPCNT, and with room for the bits' entries plus 16 (what
/// [`reserve_entries`] leaves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
#[inline]
unsafe fn push_bits_compress(pos: &mut Vec<u32>, base: u32, bits: u64) {
    use std::arch::x86_64::*;
    let len = pos.len();
    debug_assert!(pos.capacity() >= len + bits.count_ones() as usize + 16);
    // SAFETY: step `i` writes entries `n..n + 16`, where `n`, the entries
    // of the steps before it, is at most the block's entries; the room
    // checked above covers them. The first `n` entries are initialised
    // before `set_len`.
    unsafe {
        let out = pos.as_mut_ptr().add(len);
        let mut n = 0usize;
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut at = _mm512_add_epi32(iota, _mm512_set1_epi32(base as i32));
        for i in 0..4 {
            let m = (bits >> (16 * i)) as u16;
            _mm512_storeu_si512(out.add(n).cast(), _mm512_maskz_compress_epi32(m, at));
            n += m.count_ones() as usize;
            at = _mm512_add_epi32(at, _mm512_set1_epi32(16));
        }
        pos.set_len(len + n);
    }
}

/// Per byte value, the positions of its set bits, lowest first, one per
/// byte of the `u64` (lowest byte first), the rest 0.
#[cfg(target_arch = "x86_64")]
static SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut v = 0;
    while v < 256 {
        let (mut k, mut n) = (0, 0);
        while k < 8 {
            if v >> k & 1 == 1 {
                t[v] |= (k as u64) << (8 * n);
                n += 1;
            }
            k += 1;
        }
        v += 1;
    }
    t
};

/// [`push_bits`] a byte of `bits` at a time, with no loop over the bits:
/// the byte's positions from [`SPREAD`] are widened to eight `u32`s, the
/// base added, and all eight stored; the end moves on by the byte's
/// number of bits (so the entries past it are overwritten by the next
/// byte's, or left in the slack). Eight fixed steps per block instead of
/// four instructions per entry: cheaper from about 14 entries per block,
/// the density of the fold's JSON lines. Safe to call only when the CPU
/// has AVX2 and POPCNT, and with room for the bits' entries plus 8 (what
/// [`reserve_entries`] leaves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
#[inline]
unsafe fn push_bits_spread(pos: &mut Vec<u32>, base: u32, bits: u64) {
    use std::arch::x86_64::*;
    let len = pos.len();
    debug_assert!(pos.capacity() >= len + bits.count_ones() as usize + 8);
    // SAFETY: the step for byte `i` writes entries `n..n + 8`, where `n`,
    // the entries of the bytes before it, is at most the block's entries;
    // the room checked above covers them. `SPREAD` has an entry for every
    // byte value, and the first `n` entries are initialised before
    // `set_len`.
    unsafe {
        let out = pos.as_mut_ptr().add(len);
        let mut n = 0usize;
        let mut at = _mm256_set1_epi32(base as i32);
        for i in 0..8 {
            let byte = (bits >> (8 * i)) as u8;
            let k = _mm_loadl_epi64(SPREAD.as_ptr().add(byte as usize).cast());
            let entries = _mm256_add_epi32(_mm256_cvtepu8_epi32(k), at);
            _mm256_storeu_si256(out.add(n).cast(), entries);
            n += byte.count_ones() as usize;
            at = _mm256_add_epi32(at, _mm256_set1_epi32(8));
        }
        pos.set_len(len + n);
    }
}

#[cfg(test)]
mod tests;
