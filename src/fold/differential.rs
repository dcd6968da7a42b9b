//! The differential property test of the scan (issue 18): the fast scan
//! (structural index + walk) against two references on random and
//! adversarial lines — serde_json parsing each line on its own (validity,
//! the value at each key pointer, classification), and the byte-at-a-time
//! lexer that was the scan before (validity and the exact spans).
//!
//! Seeded and bounded in CI (`PROPTEST_RNG_SEED`, `PROPTEST_CASES` in
//! `.ci/run`); for a long search run e.g.
//! `PROPTEST_CASES=200000 cargo test --all-features --lib differential`.
//!
//! Where serde_json is not the oracle (it refuses what RFC 8259 allows):
//! numbers beyond f64's range, unpaired surrogate escapes and nesting past
//! 128 levels. Lines with those are checked against the byte lexer only.

use super::*;
use crate::fold::json::{Scanner, Span, unescape};
use proptest::prelude::*;
use serde_json::Value;

fn spec() -> FoldSpec {
    FoldSpec::new(
        &["/t".into(), "/item/id".into(), "/a~1b/0".into()],
        Some("/op"),
        &["DEL".into(), "d\u{e9}l".into()],
    )
    .unwrap()
}

const PTRS: [&str; 4] = ["/t", "/item/id", "/a~1b/0", "/op"];

/// The value a span denotes, as serde_json reads it.
fn span_value(line: &[u8], s: &Span) -> Value {
    match s.kind {
        json::Kind::String { escaped } => {
            let raw = &line[s.start..s.end];
            let bytes = if escaped { unescape(raw) } else { raw.to_vec() };
            Value::String(String::from_utf8(bytes).expect("surrogate pairs only"))
        }
        _ => serde_json::from_slice(&line[s.start..s.end]).expect("a valid span"),
    }
}

/// Whether serde_json can judge this line (see the module doc).
fn serde_is_oracle(line: &[u8], parsed: &Result<Value, serde_json::Error>) -> bool {
    let lone_surrogate = || {
        // A \uD800-\uDFFF escape anywhere: serde_json refuses unpaired ones.
        line.windows(4).any(|w| {
            w[0] == b'\\'
                && w[1] == b'u'
                && matches!(w[2], b'd' | b'D')
                && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
        })
    };
    match parsed {
        Ok(_) => true,
        Err(e) => {
            let m = e.to_string();
            !(m.starts_with("number out of range")
                || m.starts_with("recursion limit exceeded")
                || lone_surrogate())
        }
    }
}

/// Check one line against both references.
fn check(line: &[u8]) -> Result<(), TestCaseError> {
    let spec = spec();
    let ptrs = json::Pointers::new(&PTRS).unwrap();
    // The fast scan and the byte lexer: same verdict, same spans.
    let mut fast = vec![None; PTRS.len()];
    let mut slow = vec![None; PTRS.len()];
    let f = Scanner::new().scan(line, &ptrs, &mut fast);
    let s = Scanner::new().scan_by_bytes(line, &ptrs, &mut slow);
    prop_assert_eq!(f.is_ok(), s.is_ok(), "fast {:?} vs bytes {:?}", f, s);
    if f.is_ok() {
        prop_assert_eq!(&fast, &slow);
    } else {
        // The reason always comes from the byte lexer.
        prop_assert_eq!(&f, &s);
    }
    // serde_json, one line at a time.
    let parsed = std::str::from_utf8(line)
        .map_err(|_| serde_json::from_slice::<Value>(b"!").unwrap_err())
        .and_then(serde_json::from_str::<Value>);
    if !serde_is_oracle(line, &parsed) {
        return Ok(());
    }
    prop_assert_eq!(
        f.is_ok(),
        parsed.is_ok(),
        "validity: ours {:?}, serde_json {:?}",
        f,
        parsed.as_ref().err()
    );
    let Ok(doc) = parsed else { return Ok(()) };
    for (slot, p) in PTRS.iter().enumerate() {
        let theirs = doc.pointer(p);
        let ours = fast[slot].map(|sp| span_value(line, &sp));
        prop_assert_eq!(ours.as_ref(), theirs, "pointer {}", p);
    }
    // Classification: keyed iff every key pointer is there; deletes iff
    // the op is one of the delete strings.
    let mut cls = Classifier::new(&spec);
    let class = cls.classify(line);
    let keyed = PTRS[..3].iter().all(|p| doc.pointer(p).is_some());
    let delete =
        matches!(doc.pointer("/op"), Some(Value::String(s)) if s == "DEL" || s == "d\u{e9}l");
    let want = if keyed {
        Class::Keyed { delete }
    } else {
        Class::Keyless
    };
    prop_assert_eq!(class, want);
    Ok(())
}

