//! Stage 1 of the fast scan: a structural index of one line, built 64 bytes
//! at a time with bit tricks (the design of simdjson's stage 1).
//!
//! For each 64-byte block, five masks (one bit per byte) are computed with
//! SIMD compares where the CPU has them: quotes, backslashes, control bytes,
//! whitespace and the six structural characters. From those, with carries
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

/// One block's byte classes: bit `k` describes byte `k` of the block.
#[derive(Clone, Copy, Default)]
pub(super) struct Masks {
    pub(super) quote: u64,
    pub(super) backslash: u64,
    pub(super) control: u64,
    pub(super) space: u64,
    pub(super) op: u64,
    /// Bytes >= 0x80 (not ASCII): a line without any is valid UTF-8.
    pub(super) high: u64,
    /// `\n` (also in `space` and `control`): where a batch's lines end.
    pub(super) newline: u64,
}

/// The byte classes of the scalar fallback, as bits of a table entry.
const Q: u8 = 1;
const B: u8 = 2;
const C: u8 = 4;
const W: u8 = 8;
const O: u8 = 16;
const N: u8 = 32;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = C;
        i += 1;
    }
    t[b' ' as usize] = W;
    t[b'\t' as usize] |= W;
    t[b'\n' as usize] |= W | N;
    t[b'\r' as usize] |= W;
    t[b'"' as usize] = Q;
    t[b'\\' as usize] = B;
    t[b'{' as usize] = O;
    t[b'}' as usize] = O;
    t[b'[' as usize] = O;
    t[b']' as usize] = O;
    t[b':' as usize] = O;
    t[b',' as usize] = O;
    t
};

/// The portable classifier: a table lookup per byte. Used where no SIMD
/// path is compiled in (any target but x86-64), and as the reference the
/// SIMD path is tested against.
#[allow(dead_code)]
fn masks_scalar(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in block.iter().enumerate() {
        let c = CLASS[b as usize] as u64;
        m.quote |= (c & Q as u64) << k;
        m.backslash |= ((c & B as u64) >> 1) << k;
        m.control |= ((c & C as u64) >> 2) << k;
        m.space |= ((c & W as u64) >> 3) << k;
        m.op |= ((c & O as u64) >> 4) << k;
        m.newline |= ((c & N as u64) >> 5) << k;
        m.high |= ((b >> 7) as u64) << k;
    }
    m
}

/// SSE2 is part of the x86-64 baseline: every x86-64 CPU has it, so no
/// runtime detection is needed for this path.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn masks(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is always available on x86-64; each unaligned load reads
    // 16 bytes at offset 0, 16, 32 or 48 of a 64-byte array.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let limit = _mm_set1_epi8(0x1f);
        let space = _mm_set1_epi8(b' ' as i8);
        let tab = _mm_set1_epi8(b'\t' as i8);
        let lf = _mm_set1_epi8(b'\n' as i8);
        let cr = _mm_set1_epi8(b'\r' as i8);
        let lower = _mm_set1_epi8(0x20);
        let open = _mm_set1_epi8(b'{' as i8); // '[' | 0x20 == '{'
        let close = _mm_set1_epi8(b'}' as i8); // ']' | 0x20 == '}'
        let colon = _mm_set1_epi8(b':' as i8);
        let comma = _mm_set1_epi8(b',' as i8);
        for i in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * i).cast());
            let shift = 16 * i;
            let q = _mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u16 as u64;
            let b = _mm_movemask_epi8(_mm_cmpeq_epi8(v, backslash)) as u16 as u64;
            // Unsigned v < 0x20 exactly when max(v, 0x1f) == 0x1f.
            let c = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit)) as u16 as u64;
            let n = _mm_cmpeq_epi8(v, lf);
            let s = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, tab)),
                _mm_or_si128(n, _mm_cmpeq_epi8(v, cr)),
            );
            let s = _mm_movemask_epi8(s) as u16 as u64;
            let n = _mm_movemask_epi8(n) as u16 as u64;
            let vl = _mm_or_si128(v, lower);
            let o = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(vl, open), _mm_cmpeq_epi8(vl, close)),
                _mm_or_si128(_mm_cmpeq_epi8(v, colon), _mm_cmpeq_epi8(v, comma)),
            );
            let o = _mm_movemask_epi8(o) as u16 as u64;
            // The movemask of `v` itself is its bytes' top bits.
            let h = _mm_movemask_epi8(v) as u16 as u64;
            m.quote |= q << shift;
            m.backslash |= b << shift;
            m.control |= c << shift;
            m.space |= s << shift;
            m.op |= o << shift;
            m.high |= h << shift;
            m.newline |= n << shift;
        }
    }
    m
}

