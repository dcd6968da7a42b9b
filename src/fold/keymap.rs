//! The fold's one key map: encoded key → the range of its last write.
//!
//! Every fold (single-file compaction, segmented merge, `replay`, the
//! verification before a swap) keeps its keys here. It is built for the
//! scan's access pattern, one lookup-or-insert per keyed line:
//! - the key's hash is computed once, by the caller ([`hash_key`]), and
//!   passed to every operation, so a key is hashed once per line however
//!   many maps (one per scan thread) it is looked up in;
//! - open addressing with linear probing over 32-byte slots (two per cache
//!   line: the table is cache-line aligned), each holding the full 64-bit
//!   hash: a probe compares hashes, then lengths, and key bytes only when
//!   both are equal (an inlined word compare, [`same_bytes`]), so a lookup
//!   touches one slot and, for a long key, its bytes;
//! - keys up to 7 bytes (`n` + a short number, most ids) live inside the
//!   slot; longer ones in one arena (`Vec<u8>`), not one allocation each;
//! - the slots are on huge pages ([`crate::io::table`]): lookups land at
//!   random, and on small pages most of them also missed the TLB (the
//!   arena is not: advising it made whole 2 MiB pages of its unused
//!   capacity resident, for no measurable gain);
//! - [`KeyMap::prefetch`] lets the scan ask for a slot's cache lines a few
//!   lines before it is needed, and [`KeyMap::prefetch_key`] then for the
//!   key's bytes in the arena.
//!
//! Invariants:
//! - Equality is exact: a 64-bit hash match is confirmed by the key's bytes
//!   (a collision must never merge two keys: it would drop a live one).
//! - A slot's `hash` is never 0 (0 marks an empty slot; a key hashing to 0
//!   is stored as 1, which only costs a byte compare on a collision).
//! - At most 3/4 of the slots are used, so probe runs stay short.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use crate::io::ranges::Range;
use crate::io::table::{Table, Zeroable};

/// The last write of a key: its line's range and whether it deletes, in 16
/// bytes (the flag is the top bit of `end`; no file reaches 2^63 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    start: u64,
    end_tomb: u64,
}

const TOMB: u64 = 1 << 63;

impl Entry {
    pub(crate) fn new(range: Range, tomb: bool) -> Self {
        debug_assert!(range.end < TOMB);
        Entry {
            start: range.start,
            end_tomb: range.end | if tomb { TOMB } else { 0 },
        }
    }
    pub(crate) fn range(&self) -> Range {
        Range {
            start: self.start,
            end: self.end_tomb & !TOMB,
        }
    }
    pub(crate) fn tomb(&self) -> bool {
        self.end_tomb & TOMB != 0
    }
}

/// The hash of an encoded key, the same in every map of the process (the
/// seed is random per process, so crafted keys cannot aim at collisions
/// across runs). Never 0.
#[inline]
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    static STATE: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    STATE.get_or_init(Default::default).hash_one(key).max(1)
}

/// A slot's key: inline (byte 7 is `0x80 | len`, the bytes first), or
/// the key's offset in the arena (7 bytes, little-endian; byte 7 is 0),
/// where it is stored as a LEB128 length and its bytes.
type KeyRef = [u8; 8];
const INLINE: u8 = 0x80;
const INLINE_MAX: usize = 7;
/// How many slots of a probe run [`KeyMap::prefetch_key`] looks at (the
/// two cache lines [`KeyMap::prefetch`] asked for).
const PREFETCH_RUN: usize = 4;

/// `a == b`, inlined up to 32 bytes: a few word compares, no call into
/// libc's `memcmp` (the lookup of every keyed line, and the op's compare
/// with the delete values, paid for one).
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Words from the front and from the back, overlapping in the middle:
    // every byte is in at least one of them.
    let w4 = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    let w8 = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => (w4(a, 0) ^ w4(b, 0)) | (w4(a, n - 4) ^ w4(b, n - 4)) == 0,
        8..=16 => (w8(a, 0) ^ w8(b, 0)) | (w8(a, n - 8) ^ w8(b, n - 8)) == 0,
        17..=32 => {
            (w8(a, 0) ^ w8(b, 0))
                | (w8(a, 8) ^ w8(b, 8))
                | (w8(a, n - 16) ^ w8(b, n - 16))
                | (w8(a, n - 8) ^ w8(b, n - 8))
                == 0
        }
        _ => a == b,
    }
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    hash: u64,
    key: KeyRef,
    entry: Entry,
}

// SAFETY: all-zero bytes are the empty slot (`hash` 0), and a slot is
// plain data.
unsafe impl Zeroable for Slot {}

/// See the module doc.
#[derive(Default)]
pub(crate) struct KeyMap {
    slots: Table<Slot>,
    arena: Vec<u8>,
    len: usize,
}

fn inline(key: &[u8]) -> Option<KeyRef> {
    (key.len() <= INLINE_MAX).then(|| {
        let mut b = [0u8; 8];
        b[..key.len()].copy_from_slice(key);
        b[7] = INLINE | key.len() as u8;
        b
    })
}

