//! The walk's own paths against the byte lexer, on adversarial lines: a
//! line broken after its last target, nesting past the register stack of
//! the skip loop, duplicate members on the path after the first hit, flat
//! arrays, member names with escapes before and after the line's first
//! escape, long pointer tokens, scalars at the edges. Each line is walked
//! alone (the walk's own verdict, no fallback) and inside a batch.

use super::*;
use crate::fold::json::{Batch, Indexed, Pointers, Scanner, index};

const PTRS: [&str; 4] = ["/t", "/item/id", "/op", "/a~1b/0"];

/// The walk's verdict on `line` alone: its spans if valid.
fn walk_alone(line: &[u8], ptrs: &Pointers) -> Option<Vec<Option<Span>>> {
    let (mut pos, mut esc) = (Vec::new(), Vec::new());
    let ascii = index::build(line, &mut pos, &mut esc)?;
    if !ascii && std::str::from_utf8(line).is_err() {
        return None;
    }
    let mut out = vec![None; ptrs.len()];
    Walk::new(line, 0, &pos, &esc)
        .line(&mut Vec::new(), &ptrs.root, &mut out)
        .ok()?;
    Some(out)
}

/// Check `line` with `ptrs`: the walk agrees with the byte lexer (verdict
/// and spans), and the batch scan with the line scan wherever the line
/// sits in its blocks. Returns the walk's spans (`None`: invalid).
fn check_with(line: &[u8], ptrs: &[&str]) -> Option<Vec<Option<Span>>> {
    let ptrs = Pointers::new(ptrs).unwrap();
    let text = String::from_utf8_lossy(line);
    let mut slow = vec![None; ptrs.len()];
    let by_bytes = Scanner::new().scan_by_bytes(line, &ptrs, &mut slow);
    let walked = walk_alone(line, &ptrs);
    assert_eq!(walked.is_some(), by_bytes.is_ok(), "walk vs bytes: {text}");
    if let Some(w) = &walked {
        assert_eq!(w, &slow, "spans: {text}");
    }
    let mut one = vec![None; ptrs.len()];
    let alone = Scanner::new().scan(line, &ptrs, &mut one);
    // A batch cuts lines at `\n`: a line holding one is not a batch's line.
    let shifts: &[usize] = match line.contains(&b'\n') {
        true => &[],
        false => &[0, 1, 30, 63, 64, 100],
    };
    for &shift in shifts {
        // A first line of `shift` bytes (with an escape in it) moves the
        // line across the 64-byte blocks of the batch.
        let mut first = match shift {
            0 => Vec::new(),
            n => format!("\"{}", "\\\\".repeat(n)).into_bytes()[..n].to_vec(),
        };
        first.truncate(shift);
        let mut bytes = first.clone();
        bytes.push(b'\n');
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
        let mut batch = Batch::default();
        batch.index(&bytes);
        let mut got = vec![None; ptrs.len()];
        let ix = Indexed {
            bytes: &bytes,
            batch: &batch,
            line: 1,
        };
        let r = Scanner::new().scan_indexed(ix, &ptrs, &mut got);
        assert_eq!(r, alone, "batch (shift {shift}) vs line: {text}");
        assert_eq!(got, one, "batch spans (shift {shift}): {text}");
    }
    walked
}

fn check(line: &str) -> Option<Vec<Option<Span>>> {
    check_with(line.as_bytes(), &PTRS)
}

/// The text of each slot's span in `line`.
fn texts(line: &str, spans: &[Option<Span>]) -> Vec<Option<String>> {
    spans
        .iter()
        .map(|s| s.map(|s| line[s.start..s.end].to_string()))
        .collect()
}

#[test]
fn a_line_broken_after_its_last_target_is_invalid() {
    let good = r#"{"t":"a","item":{"id":"x","n":[1,2]},"op":"SET","z":{"q":[true,null]}}"#;
    assert!(check(good).is_some());
    for bad in [
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":[1,2,]}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":[1 2]}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":{"q" 1}}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":{"q":1,}}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":[1}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":{"q":1]"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":01}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":tru}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET"}}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET"} 1"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET""#,
        r#"{"t":"a","item":{"id":"x","k":}},"op":"SET"}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET",:1}"#,
        r#"{"t":"a","item":{"id":"x"},"op":"SET","z":"\x"}"#,
        "{\"t\":\"a\",\"op\":\"SET\",\"z\":\"\u{1}\"}",
    ] {
        assert_eq!(check(bad), None, "accepted {bad}");
    }
}

