//! Line classification: one line in, keyed (with its encoded key and
//! whether it deletes), keyless, or malformed out.

use crate::fold::FoldSpec;
use crate::fold::json::{Indexed, Invalid, Kind, Scanner, Span, unescape};
use crate::fold::keymap::same_bytes;

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
}

impl<'s> Classifier<'s> {
    pub fn new(spec: &'s FoldSpec) -> Self {
        Classifier {
            spec,
            scanner: Scanner::new(),
            spans: vec![None; spec.ptrs.len()],
            key: Vec::with_capacity(64),
        }
    }

    /// The spec this classifier applies (borrowed for the spec's life, not
    /// the classifier's).
    pub(crate) fn spec(&self) -> &'s FoldSpec {
        self.spec
    }

    pub fn classify(&mut self, line: &[u8]) -> Class {
        let scanned = self.scanner.scan(line, &self.spec.ptrs, &mut self.spans);
        self.classify_scanned(line, scanned)
    }

    /// [`Classifier::classify`] of `line`, one line of an indexed batch
    /// (`ix`), without stage 1 per line.
    pub(crate) fn classify_indexed(&mut self, line: &[u8], ix: Indexed) -> Class {
        let scanned = self
            .scanner
            .scan_indexed(ix, &self.spec.ptrs, &mut self.spans);
        self.classify_scanned(line, scanned)
    }

    /// The class of a scanned line, from the scan's verdict and spans.
    #[inline(always)]
    fn classify_scanned(&mut self, line: &[u8], scanned: Result<Kind, Invalid>) -> Class {
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
                    self.spec.delete.iter().any(|d| same_bytes(d, raw))
                }
            }
            _ => false,
        };
        Class::Keyed { delete }
    }
}

impl Classifier<'_> {
    /// Classify a valid line too long to hold ([`crate::fold::lines`]'s
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

/// The components of a key encoded by [`encode_component`], as JSON
/// values (strings decoded, anything else parsed from its raw text), for
/// reports. Stops at the first component that does not decode.
pub fn decode_key(mut enc: &[u8]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = enc.split_first() {
        let (mut n, mut shift, mut i) = (0usize, 0u32, 0usize);
        while let Some(&b) = rest.get(i) {
            n |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            i += 1;
            if b < 0x80 {
                break;
            }
        }
        let Some(bytes) = rest.get(i..i + n) else {
            break;
        };
        out.push(match tag {
            b's' => serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()),
            _ => serde_json::from_slice(bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            }),
        });
        enc = &rest[i + n..];
    }
    out
}

/// The length of the first component of an encoded key (its group).
pub fn first_component_len(enc: &[u8]) -> usize {
    let Some((_, rest)) = enc.split_first() else {
        return 0;
    };
    let (mut n, mut shift, mut i) = (0usize, 0u32, 0usize);
    while let Some(&b) = rest.get(i) {
        n |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        i += 1;
        if b < 0x80 {
            break;
        }
    }
    (1 + i + n).min(enc.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_decodes_to_its_components_and_its_group() {
        let spec = FoldSpec::new(&["/t".into(), "/id".into()], None, &[]).unwrap();
        let mut c = Classifier::new(&spec);
        let line = br#"{"t":"Ta\u0073k","id":{"n":[1,2]}}"#;
        assert_eq!(c.classify(line), Class::Keyed { delete: false });
        let key = c.key.clone();
        assert_eq!(
            decode_key(&key),
            vec![serde_json::json!("Task"), serde_json::json!({"n": [1, 2]})]
        );
        let g = first_component_len(&key);
        assert_eq!(decode_key(&key[..g]), vec![serde_json::json!("Task")]);
        let long = format!(r#"{{"t":"{}","id":7}}"#, "x".repeat(300));
        assert!(matches!(c.classify(long.as_bytes()), Class::Keyed { .. }));
        assert_eq!(decode_key(&c.key)[0], serde_json::json!("x".repeat(300)));
        assert_eq!(decode_key(&c.key)[1], serde_json::json!(7));
    }
}