/// The fewest slots a map grows to (its first table).
const MIN_SLOTS: usize = 1024;

impl KeyMap {
    /// An empty map with room for `keys` keys without growing, but no
    /// larger than a map grows to under `budget` bytes (a doubling to `s`
    /// slots needs `48 * s` bytes at its peak, [`Self::grow_peak_bytes`]).
    /// `keys` 0 is an empty map that grows from [`MIN_SLOTS`]. The caller
    /// bounds `keys` by what its input could hold (an unbounded `budget`
    /// does not).
    pub(crate) fn with_room(keys: u64, budget: usize) -> Self {
        let want = usize::try_from(keys.saturating_mul(4) / 3 + 1).unwrap_or(usize::MAX);
        let most = budget / (3 * std::mem::size_of::<Slot>() / 2);
        if keys == 0 || most < MIN_SLOTS {
            return Self::default();
        }
        let slots = want
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .min(1 << most.ilog2())
            .max(MIN_SLOTS);
        KeyMap {
            slots: Table::zeroed(slots),
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table's size in slots (empty ones included).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Ask for the cache lines of `hash`'s first slots: its home's line
    /// and the next, where most probe runs end.
    #[inline(always)]
    pub(crate) fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if !self.slots.is_empty() {
            let i = hash as usize & (self.slots.len() - 1);
            // Slots are 32 bytes in a cache-aligned table: two per line.
            let next = (i | 1) + 1;
            // SAFETY: `i` is in bounds and `next` at most one past the end
            // (`wrapping_add`: never dereferenced); a prefetch reads nothing.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                let p = self.slots.as_ptr();
                _mm_prefetch(p.add(i).cast::<i8>(), _MM_HINT_T0);
                _mm_prefetch(p.wrapping_add(next).cast::<i8>(), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// Second stage of a prefetch: find `hash` in the first slots of its
    /// probe run (asked for earlier, so likely cached now) and, if its key
    /// is in the arena, ask for the key's bytes, which the lookup will
    /// compare. A hint only: a key further down the run is not asked for.
    #[inline(always)]
    pub(crate) fn prefetch_key(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if !self.slots.is_empty() && !self.arena.is_empty() {
            let mask = self.slots.len() - 1;
            let home = hash as usize & mask;
            for i in home..home + PREFETCH_RUN {
                let s = &self.slots[i & mask];
                if s.hash == 0 || (s.hash == hash && s.key[7] & INLINE != 0) {
                    return;
                }
                if s.hash == hash {
                    let at = (u64::from_le_bytes(s.key) as usize).min(self.arena.len() - 1);
                    // SAFETY: `at` is in bounds of the arena, `at + 31` at
                    // most past it (`wrapping_add`: never dereferenced); a
                    // prefetch reads nothing.
                    unsafe {
                        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                        let p = self.arena.as_ptr().add(at);
                        _mm_prefetch(p.cast::<i8>(), _MM_HINT_T0);
                        _mm_prefetch(p.wrapping_add(31).cast::<i8>(), _MM_HINT_T0);
                    }
                    return;
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    fn key_of<'m>(&'m self, s: &'m Slot) -> &'m [u8] {
        if s.key[7] & INLINE != 0 {
            return &s.key[..(s.key[7] & 0x0f) as usize];
        }
        Self::arena_key(&self.arena, s.key)
    }

    fn arena_key(arena: &[u8], key: KeyRef) -> &[u8] {
        let mut at = u64::from_le_bytes(key) as usize;
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = arena[at];
            at += 1;
            n |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        &arena[at..at + n]
    }

    /// The slot holding `key`, or the empty slot where it would go.
    #[inline]
    fn probe(&self, hash: u64, key: &[u8]) -> (usize, bool) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.hash == 0 {
                return (i, false);
            }
            if s.hash == hash && same_bytes(self.key_of(s), key) {
                return (i, true);
            }
            i = (i + 1) & mask;
        }
    }

    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        match self.probe(hash, key) {
            (i, true) => Some(self.slots[i].entry),
            _ => None,
        }
    }

    /// Set `key`'s entry; returns whether the key was already there.
    #[inline]
    pub(crate) fn upsert(&mut self, hash: u64, key: &[u8], entry: Entry) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let (i, found) = self.probe(hash, key);
        if !found {
            let k = inline(key).unwrap_or_else(|| self.store(key));
            self.slots[i] = Slot {
                hash,
                key: k,
                entry,
            };
            self.len += 1;
        } else {
            self.slots[i].entry = entry;
        }
        found
    }

    /// Remove `key` (backward-shift deletion, so no grave slots). Its
    /// arena bytes, if any, stay until the map is dropped.
    pub(crate) fn remove(&mut self, hash: u64, key: &[u8]) {
        if self.len == 0 {
            return;
        }
        let (mut i, true) = self.probe(hash, key) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let h = self.slots[j].hash;
            if h == 0 {
                break;
            }
            // Slot j may move to i if its home is not in (i, j].
            let home = h as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(i) & mask) {
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.slots[i] = Slot::default();
        self.len -= 1;
    }

    fn store(&mut self, key: &[u8]) -> KeyRef {
        let at = (self.arena.len() as u64).to_le_bytes();
        assert!(at[7] == 0, "key arena past 2^56 bytes");
        let mut n = key.len();
        while n >= 0x80 {
            self.arena.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.arena.push(n as u8);
        self.arena.extend_from_slice(key);
        at
    }

    fn grow(&mut self) {
        let n = self.slots.len();
        if self.slots.double_in_place() {
            return rehash_doubled(&mut self.slots, n);
        }
        let cap = (n * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, Table::zeroed(cap));
        let mask = cap - 1;
        for &s in old.iter().filter(|s| s.hash != 0) {
            let mut i = s.hash as usize & mask;
            while self.slots[i].hash != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Whether the next insert of a new key doubles the slots.
    pub(crate) fn needs_grow(&self) -> bool {
        (self.len + 1) * 4 > self.slots.len() * 3
    }

    /// Whether the map is past half full, where a scan that may still
    /// double it does so ([`Self::grow_early`]): at 3/4 an insert probes
    /// 8.5 slots on average and a lookup 2.5, at 1/2 2.5 and 1.5. On the
    /// standard workload the scan spent ~45 ms of CPU in the fuller map.
    pub(crate) fn past_half(&self) -> bool {
        (self.len + 1) * 2 > self.slots.len()
    }

    /// Double the slots now, before [`Self::needs_grow`] would.
    pub(crate) fn grow_early(&mut self) {
        self.grow();
    }

    /// The bytes the map holds at the peak of its next growth: the old
    /// slots, the doubled ones, and the arena. A doubling in place holds
    /// only the doubled ones; the bound is the copy's, which any table
    /// falls back to where it cannot grow in place.
    pub(crate) fn grow_peak_bytes(&self) -> usize {
        3 * self.slots.len().max(512) * std::mem::size_of::<Slot>() + self.arena.capacity()
    }

    /// The map, holding the keys whose hash is in `[lo, hi]`, is full:
    /// keep only those up to a lower limit, and return it. The limit keeps
    /// three quarters of the range (hashes are uniform, so about three
    /// quarters of the keys): the map refills and evicts again sooner than
    /// with a half, but ends its pass fuller (between 9/16 and 3/4 of its
    /// slots instead of 3/8 to 3/4), so fewer passes cover every hash.
    #[cold]
    pub(crate) fn evict(&mut self, lo: u64, hi: u64) -> u64 {
        let hi = lo + (hi - lo) / 4 * 3;
        self.retain_upto(hi);
        hi
    }

    /// Keep only the keys whose hash is at most `hi`, in place (no second
    /// table): the others' slots are emptied, then every key is placed
    /// again from its home slot, going round from an empty slot so that
    /// each probe run is rebuilt in order. Surviving long keys move to a
    /// fresh, smaller arena.
    ///
    /// The sweep starts after a slot that was empty *before* the clearing:
    /// no probe run crosses it, so every key's home comes before the key
    /// in the sweep. (Starting after a slot emptied by the clearing broke
    /// that: a run that crossed the evicted key wrapped around the sweep,
    /// and a key placed at its end could be cut off from its home by a
    /// later move: the fold kept a superseded line.)
    pub(crate) fn retain_upto(&mut self, hi: u64) {
        let n = self.slots.len();
        // Under 3/4 full, so there is one.
        let Some(e) = self.slots.iter().position(|s| s.hash == 0) else {
            return;
        };
        for s in self.slots.iter_mut().filter(|s| s.hash > hi) {
            *s = Slot::default();
            self.len -= 1;
        }
        for step in 1..=n {
            let i = (e + step) & (n - 1);
            if self.slots[i].hash == 0 {
                continue;
            }
            let s = std::mem::take(&mut self.slots[i]);
            let mut j = s.hash as usize & (n - 1);
            while self.slots[j].hash != 0 {
                j = (j + 1) & (n - 1);
            }
            self.slots[j] = s;
        }
        let old = std::mem::take(&mut self.arena);
        let mut slots = std::mem::take(&mut self.slots);
        // The new arena at its exact size: a doubling Vec would count up
        // to twice the bytes against the budget.
        let need: usize = slots
            .iter()
            .filter(|s| s.hash != 0 && s.key[7] & INLINE == 0)
            .map(|s| {
                let n = Self::arena_key(&old, s.key).len();
                n + (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
            })
            .sum();
        self.arena.reserve_exact(need);
        for s in slots
            .iter_mut()
            .filter(|s| s.hash != 0 && s.key[7] & INLINE == 0)
        {
            let key = Self::arena_key(&old, s.key);
            s.key = self.store(key);
        }
        self.slots = slots;
    }
}

mod doubling;
mod iter;
use doubling::rehash_doubled;

#[cfg(test)]
mod tests;
