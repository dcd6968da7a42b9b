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
}

impl Node {
    fn fill_below(&mut self) -> Vec<usize> {
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

    pub fn is_empty(&self) -> bool {
        self.count == 0
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
}

const OBJ: bool = true;
const ARR: bool = false;

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

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
            },
            count: 0,
        };
        self.scan(line, &NONE, &mut [])
    }

    fn value(&mut self, c: &mut Cursor, node: &Node, out: &mut [Option<Span>]) -> R<Kind> {
        c.ws();
        let start = c.i;
        let kind = if node.children.is_empty() {
            self.skip(c)?
        } else {
            match c.peek() {
                Some(b'{') => {
                    c.i += 1;
                    c.ws();
                    if c.peek() == Some(b'}') {
                        c.i += 1;
                    } else {
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
                            match child {
                                Some((_, n)) => {
                                    for &s in &n.below {
                                        out[s] = None;
                                    }
                                    self.value(c, n, out)?;
                                }
                                None => {
                                    c.ws();
                                    self.skip(c)?;
                                }
                            }
                            c.ws();
                            match c.next() {
                                Some(b',') => continue,
                                Some(b'}') => break,
                                _ => return Err(c.err("expected ',' or '}' in an object")),
                            }
                        }
                    }
                    Kind::Object
                }
                Some(b'[') => {
                    c.i += 1;
                    c.ws();
                    if c.peek() == Some(b']') {
                        c.i += 1;
                    } else {
                        let mut index = 0usize;
                        let mut digits = itoa_buf();
                        loop {
                            let tok = fmt_index(index, &mut digits);
                            match node.children.iter().find(|(t, _)| t.as_slice() == tok) {
                                Some((_, n)) => {
                                    self.value(c, n, out)?;
                                }
                                None => {
                                    c.ws();
                                    self.skip(c)?;
                                }
                            }
                            index += 1;
                            c.ws();
                            match c.next() {
                                Some(b',') => continue,
                                Some(b']') => break,
                                _ => return Err(c.err("expected ',' or ']' in an array")),
                            }
                        }
                    }
                    Kind::Array
                }
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

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn fmt_index(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
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

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
fn has_zero(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// The length of the well-formed UTF-8 sequence (Unicode table 3-7: no
/// overlongs, surrogates or code points past U+10FFFF) that starts `b`,
/// whose first byte is not ASCII; `None` if it is not well formed.
#[inline]
fn utf8_len(b: &[u8]) -> Option<usize> {
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
fn special16(chunk: &[u8]) -> u32 {
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
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    fn err(&self, reason: &'static str) -> Invalid {
        Invalid {
            reason,
            at: self.i.min(self.b.len()),
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, want: u8, reason: &'static str) -> R<()> {
        if self.peek() == Some(want) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    fn member_key(&mut self) -> R<()> {
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
    fn string(&mut self) -> R<(usize, usize, bool)> {
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

    fn digits(&mut self) -> usize {
        let s = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - s
    }

    fn number(&mut self) -> R<()> {
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

    fn literal(&mut self, word: &'static [u8], kind: Kind) -> R<Kind> {
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

fn encode_wtf8(cp: u32, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn extract(line: &str, ptrs: &[&str]) -> Result<Vec<Option<String>>, Invalid> {
        let p = Pointers::new(ptrs).unwrap();
        let mut out = vec![None; p.len()];
        Scanner::new().scan(line.as_bytes(), &p, &mut out)?;
        Ok(out
            .into_iter()
            .map(|s| s.map(|s| line[s.start..s.end].to_string()))
            .collect())
    }

    #[test]
    fn extracts_nested_pointers_and_last_duplicate_wins() {
        let got = extract(
            r#"{"t":"Task","item":{"id":"a","x":[1,{"y":2}]},"t":"Agent","op":"DEL"}"#,
            &["/t", "/item/id", "/op", "/item/x/1/y", "/missing"],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Some("Agent".into()),
                Some("a".into()),
                Some("DEL".into()),
                Some("2".into()),
                None
            ]
        );
    }

    /// `{"item":{"id":1},"item":{"name":"x"}}` is `{"item":{"name":"x"}}`
    /// by last-wins: the earlier member's `/item/id` must not survive.
    #[test]
    fn a_duplicate_member_replaces_the_whole_earlier_value() {
        let got = extract(
            r#"{"item":{"id":1,"k":"a"},"item":{"k":"b"}}"#,
            &["/item/id", "/item/k"],
        )
        .unwrap();
        assert_eq!(got, vec![None, Some("b".into())]);
    }

    #[test]
    fn escaped_member_names_match_pointer_tokens() {
        let got = extract(r#"{"a\/b":1,"\u0069d":"x"}"#, &["/a~1b", "/id"]).unwrap();
        assert_eq!(got, vec![Some("1".into()), Some("x".into())]);
    }

    #[test]
    fn rejects_common_damage() {
        for bad in [
            "",
            "   ",
            "{\"a\":1",
            "{\"a\":1}}",
            "{\"a\" 1}",
            "[1,]",
            "{\"a\":tru}",
            "\u{feff}{}",
            "{\"a\":\"\t\"}",
            "01",
            "1.",
            "-",
            "{\"a\":1}{\"b\":2}",
            "{'a':1}",
            "\"\\x\"",
            // A second exponent after an out-of-range one.
            "[3.2e705104463515045e2]",
        ] {
            assert!(
                Scanner::new().validate(bad.as_bytes()).is_err(),
                "accepted {bad:?}"
            );
        }
        assert!(Scanner::new().validate(b"{\"a\":\xff}").is_err());
    }

    #[test]
    fn strings_of_every_length_and_special_position_scan_alike() {
        // Exercise the 16- and 8-byte steps and the byte tail: a special
        // byte at each position of strings of many lengths.
        for len in 0..40 {
            let body = "a".repeat(len);
            let ok = format!("{{\"k\":\"{body}\"}}");
            assert!(Scanner::new().validate(ok.as_bytes()).is_ok(), "{ok}");
            for at in 0..len {
                let mut bytes = body.clone().into_bytes();
                for (special, valid) in
                    [(b'\t', false), (0x1f, false), (b'\\', false), (0x7f, true)]
                {
                    bytes[at] = special;
                    let line = [b"{\"k\":\"".as_slice(), &bytes, b"\"}"].concat();
                    assert_eq!(Scanner::new().validate(&line).is_ok(), valid, "{line:?}");
                }
                bytes[at] = b'\\';
                let line = [
                    b"{\"k\":\"".as_slice(),
                    &bytes[..=at],
                    b"n",
                    &bytes[at + 1..],
                    b"\"}",
                ]
                .concat();
                assert!(Scanner::new().validate(&line).is_ok(), "{line:?}");
                let p = Pointers::new(&["/k"]).unwrap();
                let mut out = [None];
                Scanner::new().scan(&line, &p, &mut out).unwrap();
                let span = out[0].unwrap();
                assert_eq!((span.start, span.end), (6, line.len() - 2));
                assert_eq!(span.kind, Kind::String { escaped: true });
            }
        }
    }

    #[test]
    fn utf8_in_strings_is_checked_as_strictly_as_from_utf8() {
        // Every lead byte, every second byte, boundary values for the rest,
        // inside a string, placed so that each of the 16-byte step (at the
        // start of a block and across its end), the 8-byte step and the
        // bytewise tail meets it.
        let edges = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0];
        let mut sc = Scanner::new();
        for lead in 0x80..=0xFFu8 {
            for b1 in 0..=0xFFu8 {
                for &b2 in &edges {
                    for &b3 in &edges {
                        let content = [lead, b1, b2, b3];
                        if content.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\') {
                            continue;
                        }
                        for (pad, trail) in [(0usize, 20usize), (13, 20), (5, 3), (0, 0)] {
                            let mut line = b"[\"".to_vec();
                            line.extend(std::iter::repeat_n(b'a', pad));
                            line.extend_from_slice(&content);
                            line.extend(std::iter::repeat_n(b'a', trail));
                            line.extend_from_slice(b"\"]");
                            let want = std::str::from_utf8(&line);
                            let got = sc.validate(&line);
                            assert_eq!(got.is_ok(), want.is_ok(), "{line:x?}");
                            if let Err(e) = want {
                                assert_eq!(
                                    got.unwrap_err(),
                                    Invalid {
                                        reason: "invalid UTF-8",
                                        at: e.valid_up_to()
                                    }
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_reported_first_wherever_it_is() {
        for line in [
            &b"{\"a\":1}\xff"[..],
            b"\xff{}",
            b"{\"a\":\xc3}",
            b"{\"a\" 1, \"b\":\"\xed\xa0\x80\"}",
            b"[\"caf\xc3\xa9\", \xe2\x80]",
        ] {
            let e = Scanner::new().validate(line).unwrap_err();
            let want = std::str::from_utf8(line).unwrap_err().valid_up_to();
            assert_eq!((e.reason, e.at), ("invalid UTF-8", want), "{line:x?}");
        }
        let p = Pointers::new(&["/k"]).unwrap();
        let mut out = [None];
        let line = "{\"k\":\"caf\u{e9} \u{2014} \u{1F600}\"}";
        Scanner::new().scan(line.as_bytes(), &p, &mut out).unwrap();
        let s = out[0].unwrap();
        assert_eq!(&line[s.start..s.end], "caf\u{e9} \u{2014} \u{1F600}");
    }

    #[test]
    fn numbers_beyond_f64_range_are_valid_json() {
        // Grammatically valid (RFC 8259 sets no range); serde_json rejects
        // them, Python's json accepts them. A line is quarantined only when
        // it is not JSON, so these stay.
        for ok in ["-1e015432331198419294", "[1e999]", "{\"a\":-1E+400}"] {
            assert!(
                Scanner::new().validate(ok.as_bytes()).is_ok(),
                "rejected {ok}"
            );
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let depth = 1_000_000;
        let line = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(Scanner::new().validate(line.as_bytes()), Ok(Kind::Array));
        let bad = "[".repeat(depth);
        assert!(Scanner::new().validate(bad.as_bytes()).is_err());
    }

    #[test]
    fn unescape_decodes_pairs_and_keeps_lone_surrogates_distinct() {
        assert_eq!(
            unescape(br#"caf\u00e9 \ud83d\ude00 \n"#),
            "café 😀 \n".as_bytes()
        );
        assert_ne!(unescape(br"\ud800"), unescape(br"\ud801"));
    }

    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            (-1000.0f64..1000.0).prop_map(|f| format!("{f:e}")),
            "[a-z\"\\\\/\u{e9}\u{1F600} ]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,3}", inner), 0..5).prop_map(|v| {
                    let m: Vec<String> =
                        v.into_iter().map(|(k, x)| format!("{k:?} : {x}")).collect();
                    format!("{{ {} }}", m.join(" ,"))
                }),
            ]
        })
    }

    /// Found by the property test below on a random seed: serde_json stops at
    /// the out-of-range number, ours reads on and finds the second exponent.
    #[test]
    fn a_number_with_two_exponents_is_rejected() {
        let doc = br#"{ "a" : 7.0e19701132462415e2 ,"a" : null ,"a" : null }"#;
        assert!(Scanner::new().validate(doc).is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_valid_documents(doc in json_value()) {
            prop_assert!(serde_json::from_str::<serde_json::Value>(&doc).is_ok());
            prop_assert!(Scanner::new().validate(doc.as_bytes()).is_ok(), "rejected {}", doc);
        }

        #[test]
        fn agrees_with_from_utf8_and_serde_json_on_damaged_bytes(doc in json_value(), cut in any::<prop::sample::Index>(), junk in prop::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(b'{'), 0x80u8..=0xFF, any::<u8>()], 0..4)) {
            let mut bytes = doc.into_bytes();
            let at = cut.index(bytes.len() + 1);
            bytes.splice(at..at, junk);
            let parsed = serde_json::from_slice::<serde_json::Value>(&bytes);
            // serde_json stops at a number beyond f64's range, before it reads
            // the rest of the document: no verdict (see the sibling test).
            prop_assume!(!parsed.as_ref().is_err_and(|e| e.to_string().starts_with("number out of range")));
            let theirs = std::str::from_utf8(&bytes).is_ok() && parsed.is_ok();
            prop_assert_eq!(Scanner::new().validate(&bytes).is_ok(), theirs, "disagree on {:x?}", bytes);
        }

        #[test]
        fn agrees_with_serde_json_on_damaged_documents(doc in json_value(), cut in any::<prop::sample::Index>(), junk in "[\\[\\]{}\",:a-z0-9 .\\\\-]{0,3}") {
            let at = cut.index(doc.len() + 1);
            let at = (0..=at).rev().find(|&i| doc.is_char_boundary(i)).unwrap();
            let damaged = format!("{}{}{}", &doc[..at], junk, &doc[at..]);
            let theirs = serde_json::from_str::<serde_json::Value>(&damaged);
            // serde_json refuses numbers beyond f64's range (RFC 8259's
            // grammar accepts them; `numbers_beyond_f64_range_are_valid_json`
            // pins ours) and stops there, before reading the rest: it cannot
            // be the oracle for such a document.
            prop_assume!(!theirs.as_ref().is_err_and(|e| e.to_string().starts_with("number out of range")));
            let theirs = theirs.is_ok();
            let ours = Scanner::new().validate(damaged.as_bytes()).is_ok();
            prop_assert_eq!(ours, theirs, "disagree on {}", damaged);
        }
    }
}
