//! The surviving byte ranges of a fold while it is being built, in a few
//! bytes per range instead of a 16-byte [`Range`] each.
//!
//! A fold that takes several passes (more live keys than the key maps'
//! budget, `fold::spans`) adds each pass's survivors to those of the
//! passes before it. The survivors of different passes interleave, so
//! until the last pass up to about a quarter of the live lines are
//! separate ranges: as `Vec<Range>` (and the copy a union makes), that was
//! most of the memory of a fold over 10M live keys. Here each range is two
//! LEB128 numbers, the gap since the previous range's end and its length:
//! about 3-4 bytes for log lines of a few hundred bytes.
//!
//! Invariants:
//! - Ranges are pushed in order, disjoint; a range that starts where the
//!   previous one ends is joined to it, so the list is always coalesced.
//! - [`Runs::iter`] yields exactly the pushed bytes, as coalesced ranges.

use crate::io::ranges::Range;

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    /// The encoded ranges, all but the last.
    bytes: Vec<u8>,
    /// The end of the last encoded range.
    end: u64,
    /// The last range, still open to a join.
    open: Option<Range>,
    len: usize,
    pushed: u64,
}

fn put(bytes: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        bytes.push(n as u8 | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
}

fn get(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut n, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b < 0x80 {
            return n;
        }
    }
}

impl Runs {
    /// Add `r`, which starts at or after the end of the last range.
    #[inline]
    pub(crate) fn push(&mut self, r: Range) {
        self.pushed += 1;
        match &mut self.open {
            Some(o) if o.end == r.start => o.end = r.end,
            o => {
                if let Some(prev) = o.replace(r) {
                    debug_assert!(prev.end <= r.start, "ranges out of order");
                    put(&mut self.bytes, prev.start - self.end);
                    put(&mut self.bytes, prev.len());
                    self.end = prev.end;
                }
                self.len += 1;
            }
        }
    }

    /// How many (coalesced) ranges.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many ranges were pushed (before joining).
    pub(crate) fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The ranges in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Range> + '_ {
        let (mut at, mut end) = (0usize, 0u64);
        std::iter::from_fn(move || {
            if at == self.bytes.len() {
                return None;
            }
            let start = end + get(&self.bytes, &mut at);
            end = start + get(&self.bytes, &mut at);
            Some(Range { start, end })
        })
        .chain(self.open)
    }

    /// These ranges and the sorted, disjoint `other` as one list.
    pub(crate) fn union(&self, other: &[Range]) -> Runs {
        let mut out = Runs::default();
        let mut b = other.iter().copied().peekable();
        for a in self.iter() {
            while let Some(r) = b.next_if(|r| r.start < a.start) {
                out.push(r);
            }
            out.push(a);
        }
        b.for_each(|r| out.push(r));
        out
    }

    pub(crate) fn to_vec(&self) -> Vec<Range> {
        let mut v = Vec::with_capacity(self.len());
        v.extend(self.iter());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn pushed_ranges_come_back_coalesced_and_unions_interleave() {
        let mut a = Runs::default();
        for x in [r(0, 5), r(5, 9), r(20, 300), r(1 << 40, (1 << 40) + 1)] {
            a.push(x);
        }
        assert_eq!(
            a.to_vec(),
            vec![r(0, 9), r(20, 300), r(1 << 40, (1 << 40) + 1)]
        );
        assert_eq!((a.len(), a.pushed()), (3, 4));
        let u = a.union(&[r(9, 12), r(15, 20), r(400, 500)]);
        assert_eq!(
            u.to_vec(),
            vec![r(0, 12), r(15, 300), r(400, 500), r(1 << 40, (1 << 40) + 1)]
        );
        assert_eq!(u.len(), 4);
        assert!(Runs::default().union(&[]).to_vec().is_empty());
        assert_eq!(Runs::default().union(&[r(3, 4)]).to_vec(), vec![r(3, 4)]);
    }
}
