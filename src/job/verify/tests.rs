//! Both sides of the digest, the own fold against the engine, and
//! snapshots that must fail verify.

use super::*;
use std::io::Write;

fn spec() -> FoldSpec {
    FoldSpec::new(&["/t".into(), "/id".into()], Some("/op"), &["DEL".into()]).unwrap()
}

/// The planned side: lines fed in pieces.
fn fed(pieces: &[&[u8]]) -> Digest {
    let mut d = LineDigest::new(0);
    for p in pieces {
        d.feed(p);
    }
    finished(d)
}

/// The on-disk side, folded in shares of at least `min_chunk` bytes:
/// as its own fold and by the engine, which must agree.
fn on_disk(text: &[u8], min_chunk: u64) -> Digest {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text).unwrap();
    let n = text.len() as u64;
    let own = digest_file_in(&spec(), &f, n, min_chunk, 1 << 20).unwrap();
    let engine = digest_file_in(&spec(), &f, n, min_chunk, 0).unwrap();
    assert_eq!(own, engine, "{}", String::from_utf8_lossy(text));
    own
}

#[test]
fn the_digest_is_of_lines_not_of_how_they_were_cut() {
    let text: &[u8] = b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n";
    let whole = fed(&[text]);
    let pieces = fed(&[b"{\"t\":1,", b"\"id\":2}\n{\"t\"", b":1,\"id\":3}\n"]);
    assert_eq!(whole, pieces);
    let disk = on_disk(text, 1 << 20);
    assert_eq!((disk.hash, disk.lines, disk.bytes), (whole.hash, 2, 30));
    assert_eq!((disk.keys, disk.unfolded), (2, 0));
}

