//! The walk off the pointer trie: validation only (no span, no name
//! compare, no kind), in a loop with the open containers on a stack of bits,
//! and the numbers and literals read byte by byte (a word at a time for
//! digit runs).

use super::{ARR, Bad, OBJ, W, Walk};

/// The bytes that may follow a number or literal: whitespace, the
/// structural characters and a quote (the bytes stage 1 ends a scalar's
/// run at). Anything else glued to a scalar (`1x`, `truee`) is invalid.
static ENDS_SCALAR: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\n\r{}[]:,\"";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

impl Walk<'_> {
    /// A number or literal starting at `p` (byte `c`): it must fill its
    /// whole run of scalar bytes. Returns its end. Out of line: the
    /// member loops stay small (fewer registers spilled per member) and
    /// most values are strings.
    #[inline(never)]
    pub(super) fn scalar(&self, p: usize, c: u8) -> W<usize> {
        let end = match c {
            b'-' | b'0'..=b'9' => number(self.line, p),
            b't' => literal(self.line, p, b"true"),
            b'f' => literal(self.line, p, b"false"),
            b'n' => literal(self.line, p, b"null"),
            _ => None,
        }
        .ok_or(Bad)?;
        match self.line.get(end) {
            Some(&b) if !ENDS_SCALAR[b as usize] => Err(Bad),
            _ => Ok(end),
        }
    }

    /// Validate one value at entry `k`, off the pointer trie; returns the
    /// entry after it. Strings and scalars are read here; a container
    /// goes to the loop of [`Walk::skip_container`].
    #[inline(always)]
    pub(super) fn skip(&self, k: usize, stack: &mut Vec<bool>) -> W<usize> {
        let (p, c) = self.tok(k)?;
        match c {
            b'"' => Ok(k + 2),
            b'{' | b'[' => self.skip_container(k, stack),
            _ => {
                self.scalar(p, c)?;
                Ok(k + 1)
            }
        }
    }

    /// Validate the container at entry `k` without recursion. The types
    /// of the open containers are a stack of bits in a register (`bits`,
    /// the innermost in bit 0); levels deeper than 64 spill their bits to
    /// `stack`, so any depth costs memory, not the call stack.
    fn skip_container(&self, k: usize, stack: &mut Vec<bool>) -> W<usize> {
        if let Some(end) = self.flat_array(k) {
            return end;
        }
        let base = stack.len();
        let result = self.skip_inner(k, stack);
        stack.truncate(base);
        result
    }

    /// An array of strings and scalars only (the common one, e.g. tags)
    /// at entry `k`, validated by a loop without the container stack;
    /// `None` if `k` is not an array or holds a container (then the
    /// general loop walks it from the start).
    #[inline(always)]
    fn flat_array(&self, k0: usize) -> Option<W<usize>> {
        if self.byte(k0) != b'[' {
            return None;
        }
        let mut k = k0 + 1;
        if self.byte(k) == b']' {
            return Some(Ok(k + 1));
        }
        loop {
            let c = self.byte(k);
            if c == b'"' {
                k += 2;
            } else if c == b'[' || c == b'{' {
                return None;
            } else {
                let p = *self.pos.get(k)? as usize;
                if self.scalar(p, c).is_err() {
                    return Some(Err(Bad));
                }
                k += 1;
            }
            match self.byte(k) {
                b',' => k += 1,
                b']' => return Some(Ok(k + 1)),
                _ => return Some(Err(Bad)),
            }
        }
    }

    #[inline(always)]
    fn skip_inner(&self, mut k: usize, stack: &mut Vec<bool>) -> W<usize> {
        let mut bits = 0u64;
        let mut depth = 0usize;
        'value: loop {
            // Entry `k` starts a value.
            let (p, c) = self.tok(k)?;
            match c {
                b'"' => k += 2,
                b'{' => {
                    if self.byte(k + 1) == b'}' {
                        k += 2;
                    } else {
                        push(stack, &mut bits, &mut depth, OBJ);
                        k = self.key(k + 1)?;
                        continue 'value;
                    }
                }
                b'[' => {
                    if self.byte(k + 1) == b']' {
                        k += 2;
                    } else {
                        push(stack, &mut bits, &mut depth, ARR);
                        k += 1;
                        continue 'value;
                    }
                }
                _ => {
                    self.scalar(p, c)?;
                    k += 1;
                }
            }
            // After a value: close every container it completes.
            while depth > 0 {
                let top = bits & 1;
                let c = self.byte(k);
                k += 1;
                if c == b',' {
                    if top == OBJ as u64 {
                        k = self.key(k)?;
                    }
                    continue 'value;
                }
                // `}` is `]` | 0x20.
                if c != b']' | ((top as u8) << 5) {
                    return Err(Bad);
                }
                bits >>= 1;
                depth -= 1;
                if depth >= 64 {
                    bits |= (stack.pop().ok_or(Bad)? as u64) << 63;
                }
            }
            return Ok(k);
        }
    }
}

/// Open a container of type `obj` on the bit stack of
/// [`Walk::skip_inner`]: its bit goes in at the bottom, and the 64th
/// level's bit, about to be shifted out, to `stack`.
#[inline(always)]
fn push(stack: &mut Vec<bool>, bits: &mut u64, depth: &mut usize, obj: bool) {
    if *depth >= 64 {
        stack.push(*bits >> 63 != 0);
    }
    *bits = *bits << 1 | obj as u64;
    *depth += 1;
}

/// One in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;

/// The end of the RFC 8259 number that starts at `p`, if one does (the
/// caller checks what follows it). Past the line's end reads as a space.
#[inline(always)]
fn number(b: &[u8], p: usize) -> Option<usize> {
    let at = |i: usize| b.get(i).copied().unwrap_or(b' ');
    let digits = |mut i: usize| {
        // Eight bytes at a time: `t` holds 0..=9 in a digit's byte; a
        // byte of `t` of 10 or more gets its top bit from the add (no
        // carry out of the bytes below it, all digits) or has it already.
        while let Some(w) = b.get(i..i + 8) {
            let t = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ (LO * b'0' as u64);
            let other = (t.wrapping_add(LO * 0x76) | t) & (LO * 0x80);
            if other != 0 {
                return i + (other.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while at(i).is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = p + (at(p) == b'-') as usize;
    match at(i) {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if at(i) == b'.' {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    // 'E' | 0x20 == 'e', and no other byte ORs to 'e'.
    if at(i) | 0x20 == b'e' {
        i += 1;
        i += matches!(at(i), b'+' | b'-') as usize;
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The end of `word` if the line has it at `p`.
#[inline(always)]
fn literal(b: &[u8], p: usize, word: &[u8]) -> Option<usize> {
    let end = p + word.len();
    (b.get(p..end) == Some(word)).then_some(end)
}
