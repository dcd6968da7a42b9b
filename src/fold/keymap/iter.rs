//! Walking a key map's entries in parts, so that threads can each take
//! some (the merge of the scans' maps, `fold::merge`), with or without
//! reading the keys' bytes.

use super::{Entry, KeyMap, Slot};

impl KeyMap {
    /// Every (hash, key, entry), in no order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &[u8], Entry)> + '_ {
        self.iter_part(0, 1)
    }

    /// Part `p` of `parts` of [`Self::iter`]: the parts together yield
    /// every entry once (so threads can each take some).
    pub(crate) fn iter_part(
        &self,
        p: usize,
        parts: usize,
    ) -> impl Iterator<Item = (u64, &[u8], Entry)> + '_ {
        self.part_slots(p, parts)
            .map(|s| (s.hash, self.key_of(s), s.entry))
    }

    /// [`Self::iter_part`] without the keys, whose bytes (in the arena, at
    /// random) are not read: for a caller that needs only the entries.
    pub(crate) fn entries_part(
        &self,
        p: usize,
        parts: usize,
    ) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.part_slots(p, parts).map(|s| (s.hash, s.entry))
    }

    /// The hashes of [`Self::iter_part`], in its order, keys unread: what
    /// a lookahead needs to ask for cache lines ([`Self::prefetch`]).
    pub(crate) fn hashes_part(&self, p: usize, parts: usize) -> impl Iterator<Item = u64> + '_ {
        self.part_slots(p, parts).map(|s| s.hash)
    }

    fn part_slots(&self, p: usize, parts: usize) -> impl Iterator<Item = &Slot> + '_ {
        let n = self.slots.len();
        self.slots[n * p / parts..n * (p + 1) / parts]
            .iter()
            .filter(|s| s.hash != 0)
    }
}
