//! A strict, allocation-free JSON validator that also extracts the values at a
//! few JSON pointers (RFC 6901) in the same pass.
//!
//! Why not serde_json: a line must be fully validated (a line that is not
//! valid JSON goes to quarantine, G3) but only two or three fields are needed,
//! and the fold must run near memory speed. This scanner validates RFC 8259
//! grammar exactly, descends only along the configured pointers, skips
//! everything else with an explicit stack (so a deeply nested line cannot
//! overflow the call stack), and records byte spans instead of copying.
//!
//! Invariants:
//! - [`Scanner::scan`] returns `Ok` iff the line is one JSON value with
//!   optional surrounding whitespace and is valid UTF-8.
//! - Duplicate object members: the last one wins, as in most JSON readers.
mod batch;
mod index;
mod lexer;
mod stream;
mod walk;

pub use batch::{Batch, Indexed};
pub use stream::LineValidator;

use lexer::Cursor;
pub use lexer::unescape;

/// What kind of JSON value a span holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string; `escaped` says whether its raw bytes contain escapes.
    String {
        escaped: bool,
    },
    Number,
    True,
    False,
    Null,
    Object,
    Array,
}

/// A value's position in the scanned line. For strings the span excludes the
/// quotes; for everything else it is the value's raw text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

/// Why a line is not valid JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub at: usize,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.at)
    }
}

#[derive(Debug, Default)]
struct Node {
    target: Option<usize>,
    children: Vec<(Vec<u8>, Node)>,
    /// Every output slot at or below this node: a duplicate member replaces
    /// the whole earlier value (last wins), so they are cleared first.
    below: Vec<usize>,
    /// The lengths of the children's tokens, as [`walk::len_bit`]s: a
    /// member name of no such length names no child (no compare needed).
    token_lens: u64,
}

impl Node {
    fn fill_below(&mut self) -> Vec<usize> {
        self.token_lens = self
            .children
            .iter()
            .fold(0, |m, (t, _)| m | walk::len_bit(t.len()));
        let mut v: Vec<usize> = self.target.into_iter().collect();
        for (_, c) in &mut self.children {
            v.extend(c.fill_below());
        }
        self.below = v.clone();
        v
    }
}

/// A set of JSON pointers compiled into a trie, each with an output slot.
#[derive(Debug)]
pub struct Pointers {
    root: Node,
    count: usize,
}

