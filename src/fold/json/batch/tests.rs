//! The batch's stage 1 and scan against the per-line ones, line by line:
//! the same index entries, escapes and verdict from stage 1, and the same
//! result (spans, or the reason a line is not valid) from the scan.

use super::*;
use crate::fold::json::index::build;
use crate::fold::json::tests::json_value;
use proptest::prelude::*;

const PTRS: [&str; 4] = ["/a", "/b/0", "/a/b", "/0"];

/// The portable path (no AVX2), and the AVX2 and AVX-512 paths where the
/// CPU has them, build the same index as `ix` (the batch took the best).
fn every_path_builds_the_same_index(bytes: &[u8], ix: &BatchIndex) -> Result<(), TestCaseError> {
    let mut portable = BatchIndex::default();
    build_batch_with::<false, false>(bytes, &mut portable);
    prop_assert_eq!(&portable.pos, &ix.pos);
    prop_assert_eq!(&portable.marks, &ix.marks);
    prop_assert_eq!(&portable.escapes, &ix.escapes);
    prop_assert_eq!(portable.utf8_upto, ix.utf8_upto);
    #[cfg(target_arch = "x86_64")]
    for (has, build) in [
        (
            has_avx2(),
            build_batch_avx2 as unsafe fn(&[u8], &mut BatchIndex),
        ),
        (has_avx512(), build_batch_avx512),
    ] {
        if has {
            let mut simd = BatchIndex::default();
            // SAFETY: the CPU has the path's features (asked just above).
            unsafe { build(bytes, &mut simd) };
            prop_assert_eq!(&simd.pos, &ix.pos);
            prop_assert_eq!(&simd.marks, &ix.marks);
            prop_assert_eq!(&simd.escapes, &ix.escapes);
        }
    }
    Ok(())
}

/// Index `lines` (each without `\n`) as one batch, and check every line
/// against [`build`] and [`Scanner::scan`] on the line alone.
fn check(lines: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    let mut batch = Batch::default();
    batch.index(&bytes);
    prop_assert_eq!(batch.lines(), lines.len());
    let ix = &batch.ix;
    every_path_builds_the_same_index(&bytes, ix)?;
    let ptrs = Pointers::new(&PTRS).unwrap();
    let (mut pos, mut esc) = (Vec::new(), Vec::new());
    for (j, line) in lines.iter().enumerate() {
        let r = batch.line(j);
        prop_assert_eq!(&bytes[r.clone()], &line[..]);
        let mark = ix.marks[j];
        let k0 = if j == 0 {
            0
        } else {
            ix.marks[j - 1].k_end as usize
        };
        let alone = build(line, &mut pos, &mut esc);
        prop_assert_eq!(
            mark.ok,
            alone.is_some(),
            "stage 1 verdicts differ on {:?}",
            line
        );
        if alone.is_some() {
            let shifted: Vec<u32> = ix.pos[k0..mark.k_end as usize]
                .iter()
                .map(|p| p - r.start as u32)
                .collect();
            prop_assert_eq!(&shifted, &pos, "entries differ on {:?}", line);
            for i in 0..line.len() {
                let at = r.start + i;
                let ours = ix.escapes[at / 64] >> (at % 64) & 1;
                prop_assert_eq!(ours, esc[i / 64] >> (i % 64) & 1, "escape bit {}", i);
            }
        }
        if r.end <= ix.utf8_upto {
            prop_assert!(std::str::from_utf8(line).is_ok());
        }
        let (mut o1, mut o2) = (vec![None; PTRS.len()], vec![None; PTRS.len()]);
        let indexed = Indexed {
            bytes: &bytes,
            batch: &batch,
            line: j,
        };
        let fast = Scanner::new().scan_indexed(indexed, &ptrs, &mut o1);
        let one = Scanner::new().scan(line, &ptrs, &mut o2);
        prop_assert_eq!(
            &fast,
            &one,
            "scans differ on {:?}",
            String::from_utf8_lossy(line)
        );
        prop_assert_eq!(&o1, &o2);
    }
    Ok(())
}

/// Pieces of damaged lines: every class of byte stage 1 tells apart,
/// escapes good and bad, and UTF-8 good and bad.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            &b"\""[..],
            b"\\",
            b"\\\"",
            b"\\\\",
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b" ",
            b"\t",
            b"\r",
            b"a",
            b"1",
            b"-2.5e3",
            b"true",
            b"null",
            b"\\u00e9",
            b"\\u12",
            b"\\x",
            b"\x01",
            // The AVX2 nibble lookup's near misses (as `,` and `:`).
            b"\x0c",
            b"\x1a",
            b"\x7f",
            b"\xc3\xa9",
            b"\xff",
            b"\xe2\x82",
            b"\"a\":",
            b"\"\"",
        ])
        .prop_map(<[u8]>::to_vec),
        "[a-z ]{0,70}".prop_map(String::into_bytes),
    ]
}

/// A line: a valid document, one with damage spliced in, or pieces.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(String::into_bytes),
        (
            json_value(),
            any::<prop::sample::Index>(),
            prop::collection::vec(piece(), 1..3)
        )
            .prop_map(|(doc, at, junk)| {
                let mut b = doc.into_bytes();
                let at = at.index(b.len() + 1);
                b.splice(at..at, junk.concat());
                b
            }),
        prop::collection::vec(piece(), 0..12).prop_map(|v| v.concat()),
    ]
}

proptest! {
    /// Batches of random lines, shifted by a first line of any length so
    /// that every line meets every block boundary over the runs.
    #[test]
    fn batch_and_per_line_scans_agree_on_every_line(
        pad in 0usize..130,
        lines in prop::collection::vec(line(), 0..8),
    ) {
        let mut all = vec![vec![b' '; pad]];
        all.extend(lines);
        check(&all)?;
    }
}

/// A line left inside a string at its `\n` is bad, and the next starts
/// outside any string, with the `\n` at every position of a block.
#[test]
fn a_line_left_inside_a_string_does_not_leak_into_the_next() {
    for pad in 0..130 {
        let open = format!("{{\"a\":\"{}", "x".repeat(pad)).into_bytes();
        let lines = [
            open.clone(),
            br#"{"a":"y","b":[1]}"#.to_vec(),
            [&open[..], b"\\"].concat(),
            br#""a":1}"#.to_vec(),
            br#"{"a":{"b":"z\"q"}}"#.to_vec(),
        ];
        check(&lines).unwrap();
    }
}

/// Lines of length 0, 63, 64 and 65 (and around), valid and not, with
/// control bytes and invalid UTF-8 at the block boundaries.
#[test]
fn lines_at_block_lengths_agree() {
    let mut lines = Vec::new();
    for n in [0usize, 1, 62, 63, 64, 65, 66, 127, 128, 129] {
        for (pre, post) in [
            ("{\"a\":\"", "\"}"),
            ("[\"", "\"]"),
            ("{\"a\":\"\\u00e9", "\"}"),
        ] {
            let fill = n.saturating_sub(pre.len() + post.len());
            lines.push(format!("{pre}{}{post}", "x".repeat(fill)).into_bytes());
            for bad in [&b"\x01"[..], b"\xff", b"\xe2\x82", b"\xc3\xa9", b"\\q"] {
                let mut l = lines.last().unwrap().clone();
                let at = (63usize.saturating_sub(1)).min(l.len().saturating_sub(post.len()));
                l.splice(at..at, bad.iter().copied());
                lines.push(l);
            }
        }
        lines.push(" ".repeat(n).into_bytes());
        lines.push("1".repeat(n.max(1)).into_bytes());
    }
    check(&lines).unwrap();
}
