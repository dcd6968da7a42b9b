//! The key map's unit tests: every key reachable through growth, removal,
//! eviction and colliding hashes.

use super::*;

fn e(n: u64) -> Entry {
    Entry::new(
        Range {
            start: n,
            end: n + 1,
        },
        false,
    )
}

#[test]
fn keys_of_every_length_round_trip_and_colliding_hashes_stay_apart() {
    let mut m = KeyMap::default();
    let keys: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| {
            let mut k = i.to_le_bytes().to_vec();
            k.resize(i as usize % 200, b'x');
            k.extend(i.to_le_bytes());
            k
        })
        .collect();
    for (i, k) in keys.iter().enumerate() {
        // Every key under one of two hashes: only bytes tell them apart.
        assert!(!m.upsert(1 + (i as u64 % 2), k, e(i as u64)));
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(m.get(1 + (i as u64 % 2), k), Some(e(i as u64)));
        assert_eq!(m.get(1 + ((i as u64 + 1) % 2), k), None);
    }
    assert!(m.upsert(1, &keys[0], e(7)));
    assert_eq!(m.get(1, &keys[0]), Some(e(7)));
    assert_eq!(m.len(), keys.len());
    let mut seen: Vec<Vec<u8>> = m.iter().map(|(_, k, _)| k.to_vec()).collect();
    seen.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn removal_keeps_every_other_key_reachable() {
    let mut m = KeyMap::default();
    let key = |i: u64| format!("key-{i}").into_bytes();
    for i in 0..5000 {
        m.upsert(hash_key(&key(i)), &key(i), e(i));
    }
    for i in (0..5000).filter(|i| i % 3 == 0) {
        m.remove(hash_key(&key(i)), &key(i));
    }
    for i in 0..5000 {
        let want = (i % 3 != 0).then(|| e(i));
        assert_eq!(m.get(hash_key(&key(i)), &key(i)), want, "key {i}");
    }
    assert_eq!(m.len(), 5000 - 1667);
    assert_eq!(std::mem::size_of::<Slot>(), 32);
}

/// Keys crowded into few homes, so probe runs are long and wrap
/// around the table's end, and evictions cut them anywhere: every key
/// kept stays reachable from its home.
#[test]
fn keys_kept_by_a_retain_stay_reachable_when_probe_runs_wrap() {
    let mut rng = crate::rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    for round in 0..300 {
        let mut m = KeyMap::default();
        // 1024 slots; up to 700 keys whose homes sit in a few windows,
        // one of them at the end of the table.
        let n = 300 + next() % 400;
        let keys: Vec<(u64, Vec<u8>)> = (0..n)
            .map(|i| {
                let home = [1000, 1010, 5, 300][(next() % 4) as usize] + next() % 24;
                let h = ((next() >> 10) << 10) | (home & 1023);
                (h.max(1), format!("k{round}-{i}").into_bytes())
            })
            .collect();
        for (i, (h, k)) in keys.iter().enumerate() {
            m.upsert(*h, k, e(i as u64));
        }
        let hi = next();
        m.retain_upto(hi);
        for (i, (h, k)) in keys.iter().enumerate() {
            let want = (*h <= hi).then(|| e(i as u64));
            assert_eq!(m.get(*h, k), want, "round {round}, key {i}");
        }
    }
}

#[test]
fn retaining_the_lower_hashes_keeps_those_keys_reachable_and_drops_the_rest() {
    let mut m = KeyMap::default();
    let key = |i: u64| format!("a longer key, stored in the arena: {i}").into_bytes();
    for i in 0..6000 {
        m.upsert(hash_key(&key(i)), &key(i), e(i));
    }
    let hi = u64::MAX / 3;
    m.retain_upto(hi);
    let mut kept = 0;
    for i in 0..6000 {
        let h = hash_key(&key(i));
        let want = (h <= hi).then(|| e(i));
        kept += usize::from(want.is_some());
        assert_eq!(m.get(h, &key(i)), want, "key {i}");
    }
    assert_eq!(m.len(), kept);
    assert!(kept > 1000 && kept < 3000, "{kept}");
    // An eviction keeps the lower three quarters of the range held.
    let hi2 = m.evict(0, hi);
    assert_eq!(hi2, hi / 4 * 3);
    assert_eq!(m.len(), m.iter().filter(|(h, _, _)| *h <= hi2).count());
    assert!(
        m.len() * 2 > kept && m.len() < kept,
        "{} of {kept}",
        m.len()
    );
}

/// The inlined compare agrees with `==` at every length around its word
/// sizes, for equal slices and for a difference at every position.
#[test]
fn same_bytes_finds_a_difference_at_any_position_of_any_length() {
    for n in 0..=70usize {
        let a: Vec<u8> = (0..n).map(|i| (i * 7 + 1) as u8).collect();
        assert!(same_bytes(&a, &a.clone()), "len {n}");
        for at in 0..n {
            for bit in [0x01, 0x80] {
                let mut b = a.clone();
                b[at] ^= bit;
                assert!(!same_bytes(&a, &b), "len {n}, byte {at}");
                assert!(!same_bytes(&b, &a), "len {n}, byte {at}");
            }
        }
        let mut longer = a.clone();
        longer.push(0);
        assert!(
            !same_bytes(&a, &longer) && !same_bytes(&longer, &a),
            "len {n}"
        );
    }
}

