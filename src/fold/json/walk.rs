//! Stage 2 of the fast scan: the grammar walk over the structural index
//! ([`super::index`]), which also descends along the pointer trie and
//! records the spans of its targets.
//!
//! Each step reads one index entry, not one byte: a string is two entries
//! (its quotes) whatever its length, and only scalars (numbers, literals)
//! and the member names on a pointer's path are read byte by byte.
//!
//! The walk only says whether a line is valid; the reason a line is not is
//! found by the byte lexer ([`super::lexer`]), which runs only then.

use super::lexer::{Cursor, unescape};
use super::{Kind, Node, Span};

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
    k: usize,
    /// End (exclusive) of the last value read.
    end: usize,
}

const OBJ: bool = true;
const ARR: bool = false;

impl<'a> Walk<'a> {
    /// A walk of the line `line[base..]` whose index entries are `pos`.
    ///
    /// Invariant (which [`Walk::tok`] and [`Walk::byte`] rely on to read
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
            k: 0,
            end: 0,
        }
    }

    /// Walk the whole line: one value and nothing after it.
    pub(super) fn line(
        &mut self,
        stack: &mut Vec<bool>,
        root: &Node,
        out: &mut [Option<Span>],
    ) -> W<Kind> {
        let kind = self.value(stack, root, out)?;
        if self.k != self.pos.len() {
            return Err(Bad);
        }
        Ok(kind)
    }

    /// The byte of index entry `k` and its position.
    #[inline(always)]
    fn tok(&self) -> W<(usize, u8)> {
        match self.pos.get(self.k) {
            // SAFETY: every entry is < line.len() (the invariant of `new`).
            Some(&p) => Ok((p as usize, unsafe { *self.line.get_unchecked(p as usize) })),
            None => Err(Bad),
        }
    }

    #[inline(always)]
    fn byte(&self) -> Option<u8> {
        // SAFETY: every entry is < line.len() (the invariant of `new`).
        self.pos
            .get(self.k)
            .map(|&p| unsafe { *self.line.get_unchecked(p as usize) })
    }

    /// Whether the string content `[start, end)` has a backslash, from the
    /// stage-1 bits (no byte of the string is read).
    #[inline(always)]
    fn has_escape(&self, start: usize, end: usize) -> bool {
        if start >= end {
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

    /// A string at entry `k` (its opening quote): its content's span.
    #[inline(always)]
    fn string(&mut self) -> W<(usize, usize)> {
        let (p, c) = self.tok()?;
        if c != b'"' {
            return Err(Bad);
        }
        // The next entry is the closing quote (index invariant).
        let q = *self.pos.get(self.k + 1).ok_or(Bad)? as usize;
        self.k += 2;
        self.end = q + 1;
        Ok((p + 1, q))
    }

    /// `"name" :` of an object member; returns the name's raw span.
    #[inline(always)]
    fn member_name(&mut self) -> W<(usize, usize)> {
        let s = self.string()?;
        if self.byte() != Some(b':') {
            return Err(Bad);
        }
        self.k += 1;
        Ok(s)
    }

    /// A number or literal starting at `p`: it must fill its whole run of
    /// scalar bytes (the next byte is whitespace, structural, a quote or
    /// the end of the line).
    #[inline(always)]
    fn scalar(&mut self, p: usize, c: u8) -> W<Kind> {
        let mut cur = Cursor { b: self.line, i: p };
        let kind = match c {
            b'-' | b'0'..=b'9' => cur.number().map(|_| Kind::Number),
            b't' => cur.literal(b"true", Kind::True),
            b'f' => cur.literal(b"false", Kind::False),
            b'n' => cur.literal(b"null", Kind::Null),
            _ => return Err(Bad),
        }
        .map_err(|_| Bad)?;
        match self.line.get(cur.i) {
            None
            | Some(b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"') =>
                {}
            Some(_) => return Err(Bad),
        }
        self.k += 1;
        self.end = cur.i;
        Ok(kind)
    }

    /// One value, descending along `node` (the pointer trie) and recording
    /// its span if `node` is a target; the rest goes to non-recursive `skip`.
    fn value(&mut self, stack: &mut Vec<bool>, node: &Node, out: &mut [Option<Span>]) -> W<Kind> {
        let (start, c) = self.tok()?;
        let kind = match c {
            b'{' if !node.children.is_empty() => self.object(stack, node, out)?,
            b'[' if !node.children.is_empty() => self.array(stack, node, out)?,
            _ => self.skip_value(stack)?,
        };
        if let Some(slot) = node.target {
            out[slot] = Some(match kind {
                Kind::String { .. } => Span {
                    start: start + 1 - self.base,
                    end: self.end - 1 - self.base,
                    kind: Kind::String {
                        escaped: self.has_escape(start + 1, self.end - 1),
                    },
                },
                _ => Span {
                    start: start - self.base,
                    end: self.end - self.base,
                    kind,
                },
            });
        }
        Ok(kind)
    }

    /// An object on a pointer's path (entry `k` is its `{`): a member named
    /// by a child of `node` has that child's slots cleared (last member
    /// wins) and is descended into; the others are skipped.
    #[inline]
    fn object(&mut self, stack: &mut Vec<bool>, node: &Node, out: &mut [Option<Span>]) -> W<Kind> {
        self.k += 1;
        if self.byte() != Some(b'}') {
            loop {
                let (ks, ke) = self.member_name()?;
                let key = &self.line[ks..ke];
                let child = if self.has_escape(ks, ke) {
                    let k = unescape(key);
                    node.children.iter().find(|(t, _)| *t == k)
                } else {
                    node.children.iter().find(|(t, _)| t.as_slice() == key)
                };
                if let Some((_, n)) = child {
                    for &s in &n.below {
                        out[s] = None;
                    }
                    self.value(stack, n, out)?;
                } else {
                    self.skip_value(stack)?;
                }
                match self.byte() {
                    Some(b',') => self.k += 1,
                    Some(b'}') => break,
                    _ => return Err(Bad),
                }
            }
        }
        // Past the `}`, whether the object was empty or not.
        self.k += 1;
        self.end = self.pos[self.k - 1] as usize + 1;
        Ok(Kind::Object)
    }

    /// An array on a pointer's path (entry `k` is its `[`): elements whose
    /// index is a child of `node` are descended into; the others are skipped.
    #[inline]
    fn array(&mut self, stack: &mut Vec<bool>, node: &Node, out: &mut [Option<Span>]) -> W<Kind> {
        self.k += 1;
        if self.byte() != Some(b']') {
            let mut index = 0usize;
            let mut digits = [0u8; 20];
            loop {
                let tok = super::fmt_index(index, &mut digits);
                if let Some((_, n)) = node.children.iter().find(|(t, _)| t.as_slice() == tok) {
                    self.value(stack, n, out)?;
                } else {
                    self.skip_value(stack)?;
                }
                index += 1;
                match self.byte() {
                    Some(b',') => self.k += 1,
                    Some(b']') => break,
                    _ => return Err(Bad),
                }
            }
        }
        // Past the `]`, whether the array was empty or not.
        self.k += 1;
        self.end = self.pos[self.k - 1] as usize + 1;
        Ok(Kind::Array)
    }

    /// [`Walk::skip`], with the common values (strings, scalars) read
    /// here, without the call and the stack bookkeeping of a container.
    #[inline(always)]
    fn skip_value(&mut self, stack: &mut Vec<bool>) -> W<Kind> {
        let (p, c) = self.tok()?;
        match c {
            b'"' => {
                self.string()?;
                Ok(Kind::String { escaped: false })
            }
            b'{' | b'[' => self.skip(stack),
            _ => self.scalar(p, c),
        }
    }

    /// Validate and skip one value without recursion. A string's kind is
    /// returned with `escaped: false`; [`Walk::value`] fills it in when the
    /// string is a target.
    fn skip(&mut self, stack: &mut Vec<bool>) -> W<Kind> {
        let base = stack.len();
        let result = self.skip_inner(stack, base);
        stack.truncate(base);
        result
    }

    #[inline(always)]
    fn skip_inner(&mut self, stack: &mut Vec<bool>, base: usize) -> W<Kind> {
        let mut first: Option<Kind> = None;
        loop {
            let (p, c) = self.tok()?;
            let kind = match c {
                b'{' => {
                    self.k += 1;
                    if self.byte() == Some(b'}') {
                        self.k += 1;
                        self.end = self.pos[self.k - 1] as usize + 1;
                        Kind::Object
                    } else {
                        first.get_or_insert(Kind::Object);
                        stack.push(OBJ);
                        self.member_name()?;
                        continue;
                    }
                }
                b'[' => {
                    self.k += 1;
                    if self.byte() == Some(b']') {
                        self.k += 1;
                        self.end = self.pos[self.k - 1] as usize + 1;
                        Kind::Array
                    } else {
                        first.get_or_insert(Kind::Array);
                        stack.push(ARR);
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                    Kind::String { escaped: false }
                }
                _ => self.scalar(p, c)?,
            };
            let first = *first.get_or_insert(kind);
            // Close every container this value completes.
            loop {
                if stack.len() == base {
                    return Ok(first);
                }
                let top = stack[stack.len() - 1];
                let (q, c) = self.tok()?;
                self.k += 1;
                match c {
                    b',' => {
                        if top == OBJ {
                            self.member_name()?;
                        }
                        break;
                    }
                    b'}' if top == OBJ => {
                        stack.pop();
                        self.end = q + 1;
                    }
                    b']' if top == ARR => {
                        stack.pop();
                        self.end = q + 1;
                    }
                    _ => return Err(Bad),
                }
            }
        }
    }
}
