//! The line readers: mapped, buffered and indexed scans hand over the
//! same lines.

use super::*;
use crate::fold::json::Scanner;
use std::io::Write;

/// One line a scan handed over, owned: its offset, and its bytes or
/// (for a long line) its length and whether it is valid.
type Got = (u64, Result<Vec<u8>, (u64, bool)>);

/// The lines a scan hands over; an indexed line is also checked: its
/// index is its batch's, and its indexed scan agrees with the
/// per-line one (verdict and spans).
fn collect(
    scan: impl FnOnce(&mut dyn FnMut(u64, Line, Option<Indexed>)) -> io::Result<()>,
) -> Vec<Got> {
    let ptrs = Pointers::new(&["/id", "/pad"]).unwrap();
    let (mut s1, mut s2) = (Scanner::new(), Scanner::new());
    let (mut o1, mut o2) = (vec![None; 2], vec![None; 2]);
    let mut out = Vec::new();
    scan(&mut |at, line, ix| {
        if let (Some(ix), Line::Whole(b)) = (ix, &line) {
            assert_eq!(&ix.bytes[ix.batch.line(ix.line)], *b);
            let fast = s1.scan_indexed(ix, &ptrs, &mut o1);
            assert_eq!(fast, s2.scan(b, &ptrs, &mut o2));
            assert_eq!(o1, o2);
        }
        out.push((
            at,
            match line {
                Line::Whole(b) => Ok(b.to_vec()),
                Line::Long { len, verdict } => Err((len, verdict.is_ok())),
            },
        ))
    })
    .unwrap();
    out
}

/// The mapped scan hands over exactly what the buffered one does: lines
/// across window edges, a line longer than a batch, long lines (valid
/// and not) streamed, one starting a window, and the last line.
#[test]
fn mapped_and_buffered_scans_hand_over_the_same_lines() {
    let mut log = Vec::new();
    let mut n = 0u64;
    while log.len() < 3 * MAP_WINDOW + 12_345 {
        n += 1;
        let pad = "p".repeat((n * 7919 % 600) as usize);
        writeln!(log, r#"{{"id":{n},"pad":"{pad}"}}"#).unwrap();
        if n.is_multiple_of(5000) {
            writeln!(log, r#"{{"id":0,"big":"{}"}}"#, "b".repeat(SCAN_BUF * 3)).unwrap();
        }
        if n == 9000 {
            writeln!(log, r#"{{"long":"{}"}}"#, "l".repeat(LONG_LINE + 10)).unwrap();
            writeln!(log, r#"{{"torn":"{}"#, "t".repeat(MAP_WINDOW + 10)).unwrap();
        }
    }
    let mut t = tempfile::NamedTempFile::new().unwrap();
    t.write_all(&log).unwrap();
    let f = t.reopen().unwrap();
    let end = log.len() as u64;
    let ptrs = Pointers::new(&["/id"]).unwrap();
    let mapped = collect(|f2| for_each_line_mapped(&f, 0, end, Some(&ptrs), None, f2));
    let read = collect(|f2| for_each_line_read(&f, 0, end, Some(&ptrs), |a, l| f2(a, l, None)));
    let mut batch = Batch::default();
    let indexed = collect(|f2| for_each_line_mapped(&f, 0, end, Some(&ptrs), Some(&mut batch), f2));
    assert_eq!(mapped.len(), read.len());
    assert!(mapped == read, "the two scans differ");
    assert!(indexed == read, "the indexed scan differs");
    let longs: Vec<_> = mapped
        .iter()
        .filter_map(|(_, l)| l.as_ref().err())
        .collect();
    assert_eq!(longs.len(), 2);
    assert_eq!((longs[0].1, longs[1].1), (true, false));
    // From a line start in the middle, to the end.
    let mid = next_line_start(&f, end / 2, end).unwrap();
    let a = collect(|f2| for_each_line_mapped(&f, mid, end, None, Some(&mut batch), f2));
    let b = collect(|f2| for_each_line_read(&f, mid, end, None, |a, l| f2(a, l, None)));
    assert!(a == b && !a.is_empty());
}
