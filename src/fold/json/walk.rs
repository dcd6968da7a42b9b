//! Stage 2 of the fast scan: the grammar walk over the structural index
//! ([`super::index`]), which also descends along the pointer trie and
//! records the spans of its targets.
//!
//! Each step reads one index entry, not one byte: a string is two entries
//! (its quotes) whatever its length, and only scalars (numbers, literals)
//! and the member names on a pointer's path are read byte by byte.
//!
//! Two walks share the entries: the one along the pointer trie
//! ([`Walk::value`], recursive only as deep as the trie), and the one that
//! validates whatever is off the trie ([`Walk::skip`], a loop with an
//! explicit stack, so a deeply nested line cannot overflow the call stack).
//! Both carry the entry number in a local, not in `self`: the hot loop keeps
//! its state in registers. A value off the trie costs its grammar check and
//! nothing else: no span, no name compare, no kind.
//!
//! The walk only says whether a line is valid; the reason a line is not is
//! found by the byte lexer ([`super::lexer`]), which runs only then.

use super::lexer::unescape;
use super::{Kind, Node, Span, len_bit};
use crate::fold::keymap::same_bytes;

/// Not valid JSON (no reason: the caller asks the byte lexer for one).
pub(super) struct Bad;

type W<T> = Result<T, Bad>;

pub(super) struct Walk<'a> {
    /// The line, or a batch up to the line's end: positions (in `pos`,
    /// `escapes`) count from its start.
    line: &'a [u8],
    /// Where the line starts in `line`: spans are given from there.
    base: usize,
    pos: &'a [u32],
    /// Per 64-byte block, the backslashes inside strings (stage 1).
    escapes: &'a [u64],
    /// No string ending at or before this position has an escape: the
    /// line's first backslash inside a string (found once per line, so
    /// most member names need no look at `escapes`).
    plain_upto: usize,
}

const OBJ: bool = true;
const ARR: bool = false;

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

impl<'a> Walk<'a> {
    /// A walk of the line `line[base..]` whose index entries are `pos`.
    ///
    /// Invariant (which [`Walk::byte`] and [`Walk::tok`] rely on to read
    /// without a bounds check): every entry is a position in `line`. Stage 1
    /// pushes entries in increasing order, so checking the last one here
    /// (once per line) checks them all.
    pub(super) fn new(line: &'a [u8], base: usize, pos: &'a [u32], escapes: &'a [u64]) -> Self {
        debug_assert!(pos.is_sorted());
        assert!(pos.last().is_none_or(|&p| (p as usize) < line.len()));
        Walk {
            line,
            base,
            pos,
            escapes,
            plain_upto: 0,
        }
    }

    /// The position of the line's first backslash inside a string (stage
    /// 1's bits), or one past the line if it has none; 0 (no promise) if
    /// the bits do not cover the line.
    fn first_escape(&self) -> usize {
        let end = self.line.len();
        let mut w = self.base / 64;
        let mut bits = match self.escapes.get(w) {
            Some(&b) => b & (!0u64 << (self.base % 64)),
            None => return 0,
        };
        loop {
            if bits != 0 {
                return w * 64 + bits.trailing_zeros() as usize;
            }
            w += 1;
            if w * 64 >= end {
                return end;
            }
            bits = match self.escapes.get(w) {
                Some(&b) => b,
                None => return 0,
            };
        }
    }

    /// Walk the whole line: one value and nothing after it.
    pub(super) fn line(
        &mut self,
        stack: &mut Vec<bool>,
        root: &Node,
        out: &mut [Option<Span>],
    ) -> W<Kind> {
        let (_, c) = self.tok(0)?;
        let k = if root.target.is_none() && root.children.is_empty() {
            self.skip(0, stack)?
        } else {
            self.plain_upto = self.first_escape();
            self.value(0, stack, root, out)?
        };
        if k != self.pos.len() {
            return Err(Bad);
        }
        Ok(kind_of(c))
    }

    /// The position and byte of entry `k`.
    #[inline(always)]
    fn tok(&self, k: usize) -> W<(usize, u8)> {
        match self.pos.get(k) {
            // SAFETY: every entry is < line.len() (the invariant of `new`).
            Some(&p) => Ok((p as usize, unsafe { *self.line.get_unchecked(p as usize) })),
            None => Err(Bad),
        }
    }

