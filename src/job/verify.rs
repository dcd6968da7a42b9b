//! Verify before every swap (issue 16 D): the new file's snapshot is read
//! back from disk and its fold checked against the planned fold before the
//! log is touched, so a defect of the fold or of the write path (a wrong
//! range, a lost or doubled line, a torn write, a bit flipped on its way to
//! the disk) fails the run instead of reaching the log.
//!
//! Both sides are the same digest: the lines in order, each hashed with its
//! offset, and (keyed stores) the fold's figures: live keys, and lines a
//! fold would drop. The *planned* side reads the plan's kept ranges from
//! the files the fold read, in output order with the plan's inserted
//! `\n`s, and takes the plan's live keys; the *on-disk* side reads the
//! temp file once, folding it with the same fold engine as the compaction
//! (`fold::spans`), whose scan also hashes each line as it reads it
//! ([`crate::fold::digest`]); a snapshot must be its own fold: every key
//! once, no delete, no malformed line. The two sides run in parallel.
//!
//! Invariants:
//! - Runs after the snapshot is written, beside its fsync (the caller
//!   waits for both), and before anything else changes (quarantine,
//!   writers' lock, rotated link, exchange): a mismatch leaves every file
//!   of the store as it was.
//! - On a mismatch the temp file is kept for diagnosis under the store's
//!   state dir, in `verify-failed/`, the newest [`KEEP_FAILED`] only.
//! - Covers the snapshot (the fold). The late writes and the tail, appended
//!   after it under the writers' lock, are byte copies of what writers
//!   wrote and are not part of the fold's plan.

use std::fs::File;

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::error::{Digest, Verification};
use crate::error::{Error, IoContext, Result};
use crate::fold::digest::LineDigest;
use crate::fold::snapshot::own_fold;
use crate::fold::spans::{self, FileSpan};
use crate::fold::{FoldSpec, Range};

/// Diagnosis files kept after failed verifications (the oldest go first).
pub const KEEP_FAILED: usize = 3;

/// Bytes read per step on either side.
const CHUNK: usize = 1 << 20;

/// The new file is folded in parallel chunks of at least this much.
const MIN_CHUNK: u64 = 4 << 20;

/// A snapshot of up to this many keys is folded as its own fold, which
/// holds 8 bytes per key (the key maps' budget, `fold::scan::MAP_BUDGET`,
/// at most); a bigger one by the engine, whose maps stay in that budget
/// by folding in passes.
const MAX_OWN_KEYS: usize = (32 << 20) / 8;

/// What the new file's snapshot should hold: the `keep` ranges (virtual,
/// see `fold::spans`) of `segs`, with a `\n` after each of `newlines`,
/// holding `keys` live keys of `spec`.
pub(crate) struct Planned<'a> {
    pub(crate) keys: u64,
    pub(crate) spec: &'a FoldSpec,
    pub(crate) segs: &'a [FileSpan<'a>],
    pub(crate) keep: &'a [Range],
    pub(crate) newlines: &'a [u64],
}