/// The same masks with AVX2 (two 32-byte loads); only called where
/// [`has_avx2`] said the CPU has it.
///
/// Whitespace and the six structural characters are found by table
/// lookups on each byte's low nibble (`vpshufb`, simdjson's classifier),
/// one lookup and one compare per class instead of a compare per
/// character:
/// - whitespace: `v == WS[v & 15]`. The table holds ` `, `\t`, `\n`, `\r`
///   at their own low nibbles and, elsewhere, bytes whose low nibble is
///   not their index (so nothing else can equal them); `vpshufb` gives 0
///   for a byte with its top bit set, and no such byte is 0.
/// - structural: `v | 0x20 == OP[v & 15]` (the `| 0x20` turns `[` `]`
///   into `{` `}`); the other entries are 0, which no `v | 0x20` is. Two
///   control bytes also match (0x0C as `,` and 0x1A as `:`): they are
///   taken out with the control mask, so `op` is exactly the six.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn masks_avx2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: the caller checked AVX2 at run time; each unaligned load reads
    // 32 bytes at offset 0 or 32 of a 64-byte array.
    unsafe {
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let limit = _mm256_set1_epi8(0x1f);
        let lf = _mm256_set1_epi8(b'\n' as i8);
        let lower = _mm256_set1_epi8(0x20);
        let ws = nibble_table(WS_TABLE);
        let op = nibble_table(OP_TABLE);
        for i in 0..2 {
            let v = _mm256_loadu_si256(block.as_ptr().add(32 * i).cast());
            let shift = 32 * i;
            m.quote |= bits32(_mm256_cmpeq_epi8(v, quote)) << shift;
            m.backslash |= bits32(_mm256_cmpeq_epi8(v, backslash)) << shift;
            // Unsigned v < 0x20 exactly when max(v, 0x1f) == 0x1f.
            m.control |= bits32(_mm256_cmpeq_epi8(_mm256_max_epu8(v, limit), limit)) << shift;
            m.newline |= bits32(_mm256_cmpeq_epi8(v, lf)) << shift;
            m.space |= bits32(_mm256_cmpeq_epi8(v, _mm256_shuffle_epi8(ws, v))) << shift;
            let vl = _mm256_or_si256(v, lower);
            m.op |= bits32(_mm256_cmpeq_epi8(vl, _mm256_shuffle_epi8(op, v))) << shift;
            // The movemask of `v` itself is its bytes' top bits.
            m.high |= bits32(v) << shift;
        }
    }
    m.op &= !m.control;
    m
}

/// One bit per byte of `x`: its top bit (a compare's result).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn bits32(x: std::arch::x86_64::__m256i) -> u64 {
    std::arch::x86_64::_mm256_movemask_epi8(x) as u32 as u64
}

/// The whitespace lookup of [`masks_avx2`], by low nibble: ` ` (0x20) at
/// 0, `\t` at 9, `\n` at 10, `\r` at 13; every other entry has a low
/// nibble other than its index.
#[cfg(target_arch = "x86_64")]
const WS_TABLE: [u8; 16] = [
    b' ', 100, 100, 100, 17, 100, 113, 2, 100, b'\t', b'\n', 112, 100, b'\r', 100, 100,
];

/// The structural lookup of [`masks_avx2`], by low nibble: `:` (0x3A),
/// `{` (0x7B, also `[` | 0x20), `,` (0x2C), `}` (0x7D, also `]` | 0x20);
/// 0 elsewhere.
#[cfg(target_arch = "x86_64")]
const OP_TABLE: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b':', b'{', b',', b'}', 0, 0];

/// A 16-byte table in both lanes of a vector, as `vpshufb` looks up
/// per 128-bit lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn nibble_table(t: [u8; 16]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_broadcastsi128_si256};
    // SAFETY: reads the 16 bytes of `t`; AVX2 is enabled on this function.
    unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128((&raw const t).cast::<__m128i>())) }
}

/// Whether this CPU has AVX2 (and POPCNT, BMI1, PCLMULQDQ), asked once
/// (std caches the answer).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn masks(block: &[u8; 64]) -> Masks {
    masks_scalar(block)
}

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
    pos.reserve(len + 8);
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

/// Per byte value, the positions of its set bits, lowest first, one per
/// byte of the `u64` (lowest byte first), the rest 0.
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
