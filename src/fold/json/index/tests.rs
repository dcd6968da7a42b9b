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
