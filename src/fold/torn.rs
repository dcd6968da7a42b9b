//! Whether a malformed line could be one JSON value cut short: the test
//! that keeps salvage (`scan.rs`) from taking a value nested in a torn line
//! for an event of its own (issue 16, A.1).
//!
//! A torn line ending just after a nested object, e.g.
//! `{"op":"SET","item":{"id":8},"prev":{"op":"SET","item":{"id":7}}` with its
//! last `}` missing, has a valid object as a suffix; kept as an event it
//! would replay a stale value. A suffix `S` at `p` can be a value nested in
//! the fragment `F = line[..p]` only if `F` is the start of a JSON value
//! that expects a value at `p`; then `F ++ S`, the whole line, is itself the
//! start of a JSON value (the nested value is complete, the outer one cut
//! short). So if the whole line *cannot* be the start of one JSON value, no
//! suffix is a nested value, and salvage is safe; if it can, salvage is
//! refused and the line is quarantined whole (when in doubt, quarantine).
//!
//! The check is deliberately lax (any byte inside a string, any byte after
//! a `\`, numbers as runs of number characters): a laxer check says "could
//! be torn" more often, which only quarantines more.

/// Where the automaton is, between two bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value is expected (top level, after `:`, after `,` in an array).
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrClose,
    /// Just after `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,`, the closer of the container, or (at the top
    /// level) only whitespace.
    After,
    /// Inside a string (`key`: an object key, followed by `:`).
    Str { key: bool, escaped: bool },
    /// Inside a number.
    Number,
    /// Inside `true` / `false` / `null`: the bytes still expected.
    Literal(&'static [u8]),
}

/// Whether `line` is a prefix of one JSON value (possibly all of it, with
/// whitespace around): a line a writer may have been cut off while writing.
pub(crate) fn could_be_one_torn_value(line: &[u8]) -> bool {
    let mut stack: Vec<u8> = Vec::new();
    let mut state = State::Value;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        let (next, consumed) = match step(state, b, &mut stack) {
            Some(x) => x,
            None => return false,
        };
        state = next;
        if consumed {
            i += 1;
        }
    }
    true
}

/// One transition: the next state and whether `b` was consumed (a number
/// or literal ends at the byte after it, which is then read again).
fn step(state: State, b: u8, stack: &mut Vec<u8>) -> Option<(State, bool)> {
    let ws = matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    Some(match state {
        State::Str { key, escaped: true } => (
            State::Str {
                key,
                escaped: false,
            },
            true,
        ),
        State::Str { key, .. } => match b {
            b'\\' => (State::Str { key, escaped: true }, true),
            b'"' if key => (State::Colon, true),
            b'"' => (State::After, true),
            _ => (state, true),
        },
        State::Number => match b {
            b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E' => (state, true),
            _ => (State::After, false),
        },
        State::Literal(rest) => match rest.split_first() {
            Some((&want, tail)) if want == b => (State::Literal(tail), true),
            Some(_) => return None,
            None => (State::After, false),
        },
        _ if ws => (state, true),
        State::Value | State::ValueOrClose => match b {
            b']' if state == State::ValueOrClose => (close(stack, b'[')?, true),
            b'{' => {
                stack.push(b'{');
                (State::KeyOrClose, true)
            }
            b'[' => {
                stack.push(b'[');
                (State::ValueOrClose, true)
            }
            b'"' => (
                State::Str {
                    key: false,
                    escaped: false,
                },
                true,
            ),
            b'-' | b'0'..=b'9' => (State::Number, true),
            b't' => (State::Literal(b"rue"), true),
            b'f' => (State::Literal(b"alse"), true),
            b'n' => (State::Literal(b"ull"), true),
            _ => return None,
        },
        State::KeyOrClose | State::Key => match b {
            b'}' if state == State::KeyOrClose => (close(stack, b'{')?, true),
            b'"' => (
                State::Str {
                    key: true,
                    escaped: false,
                },
                true,
            ),
            _ => return None,
        },
        State::Colon => match b {
            b':' => (State::Value, true),
            _ => return None,
        },
        State::After => match (b, stack.last()) {
            (b',', Some(b'{')) => (State::Key, true),
            (b',', Some(b'[')) => (State::Value, true),
            (b'}', Some(b'{')) => (close(stack, b'{')?, true),
            (b']', Some(b'[')) => (close(stack, b'[')?, true),
            _ => return None,
        },
    })
}

/// Close the innermost container, which must be `open`.
fn close(stack: &mut Vec<u8>, open: u8) -> Option<State> {
    (stack.pop()? == open).then_some(State::After)
}

#[cfg(test)]
mod tests {
    use super::could_be_one_torn_value as torn;

    #[test]
    fn prefixes_of_one_value_could_be_torn() {
        for s in [
            "",
            "{",
            r#"{"a":"#,
            r#"{"a":{"b":1}"#,
            r#"{"a":[1,{"b":"x\"{"}"#,
            r#"{"a":tr"#,
            r#"{"a":1}"#,
            " [1, 2.5e-3, null, {}] ",
        ] {
            assert!(torn(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn glued_or_garbled_lines_could_not() {
        for s in [
            r#"{"a":1}{"b":2}"#,
            r#"{"a"{"b":1}"#,
            r#"{"a":1{"b":1}"#,
            r#"{"a":"x"{"b":1}"#,
            "\u{feff}{\"a\":1}",
            "not json",
            r#"{"a":trux"#,
            r#"[1}"#,
        ] {
            assert!(!torn(s.as_bytes()), "{s}");
        }
    }
}
