//! Validation of a line fed in pieces, in constant memory: for lines too
//! long to hold (see `LONG_LINE` in `fold::lines`), so that a 200 MB line
//! costs no more memory than a short one.
//!
//! The same 64-byte block masks as the in-memory scan ([`super::index`])
//! find strings, escapes and structural characters; a small pushdown
//! automaton over the structural characters checks the grammar (its stack
//! is one bit per open container), and scalars are checked by a byte
//! automaton fed only their own bytes. It validates exactly what
//! [`super::Scanner::validate`] validates and, given pointers, finds the
//! same spans as [`super::Scanner::scan`] (offsets in the line; the caller
//! reads the few bytes it needs back from the file).

use super::index::{Masks, escape_ok, escaped, masks, prefix_xor};
use super::{Invalid, Kind, Node, Pointers, Span};

mod paths;
mod scalar;
use scalar::Scalar;

/// Member names on a pointer's path longer than this (raw) are not
/// compared: no pointer token is that long (a raw name is at most six times
/// its decoded length).
const NAME_CAP: usize = 64 << 10;

/// A target value that has started and not yet ended.
#[derive(Clone, Copy)]
struct Open {
    slot: usize,
    start: u64,
    /// Open containers when it started: it ends when that many are open
    /// again.
    depth: usize,
    kind: Kind,
    /// Escaped characters seen before it (a string's `escaped` flag).
    esc_before: u64,
}

/// Where the grammar automaton is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// A value is expected (top level, after ':' or after ',' in an array).
    Value,
    /// After '[': a value or ']'.
    ValueOrClose,
    /// After '{': a member name or '}'.
    NameOrClose,
    /// After ',' in an object: a member name.
    Name,
    /// After a member name: ':'.
    Colon,
    /// After a value inside a container: ',' or its closing bracket.
    CommaOrClose,
    /// The top-level value is complete: only whitespace may follow.
    Done,
}

/// Validates one line fed in pieces and, with pointers, finds the spans of
/// their values (offsets in the line), as [`super::Scanner::scan`] does:
/// the last duplicate member wins.
pub struct LineValidator<'p> {
    /// Bytes fed so far.
    len: u64,
    block: [u8; 64],
    filled: usize,
    esc_carry: u64,
    in_str_carry: u64,
    scalar_carry: u64,
    /// Hex digits still owed by a `\u` escape cut by a block boundary.
    hex_owed: u8,
    /// Inside a string token (its opening quote seen, not its closing).
    in_string: bool,
    state: State,
    /// Open containers, one bit each (1 = object), `depth` deep.
    stack: Vec<u64>,
    depth: usize,
    scalar: Scalar,
    /// Up to 3 bytes of a UTF-8 sequence cut by the end of a piece.
    utf8_tail: ([u8; 4], usize),
    error: Option<Invalid>,
    // Value extraction (all idle without pointers).
    ptrs: Option<&'p Pointers>,
    spans: Vec<Option<Span>>,
    /// Containers on a pointer's path: (depth once open, trie node, index
    /// of the current element for an array).
    path: Vec<(usize, &'p Node, usize)>,
    /// The trie node of the value expected next.
    pending: Option<&'p Node>,
    open: Vec<Open>,
    /// The target slot of the scalar being read, its value's start and kind.
    scalar_target: Option<(usize, u64, Kind)>,
    scalar_end: u64,
    /// A member name on a pointer's path being collected (from where).
    name_from: Option<u64>,
    name: Vec<u8>,
    /// Escaped characters inside strings, before the current block.
    esc_total: u64,
}

impl Default for LineValidator<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'p> LineValidator<'p> {
    /// Validate only.
    pub fn new() -> Self {
        Self::with_pointers(None)
    }

    /// Validate and find the values at `ptrs`.
    pub fn with_pointers(ptrs: Option<&'p Pointers>) -> Self {
        LineValidator {
            len: 0,
            block: [0; 64],
            filled: 0,
            esc_carry: 0,
            in_str_carry: 0,
            scalar_carry: 0,
            hex_owed: 0,
            in_string: false,
            state: State::Value,
            stack: Vec::new(),
            depth: 0,
            scalar: Scalar::None,
            utf8_tail: ([0; 4], 0),
            error: None,
            ptrs,
            spans: vec![None; ptrs.map_or(0, Pointers::len)],
            path: Vec::new(),
            pending: ptrs.map(|p| &p.root),
            open: Vec::new(),
            scalar_target: None,
            scalar_end: 0,
            name_from: None,
            name: Vec::new(),
            esc_total: 0,
        }
    }