#[test]
fn chunks_digested_apart_add_up_to_the_whole() {
    let text: &[u8] = b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n{\"t\":1,\"id\":2}\n";
    let whole = fed(&[text]);
    let mut first = LineDigest::new(0);
    first.feed(&text[..15]);
    let mut rest = LineDigest::new(15);
    rest.feed(&text[15..]);
    rest.finish();
    first.absorb_digest(&rest);
    assert_eq!(finished(first), whole);
    let (one, shares) = (on_disk(text, 1 << 20), on_disk(text, 1));
    assert_eq!(one, shares);
    assert_eq!(one.hash, whole.hash);
    assert_eq!(
        (one.keys, one.unfolded),
        (2, 1),
        "a key twice across shares"
    );
}

#[test]
fn order_bytes_and_the_fold_all_count() {
    let a = fed(&[b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n"]);
    let swapped = fed(&[b"{\"t\":1,\"id\":3}\n{\"t\":1,\"id\":2}\n"]);
    let glued = fed(&[b"{\"t\":1,\"id\":2}{\"t\":1,\"id\":3}\n\n"]);
    assert_ne!(a.hash, swapped.hash);
    assert_ne!(a.hash, glued.hash);
    // A key twice, a delete, a malformed line, a last line without its
    // `\n`: a fold would drop or change them.
    let twice = on_disk(b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":2,\"v\":1}\n", 1);
    assert_eq!((twice.keys, twice.unfolded), (1, 1));
    let del = on_disk(b"{\"t\":1,\"id\":2,\"op\":\"DEL\"}\nnope\n{\"x\":1}\n", 1);
    assert_eq!((del.keys, del.unfolded), (0, 2));
    let torn = on_disk(b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id", 1);
    assert_eq!((torn.keys, torn.unfolded, torn.lines), (1, 1, 2));
}

/// Lines of a log: key 1 written twice (its first write superseded),
/// keys 2 and 3 once, key 4 deleted.
const LOG: [&str; 6] = [
    "{\"t\":1,\"id\":1,\"v\":0}\n",
    "{\"t\":1,\"id\":2,\"v\":0}\n",
    "{\"t\":1,\"id\":4,\"v\":0}\n",
    "{\"t\":1,\"id\":1,\"v\":1}\n",
    "{\"t\":1,\"id\":3,\"v\":0}\n",
    "{\"t\":1,\"id\":4,\"op\":\"DEL\"}\n",
];

/// Verify a snapshot of `written` (lines of [`LOG`], one byte flipped
/// at `flip` if given) against a plan that keeps the lines `planned`
/// with `keys` live keys.
fn verify_lines(
    planned: &[usize],
    keys: u64,
    written: &[usize],
    flip: Option<usize>,
) -> Result<Verification> {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log.jsonl");
    std::fs::write(&log_path, LOG.concat()).unwrap();
    let log = File::open(&log_path).unwrap();
    let at = |i: usize| LOG[..i].iter().map(|l| l.len() as u64).sum::<u64>();
    let keep: Vec<Range> = planned
        .iter()
        .map(|&i| Range {
            start: at(i),
            end: at(i + 1),
        })
        .collect();
    let segs = [FileSpan {
        file: &log,
        path: &log_path,
        start: 0,
        end: at(LOG.len()),
    }];
    let spec = spec();
    let plan = Planned {
        keys,
        spec: &spec,
        segs: &segs,
        keep: &keep,
        newlines: &[],
    };
    let mut bytes: Vec<u8> = written.iter().flat_map(|&i| LOG[i].bytes()).collect();
    if let Some(i) = flip {
        bytes[i] ^= 0x01;
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
    tmp.write_all(&bytes).unwrap();
    let state = dir.path().join("state");
    let v = snapshot(&plan, &tmp, bytes.len() as u64, &log_path, &state);
    if let Err(Error::Sync(crate::error::SyncError::VerifyFailed { verification, .. })) = &v {
        let kept = verification.kept.as_ref().expect("the new file is kept");
        assert_eq!(std::fs::read(kept).unwrap(), bytes);
    }
    v
}

/// The check that a snapshot is its own fold without key maps (the
/// keys' hashes checked distinct) still fails every snapshot that is
/// not the plan's fold: a changed byte, a dropped or doubled line, and
/// a plan that (wrongly) kept a superseded write or a delete, written
/// as planned, so only the fold of the file can tell.
#[test]
fn a_snapshot_that_is_not_the_plans_fold_fails_verify() {
    let ok = verify_lines(&[1, 3, 4], 3, &[1, 3, 4], None).unwrap();
    assert_eq!(ok.planned, ok.on_disk);
    assert_eq!((ok.on_disk.keys, ok.on_disk.unfolded), (3, 0));
    let fails = |planned: &[usize], keys, written: &[usize], flip| {
        let e = verify_lines(planned, keys, written, flip).unwrap_err();
        assert!(e.to_string().contains("verify before swap failed"), "{e}");
    };
    fails(&[1, 3, 4], 3, &[1, 3, 4], Some(30));
    fails(&[1, 3, 4], 3, &[1, 4], None);
    fails(&[1, 3, 4], 3, &[1, 3, 3, 4], None);
    // Key 1 twice: the lines hash as planned, the fold finds a repeat,
    // whether the plan counted 3 keys or (a merge that kept both
    // writes as keys) 4.
    fails(&[0, 1, 3, 4], 3, &[0, 1, 3, 4], None);
    fails(&[0, 1, 3, 4], 4, &[0, 1, 3, 4], None);
    // Key 1 twice in two shares of the file is found the same way.
    assert_eq!(
        on_disk(&[LOG[0], LOG[1], LOG[3]].concat().into_bytes(), 1).unfolded,
        1
    );
    // A delete kept.
    fails(&[1, 3, 4, 5], 3, &[1, 3, 4, 5], None);
}

/// Lines longer than the scan holds at once (validated as they stream
/// by, their key read back) fold the same as their own fold and by the
/// engine: a keyed one, the same key again, and a malformed one.
#[test]
fn long_lines_fold_the_same_both_ways() {
    let pad = "x".repeat(3 << 20);
    let long = format!("{{\"t\":1,\"id\":7,\"pad\":\"{pad}\"}}\n");
    let bad = format!("{{\"t\":1,\"id\":8,\"pad\":\"{pad}\n");
    let once = on_disk(format!("{{\"t\":1,\"id\":1}}\n{long}").as_bytes(), 1);
    assert_eq!((once.keys, once.unfolded, once.lines), (2, 0, 2));
    let twice = on_disk(format!("{long}{{\"id\":7,\"t\":1}}\n").as_bytes(), 1 << 20);
    assert_eq!((twice.keys, twice.unfolded), (1, 1));
    let malformed = on_disk(format!("{bad}{{\"t\":1,\"id\":1}}\n").as_bytes(), 1);
    assert_eq!((malformed.keys, malformed.unfolded), (1, 1));
}

/// One random snapshot line: a keyed event (some keys repeat, some
/// spelled with an escape, some deleting), a line without the key, or
/// a malformed one.
fn any_line() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0u8..40, any::<bool>()).prop_map(|(id, esc)| {
            let t = if esc { "\\u0031" } else { "1" };
            format!("{{\"t\":\"{t}\",\"id\":{id}}}")
        }),
        1 => (0u8..40).prop_map(|id| format!("{{\"t\":\"1\",\"id\":{id},\"op\":\"DEL\"}}")),
        1 => Just("{\"x\":1}".to_string()),
        1 => Just("{\"t\":\"1\",\"id\":".to_string()),
    ]
}

proptest::proptest! {
    /// The own fold answers only when it may, and then as the engine
    /// does (`on_disk` checks both agree), in shares of any size.
    #[test]
    fn the_own_fold_and_the_engine_agree(
        lines in proptest::collection::vec(any_line(), 0..60),
        min_chunk in 1u64..200,
    ) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        on_disk(text.as_bytes(), min_chunk);
    }
}

/// The planned side hashes a plan of many more pieces than it holds at
/// once, with `\n`s inserted, as the bytes the snapshot's write makes.
#[test]
fn a_plan_longer_than_a_batch_hashes_as_its_bytes() {
    let lines: Vec<String> = (0..5 * PLANNED_BATCH + 5)
        .map(|i| match i % 7 {
            0 => format!("{{\"t\":1,\"id\":{i}}}"),
            _ => format!("{{\"t\":1,\"id\":{i}}}\n"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log.jsonl");
    std::fs::write(&log_path, lines.concat()).unwrap();
    let log = File::open(&log_path).unwrap();
    let (mut keep, mut newlines, mut expected, mut at) = (vec![], vec![], vec![], 0u64);
    for (i, l) in lines.iter().enumerate() {
        let end = at + l.len() as u64;
        if i % 2 == 1 || i % 7 == 0 {
            keep.push(Range { start: at, end });
            expected.extend_from_slice(l.as_bytes());
            if !l.ends_with('\n') {
                newlines.push(end);
                expected.push(b'\n');
            }
        }
        at = end;
    }
    let segs = [FileSpan {
        file: &log,
        path: &log_path,
        start: 0,
        end: at,
    }];
    let spec = spec();
    let plan = Planned {
        keys: 0,
        spec: &spec,
        segs: &segs,
        keep: &keep,
        newlines: &newlines,
    };
    assert!(keep.len() > 2 * PLANNED_BATCH);
    assert_eq!(planned(&plan).unwrap(), fed(&[&expected]));
}