/// Keys that share one hash and a length, and differ in a single byte at
/// any position, stay apart, for every length around the inline limit and
/// the compare's word sizes; the last write of each wins.
#[test]
fn keys_differing_in_one_byte_under_one_hash_stay_apart() {
    for n in 1..=40usize {
        let mut m = KeyMap::default();
        let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        let mut keys = vec![base.clone()];
        for at in 0..n {
            let mut k = base.clone();
            k[at] ^= 0x20;
            keys.push(k);
        }
        for round in 0..2u64 {
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(m.upsert(42, k, e(round * 1000 + i as u64)), round == 1);
            }
        }
        assert_eq!(m.len(), keys.len(), "len {n}");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(42, k), Some(e(1000 + i as u64)), "len {n}, key {i}");
        }
        let mut short = base.clone();
        short.pop();
        assert_eq!(m.get(42, &short), None, "len {n}");
    }
}

#[test]
fn a_map_with_room_holds_its_keys_without_growing_and_respects_the_budget() {
    let m = KeyMap::with_room(100_000, usize::MAX);
    assert_eq!(m.slots(), 1 << 18, "100k keys at 3/4 load");
    let mut m = KeyMap::with_room(5000, usize::MAX);
    let slots = m.slots();
    for i in 0..5000u64 {
        let k = format!("key-{i}");
        m.upsert(hash_key(k.as_bytes()), k.as_bytes(), Entry::default());
    }
    assert_eq!((m.slots(), m.len()), (slots, 5000), "it grew");
    // No larger than growing under the budget reaches (48 bytes a slot at
    // a doubling's peak), and none below the first table.
    assert_eq!(KeyMap::with_room(1 << 30, 48 << 20).slots(), 1 << 20);
    assert_eq!(KeyMap::with_room(1 << 30, (48 << 20) - 1).slots(), 1 << 19);
    assert_eq!(KeyMap::with_room(3, usize::MAX).slots(), MIN_SLOTS);
    assert_eq!(KeyMap::with_room(0, usize::MAX).slots(), 0);
    assert_eq!(KeyMap::with_room(1 << 30, 1000).slots(), 0);
}

/// Growth past a huge table doubles it in place (`rehash_doubled`): every
/// key stays reachable, with a fifth of them under hashes whose homes are
/// the last slots of any table, so probe runs wrap in the old table and in
/// the new one, and whose equal hashes only the bytes tell apart.
#[test]
fn keys_stay_reachable_when_the_table_doubles_in_place_and_runs_wrap() {
    let mut m = KeyMap::default();
    let key = |i: u64| format!("k{i}").into_bytes();
    let hash = |i: u64| match i % 5 {
        0 => u64::MAX - i % 37,
        _ => hash_key(&key(i)),
    };
    let n = 400_000;
    for i in 0..n {
        assert!(!m.upsert(hash(i), &key(i), e(i)), "key {i}");
    }
    assert!(m.slots() * std::mem::size_of::<Slot>() > 4 * crate::io::table::HUGE);
    for i in 0..n {
        assert_eq!(m.get(hash(i), &key(i)), Some(e(i)), "key {i}");
    }
    assert_eq!(m.len(), n as usize);
    assert_eq!(m.iter().count(), n as usize);
}

/// `rehash_doubled` over fake tables: an old table of 8 slots with a run
/// wrapping its end, doubled, puts each key at the slot a fresh insert
/// order would allow: reachable from its home through full slots only.
#[test]
fn a_doubled_table_rehashes_each_key_reachable_from_its_home() {
    for seed in 0..500u64 {
        let mut rng = crate::rng::XorShift::new(seed + 1);
        let n = 8;
        let mut m = KeyMap {
            slots: Table::zeroed(n),
            ..KeyMap::default()
        };
        let keys = 1 + rng.next_u64() as usize % 5;
        for k in 0..keys as u64 {
            // Homes crowd the last slots; the bit above the old mask
            // picks the new half.
            let h = 1 + (rng.next_u64() % 4 + 4) + (rng.next_u64() % 2) * 8 + (k << 8);
            m.upsert(h, &k.to_le_bytes(), e(k));
        }
        let mut big = Table::<Slot>::zeroed(2 * n);
        big[..n].copy_from_slice(&m.slots);
        rehash_doubled(&mut big, n);
        m.slots = big;
        for k in 0..keys as u64 {
            let h = m
                .iter()
                .find(|(_, key, _)| *key == k.to_le_bytes())
                .map(|(h, _, _)| h);
            let h = h.unwrap_or_else(|| panic!("seed {seed}: key {k} lost"));
            assert_eq!(
                m.get(h, &k.to_le_bytes()),
                Some(e(k)),
                "seed {seed} key {k}"
            );
        }
        assert_eq!(m.iter().count(), keys, "seed {seed}");
    }
}