/// Check the snapshot `[0, len)` of `tmp` against `plan`. Returns the
/// verification, or [`SyncError::VerifyFailed`](crate::error::SyncError::VerifyFailed) (the temp file copied to
/// `state_dir`'s `verify-failed/`).
pub(crate) fn snapshot(
    plan: &Planned,
    tmp: &tempfile::NamedTempFile,
    len: u64,
    log: &Path,
    state_dir: &Path,
) -> Result<Verification> {
    let t = Instant::now();
    corrupt_for_tests(tmp.as_file(), len);
    let (planned, on_disk) = std::thread::scope(|s| {
        let planned = s.spawn(|| planned(plan));
        let on_disk = digest_file(plan.spec, tmp.as_file(), len, plan.keys);
        (planned.join().expect("verify thread panicked"), on_disk)
    });
    let mut v = Verification {
        planned: planned.ctx("verify: read the log", log)?,
        on_disk: on_disk.ctx("verify: read back", tmp.path())?,
        ms: (t.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        kept: None,
    };
    if v.planned == v.on_disk {
        return Ok(v);
    }
    v.kept = keep_for_diagnosis(tmp.as_file(), len, state_dir)
        .inspect_err(|e| tracing::warn!("verify: could not keep the new file: {e}"))
        .ok();
    Err(Error::Sync(crate::error::SyncError::VerifyFailed {
        log: log.to_path_buf(),
        verification: Box::new(v),
    }))
}

/// The digest of the plan: its kept pieces read in output order, with the
/// plan's `\n`s between them (runs of pieces of one file with coalesced
/// reads, as the snapshot was written).
fn planned(plan: &Planned) -> std::io::Result<Digest> {
    let mut d = LineDigest::new(0);
    let mut batch: Vec<Range> = Vec::new();
    for (piece, nl) in crate::fold::split_at_newlines(plan.keep, plan.newlines) {
        batch.push(piece);
        if nl {
            feed_ranges(plan.segs, &batch, &mut d)?;
            batch.clear();
            d.feed(b"\n");
        }
    }
    feed_ranges(plan.segs, &batch, &mut d)?;
    let mut digest = finished(d);
    digest.keys = plan.keys;
    Ok(digest)
}

/// Feed `d` the bytes of the virtual `ranges` of `segs`, in order: located
/// in one pass (not one allocation per piece), each run of one file's
/// ranges hashed straight from read-only maps of that file.
fn feed_ranges(segs: &[FileSpan], ranges: &[Range], d: &mut LineDigest) -> std::io::Result<()> {
    let located = spans::locate(segs, ranges);
    let mut run: Vec<Range> = Vec::new();
    for same_file in located.chunk_by(|a, b| a.0 == b.0) {
        run.clear();
        run.extend(same_file.iter().map(|&(_, r)| r));
        crate::io::ranges::copy_ranges_mapped(segs[same_file[0].0].file, &run, d)?;
    }
    Ok(())
}

/// The digest of `[0, len)` of `file`, folded by `spec`, each line hashed
/// as the fold reads it (one read of the file; the line hashes are keyed
/// by offset, so the shares do not change the digest). A keyed store's
/// file is first folded as its own fold ([`own_fold`]: the keys' hashes
/// checked distinct, no key map), then, if that gives no answer (a key
/// hash repeats) or the plan has more than [`MAX_OWN_KEYS`] keys (`keys`
/// only picks the method: both are exact), by the fold engine, which
/// compares keys byte for byte. An append-only store's file is only
/// hashed, in the same shares.
fn digest_file(spec: &FoldSpec, file: &File, len: u64, keys: u64) -> std::io::Result<Digest> {
    let max_own = if keys <= MAX_OWN_KEYS as u64 {
        MAX_OWN_KEYS
    } else {
        0
    };
    digest_file_in(spec, file, len, MIN_CHUNK, max_own)
}

/// [`digest_file`] in shares of at least `min_chunk` bytes, trying the
/// own fold with up to `max_own` keys first (0: the engine only).
fn digest_file_in(
    spec: &FoldSpec,
    file: &File,
    len: u64,
    min_chunk: u64,
    max_own: usize,
) -> std::io::Result<Digest> {
    let threads = crate::fold::scan_threads();
    // A snapshot ends in a `\n`; a damaged one may not: its last piece is
    // hashed as an unended line and counted as a line a fold would drop.
    let cut = crate::fold::find_cut(file, len)?;
    let span = [FileSpan {
        file,
        path: Path::new(""),
        start: 0,
        end: cut,
    }];
    let torn = u64::from(cut < len);
    let own = match spec.is_keyed() && max_own > 0 {
        true => own_fold(spec, file, cut, threads, min_chunk, max_own)?,
        false => None,
    };
    let (mut all, mut digest) = if let Some(own) = own {
        let digest = Digest {
            keys: own.keys_live(),
            // Every key once: only deletes and malformed lines are unfolded.
            unfolded: own.deletes + own.bad_lines + torn,
            ..Digest::default()
        };
        (own.digest, digest)
    } else if spec.is_keyed() {
        let opts = crate::fold::Opts {
            tombs: false,
            salvage: false,
            digest: true,
            ..crate::fold::Opts::compaction(threads, min_chunk)
        };
        let plan = spans::fold_source(spec, &span[..], opts)?;
        let digest = Digest {
            keys: plan.keys_live,
            // Every repeat of a key, every delete, every malformed line.
            unfolded: plan.keyed_lines - plan.keys_live + plan.bad_lines + torn,
            ..Digest::default()
        };
        (plan.digest.unwrap_or_else(|| LineDigest::new(0)), digest)
    } else {
        (hash_lines(&span, threads, min_chunk)?, Digest::default())
    };
    let mut buf = vec![0u8; CHUNK];
    all.set_at(cut);
    read_range(
        file,
        Range {
            start: cut,
            end: len,
        },
        &mut buf,
        |b| all.feed(b),
    )?;
    let lines = finished(all);
    (digest.lines, digest.bytes, digest.hash) = (lines.lines, lines.bytes, lines.hash);
    Ok(digest)
}

/// The lines' part of a [`Digest`] (a last line without its `\n` is
/// hashed as unended: never in a plan).
fn finished(mut d: LineDigest) -> Digest {
    d.finish();
    Digest {
        lines: d.lines,
        bytes: d.bytes,
        hash: format!("{:016x}", d.sum),
        keys: 0,
        unfolded: 0,
    }
}

/// The lines of `span` hashed in the engine's shares, one thread each.
fn hash_lines(span: &[FileSpan], threads: usize, min_chunk: u64) -> std::io::Result<LineDigest> {
    let shares = spans::split(span, threads, min_chunk)?;
    let parts = spans::for_shares(&shares, |_, pieces| {
        let mut d = LineDigest::new(pieces.first().map_or(0, |p| p.start));
        let mut buf = vec![0u8; CHUNK];
        for p in pieces {
            let r = Range {
                start: p.start,
                end: p.end,
            };
            read_range(span[p.span].file, r, &mut buf, |b| d.feed(b))?;
        }
        Ok(d)
    })?;
    let mut all = LineDigest::new(0);
    for p in &parts {
        all.absorb_digest(p);
    }
    Ok(all)
}

fn read_range(
    file: &File,
    r: Range,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut at = r.start;
    while at < r.end {
        let n = ((r.end - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        f(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

/// Copy the snapshot into `<state_dir>/verify-failed/<stamp>.jsonl`
/// (private), then delete all but the newest [`KEEP_FAILED`] there.
fn keep_for_diagnosis(tmp: &File, len: u64, state_dir: &Path) -> Result<PathBuf> {
    let dir = state_dir.join("verify-failed");
    crate::io::durable::ensure_private_dir(&dir)?;
    let name = format!("{}.jsonl", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
    let path = dir.join(name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .ctx("create", &path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut res = Ok(());
    read_range(tmp, Range { start: 0, end: len }, &mut buf, |b| {
        if res.is_ok() {
            res = std::io::Write::write_all(&mut out, b);
        }
    })
    .and(res)
    .ctx("write", &path)?;
    let mut kept: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ctx("list directory", &dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    kept.sort();
    for old in &kept[..kept.len().saturating_sub(KEEP_FAILED)] {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// `LOGKEEPER_FAILPOINT=corrupt-snapshot` (tests only): flip one byte in
/// the middle of the snapshot, as a bad write path or disk would.
fn corrupt_for_tests(_file: &File, _len: u64) {
    #[cfg(feature = "failpoints")]
    if _len > 0 && crate::failpoint::Failpoint::CorruptSnapshot.armed() {
        let mut b = [0u8; 1];
        let at = _len / 2;
        if _file.read_exact_at(&mut b, at).is_ok() {
            let _ = _file.write_all_at(&[b[0] ^ 0x01], at);
        }
    }
}

#[cfg(test)]
mod tests {
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
}