    /// The byte of entry `k`, or 0 past the last entry. A 0 byte can be an
    /// entry (a control byte outside a string starts a scalar's run), but
    /// every caller treats 0 as invalid either way: it is never `,` `:`
    /// `}` `]` `"` nor the start of a value.
    #[inline(always)]
    fn byte(&self, k: usize) -> u8 {
        match self.pos.get(k) {
            // SAFETY: every entry is < line.len() (the invariant of `new`).
            Some(&p) => unsafe { *self.line.get_unchecked(p as usize) },
            None => 0,
        }
    }

    /// Whether the string content `[start, end)` has a backslash, from the
    /// stage-1 bits (no byte of the string is read).
    #[inline(always)]
    fn has_escape(&self, start: usize, end: usize) -> bool {
        if end <= self.plain_upto || start >= end {
            return false;
        }
        let (first, last) = (start / 64, (end - 1) / 64);
        if first == last {
            // Most strings: within one block.
            let bits = self.escapes[first] >> (start % 64);
            return bits & (u64::MAX >> (63 - (end - 1 - start))) != 0;
        }
        (first..=last).any(|w| {
            let mut bits = self.escapes[w];
            if w == first {
                bits &= !0u64 << (start % 64);
            }
            if w == last {
                bits &= !0u64 >> (63 - (end - 1) % 64);
            }
            bits != 0
        })
    }

    /// `"name" :` at entry `k`: the entry after the colon.
    #[inline(always)]
    fn key(&self, k: usize) -> W<usize> {
        // The entry after an opening quote is its closing quote (index
        // invariant), so only the colon after it is checked.
        if self.byte(k) == b'"' && self.byte(k + 2) == b':' {
            Ok(k + 3)
        } else {
            Err(Bad)
        }
    }

    /// A number or literal starting at `p` (byte `c`): it must fill its
    /// whole run of scalar bytes. Returns its end. Out of line: the
    /// member loops stay small (fewer registers spilled per member) and
    /// most values are strings.
    #[inline(never)]
    fn scalar(&self, p: usize, c: u8) -> W<usize> {
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
    fn skip(&self, k: usize, stack: &mut Vec<bool>) -> W<usize> {
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

    /// One value on a pointer's path (at entry `k`), descending along
    /// `node` and recording its span if `node` is a target; returns the
    /// entry after it.
    fn value(
        &self,
        k: usize,
        stack: &mut Vec<bool>,
        node: &Node,
        out: &mut [Option<Span>],
    ) -> W<usize> {
        let (p, c) = self.tok(k)?;
        let next = match c {
            b'{' if !node.children.is_empty() => self.object(k, stack, node, out)?,
            b'[' if !node.children.is_empty() => self.array(k, stack, node, out)?,
            _ => self.skip(k, stack)?,
        };
        if let Some(slot) = node.target {
            out[slot] = Some(self.span(k, p, c, next)?);
        }
        Ok(next)
    }

    /// [`Walk::value`] of a leaf of the trie (a target without children),
    /// inlined into the member loop: a string target costs no call.
    #[inline(always)]
    fn leaf(
        &self,
        k: usize,
        stack: &mut Vec<bool>,
        node: &Node,
        out: &mut [Option<Span>],
    ) -> W<usize> {
        let (p, c) = self.tok(k)?;
        let next = self.skip(k, stack)?;
        if let Some(slot) = node.target {
            out[slot] = Some(if c == b'"' {
                let q = *self.pos.get(k + 1).ok_or(Bad)? as usize;
                Span {
                    start: p + 1 - self.base,
                    end: q - self.base,
                    kind: Kind::String {
                        escaped: self.has_escape(p + 1, q),
                    },
                }
            } else {
                self.span(k, p, c, next)?
            });
        }
        Ok(next)
    }

    /// The span of the (valid) value at entry `k`, at position `p` with
    /// first byte `c`, whose entries end before entry `next`.
    #[cold]
    fn span(&self, k: usize, p: usize, c: u8, next: usize) -> W<Span> {
        let base = self.base;
        Ok(match c {
            b'"' => {
                let q = *self.pos.get(k + 1).ok_or(Bad)? as usize;
                Span {
                    start: p + 1 - base,
                    end: q - base,
                    kind: Kind::String {
                        escaped: self.has_escape(p + 1, q),
                    },
                }
            }
            b'{' | b'[' => Span {
                start: p - base,
                end: *self.pos.get(next - 1).ok_or(Bad)? as usize + 1 - base,
                kind: kind_of(c),
            },
            _ => Span {
                start: p - base,
                end: self.scalar(p, c)? - base,
                kind: kind_of(c),
            },
        })
    }

    /// The child of `node` that the member name `[ks, ke)` (raw, as in
    /// the line) names, if any. A name without escapes is its own
    /// decoding, compared as it is, and only if a child's token has its
    /// length; a name with escapes is decoded first (rare: cold).
    #[inline(always)]
    fn child<'n>(&self, node: &'n Node, ks: usize, ke: usize) -> Option<&'n Node> {
        debug_assert!(ks <= ke && ke <= self.line.len());
        // SAFETY: `ks` is one past an opening quote's entry and `ke` its
        // closing quote's entry: entries increase and are in `line`.
        let raw = unsafe { self.line.get_unchecked(ks..ke) };
        if self.has_escape(ks, ke) {
            return child_escaped(node, raw);
        }
        if node.token_lens & len_bit(raw.len()) == 0 {
            return None;
        }
        node.children
            .iter()
            .find(|(t, _)| same_bytes(t, raw))
            .map(|(_, n)| n)
    }

