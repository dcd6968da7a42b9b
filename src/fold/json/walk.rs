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
use super::{Kind, Node, Span};
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

/// The bit of a length in [`Node::token_lens`]: lengths of 63 and more
/// share the top bit.
#[inline(always)]
pub(super) fn len_bit(len: usize) -> u64 {
    1 << len.min(63)
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

mod skip;
#[cfg(test)]
mod tests;