impl Pointers {
    /// Compile pointers; slot `i` of [`Scanner::scan`]'s output is `ptrs[i]`.
    pub fn new<S: AsRef<str>>(ptrs: &[S]) -> Result<Self, String> {
        let mut root = Node::default();
        for (slot, p) in ptrs.iter().enumerate() {
            let p = p.as_ref();
            let mut node = &mut root;
            if !p.is_empty() {
                let Some(rest) = p.strip_prefix('/') else {
                    return Err(format!(
                        "{p:?} is not a JSON pointer: it must be empty or start with '/' (e.g. \"/item/id\")"
                    ));
                };
                for raw in rest.split('/') {
                    let token = unescape_pointer_token(raw)
                        .ok_or_else(|| format!("{p:?}: '~' must be followed by 0 or 1"))?;
                    let idx = match node.children.iter().position(|(t, _)| *t == token) {
                        Some(i) => i,
                        None => {
                            node.children.push((token, Node::default()));
                            node.children.len() - 1
                        }
                    };
                    node = &mut node.children[idx].1;
                }
            }
            if node.target.is_some() {
                return Err(format!("pointer {p:?} is listed twice"));
            }
            node.target = Some(slot);
        }
        root.fill_below();
        Ok(Pointers {
            root,
            count: ptrs.len(),
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }
}

fn unescape_pointer_token(raw: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        if b == b'~' {
            match it.next() {
                Some(b'0') => out.push(b'~'),
                Some(b'1') => out.push(b'/'),
                _ => return None,
            }
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// Reusable scanner state (the skip stack), so scanning allocates nothing per
/// line once warm.
#[derive(Default)]
pub struct Scanner {
    stack: Vec<bool>,
    /// The structural index of the line being scanned (stage 1).
    pos: Vec<u32>,
    /// Per 64-byte block of the line, its backslashes inside strings.
    escapes: Vec<u64>,
}

/// A scanner keeps an index this large (entries) between lines; one made
/// for a longer line is freed after it, so memory stays flat.
const KEEP_INDEX: usize = 1 << 16;

const OBJ: bool = true;
const ARR: bool = false;

type R<T> = Result<T, Invalid>;

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate `line` and fill `out[slot]` with the span found at each
    /// pointer (`None` where the document has no such value).
    pub fn scan(&mut self, line: &[u8], ptrs: &Pointers, out: &mut [Option<Span>]) -> R<Kind> {
        debug_assert!(out.len() >= ptrs.len());
        for o in out.iter_mut() {
            *o = None;
        }
        // The fast path: structural index, UTF-8 check (of a line that is
        // not all ASCII), walk. It says only whether the line is valid; for
        // an invalid one the byte lexer below finds the reason (malformed
        // lines are rare).
        if line.len() < u32::MAX as usize - 64
            && let Some(ascii) = index::build(line, &mut self.pos, &mut self.escapes)
            && (ascii || simdutf8::basic::from_utf8(line).is_ok())
        {
            let walked = walk::Walk::new(line, 0, &self.pos, &self.escapes).line(
                &mut self.stack,
                &ptrs.root,
                out,
            );
            self.shrink();
            if let Ok(kind) = walked {
                return Ok(kind);
            }
        }
        self.shrink();
        for o in out.iter_mut() {
            *o = None;
        }
        let slow = self.scan_bytes(line, ptrs, out);
        debug_assert!(
            slow.is_err(),
            "the fast scan rejected a line the byte lexer accepts: {:?}",
            String::from_utf8_lossy(line)
        );
        slow
    }

    /// The byte lexer alone, as the differential tests' second reference.
    #[cfg(test)]
    pub(crate) fn scan_by_bytes(
        &mut self,
        line: &[u8],
        ptrs: &Pointers,
        out: &mut [Option<Span>],
    ) -> R<Kind> {
        for o in out.iter_mut() {
            *o = None;
        }
        self.scan_bytes(line, ptrs, out)
    }

    fn shrink(&mut self) {
        if self.pos.capacity() > KEEP_INDEX {
            self.pos = Vec::new();
            self.escapes = Vec::new();
        }
    }

    /// The byte lexer: one byte at a time, with the reason of a failure.
    fn scan_bytes(&mut self, line: &[u8], ptrs: &Pointers, out: &mut [Option<Span>]) -> R<Kind> {
        // UTF-8 is checked inside strings as they are scanned (outside them
        // the grammar admits only ASCII). A line that fails for any reason
        // and is not UTF-8 reports that first, as a whole-line check would.
        let result = self.scan_utf8_in_strings(line, ptrs, out);
        if result.is_err()
            && let Err(e) = std::str::from_utf8(line)
        {
            for o in out.iter_mut() {
                *o = None;
            }
            return Err(Invalid {
                reason: "invalid UTF-8",
                at: e.valid_up_to(),
            });
        }
        result
    }

    fn scan_utf8_in_strings(
        &mut self,
        line: &[u8],
        ptrs: &Pointers,
        out: &mut [Option<Span>],
    ) -> R<Kind> {
        let mut c = Cursor { b: line, i: 0 };
        c.ws();
        if c.i == line.len() {
            return Err(Invalid {
                reason: "empty line",
                at: 0,
            });
        }
        let kind = self.value(&mut c, &ptrs.root, out)?;
        c.ws();
        if c.i != line.len() {
            return Err(Invalid {
                reason: "trailing characters after the JSON value",
                at: c.i,
            });
        }
        Ok(kind)
    }

    /// Validate only.
    pub fn validate(&mut self, line: &[u8]) -> R<Kind> {
        static NONE: Pointers = Pointers {
            root: Node {
                target: None,
                children: Vec::new(),
                below: Vec::new(),
                token_lens: 0,
            },
            count: 0,
        };
        self.scan(line, &NONE, &mut [])
    }

    /// One value, descending along `node` (the pointer trie) and recording its
    /// span if `node` is a target; the rest goes to non-recursive `skip`.
    fn value(&mut self, c: &mut Cursor, node: &Node, out: &mut [Option<Span>]) -> R<Kind> {
        c.ws();
        let start = c.i;
        let kind = if node.children.is_empty() {
            self.skip(c)?
        } else {
            match c.peek() {
                Some(b'{') => self.object(c, node, out)?,
                Some(b'[') => self.array(c, node, out)?,
                _ => self.skip(c)?,
            }
        };
        if let Some(slot) = node.target {
            out[slot] = Some(match kind {
                Kind::String { .. } => Span {
                    start: start + 1,
                    end: c.i - 1,
                    kind,
                },
                _ => Span {
                    start,
                    end: c.i,
                    kind,
                },
            });
        }
        Ok(kind)
    }

    /// An object on a pointer's path (`c` at its `{`): a member named by a child
    /// of `node` has its slots cleared (last wins) and is descended into.
    #[inline]
    fn object(&mut self, c: &mut Cursor, node: &Node, out: &mut [Option<Span>]) -> R<Kind> {
        c.i += 1;
        c.ws();
        if c.peek() == Some(b'}') {
            c.i += 1;
            return Ok(Kind::Object);
        }
        loop {
            c.ws();
            let (ks, ke, esc) = c.string()?;
            c.ws();
            c.expect(b':', "expected ':' after an object key")?;
            let key = &c.b[ks..ke];
            let child = if esc {
                let k = unescape(key);
                node.children.iter().find(|(t, _)| *t == k)
            } else {
                node.children.iter().find(|(t, _)| t.as_slice() == key)
            };
            if let Some((_, n)) = child {
                for &s in &n.below {
                    out[s] = None;
                }
                self.value(c, n, out)?;
            } else {
                c.ws();
                self.skip(c)?;
            }
            c.ws();
            match c.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(Kind::Object),
                _ => return Err(c.err("expected ',' or '}' in an object")),
            }
        }
    }

    /// An array on a pointer's path (`c` at its `[`): elements whose index
    /// is a child of `node` are descended into; the others are skipped.
    #[inline]
    fn array(&mut self, c: &mut Cursor, node: &Node, out: &mut [Option<Span>]) -> R<Kind> {
        c.i += 1;
        c.ws();
        if c.peek() == Some(b']') {
            c.i += 1;
            return Ok(Kind::Array);
        }
        let mut index = 0usize;
        let mut digits = [0u8; 20];
        loop {
            let tok = fmt_index(index, &mut digits);
            if let Some((_, n)) = node.children.iter().find(|(t, _)| t.as_slice() == tok) {
                self.value(c, n, out)?;
            } else {
                c.ws();
                self.skip(c)?;
            }
            index += 1;
            c.ws();
            match c.next() {
                Some(b',') => continue,
                Some(b']') => return Ok(Kind::Array),
                _ => return Err(c.err("expected ',' or ']' in an array")),
            }
        }
    }

    /// Validate and skip one value without recursion.
    fn skip(&mut self, c: &mut Cursor) -> R<Kind> {
        let base = self.stack.len();
        let mut first: Option<Kind> = None;
        let result = (|| loop {
            c.ws();
            let kind = match c.peek() {
                Some(b'{') => {
                    c.i += 1;
                    c.ws();
                    if c.peek() == Some(b'}') {
                        c.i += 1;
                        Kind::Object
                    } else {
                        first.get_or_insert(Kind::Object);
                        self.stack.push(OBJ);
                        c.member_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    c.i += 1;
                    c.ws();
                    if c.peek() == Some(b']') {
                        c.i += 1;
                        Kind::Array
                    } else {
                        first.get_or_insert(Kind::Array);
                        self.stack.push(ARR);
                        continue;
                    }
                }
                Some(b'"') => Kind::String {
                    escaped: c.string()?.2,
                },
                Some(b'-' | b'0'..=b'9') => {
                    c.number()?;
                    Kind::Number
                }
                Some(b't') => c.literal(b"true", Kind::True)?,
                Some(b'f') => c.literal(b"false", Kind::False)?,
                Some(b'n') => c.literal(b"null", Kind::Null)?,
                Some(_) => return Err(c.err("expected a JSON value")),
                None => return Err(c.err("unexpected end of line")),
            };
            let first = *first.get_or_insert(kind);
            // Close every container this value completes.
            loop {
                if self.stack.len() == base {
                    return Ok(first);
                }
                c.ws();
                let top = self.stack[self.stack.len() - 1];
                match c.next() {
                    Some(b',') => {
                        if top == OBJ {
                            c.ws();
                            c.member_key()?;
                        }
                        break;
                    }
                    Some(b'}') if top == OBJ => {
                        self.stack.pop();
                    }
                    Some(b']') if top == ARR => {
                        self.stack.pop();
                    }
                    _ => {
                        return Err(c.err(if top == OBJ {
                            "expected ',' or '}' in an object"
                        } else {
                            "expected ',' or ']' in an array"
                        }));
                    }
                }
            }
        })();
        self.stack.truncate(base);
        result
    }
}

pub(super) fn fmt_index(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
pub(crate) mod tests;
