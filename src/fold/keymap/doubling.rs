//! Doubling a key map's table where it lies: after
//! [`Table::double_in_place`], the keys are put at their places under the
//! new mask without a second table.

#[cfg(doc)]
use crate::io::table::Table;

use super::Slot;

/// Put every key of a table just doubled in place at its place under the
/// new mask: `slots[..n]` hold the old table (homes under the old mask),
/// `slots[n..]` are empty.
///
/// Each key goes to the first slot from its new home that is empty or
/// holds a key not yet placed (swapped out and placed next), and a placed
/// key never moves again. So every slot between a key's home and its slot
/// held a placed key when it was put there, and still holds one: every key
/// stays reachable, whichever way runs wrapped in the old table or wrap in
/// the new one. Each step places a key, so there are as many steps as keys.
pub(super) fn rehash_doubled(slots: &mut [Slot], n: usize) {
    let mask = slots.len() - 1;
    let mut placed = vec![0u64; slots.len().div_ceil(64)];
    let is_placed = |p: &[u64], i: usize| p[i / 64] >> (i % 64) & 1 != 0;
    for i in 0..n {
        while slots[i].hash != 0 && !is_placed(&placed, i) {
            let mut j = slots[i].hash as usize & mask;
            while slots[j].hash != 0 && is_placed(&placed, j) {
                j = (j + 1) & mask;
            }
            placed[j / 64] |= 1 << (j % 64);
            // `j` empty: slot `i` empties. `j` unplaced: its key comes to
            // `i`, to be placed next. `j == i`: the key stays.
            slots.swap(i, j);
        }
    }
}
