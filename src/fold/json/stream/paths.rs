//! The walk along the pointers while a long line is validated: which
//! value is on a pointer's path, where each target's value starts and ends
//! (the same spans as the in-memory scan finds), and the member names it
//! compares on the way.

use super::super::lexer::unescape;
use super::super::{Kind, Node, Span};
use super::{LineValidator, NAME_CAP, Open, Scalar, State};

impl LineValidator<'_> {
    pub(super) fn take_name(&mut self, bytes: &[u8]) {
        if self.name.len() <= NAME_CAP {
            self.name
                .extend_from_slice(&bytes[..bytes.len().min(NAME_CAP + 1 - self.name.len())]);
        }
    }

    /// At a closing quote at `k`: end the member name being collected.
    pub(super) fn close_name(&mut self, block: &[u8; 64], base: u64, k: usize) {
        if let Some(from) = self.name_from {
            let f = (from.max(base) - base) as usize;
            self.take_name(&block[f.min(k)..k]);
        }
    }

    /// At a closing quote: end a string that is a target's value.
    pub(super) fn close_string_target(&mut self, at: u64, esc_now: u64) {
        if !self.in_string || self.state == State::Colon {
            return;
        }
        if let Some(o) = self.open.last().copied()
            && o.depth == self.depth
            && matches!(o.kind, Kind::String { .. })
        {
            self.open.pop();
            self.spans[o.slot] = Some(Span {
                start: o.start as usize + 1,
                end: at as usize,
                kind: Kind::String {
                    escaped: esc_now > o.esc_before,
                },
            });
        }
    }

    /// [`Self::token`] plus the walk along the pointers: which value is on
    /// a pointer's path, where targets start and end.
    pub(super) fn token_with_paths(&mut self, c: u8, at: u64, esc_now: u64) {
        self.end_scalar_target();
        let (state, depth, in_string) = (self.state, self.depth, self.in_string);
        self.token(c, at);
        if self.error.is_some() || in_string {
            if in_string && state == State::Colon {
                // The end of a member name: nothing to do until ':'.
                self.name_from = None;
            }
            return;
        }
        let on_path = |s: &Self| s.path.last().is_some_and(|&(d, _, _)| d == depth);
        match (state, c) {
            (State::Value | State::ValueOrClose, b'{' | b'[' | b'"')
            | (State::Value | State::ValueOrClose, b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                self.value_starts(c, at, depth, esc_now)
            }
            (State::NameOrClose | State::Name, b'"') if on_path(self) => {
                self.name.clear();
                self.name_from = Some(at + 1);
            }
            (State::Colon, b':') if on_path(self) => self.member_named(),
            (State::CommaOrClose, b',') if on_path(self) => {
                let last = self.path.len() - 1;
                let (_, n, i) = self.path[last];
                if self.top_is_object() == Some(false) {
                    self.path[last].2 = i + 1;
                    self.pending = child(n, i + 1);
                }
            }
            (_, b'}' | b']') => self.container_closes(depth, at),
            _ => {}
        }
    }

    /// A scalar that is a target ends at its last byte.
    pub(super) fn end_scalar_target(&mut self) {
        if self.scalar != Scalar::None
            && let Some((slot, start, kind)) = self.scalar_target.take()
        {
            self.spans[slot] = Some(Span {
                start: start as usize,
                end: self.scalar_end as usize,
                kind,
            });
        }
    }

    /// A value starts at `at` with `c`, `depth` containers open: if it is
    /// the pending node of a path, open its target and follow its children.
    fn value_starts(&mut self, c: u8, at: u64, depth: usize, esc_now: u64) {
        let Some(n) = self.pending.take() else {
            return;
        };
        let kind = match c {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String { escaped: false },
            b't' => Kind::True,
            b'f' => Kind::False,
            b'n' => Kind::Null,
            _ => Kind::Number,
        };
        if let Some(slot) = n.target {
            if matches!(kind, Kind::String { .. } | Kind::Object | Kind::Array) {
                self.open.push(Open {
                    slot,
                    start: at,
                    depth,
                    kind,
                    esc_before: esc_now,
                });
            } else {
                self.scalar_target = Some((slot, at, kind));
                self.scalar_end = at + 1;
            }
        }
        if matches!(c, b'{' | b'[') && !n.children.is_empty() {
            self.path.push((self.depth, n, 0));
            if c == b'[' {
                self.pending = child(n, 0);
            }
        }
    }

    /// At the ':' after a member name on a path: the child it names (if
    /// any) is pending, and an earlier duplicate's spans are forgotten
    /// (last wins).
    fn member_named(&mut self) {
        let n = self.path.last().unwrap().1;
        let found = if self.name.len() > NAME_CAP {
            None
        } else if self.name.contains(&b'\\') {
            let k = unescape(&self.name);
            n.children.iter().find(|(t, _)| *t == k)
        } else {
            n.children.iter().find(|(t, _)| *t == self.name)
        };
        if let Some((_, c)) = found {
            for &s in &c.below {
                self.spans[s] = None;
            }
        }
        self.pending = found.map(|(_, c)| c);
    }

    /// A container closed at `at`, `depth` open before it: leave its path
    /// node, and end the target it was.
    fn container_closes(&mut self, depth: usize, at: u64) {
        self.pending = None;
        if self.path.last().is_some_and(|&(d, _, _)| d == depth) {
            self.path.pop();
        }
        if let Some(o) = self.open.last().copied()
            && o.depth == self.depth
        {
            self.open.pop();
            self.spans[o.slot] = Some(Span {
                start: o.start as usize,
                end: at as usize + 1,
                kind: o.kind,
            });
        }
    }
}

/// The child of an array node for element `i`.
fn child(n: &Node, i: usize) -> Option<&Node> {
    let mut digits = [0u8; 20];
    let tok = super::super::fmt_index(i, &mut digits);
    n.children
        .iter()
        .find(|(t, _)| t.as_slice() == tok)
        .map(|(_, c)| c)
}
