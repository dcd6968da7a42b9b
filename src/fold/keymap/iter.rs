//! Walking a key map's entries in parts, so that threads can each take
//! some (the merge of the scans' maps, `fold::merge`).

use super::{Entry, KeyMap};

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
        let n = self.slots.len();
        self.slots[n * p / parts..n * (p + 1) / parts]
            .iter()
            .filter(|s| s.hash != 0)
            .map(|s| (s.hash, self.key_of(s), s.entry))
    }
}