#[test]
fn nesting_past_the_register_stack_of_the_skip_loop_is_exact() {
    for depth in [1, 2, 63, 64, 65, 66, 127, 128, 129, 200, 5000] {
        // Alternating objects and arrays, off the trie, as a member and
        // as the whole line.
        let (mut open, mut close) = (String::new(), String::new());
        for d in 0..depth {
            if d % 3 == 1 {
                open.push_str("{\"k\":");
                close.insert(0, '}');
            } else {
                open.push('[');
                close.insert(0, ']');
            }
        }
        let doc = format!("{open}1{close}");
        assert!(check(&doc).is_some(), "depth {depth}");
        let line = format!(r#"{{"t":"a","x":{doc},"op":"S"}}"#);
        let got = check(&line).unwrap_or_else(|| panic!("depth {depth}"));
        assert_eq!(texts(&line, &got)[2].as_deref(), Some("S"));
        // Every closer swapped for the other kind, one at a time: the
        // bits spilled past 64 levels must come back in order.
        let closers: Vec<usize> = line
            .char_indices()
            .filter(|&(_, c)| c == ']' || c == '}')
            .map(|(i, _)| i)
            .collect();
        for &i in closers.iter().step_by(1 + closers.len() / 40) {
            let mut b = line.clone().into_bytes();
            b[i] = if b[i] == b']' { b'}' } else { b']' };
            assert_eq!(check_with(&b, &PTRS), None, "depth {depth}, closer {i}");
        }
        // One closer short, or one too many.
        assert_eq!(check(&format!("{open}1{}", &close[1..])), None);
        assert_eq!(check(&format!("{open}1{close}]")), None);
    }
}

#[test]
fn duplicate_members_on_the_path_after_the_first_hit_last_wins() {
    let cases = [
        (
            r#"{"item":{"id":"a"},"t":"x","item":{"id":"b"}}"#,
            [Some("x"), Some("b"), None, None],
        ),
        (
            r#"{"item":{"id":"a"},"t":"x","item":5}"#,
            [Some("x"), None, None, None],
        ),
        (
            r#"{"item":{"id":"a"},"item":{"n":1}}"#,
            [None, None, None, None],
        ),
        (
            r#"{"item":{"id":"a","id":"b"},"t":"x"}"#,
            [Some("x"), Some("b"), None, None],
        ),
        (
            r#"{"t":"a","op":"DEL","t":1,"op":{"x":[]}}"#,
            [Some("1"), None, Some(r#"{"x":[]}"#), None],
        ),
        (
            r#"{"t":"a","\u0074":"b","op":"DEL","o\u0070":null}"#,
            [Some("b"), None, Some("null"), None],
        ),
        (
            r#"{"a/b":[1,2],"a\/b":["x"],"a/b":{"0":true}}"#,
            [None, None, None, Some("true")],
        ),
        (r#"{"a/b":{"0":1},"a/b":[]}"#, [None, None, None, None]),
    ];
    for (line, want) in cases {
        let got = check(line).unwrap_or_else(|| panic!("rejected {line}"));
        let want: Vec<Option<String>> = want.iter().map(|w| w.map(String::from)).collect();
        assert_eq!(texts(line, &got), want, "{line}");
    }
}

#[test]
fn flat_arrays_validate_exactly() {
    for (doc, valid) in [
        ("[]", true),
        ("[ ]", true),
        (r#"["a"]"#, true),
        (r#"["a",1,-2.5e3,true,false,null,"\"]"]"#, true),
        (r#"[ "a" , 1 ]"#, true),
        (r#"["a",[1]]"#, true),
        (r#"["a",{"b":[2]},3]"#, true),
        (r#"[1,[]]"#, true),
        (r#"["a",]"#, false),
        (r#"[,"a"]"#, false),
        (r#"[,]"#, false),
        (r#"["a" "b"]"#, false),
        (r#"["a":1]"#, false),
        (r#"["a",1x]"#, false),
        (r#"["a",tru]"#, false),
        (r#"["a","b""#, false),
        (r#"["a",[1]"#, false),
        (r#"["a",[1}]"#, false),
        (r#"["a"}"#, false),
        (r#"[1,2]]"#, false),
    ] {
        assert_eq!(check(doc).is_some(), valid, "{doc}");
        let member = format!(r#"{{"t":"a","x":{doc}}}"#);
        assert_eq!(check(&member).is_some(), valid, "{member}");
    }
}

#[test]
fn escaped_member_names_match_before_and_after_the_first_escape() {
    let cases = [
        // The first escape is in the name itself.
        (r#"{"\u0074":"a"}"#, Some("a")),
        // A name equal to a token only once decoded, after an escape in a
        // value earlier on the line.
        (r#"{"x":"\n","\u0074":"b"}"#, Some("b")),
        // A plain name before the line's first escape, then an escaped
        // name that decodes to something else.
        (r#"{"t":"c","\u0075":"\"","x":1}"#, Some("c")),
        // Raw `\u0074` is six bytes, never equal to the token `t`.
        (r#"{"t\\":"d"}"#, None),
        (r#"{"\\t":"d"}"#, None),
        // An escape in the 64-byte block before the name's block.
        (
            r#"{"pad":"\\                                                        ","t":"e"}"#,
            Some("e"),
        ),
    ];
    for (line, want) in cases {
        let got = check(line).unwrap_or_else(|| panic!("rejected {line}"));
        assert_eq!(texts(line, &got)[0].as_deref(), want, "{line}");
    }
    // A pointer token with a backslash matches only the escaped name.
    let line = r#"{"a\\b":1,"a\b":2}"#;
    let got = check_with(line.as_bytes(), &["/a\\b"]).unwrap();
    assert_eq!(texts(line, &got), vec![Some("1".to_string())]);
}

#[test]
fn long_pointer_tokens_share_the_top_length_bit() {
    let long = "k".repeat(70);
    let ptr = format!("/{long}");
    for (name, hit) in [
        ("k".repeat(63), false),
        ("k".repeat(64), false),
        ("k".repeat(70), true),
        ("k".repeat(71), false),
        (format!("{}\\u006b", "k".repeat(69)), true),
    ] {
        let line = format!(r#"{{"{name}":"v"}}"#);
        let got = check_with(line.as_bytes(), &[&ptr]).unwrap();
        assert_eq!(got[0].is_some(), hit, "{name}");
    }
}

#[test]
fn scalars_at_the_edges_validate_exactly() {
    for (doc, valid) in [
        ("0", true),
        ("-0", true),
        ("-0.0e-0", true),
        ("1E5", true),
        ("1e+5", true),
        ("12345678901234567890123", true),
        ("1.5", true),
        ("true", true),
        ("false", true),
        ("null", true),
        ("-", false),
        ("01", false),
        ("-01", false),
        ("1.", false),
        (".5", false),
        ("1e", false),
        ("1e+", false),
        ("1.e5", false),
        ("1.5x", false),
        ("+1", false),
        ("--1", false),
        ("1ee5", false),
        ("tru", false),
        ("truex", false),
        ("nul", false),
        ("falsey", false),
        ("True", false),
        ("1\u{1}", false),
        ("1\u{0}", false),
    ] {
        assert_eq!(check(doc).is_some(), valid, "{doc:?}");
        for line in [
            format!(r#"{{"t":{doc}}}"#),
            format!(r#"{{"x":{doc}}}"#),
            format!(r#"[{doc}]"#),
            format!(r#"{{"a/b":[{doc},{doc}]}}"#),
        ] {
            assert_eq!(check(&line).is_some(), valid, "{line:?}");
        }
    }
}

/// The digit runs are read eight bytes at a time: any byte after any
/// number of digits ends the run where the byte lexer ends it.
#[test]
fn digit_runs_end_at_any_byte_in_any_position() {
    let mut tails: Vec<Vec<u8>> = (0u8..0x80).map(|b| vec![b]).collect();
    tails.extend(["é", "\u{800}", "\u{10000}", ""].map(|s| s.as_bytes().to_vec()));
    for digits in 0..20 {
        for tail in &tails {
            for lead in ["", "-", "0.", "1e"] {
                let mut line = b"[".to_vec();
                line.extend_from_slice(lead.as_bytes());
                line.extend((0..digits).map(|d| b'1' + (d % 9) as u8));
                line.extend_from_slice(tail);
                line.push(b']');
                check_with(&line, &PTRS);
                // At the very end of the line too (no closer after it).
                check_with(&line[1..line.len() - 1], &PTRS);
            }
        }
    }
}
