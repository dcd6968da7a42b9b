//! The byte-level half of the scanner: a cursor over one line that reads
//! strings, numbers and literals, the word-at-a-time helpers it uses, and
//! the unescaping of string values.

use super::{Invalid, Kind, R};

pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
pub(super) fn has_zero(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// The length of the well-formed UTF-8 sequence (Unicode table 3-7: no
/// overlongs, surrogates or code points past U+10FFFF) that starts `b`,
/// whose first byte is not ASCII; `None` if it is not well formed.
#[inline]
pub(super) fn utf8_len(b: &[u8]) -> Option<usize> {
    let cont = |i: usize, lo: u8, hi: u8| b.get(i).is_some_and(|x| (lo..=hi).contains(x));
    let tail = |from: usize, to: usize| (from..to).all(|i| cont(i, 0x80, 0xBF));
    let ok = match b[0] {
        0xC2..=0xDF => return tail(1, 2).then_some(2),
        0xE0 => cont(1, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => cont(1, 0x80, 0xBF),
        0xED => cont(1, 0x80, 0x9F),
        0xF0 => return (cont(1, 0x90, 0xBF) && tail(2, 4)).then_some(4),
        0xF1..=0xF3 => return (cont(1, 0x80, 0xBF) && tail(2, 4)).then_some(4),
        0xF4 => return (cont(1, 0x80, 0x8F) && tail(2, 4)).then_some(4),
        _ => false,
    };
    (ok && tail(2, 3)).then_some(3)
}

/// Bit `k` set where `chunk[k]` is '"', '\\', a control byte (< 0x20) or
/// not ASCII (>= 0x80).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn special16(chunk: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is part of the x86_64 baseline; the load is unaligned and
    // reads 16 bytes that the assert above shows are in bounds.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned v < 0x20 exactly when max(v, 0x1f) == 0x1f.
        let limit = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
        let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        // The movemask of `v` itself is its bytes' top bits: non-ASCII.
        (_mm_movemask_epi8(special) | _mm_movemask_epi8(v)) as u32
    }
}

impl Cursor<'_> {
    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub(super) fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    pub(super) fn err(&self, reason: &'static str) -> Invalid {
        Invalid {
            reason,
            at: self.i.min(self.b.len()),
        }
    }

    #[inline]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    pub(super) fn expect(&mut self, want: u8, reason: &'static str) -> R<()> {
        if self.peek() == Some(want) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    pub(super) fn member_key(&mut self) -> R<()> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string as object key"));
        }
        self.string()?;
        self.ws();
        self.expect(b':', "expected ':' after an object key")
    }

    /// Scan a string starting at its opening quote; return the content span
    /// and whether it contains escapes.
    #[inline]
    pub(super) fn string(&mut self) -> R<(usize, usize, bool)> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        let b = self.b;
        loop {
            // Sixteen bytes at a time where SSE2 is (always on x86_64), then
            // eight: stop at '"', '\\', a control byte or a non-ASCII byte.
            'find: {
                #[cfg(target_arch = "x86_64")]
                while self.i + 16 <= b.len() {
                    let m = special16(&b[self.i..self.i + 16]);
                    if m != 0 {
                        self.i += m.trailing_zeros() as usize;
                        break 'find;
                    }
                    self.i += 16;
                }
                while self.i + 8 <= b.len() {
                    let x = u64::from_le_bytes(b[self.i..self.i + 8].try_into().unwrap());
                    let special = x.wrapping_sub(LO * 0x20) & !x & HI
                        | has_zero(x ^ (LO * b'"' as u64))
                        | has_zero(x ^ (LO * b'\\' as u64))
                        | x & HI;
                    if special != 0 {
                        self.i += (special.trailing_zeros() / 8) as usize;
                        break 'find;
                    }
                    self.i += 8;
                }
            }
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok((start, self.i - 1, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.next() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        Some(b'u') => {
                            for _ in 0..4 {
                                match self.next() {
                                    Some(h) if h.is_ascii_hexdigit() => {}
                                    _ => {
                                        self.i -= 1;
                                        return Err(self.err("invalid \\u escape"));
                                    }
                                }
                            }
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err("invalid escape in a string"));
                        }
                    }
                }
                Some(c) if c < 0x20 => return Err(self.err("control character in a string")),
                Some(c) if c >= 0x80 => match utf8_len(&b[self.i..]) {
                    Some(n) => self.i += n,
                    None => return Err(self.err("invalid UTF-8")),
                },
                Some(_) => self.i += 1,
            }
        }
    }

    pub(super) fn digits(&mut self) -> usize {
        let s = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - s
    }

    pub(super) fn number(&mut self) -> R<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: digits expected after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: digits expected in exponent"));
            }
        }
        Ok(())
    }

    pub(super) fn literal(&mut self, word: &'static [u8], kind: Kind) -> R<Kind> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(kind)
        } else {
            Err(self.err("invalid literal"))
        }
    }
}

/// Decode the escapes of a string's raw content (already validated).
/// Unpaired surrogates are kept as their generalized UTF-8 encoding so two
/// different raw strings never decode to the same bytes.
pub fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex = |s: &[u8]| -> u32 {
        s.iter().fold(0, |acc, &h| {
            acc * 16 + (h as char).to_digit(16).unwrap_or(0)
        })
    };
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let ch = match e {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n' as u32,
            b'r' => b'\r' as u32,
            b't' => b'\t' as u32,
            b'u' if i + 4 <= raw.len() => {
                let mut cp = hex(&raw[i..i + 4]);
                i += 4;
                if (0xD800..0xDC00).contains(&cp)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                    && i + 6 <= raw.len()
                {
                    let lo = hex(&raw[i + 2..i + 6]);
                    if (0xDC00..0xE000).contains(&lo) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                cp
            }
            other => other as u32,
        };
        encode_wtf8(ch, &mut out);
    }
    out
}

pub(super) fn encode_wtf8(cp: u32, out: &mut Vec<u8>) {
    match cp {
        0..=0x7F => out.push(cp as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
    }
}