    /// Whether the bytes so far can still be the start of a valid line.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    fn fail(&mut self, reason: &'static str, at: u64) {
        if self.error.is_none() {
            self.error = Some(Invalid {
                reason,
                at: at as usize,
            });
        }
    }

    /// Feed the next bytes of the line (without its `\n`).
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.utf8(bytes);
        while !bytes.is_empty() && self.error.is_none() {
            let n = (64 - self.filled).min(bytes.len());
            self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == 64 {
                self.run_block();
            }
        }
    }

    /// The verdict on the whole line, with the span found at each pointer
    /// (`None` where the line has no such value).
    pub fn finish(mut self) -> Result<Vec<Option<Span>>, Invalid> {
        if self.error.is_none() && self.utf8_tail.1 > 0 {
            self.fail("invalid UTF-8", self.len);
        }
        if self.error.is_none() && (self.filled > 0 || self.len == 0) {
            // Pad the last block with spaces, which end a scalar and
            // change nothing else.
            self.block[self.filled..].fill(b' ');
            self.run_block();
        }
        if self.error.is_none() {
            let end = self.len;
            if self.in_str_carry != 0 || self.in_string {
                self.fail("unterminated string", end);
            } else if self.hex_owed > 0 {
                self.fail("invalid \\u escape", end);
            } else {
                self.end_scalar_target();
                self.end_scalar(end);
                if self.error.is_none() && self.state != State::Done {
                    self.fail(
                        if self.len == 0 {
                            "empty line"
                        } else {
                            "unexpected end of line"
                        },
                        end,
                    );
                }
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.spans),
        }
    }

    /// Check UTF-8 across pieces: a sequence cut at the end of a piece is
    /// completed from the start of the next.
    fn utf8(&mut self, mut bytes: &[u8]) {
        let (mut tail, mut n) = self.utf8_tail;
        while n > 0 && !bytes.is_empty() {
            tail[n] = bytes[0];
            n += 1;
            bytes = &bytes[1..];
            match simdutf8::compat::from_utf8(&tail[..n]) {
                Ok(_) => n = 0,
                Err(e) if e.error_len().is_none() && n < 4 => {}
                Err(_) => {
                    self.fail("invalid UTF-8", self.len);
                    return;
                }
            }
        }
        if n > 0 {
            self.utf8_tail = (tail, n);
            return;
        }
        self.utf8_tail.1 = 0;
        if let Err(e) = simdutf8::compat::from_utf8(bytes) {
            if e.error_len().is_some() {
                self.fail("invalid UTF-8", self.len + e.valid_up_to() as u64);
            } else {
                let rest = &bytes[e.valid_up_to()..];
                self.utf8_tail.0[..rest.len()].copy_from_slice(rest);
                self.utf8_tail.1 = rest.len();
            }
        }
    }

    fn run_block(&mut self) {
        let base = self.len;
        let block = self.block;
        let real = self.filled;
        self.len += self.filled as u64;
        self.filled = 0;
        let m: Masks = masks(&block);
        let esc = escaped(m.backslash, &mut self.esc_carry);
        let quote = m.quote & !esc;
        let in_str = prefix_xor(quote) ^ self.in_str_carry;
        self.in_str_carry = ((in_str as i64) >> 63) as u64;
        if m.control & in_str != 0 {
            self.fail("control character in a string", base);
            return;
        }
        if !self.escapes_ok(&block, real, base, esc & in_str) {
            return;
        }
        let scalar = !(m.op | m.space | m.quote | in_str);
        let starts = scalar & !(scalar << 1 | self.scalar_carry);
        self.scalar_carry = scalar >> 63;
        let structural = (m.op & !in_str) | quote | starts;
        let esc_in_str = esc & in_str;
        let mut bits = structural | scalar;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let at = base + k as u64;
            if structural >> k & 1 == 0 {
                // A scalar's continuation byte.
                match self.scalar.next(block[k]) {
                    Some(s) => self.scalar = s,
                    None => return self.fail("invalid number or literal", at),
                }
                self.scalar_end = at + 1;
                continue;
            }
            if self.ptrs.is_some() {
                let below = (1u64 << k) - 1;
                let esc_now = self.esc_total + (esc_in_str & below).count_ones() as u64;
                if block[k] == b'"' {
                    if self.in_string {
                        self.close_name(&block, base, k);
                    }
                    self.close_string_target(at, esc_now);
                }
                self.token_with_paths(block[k], at, esc_now);
            } else {
                self.token(block[k], at);
            }
            if self.error.is_some() {
                return;
            }
        }
        self.esc_total += esc_in_str.count_ones() as u64;
        // A member name that goes on into the next block.
        if let Some(from) = self.name_from {
            let k = (from.max(base) - base) as usize;
            self.take_name(&block[k.min(real)..real]);
            self.name_from = Some(self.len);
        }
    }

    /// The escapes of this block (`esc`: the bytes after a backslash in a
    /// string) and the hex digits of `\u` escapes, including those owed by
    /// one at the end of the previous block. False (and failed) if one is
    /// invalid.
    fn escapes_ok(&mut self, block: &[u8; 64], real: usize, base: u64, esc: u64) -> bool {
        let mut k0 = 0;
        while self.hex_owed > 0 && k0 < real {
            if !block[k0].is_ascii_hexdigit() {
                self.fail("invalid \\u escape", base + k0 as u64);
                return false;
            }
            self.hex_owed -= 1;
            k0 += 1;
        }
        let mut e = esc;
        while e != 0 {
            let k = e.trailing_zeros() as usize;
            e &= e - 1;
            if !escape_ok(block[k]) {
                self.fail("invalid escape in a string", base + k as u64);
                return false;
            }
            if block[k] == b'u' {
                let have = (real - k - 1).min(4);
                if !block[k + 1..k + 1 + have].iter().all(u8::is_ascii_hexdigit) {
                    self.fail("invalid \\u escape", base + k as u64);
                    return false;
                }
                self.hex_owed = (4 - have) as u8;
            }
        }
        true
    }

    /// End the scalar being read, if any: it must be complete.
    fn end_scalar(&mut self, at: u64) {
        if self.scalar != Scalar::None {
            if !self.scalar.complete() {
                self.fail("invalid number or literal", at);
            }
            self.scalar = Scalar::None;
        }
    }

    fn push(&mut self, obj: bool) {
        let (w, b) = (self.depth / 64, self.depth % 64);
        if w == self.stack.len() {
            self.stack.push(0);
        }
        if obj {
            self.stack[w] |= 1 << b;
        } else {
            self.stack[w] &= !(1 << b);
        }
        self.depth += 1;
    }

    fn top_is_object(&self) -> Option<bool> {
        let d = self.depth.checked_sub(1)?;
        Some(self.stack[d / 64] >> (d % 64) & 1 == 1)
    }

    /// A value was completed.
    fn after_value(&mut self) {
        self.state = if self.depth == 0 {
            State::Done
        } else {
            State::CommaOrClose
        };
    }

    fn token(&mut self, c: u8, at: u64) {
        self.end_scalar(at);
        if self.error.is_some() {
            return;
        }
        if self.in_string {
            // The closing quote of a string token.
            self.in_string = false;
            if self.state == State::Colon {
                return;
            }
            return self.after_value();
        }
        use State::*;
        let bad = |s: &mut Self| s.fail("invalid JSON structure", at);
        match (self.state, c) {
            (Value | ValueOrClose, b'{') => {
                self.push(true);
                self.state = NameOrClose;
            }
            (Value | ValueOrClose, b'[') => {
                self.push(false);
                self.state = ValueOrClose;
            }
            (Value | ValueOrClose, b'"') => {
                self.in_string = true;
            }
            (NameOrClose | Name, b'"') => {
                self.in_string = true;
                self.state = Colon;
            }
            (Colon, b':') => self.state = Value,
            (CommaOrClose, b',') => {
                self.state = if self.top_is_object() == Some(true) {
                    Name
                } else {
                    Value
                };
            }
            (NameOrClose, b'}') | (ValueOrClose, b']') => {
                self.depth -= 1;
                self.after_value();
            }
            (CommaOrClose, b'}' | b']') => {
                let obj = self.top_is_object() == Some(true);
                if obj != (c == b'}') {
                    return bad(self);
                }
                self.depth -= 1;
                self.after_value();
            }
            (Value | ValueOrClose, _) => match Scalar::start(c) {
                Some(s) => {
                    self.scalar = s;
                    self.after_value();
                }
                None => bad(self),
            },
            _ => bad(self),
        }
    }
}

#[cfg(test)]
mod tests;