/// Member names, some escaped so that they decode to a pointer's token.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("t".to_string()),
        Just("\\u0074".to_string()),
        Just("item".to_string()),
        Just("it\\u0065m".to_string()),
        Just("id".to_string()),
        Just("a/b".to_string()),
        Just("a\\/b".to_string()),
        Just("op".to_string()),
        "[a-z]{1,3}",
    ]
}

/// Strings with every escape, non-ASCII text, and lengths that cross the
/// 64-byte blocks of the structural index.
fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z ]{0,70}",
        Just("\\\"".to_string()),
        Just("\\\\".to_string()),
        Just("\\/".to_string()),
        Just("\\b\\f\\n\\r\\t".to_string()),
        Just("\\u00e9".to_string()),
        Just("\\uD83D\\uDE00".to_string()),
        Just("\\ud800".to_string()),
        Just("caf\u{e9} \u{2014} \u{1F600}".to_string()),
        Just("DEL".to_string()),
        Just("d\\u00e9l".to_string()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| format!("\"{}\"", v.concat()))
}

/// Numbers at the edges of the grammar and of f64.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop::sample::select(vec![
            "0",
            "-0",
            "0.0",
            "-0.0e-0",
            "1E+2",
            "1e-400",
            "1e400",
            "-1.5E308",
            "123456789012345678901234567890",
            "0.000000000000000000001",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "+1",
            "--1",
            "0x10",
            "1.e3",
        ])
        .prop_map(str::to_string),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        number(),
        string(),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((name(), inner), 0..5).prop_map(|v| {
                let m: Vec<String> = v
                    .into_iter()
                    .map(|(k, x)| format!("\"{k}\": {x}"))
                    .collect();
                format!("{{{}}}", m.join(" , "))
            }),
        ]
    })
}

/// An event-like line: the key members (duplicated, escaped, nested)
/// among others.
fn line() -> impl Strategy<Value = String> {
    prop::collection::vec((name(), value()), 0..7).prop_map(|m| {
        let m: Vec<String> = m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", m.join(","))
    })
}

/// Bytes that break lines: structural characters, quotes, backslashes,
/// control bytes and invalid UTF-8 (lone continuation, overlong, surrogate,
/// past U+10FFFF, cut sequences).
fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..3),
        prop::sample::select(vec![
            &b"\""[..],
            b"\\",
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b" ",
            b"\t",
            b"\x01",
            b"\x80",
            b"\xC0\x80",
            b"\xED\xA0\x80",
            b"\xF4\x90\x80\x80",
            b"\xE2\x82",
            b"\xFF",
            b"\\u12",
            b"\\x",
        ])
        .prop_map(<[u8]>::to_vec),
    ]
}

proptest! {
    /// Valid and damaged event lines: junk at any position (so invalid
    /// UTF-8 at every position, over the runs).
    #[test]
    fn fast_scan_agrees_with_serde_json_and_the_byte_lexer(
        line in line(),
        damage in prop::option::of((any::<prop::sample::Index>(), junk())),
    ) {
        let mut bytes = line.into_bytes();
        if let Some((at, junk)) = damage {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, junk);
        }
        check(&bytes)?;
    }

    /// Deep nesting around a key, balanced or not, past serde_json's limit.
    #[test]
    fn deep_nesting_agrees(depth in 0usize..300, cut in 0usize..3, obj in any::<bool>()) {
        let (open, close) = if obj { ("{\"a\":", "}") } else { ("[", "]") };
        let line = format!(
            "{{\"t\":1,\"item\":{{\"id\":{}1{}}}}}",
            open.repeat(depth),
            close.repeat(depth.saturating_sub(cut))
        );
        check(line.as_bytes())?;
    }

    /// Long strings (block boundaries everywhere) with an escape or a
    /// quote at any position.
    #[test]
    fn long_strings_agree(n in 0usize..400, at in any::<prop::sample::Index>(), esc in junk()) {
        let mut s = "x".repeat(n).into_bytes();
        let i = at.index(n + 1);
        s.splice(i..i, esc);
        let mut line = b"{\"t\":\"".to_vec();
        line.extend_from_slice(&s);
        line.extend_from_slice(b"\",\"item\":{\"id\":2}}");
        check(&line)?;
    }
}

#[test]
fn chosen_lines_agree() {
    for line in [
        &br#"{"t":"a","item":{"id":1},"a/b":[1],"op":"DEL"}"#[..],
        br#"{"\u0074":"a","item":{"id":1},"a\/b":[{"x":1}],"op":"d\u00e9l"}"#,
        br#"{"t":"a","item":{"id":1},"item":{"x":2},"a/b":[0]}"#,
        br#"{"t":1e400,"item":{"id":-0},"a/b":["\ud800"]}"#,
        br#"  {"t" : null , "item" : { "id" : [ ] } , "a/b" : [ "" ] }  "#,
        b"{\"t\":\"\xff\"}",
        b"{\"t\":\"a\"}\xff",
        b"",
        b"   ",
        br#"{"t":"a"} {"#,
    ] {
        check(line).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(line)));
    }
}
