//! The spans' fold, location and writes over several files.

use super::*;
use std::io::Write;
use std::os::unix::fs::FileExt;

fn file(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
    let mut t = tempfile::NamedTempFile::new().unwrap();
    t.write_all(bytes).unwrap();
    let f = File::open(t.path()).unwrap();
    (t, f)
}

fn read_all(f: &File, n: u64) -> Vec<u8> {
    let mut v = vec![0; n as usize];
    f.read_exact_at(&mut v, 0).unwrap();
    v
}

/// A late write of key 1 sits between the live log's old and new lines:
/// the newer line after the swap point wins, the late line beats the
/// one before it.
#[test]
fn late_span_folds_at_the_swap_point() {
    let spec = FoldSpec::new(&["/k".into()], None, &[]).unwrap();
    let live = b"{\"k\":1,\"v\":\"old\"}\n{\"k\":2,\"v\":\"old\"}\n{\"k\":1,\"v\":\"new\"}\n";
    let p = 36; // after the first two lines
    assert_eq!(live[p - 1], b'\n');
    let late = b"{\"k\":1,\"v\":\"late\"}\n{\"k\":2,\"v\":\"late\"}\n";
    let (lt, lf) = file(live);
    let (rt, rf) = file(late);
    let segs = [
        FileSpan {
            file: &lf,
            path: lt.path(),
            start: 0,
            end: p as u64,
        },
        FileSpan {
            file: &rf,
            path: rt.path(),
            start: 0,
            end: late.len() as u64,
        },
        FileSpan {
            file: &lf,
            path: lt.path(),
            start: p as u64,
            end: live.len() as u64,
        },
    ];
    let plan = fold_spans(&spec, &segs, 4, 1).unwrap();
    let out = tempfile::tempfile().unwrap();
    let n = write_spans(&segs, &plan.keep, &plan.newlines, &out, 2).unwrap();
    assert_eq!(
        String::from_utf8(read_all(&out, n)).unwrap(),
        "{\"k\":2,\"v\":\"late\"}\n{\"k\":1,\"v\":\"new\"}\n"
    );
}

/// A kept range that runs across a segment boundary (two adjacent kept
/// lines coalesced) maps back to one range in each file.
#[test]
fn locate_splits_a_range_at_a_span_boundary() {
    let (at, af) = file(b"aaaa\nbbbb\n");
    let (bt, bf) = file(b"cc\n");
    let segs = [
        FileSpan {
            file: &af,
            path: at.path(),
            start: 5,
            end: 10,
        },
        FileSpan {
            file: &bf,
            path: bt.path(),
            start: 0,
            end: 3,
        },
        FileSpan {
            file: &af,
            path: at.path(),
            start: 0,
            end: 5,
        },
    ];
    let got = locate(
        &segs,
        &[Range { start: 2, end: 9 }, Range { start: 10, end: 13 }],
    );
    let got: Vec<(usize, u64, u64)> = got.iter().map(|(k, r)| (*k, r.start, r.end)).collect();
    assert_eq!(got, vec![(0, 7, 10), (1, 0, 3), (2, 0, 1), (2, 2, 5)]);
}

/// Both writers of a plan over several files put out its ranges'
/// bytes in order with the `\n`s inserted, for more pieces than one
/// copy takes (`GROUP_MAX`), ranges crossing span boundaries, and
/// stretches with and without inserted `\n`s.
#[test]
fn spans_are_written_as_the_ranges_bytes_with_the_inserted_newlines() {
    let a: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let b: Vec<u8> = (0..100_000u32).map(|i| b'A' + (i % 26) as u8).collect();
    let ((at, af), (bt, bf)) = (file(&a), file(&b));
    let segs = [
        FileSpan {
            file: &af,
            path: at.path(),
            start: 150_000,
            end: 200_000,
        },
        FileSpan {
            file: &bf,
            path: bt.path(),
            start: 0,
            end: 100_000,
        },
        FileSpan {
            file: &af,
            path: at.path(),
            start: 0,
            end: 150_000,
        },
    ];
    let virt: Vec<u8> = [&a[150_000..], &b[..], &a[..150_000]].concat();
    // 3-byte ranges 5 apart, a few long ones across the boundaries.
    let mut ranges: Vec<Range> = (0..60_000u64)
        .map(|i| Range {
            start: i * 5,
            end: i * 5 + 3,
        })
        .filter(|r| r.start < 49_990 || r.start > 150_010)
        .collect();
    ranges.push(Range {
        start: 49_992,
        end: 150_008,
    });
    ranges.sort_unstable();
    // Newlines after some pieces, none in the middle stretch.
    let newlines: Vec<u64> = ranges
        .iter()
        .filter(|r| r.start % 35 == 0 && r.start < 200_000)
        .map(|r| r.end)
        .chain([50_010, 150_008])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut want = Vec::new();
    for (r, nl) in super::super::split_at_newlines(&ranges, &newlines) {
        want.extend_from_slice(&virt[r.start as usize..r.end as usize]);
        if nl {
            want.push(b'\n');
        }
    }
    assert!(ranges.len() > 2 * GROUP_MAX && newlines.len() > 1000);
    let out = tempfile::tempfile().unwrap();
    let n = write_spans(&segs, &ranges, &newlines, &out, 2).unwrap();
    assert_eq!(read_all(&out, n), want);
    let mut copied = Vec::new();
    let n = copy_spans(&segs[..], &ranges, &newlines, &mut copied).unwrap();
    assert_eq!((n as usize, copied), (want.len(), want));
}
