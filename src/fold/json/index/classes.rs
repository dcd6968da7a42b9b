//! The byte classes of a 64-byte block, stage 1's first step
//! ([`super`]): one bit per byte for quotes, backslashes, control bytes,
//! whitespace, newlines, the six structural characters and the top bit.
//! The portable table is the definition; the SIMD classifiers (SSE2 on
//! every x86-64, AVX2 where the CPU has it) are tested against it.

/// One block's byte classes: bit `k` describes byte `k` of the block.
#[derive(Clone, Copy, Default)]
pub(in crate::fold::json) struct Masks {
    pub(in crate::fold::json) quote: u64,
    pub(in crate::fold::json) backslash: u64,
    pub(in crate::fold::json) control: u64,
    pub(in crate::fold::json) space: u64,
    pub(in crate::fold::json) op: u64,
    /// Bytes >= 0x80 (not ASCII): a line without any is valid UTF-8.
    pub(in crate::fold::json) high: u64,
    /// `\n` (also in `space` and `control`): where a batch's lines end.
    pub(in crate::fold::json) newline: u64,
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
pub(super) fn masks_scalar(block: &[u8; 64]) -> Masks {
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
pub(in crate::fold::json) fn masks(block: &[u8; 64]) -> Masks {
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
pub(super) fn masks_avx2(block: &[u8; 64]) -> Masks {
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

/// The same masks with AVX-512 (F, BW): one 64-byte load, each class one
/// compare straight into a mask register, with [`masks_avx2`]'s nibble
/// tables (`vpshufb` looks up per 128-bit lane here too). Only called
/// where [`has_avx512`] said the CPU has it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) fn masks_avx512(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: the caller checked AVX-512 F and BW at run time; the load
    // reads the 64 bytes of `block`, the table loads 16 bytes each.
    unsafe {
        let v = _mm512_loadu_si512(block.as_ptr().cast());
        let table = |t: &[u8; 16]| _mm512_broadcast_i32x4(_mm_loadu_si128(t.as_ptr().cast()));
        let is = |b: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b as i8));
        let control = _mm512_cmple_epu8_mask(v, _mm512_set1_epi8(0x1f));
        let vl = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
        Masks {
            quote: is(b'"'),
            backslash: is(b'\\'),
            control,
            space: _mm512_cmpeq_epi8_mask(v, _mm512_shuffle_epi8(table(&WS_TABLE), v)),
            op: _mm512_cmpeq_epi8_mask(vl, _mm512_shuffle_epi8(table(&OP_TABLE), v)) & !control,
            high: _mm512_movepi8_mask(v),
            newline: is(b'\n'),
        }
    }
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
pub(in crate::fold::json) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(in crate::fold::json) fn has_avx2() -> bool {
    false
}

/// Whether this CPU has AVX-512 F and BW besides [`has_avx2`]'s features
/// (asked once: std caches the answer). `LOGKEEPER_NO_AVX512` set to
/// anything turns the AVX-512 path off (to compare the two paths on one
/// machine; read once).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(in crate::fold::json) fn has_avx512() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && has_avx2()
        && !*OFF.get_or_init(|| std::env::var_os("LOGKEEPER_NO_AVX512").is_some())
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(in crate::fold::json) fn has_avx512() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(in crate::fold::json) fn masks(block: &[u8; 64]) -> Masks {
    masks_scalar(block)
}
