//! Stage 1's bit helpers and classifiers against their scalar definitions.

use super::*;
use proptest::prelude::*;

proptest! {
    /// The SIMD classifier and the portable table agree on every byte.
    #[test]
    fn simd_and_scalar_byte_classes_agree(bytes in prop::collection::vec(any::<u8>(), 64)) {
        let block: &[u8; 64] = bytes.as_slice().try_into().unwrap();
        let (a, b) = (masks(block), masks_scalar(block));
        let bits = |m: Masks| (m.quote, m.backslash, m.control, m.space, m.op, m.high, m.newline);
        prop_assert_eq!(bits(a), bits(b));
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2 was detected at run time.
            let c = unsafe { masks_avx2(block) };
            prop_assert_eq!(bits(c), bits(b));
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: AVX-512 F and BW were detected at run time.
            let c = unsafe { masks_avx512(block) };
            prop_assert_eq!(bits(c), bits(b));
        }
    }

    /// The carry-less multiply computes the shift-xor chain's prefix
    /// XOR, and the chain is its definition (bit k = parity of bits 0..=k).
    #[test]
    fn clmul_prefix_xor_matches_the_shift_chain(x in any::<u64>()) {
        let parity = (0..64).fold(0u64, |acc, k| acc | ((x & (u64::MAX >> (63 - k))).count_ones() as u64 & 1) << k);
        prop_assert_eq!(prefix_xor(x), parity);
        prop_assert_eq!(prefix_xor_with::<false>(x), parity);
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: PCLMULQDQ was detected at run time.
            prop_assert_eq!(unsafe { prefix_xor_clmul(x) }, parity);
        }
    }
}

#[test]
fn escaped_characters_follow_odd_backslash_runs() {
    let line = br#"\" \\" \\\" x"#;
    let mut block = [b' '; 64];
    block[..line.len()].copy_from_slice(line);
    let m = masks_scalar(&block);
    let mut carry = 0;
    let e = escaped(m.backslash, &mut carry);
    let got: Vec<usize> = (0..64).filter(|k| e >> k & 1 == 1).collect();
    // `\"` escapes the quote at 1; `\\` escapes the backslash at 4;
    // `\\\"` escapes the backslash at 8 and the quote at 10.
    assert_eq!(got, vec![1, 4, 8, 10]);
}

/// Every byte value, at every offset class of a block, gets the same
/// classes from the SIMD classifiers as from the table (the nibble lookup
/// of the AVX2 path has two near misses, 0x0C and 0x1A, that must not
/// count as structural).
#[test]
fn every_byte_value_gets_the_table_s_classes() {
    let bits = |m: Masks| {
        (
            m.quote,
            m.backslash,
            m.control,
            m.space,
            m.op,
            m.high,
            m.newline,
        )
    };
    for rot in 0..64u16 {
        for chunk in 0..4u16 {
            let block: [u8; 64] =
                std::array::from_fn(|k| ((k as u16 + rot) % 64 + 64 * chunk) as u8);
            let want = bits(masks_scalar(&block));
            assert_eq!(bits(masks(&block)), want, "SSE2 on block {block:?}");
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: AVX2 was detected at run time.
                assert_eq!(
                    bits(unsafe { masks_avx2(&block) }),
                    want,
                    "AVX2 on block {block:?}"
                );
            }
            #[cfg(target_arch = "x86_64")]
            if has_avx512() {
                // SAFETY: AVX-512 F and BW were detected at run time.
                assert_eq!(
                    bits(unsafe { masks_avx512(&block) }),
                    want,
                    "AVX-512 on block {block:?}"
                );
            }
        }
    }
}

proptest! {
    /// The AVX2 flattening pushes the same entries as the bit loop, for
    /// masks of every density, after entries already in the vector.
    #[test]
    fn spread_push_matches_the_bit_loop(
        a in any::<u64>(),
        b in any::<u64>(),
        density in 0usize..4,
        base in 0u32..u32::MAX - 64,
        before in 0usize..20,
    ) {
        // Sparse to dense: a & b (1/4 of the bits), a, a | b (3/4), all.
        let bits = [a & b, a, a | b, u64::MAX][density];
        let want: Vec<u32> = (0..64).filter(|k| bits >> k & 1 == 1).map(|k| base + k).collect();
        let mut slow = vec![7u32; before];
        reserve_entries(&mut slow, 64);
        push_bits(&mut slow, base, bits);
        prop_assert_eq!(&slow[before..], &want[..]);
        let mut fast = vec![7u32; before];
        reserve_entries(&mut fast, 64);
        push_bits_with::<false>(&mut fast, base, bits);
        prop_assert_eq!(&fast, &slow);
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            let mut fast = vec![7u32; before];
            reserve_entries(&mut fast, 64);
            // SAFETY: AVX2 and POPCNT were detected at run time; the room
            // is reserved.
            unsafe { push_bits_spread(&mut fast, base, bits) };
            prop_assert_eq!(&fast, &slow);
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            let mut fast = vec![7u32; before];
            reserve_entries(&mut fast, 64);
            // SAFETY: AVX-512 F and POPCNT were detected at run time; the
            // room is reserved.
            unsafe { push_bits_compress(&mut fast, base, bits) };
            prop_assert_eq!(&fast, &slow);
        }
    }
}