    /// An object on a pointer's path (entry `k` is its `{`): a member named
    /// by a child of `node` has that child's slots cleared (last member
    /// wins) and is descended into; the others are only validated.
    #[inline]
    fn object(
        &self,
        mut k: usize,
        stack: &mut Vec<bool>,
        node: &Node,
        out: &mut [Option<Span>],
    ) -> W<usize> {
        k += 1;
        if self.byte(k) == b'}' {
            return Ok(k + 1);
        }
        loop {
            let (ks, c) = self.tok(k)?;
            if c != b'"' || self.byte(k + 2) != b':' {
                return Err(Bad);
            }
            // SAFETY: entry k + 2 exists (its byte is ':'), so k + 1 does.
            let ke = unsafe { *self.pos.get_unchecked(k + 1) } as usize;
            k += 3;
            k = match self.child(node, ks + 1, ke) {
                Some(n) if n.children.is_empty() => self.leaf(k, stack, n, out)?,
                Some(n) => {
                    for &s in &n.below {
                        out[s] = None;
                    }
                    self.value(k, stack, n, out)?
                }
                None => self.skip(k, stack)?,
            };
            match self.byte(k) {
                b',' => k += 1,
                b'}' => return Ok(k + 1),
                _ => return Err(Bad),
            }
        }
    }

    /// An array on a pointer's path (entry `k` is its `[`): elements whose
    /// index is a child of `node` are descended into; the others are only
    /// validated.
    #[inline]
    fn array(
        &self,
        mut k: usize,
        stack: &mut Vec<bool>,
        node: &Node,
        out: &mut [Option<Span>],
    ) -> W<usize> {
        k += 1;
        if self.byte(k) == b']' {
            return Ok(k + 1);
        }
        let mut index = 0usize;
        let mut digits = [0u8; 20];
        loop {
            let tok = super::fmt_index(index, &mut digits);
            k = match node.children.iter().find(|(t, _)| t.as_slice() == tok) {
                Some((_, n)) => self.value(k, stack, n, out)?,
                None => self.skip(k, stack)?,
            };
            index += 1;
            match self.byte(k) {
                b',' => k += 1,
                b']' => return Ok(k + 1),
                _ => return Err(Bad),
            }
        }
    }
}

/// The child of `node` named by the raw member name `raw`, which has
/// escapes: decoded, then compared.
#[cold]
fn child_escaped<'n>(node: &'n Node, raw: &[u8]) -> Option<&'n Node> {
    let name = unescape(raw);
    node.children
        .iter()
        .find(|(t, _)| *t == name)
        .map(|(_, n)| n)
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

/// The kind of a value from its first byte (valid: the walk checked it).
/// A string's `escaped` is filled in by [`Walk::span`] where it matters.
#[inline(always)]
fn kind_of(c: u8) -> Kind {
    match c {
        b'"' => Kind::String { escaped: false },
        b'{' => Kind::Object,
        b'[' => Kind::Array,
        b't' => Kind::True,
        b'f' => Kind::False,
        b'n' => Kind::Null,
        _ => Kind::Number,
    }
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

#[cfg(test)]
mod tests;
