//! The number and literal automaton of the streamed validation: fed only
//! a scalar's own bytes, it says whether they can go on and whether they
//! form a complete JSON number or literal.

/// The number and literal automaton's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Scalar {
    None,
    /// Inside a literal: the word and how much of it has been seen.
    Word(&'static [u8], u8),
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Scalar {
    pub(super) fn start(b: u8) -> Option<Scalar> {
        Some(match b {
            b'-' => Scalar::Minus,
            b'0' => Scalar::Zero,
            b'1'..=b'9' => Scalar::Int,
            b't' => Scalar::Word(b"true", 1),
            b'f' => Scalar::Word(b"false", 1),
            b'n' => Scalar::Word(b"null", 1),
            _ => return None,
        })
    }

    pub(super) fn next(self, b: u8) -> Option<Scalar> {
        use Scalar::*;
        Some(match (self, b) {
            (Word(w, n), _) if w.get(n as usize) == Some(&b) => Word(w, n + 1),
            (Word(..), _) => return Option::None,
            (Minus, b'0') => Zero,
            (Minus, b'1'..=b'9') => Int,
            (Int, b'0'..=b'9') => Int,
            (Zero | Int, b'.') => Dot,
            (Dot | Frac, b'0'..=b'9') => Frac,
            (Zero | Int | Frac, b'e' | b'E') => Exp,
            (Exp, b'+' | b'-') => ExpSign,
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => ExpDigits,
            _ => return Option::None,
        })
    }

    pub(super) fn complete(self) -> bool {
        match self {
            Scalar::Word(w, n) => n as usize == w.len(),
            Scalar::Zero | Scalar::Int | Scalar::Frac | Scalar::ExpDigits => true,
            _ => false,
        }
    }
}
