//! Line classification: one line in, keyed (with its encoded key and
//! whether it deletes), keyless, or malformed out.

use crate::fold::FoldSpec;
use crate::fold::json::{Invalid, Kind, Scanner, Span, unescape};

/// How one line classifies.
#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// Valid and keyed; the key is in [`Classifier::key`].
    Keyed {
        delete: bool,
    },
    /// Valid JSON without (all of) the key, or any valid line of an
    /// append-only store.
    Keyless,
    Malformed(Invalid),
}

/// Per-thread scratch for classifying lines.
pub struct Classifier<'s> {
    spec: &'s FoldSpec,
    pub(super) scanner: Scanner,
    spans: Vec<Option<Span>>,
    /// The encoded key of the last [`Class::Keyed`] line.
    pub key: Vec<u8>,
    /// The next lines are known to be valid UTF-8 (the scan checked their
    /// whole buffer at once), so the scanner need not check them again.
    pub(crate) utf8_known: bool,
}

impl<'s> Classifier<'s> {
    pub fn new(spec: &'s FoldSpec) -> Self {
        Classifier {
            spec,
            scanner: Scanner::new(),
            spans: vec![None; spec.ptrs.len()],
            key: Vec::with_capacity(64),
            utf8_known: false,
        }
    }

    pub fn classify(&mut self, line: &[u8]) -> Class {
        let scanned =
            self.scanner
                .scan_utf8_known(line, &self.spec.ptrs, &mut self.spans, self.utf8_known);
        if let Err(e) = scanned {
            return Class::Malformed(e);
        }
        if self.spec.key_slots == 0 {
            return Class::Keyless;
        }
        self.key.clear();
        for span in &self.spans[..self.spec.key_slots] {
            let Some(s) = span else {
                return Class::Keyless;
            };
            encode_component(line, s, &mut self.key);
        }
        let delete = match self.spec.op_slot.and_then(|i| self.spans[i]) {
            Some(Span {
                start,
                end,
                kind: Kind::String { escaped },
            }) => {
                let raw = &line[start..end];
                if escaped {
                    let v = unescape(raw);
                    self.spec.delete.contains(&v)
                } else {
                    self.spec.delete.iter().any(|d| d.as_slice() == raw)
                }
            }
            _ => false,
        };
        Class::Keyed { delete }
    }
}

impl Classifier<'_> {
    /// Classify a valid line too long to hold ([`crate::fold::scan`]'s
    /// `LONG_LINE`) from the spans the streamed validator found, reading
    /// only the key and op values (with `read`), as [`Classifier::classify`]
    /// would from the whole line.
    pub(crate) fn classify_spans(
        &mut self,
        spans: &[Option<Span>],
        mut read: impl FnMut(&Span) -> std::io::Result<Vec<u8>>,
    ) -> std::io::Result<Class> {
        if self.spec.key_slots == 0 {
            return Ok(Class::Keyless);
        }
        self.key.clear();
        for span in &spans[..self.spec.key_slots] {
            let Some(s) = span else {
                return Ok(Class::Keyless);
            };
            let bytes = read(s)?;
            let local = Span {
                start: 0,
                end: bytes.len(),
                kind: s.kind,
            };
            encode_component(&bytes, &local, &mut self.key);
        }
        let delete = match self.spec.op_slot.and_then(|i| spans[i]) {
            Some(
                s @ Span {
                    kind: Kind::String { escaped },
                    ..
                },
            ) => {
                let raw = read(&s)?;
                let v = if escaped { unescape(&raw) } else { raw };
                self.spec.delete.contains(&v)
            }
            _ => false,
        };
        Ok(Class::Keyed { delete })
    }
}

/// Append one key component: a type tag, the length as a LEB128 varint, and
/// the value's bytes (decoded for strings, raw text for anything else). The
/// encoding is prefix-free, so a tuple of components encodes injectively.
pub(super) fn encode_component(line: &[u8], s: &Span, out: &mut Vec<u8>) {
    let raw = &line[s.start..s.end];
    let (tag, owned);
    let bytes: &[u8] = match s.kind {
        Kind::String { escaped } => {
            tag = b's';
            if escaped {
                owned = unescape(raw);
                &owned
            } else {
                raw
            }
        }
        Kind::Number => {
            tag = b'n';
            raw
        }
        Kind::True => {
            tag = b't';
            raw
        }
        Kind::False => {
            tag = b'f';
            raw
        }
        Kind::Null => {
            tag = b'z';
            raw
        }
        Kind::Object => {
            tag = b'o';
            raw
        }
        Kind::Array => {
            tag = b'a';
            raw
        }
    };
    out.push(tag);
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}
