use super::*;

/// The verification's planned side reads through maps: the bytes it
/// hands over must be exactly what `copy_ranges` reads, for ranges that
/// cross window edges, sit far apart, or are longer than a window; and a
/// range past the file's end is an error, not zeros.
#[test]
fn copy_ranges_mapped_hands_over_what_copy_ranges_reads() {
    let mut text = Vec::new();
    let mut x = 99u64;
    while text.len() < 3 * (4 << 20) + 7_777 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push(b'a' + (x >> 59) as u8);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, &text).unwrap();
    let f = File::open(&path).unwrap();
    let n = text.len() as u64;
    let w = 4u64 << 20;
    let ranges = [
        Range { start: 0, end: 10 },
        Range {
            start: 4_000,
            end: 4_100,
        },
        Range {
            start: w - 50,
            end: w + 50,
        },
        Range {
            start: w + 60_000,
            end: 2 * w + 5,
        },
        Range {
            start: 2 * w + 100,
            end: 3 * w + 200,
        },
        Range {
            start: n - 3,
            end: n,
        },
    ];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert_eq!(
        copy_ranges_mapped(&f, &ranges, &mut a).unwrap(),
        copy_ranges(&f, &ranges, &mut b).unwrap()
    );
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the bytes differ");
    let past = [Range {
        start: n - 3,
        end: n + 1,
    }];
    let e = copy_ranges_mapped(&f, &past, &mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
}

#[test]
fn write_ranges_at_equals_plain_concatenation() {
    // Varied line lengths, some longer than the test buffer, and gaps
    // both under and over the merge threshold.
    let mut text = Vec::new();
    let mut lines = Vec::new();
    let mut x = 12345u64;
    for i in 0..3000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = if i % 500 == 3 {
            5000
        } else {
            (x >> 33) as usize % 300
        };
        let start = text.len() as u64;
        text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
        text.push(b'\n');
        lines.push(Range {
            start,
            end: text.len() as u64,
        });
    }
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&text).unwrap();
    for keep_every in [1usize, 2, 7, 40] {
        let ranges: Vec<Range> = coalesce(lines.iter().copied().step_by(keep_every).collect());
        let want: Vec<u8> = ranges
            .iter()
            .flat_map(|r| text[r.start as usize..r.end as usize].iter().copied())
            .collect();
        for threads in [1, 2, 3, 16] {
            for (buf, gap) in [(1024, 0), (4096, 512), (BUF, READ_GAP)] {
                // Small shares, so the parts and threads are exercised.
                let out = tempfile::tempfile().unwrap();
                let n = write_ranges_at_with(&f, &ranges, &out, threads, (buf, gap), 1024).unwrap();
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut &out, &mut got).unwrap();
                assert_eq!(n, want.len() as u64);
                assert!(
                    got == want,
                    "parts: keep 1/{keep_every}, {threads} threads, buf {buf}"
                );
                let out = tempfile::tempfile().unwrap();
                let n = write_ranges_at(&f, &ranges, &out, threads).unwrap();
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut &out, &mut got).unwrap();
                assert_eq!(n, want.len() as u64);
                assert!(
                    got == want,
                    "keep 1/{keep_every}, {threads} threads, buf {buf}"
                );
                // The read path (the copy elsewhere than Linux).
                let out = tempfile::tempfile().unwrap();
                let n = copy_share_read(&f, &ranges, &out, 0, buf, gap).unwrap();
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut &out, &mut got).unwrap();
                assert_eq!(n, want.len() as u64);
                assert!(got == want, "read path: keep 1/{keep_every}, buf {buf}");
            }
        }
    }
}

#[test]
fn write_ranges_at_reports_a_log_that_shrank() {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(b"{}\n{}\n").unwrap();
    let out = tempfile::tempfile().unwrap();
    let e = write_ranges_at(&f, &[Range { start: 3, end: 10 }], &out, 2).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn output_parts_cover_the_ranges_in_order_at_their_offsets() {
    let ranges: Vec<Range> = (0..50u64)
        .map(|i| Range {
            start: i * 1000,
            end: i * 1000 + 1 + (i * 37) % 400,
        })
        .collect();
    let total: u64 = ranges.iter().map(Range::len).sum();
    for n in [1, 2, 7, 16, 50, 200] {
        let parts = split_by_output(&ranges, total, n);
        assert!(parts.len() <= n && !parts.is_empty(), "{n} parts");
        let mut at = 0;
        let mut joined = Vec::new();
        for (part, out_at) in &parts {
            assert!(!part.is_empty(), "{n} parts: an empty one");
            assert_eq!(*out_at, at, "{n} parts");
            at += part.iter().map(Range::len).sum::<u64>();
            joined.extend_from_slice(part);
        }
        assert_eq!((joined, at), (ranges.clone(), total), "{n} parts");
    }
    assert!(split_by_output(&[], 0, 4).is_empty());
}

/// The eager form the lazy [`split_at_newlines`] replaced.
fn split_eager(ranges: &[Range], newlines: &[u64]) -> Vec<(Range, bool)> {
    let mut out = Vec::new();
    let mut n = 0;
    for r in ranges {
        let mut at = r.start;
        while n < newlines.len() && newlines[n] <= at {
            n += 1;
        }
        while n < newlines.len() && newlines[n] <= r.end {
            out.push((
                Range {
                    start: at,
                    end: newlines[n],
                },
                true,
            ));
            at = newlines[n];
            n += 1;
        }
        if at < r.end {
            out.push((
                Range {
                    start: at,
                    end: r.end,
                },
                false,
            ));
        }
    }
    out
}

#[test]
fn pieces_at_newlines_are_the_ranges_cut_at_each_newline() {
    let mut rng = crate::rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut next = |m: u64| rng.below(m);
    for _ in 0..2000 {
        let (mut ranges, mut at) = (Vec::new(), 0);
        for _ in 0..next(6) {
            let start = at + next(3);
            let end = start + 1 + next(5);
            ranges.push(Range { start, end });
            at = end;
        }
        let mut newlines: Vec<u64> = (0..next(6)).map(|_| next(at + 2)).collect();
        newlines.sort_unstable();
        newlines.dedup();
        let lazy: Vec<_> = split_at_newlines(&ranges, &newlines).collect();
        assert_eq!(
            lazy,
            split_eager(&ranges, &newlines),
            "{ranges:?} {newlines:?}"
        );
        let bytes: u64 = lazy.iter().map(|(r, _)| r.len()).sum();
        assert_eq!(bytes, ranges.iter().map(Range::len).sum::<u64>());
    }
}
